"""Audit: every log entry concerning a model, each verified, as a chain of custody.

Entries are found through the log's index (the manifest root is a subject of both the release provenance
and every validation; ``digest`` adds any other subject digest), verified one by one (``events``), and
put in time order; checks say whether the chain is complete (a release, a validation of this exact root),
whether the log is consistent with what a witness saw, and whether the pack on disk matches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.digest import Digest
from ..errors import InvalidInput, LogMisbehaved, LogUnreachable, OperationalError
from ..pack.check import check_pack
from ..pack.facts import PackFacts
from ..policy.rules import Check
from ..signing.trust import Trust
from ..transparency.monitor import load_state, stored_checkpoint
from .collect import LogReader
from .events import AuditEvent


@dataclass
class AuditReport:
    target: str
    root: Digest | None
    log_url: str
    checkpoint: dict[str, Any]
    events: list[AuditEvent]
    checks: list[Check]
    tensors: list[dict[str, Any]]
    requests: int
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and all(e.ok for e in self.events)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "target": self.target,
            "manifest_root": str(self.root) if self.root else "",
            "log": self.log_url,
            "checkpoint": self.checkpoint,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "checks": [c.to_dict() for c in self.checks],
            "events": [e.to_dict() for e in self.events],
            "tensors": self.tensors,
        }


def _subject_keys(root: Digest | None, digest: str | None) -> list[str]:
    keys = [str(root)] if root else []
    if digest:
        try:
            keys.append(str(Digest.parse(digest if digest.startswith("sha256:") else f"sha256:{digest}")))
        except ValueError:
            raise InvalidInput(f"--digest {digest!r} is not sha256:<64 hex>") from None
    if not keys:
        raise InvalidInput("audit needs a pack directory, --manifest-root or --digest")
    return keys


def _tensor_rows(facts: PackFacts) -> list[dict[str, Any]]:
    rows = []
    for t in sorted(facts.manifest.tensors, key=lambda t: t.name):
        q = t.quant
        rows.append(
            {
                "name": t.name,
                "dtype": t.dtype,
                "shape": list(t.shape),
                "digest": str(t.digest),
                "bits": q.bits if q else None,
                "rel_err_ppm": q.rel_err_ppm if q else None,
                "moments": str(q.moments_digest) if q and q.moments_digest else None,  # committed calibration moments
            }
        )
    return rows


def audit(
    target: Path | None,
    trust: Trust,
    *,
    manifest_root: Digest | None = None,
    digest: str | None = None,
    state: Path | None = None,
) -> AuditReport:
    """Find and verify every log entry about a pack / manifest root / digest; build the chain of custody."""
    t0 = time.perf_counter()
    facts = PackFacts(Path(target)) if target is not None else None
    root = facts.root if facts is not None else manifest_root
    keys = _subject_keys(root, digest)
    reader = LogReader.open(trust)
    client = reader.client
    checks: list[Check] = []
    events: list[AuditEvent] = []
    latest = None
    try:
        latest = client.checkpoint()
        checks.append(Check.of("log.checkpoint", True, f"size {latest.size}, signed by the log key"))
        if state is not None:
            stored = stored_checkpoint(load_state(Path(state)), client)
            if stored is None:
                checks.append(Check("log.consistency", "skipped", "no stored checkpoint for this log"))
            else:
                try:
                    client.prove_consistent(stored, latest)
                    checks.append(Check.of("log.consistency", True, f"extends the witnessed size {stored.size}"))
                except LogMisbehaved as exc:
                    checks.append(Check.of("log.consistency", False, exc.message, hint="the log was rewritten"))
        events = reader.by_subjects(keys, latest)
    except LogUnreachable as exc:
        raise OperationalError(f"log unreachable: {exc.message}", url=client.log.base_url) from None
    except LogMisbehaved as exc:
        checks.append(Check.of("log.checkpoint", False, exc.message, hint="the log's answers do not verify"))
    events.sort(key=lambda e: (e.time, e.log_index))
    if root is not None:
        mine = [e for e in events if e.details.get("root") == str(root)]
        releases = [e for e in mine if e.kind == "release"]
        validations = [e for e in mine if e.kind == "validation"]
        checks.append(
            Check.of(
                "custody.release",
                any(e.ok for e in releases),
                f"{len(releases)} release attestation(s) of this root",
            )
        )
        checks.append(
            Check.of(
                "custody.validation",
                any(e.ok for e in validations),
                f"{len(validations)} validation(s) of this root",
                hint=None if validations else "never validated",
            )
        )
    if facts is not None:
        pc = check_pack(facts, facts.manifest, str(facts.manifest_path))
        checks.append(Check.of("pack.matches", pc.ok, f"{pc.tensors_checked} tensors reconstructed and matched"))
    cp = {"size": latest.size, "root": latest.root.hex(), "origin": latest.origin} if latest is not None else {}
    return AuditReport(
        str(target or manifest_root or digest),
        root,
        client.log.base_url,
        cp,
        events,
        checks,
        _tensor_rows(facts) if facts is not None else [],
        client.requests,
        time.perf_counter() - t0,
    )
