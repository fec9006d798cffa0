"""Audit: every log entry concerning a model, each verified, as a chain of custody.

Entries are found through the log's index (the manifest root is a subject of both the release provenance
and every validation; ``digest`` adds any other subject digest), verified one by one (``events``), and
put in time order; checks say whether the chain is complete (a release, a validation of this exact root),
whether the log is consistent with what a witness saw, and whether the pack on disk matches.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..claims.oms import FILES_SHA256, build_oms, scan
from ..core.digest import Digest
from ..core.ruleid import RuleId
from ..errors import InvalidInput, LogMisbehaved, LogUnreachable, OperationalError
from ..evidence.oms import kept_log_index, verify_kept_source_signature
from ..pack.check import check_pack
from ..pack.facts import PackFacts
from ..policy.rules import Check, Status
from ..signing.attest import OMS_SUFFIX, RELEASE_SUFFIX, VALIDATION_SUFFIX
from ..signing.trust import Trust
from ..transparency.follow import TileIndex
from ..transparency.monitor import load_state, stored_checkpoint
from ..transparency.rekor_v1 import RekorClient
from .collect import LogReader
from .events import AuditEvent
from .kinds import EventKind
from .tilelog import bundle_events, follow_logs, unattributed


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
    logs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Everything found verifies (a model not validated yet can be ok: see :attr:`validated`)."""
        return all(c.ok for c in self.checks) and all(e.ok for e in self.events)

    @property
    def validated(self) -> bool:
        """A verified validation of this root was found."""
        return any(c.rule == RuleId.CUSTODY_VALIDATION and c.status is Status.PASS for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "validated": self.validated,
            "target": self.target,
            "manifest_root": str(self.root) if self.root else "",
            "log": self.log_url,
            "checkpoint": self.checkpoint,
            "logs": self.logs,
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
            raise InvalidInput("{0:={digest!r}} is not sha256:<64 hex>", option="digest", digest=digest) from None
    if not keys:
        raise InvalidInput("audit needs a pack directory, {0} or {1}", option=["manifest_root", "digest"])
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


def index_for(state: Path | None, index: Path | None) -> Path | None:
    """The tile-log index: given, or beside the witness state (``witness.json`` → ``witness.tiles.sqlite3``)."""
    if index is not None:
        return Path(index)
    return Path(state).with_suffix(".tiles.sqlite3") if state is not None else None


def default_bundles(target: Path | None) -> list[Path]:
    """A pack's release, validation and OMS bundles where attest/validate write them, if they are there."""
    if target is None:
        return []
    t = Path(target)
    return [
        t.with_name(t.name + s)
        for s in (RELEASE_SUFFIX, VALIDATION_SUFFIX, OMS_SUFFIX)
        if t.with_name(t.name + s).is_file()
    ]


def unique_bundles(paths: Sequence[Path]) -> list[Path]:
    """Each bundle once: a bundle given and also found beside the pack (or copied) is one log entry."""
    seen: set[str] = set()
    out = []
    for p in paths:
        try:
            key = hashlib.sha256(Path(p).read_bytes()).hexdigest()
        except OSError:
            key = str(Path(p).absolute())  # unreadable: reported where it is read
        if key not in seen:
            seen.add(key)
            out.append(Path(p))
    return out


def _unique_events(events: list[AuditEvent]) -> list[AuditEvent]:
    """One event per log entry (found by search and also through a bundle, or through two bundles)."""
    seen: set[tuple[str, int, str]] = set()
    out = []
    for e in events:
        key = (e.uuid, e.log_index, e.kind)
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _oms_key(target: Path | None) -> list[str]:
    """The OMS subject digest of a pack directory as it is now: its OMS signature is indexed under it."""
    if target is None:
        return []
    try:
        statement = build_oms(Path(target).name, scan(Path(target), FILES_SHA256))
    except InvalidInput:
        return []
    return [f"sha256:{statement['subject'][0]['digest']['sha256']}"]


def _source_link(
    events: list[AuditEvent], releases: list[AuditEvent], facts: PackFacts | None, trust: Trust
) -> Check | None:
    """The first link of the chain of custody: the source model's signer, as one of ``releases`` (this root's)
    recorded it (and, with the pack at hand, its kept signature verified again against the manifest's source
    files); its event is put first in ``events``."""
    recorded = next((e for e in releases if e.details.get("source_signature")), None)
    if recorded is None:
        return Check(
            RuleId.CUSTODY_SOURCE, Status.SKIPPED, "no release of this root records a verified source signature"
        )
    sig = recorded.details["source_signature"]
    ev = AuditEvent(
        int(sig.get("signed_at") or 0),
        EventKind.SOURCE,
        -1,
        "",
        str(sig["identity"]),
        str(sig["issuer"]),
        details={
            "model": sig["model"],
            "oms_root": sig["root"],
            "method": sig["method"],
            "signature": sig["file"],
            "recorded_by": f"release at log index {recorded.log_index}",
        },
    )
    if facts is not None and facts.manifest.source_signature is not None:
        index = kept_log_index(facts.dir, facts.manifest.source_signature)
        if index is not None:  # in the vendor's log, which need not be one audited here
            ev.details["signature_log_index"] = index
        kept = verify_kept_source_signature(
            facts.dir, facts.manifest.source_signature, facts.manifest.source_files, trust
        )
        ev.problems += kept.problems
        ev.notes += kept.notes
        ev.ok = not ev.problems
        ev.details["kept_signature"] = "; ".join(kept.lines()) or "verified again"
    events.insert(0, ev)
    who = f"{sig['identity']} via {sig['issuer']}" if sig["issuer"] else sig["identity"]
    return Check.of(
        RuleId.CUSTODY_SOURCE,
        ev.ok,
        f"source {sig['model']} signed by {who} ({sig['method']})",
        hint=None if ev.ok else "the kept source signature does not verify: see the source event",
    )


@dataclass
class _Logs:
    """What the logs said: events, checks, and per log its URL, checkpoint and requests."""

    events: list[AuditEvent] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)


def _rekor_v1(out: _Logs, trust: Trust, keys: list[str], state: Path | None) -> None:
    for log in trust.logs():
        reader = LogReader(trust, RekorClient(log))
        client = reader.client
        info: dict[str, Any] = {"url": log.base_url, "kind": "rekor-v1", "checkpoint": {}}
        out.logs.append(info)
        try:
            latest = client.checkpoint()
            info["checkpoint"] = {"size": latest.size, "root": latest.root.hex(), "origin": latest.origin}
            out.checks.append(
                Check.of(RuleId.LOG_CHECKPOINT, True, f"{log.base_url}: size {latest.size}, signed by the log key")
            )
            if state is not None:
                stored = stored_checkpoint(load_state(Path(state)), client)
                if stored is None:
                    out.checks.append(
                        Check(RuleId.LOG_CONSISTENCY, Status.SKIPPED, f"{log.base_url}: no stored checkpoint")
                    )
                else:
                    try:
                        client.prove_consistent(stored, latest)
                        out.checks.append(
                            Check.of(
                                RuleId.LOG_CONSISTENCY,
                                True,
                                f"{log.base_url}: extends the witnessed size {stored.size}",
                            )
                        )
                    except LogMisbehaved as exc:
                        out.checks.append(
                            Check.of(RuleId.LOG_CONSISTENCY, False, exc.message, hint="the log was rewritten")
                        )
            out.events += reader.by_subjects(keys, latest)
        except LogUnreachable as exc:
            raise OperationalError(f"log unreachable: {exc.message}", url=log.base_url) from None
        except LogMisbehaved as exc:
            out.checks.append(
                Check.of(RuleId.LOG_CHECKPOINT, False, exc.message, hint="the log's answers do not verify")
            )
        finally:
            info["requests"] = client.requests


def _rekor_v2(out: _Logs, trust: Trust, keys: list[str], index: Path | None, bundles: list[Path]) -> None:
    if not trust.tile_logs():
        return
    idx = TileIndex(index)
    try:
        for r, client in follow_logs(trust, idx):
            info: dict[str, Any] = {"url": r.url, "kind": "rekor-v2 (tiles)", "requests": r.requests, "checkpoint": {}}
            out.logs.append(info)
            if not r.ok or r.current is None:
                out.checks.append(
                    Check.of(
                        RuleId.LOG_CHECKPOINT, False, f"{r.url}: {r.problem}", hint="the log's tiles do not verify"
                    )
                )
                continue
            cp = r.current
            info["checkpoint"] = {"size": cp.size, "root": cp.root.hex(), "origin": cp.origin}
            out.checks.append(
                Check.of(
                    RuleId.LOG_CHECKPOINT,
                    True,
                    f"{r.url}: size {cp.size}, {r.new_entries} new entries verified from tiles",
                )
            )
            if index is None:
                out.checks.append(
                    Check(RuleId.LOG_CONSISTENCY, Status.SKIPPED, f"{r.url}: no index kept (scanned {cp.size} entries)")
                )
            elif r.previous is None:
                out.checks.append(Check(RuleId.LOG_CONSISTENCY, Status.SKIPPED, f"{r.url}: first run of this index"))
            else:
                out.checks.append(
                    Check.of(RuleId.LOG_CONSISTENCY, True, f"{r.url}: extends the indexed size {r.previous.size}")
                )
            ta = bundle_events(bundles, trust, client, cp)
            signers = sorted({e.signer for e in ta.events if e.signer})
            out.events += ta.events + unattributed(idx, client.log.log_id, signers, keys, ta.leaves)
            info["requests"] = client.requests
    finally:
        idx.close()


def _custody_checks(events: list[AuditEvent], root: Digest, facts: PackFacts | None, trust: Trust) -> list[Check]:
    """The chain of custody of ``root``: its source signature's link (when there is one), a release, a validation
    (none yet is skipped, not failed)."""
    mine = [e for e in events if e.details.get("root") == str(root)]
    releases = [e for e in mine if e.kind is EventKind.RELEASE]
    validations = [e for e in mine if e.kind is EventKind.VALIDATION]
    release = Check.of(
        RuleId.CUSTODY_RELEASE,
        any(e.ok for e in releases),
        f"{len(releases)} release attestation(s) of this root",
        hint=None if releases else "on a Rekor v2 log, give the release bundle (--bundle)",
    )
    if validations:  # a validation that does not verify is a failure ...
        validation = Check.of(
            RuleId.CUSTODY_VALIDATION,
            any(e.ok for e in validations),
            f"{len(validations)} validation(s) of this root",
        )
    else:  # ... none yet is a status of the model, not something that fails to verify
        validation = Check(
            RuleId.CUSTODY_VALIDATION,
            Status.SKIPPED,
            "not validated yet: no validation of this root",
            hint="uc-attest validate signs one; on a Rekor v2 log give its bundle (--bundle)",
        )
    link = _source_link(events, releases, facts, trust)
    return [release, validation] if link is None else [link, release, validation]


def _unattributed_checks(events: list[AuditEvent]) -> list[Check]:
    """A note of the entries no bundle given accounts for (none: no check)."""
    other = [e for e in events if e.kind is EventKind.UNATTRIBUTED]
    if not other:
        return []
    return [
        Check.of(
            RuleId.CUSTODY_UNATTRIBUTED,
            True,
            f"{len(other)} other entries by these signers or over this digest: no bundle given accounts for them",
            hint="listed as events: ask their signers for the bundles",
        )
    ]


def audit(
    target: Path | None,
    trust: Trust,
    *,
    manifest_root: Digest | None = None,
    digest: str | None = None,
    state: Path | None = None,
    index: Path | None = None,
    bundles: Sequence[Path] = (),
) -> AuditReport:
    """Find and verify every log entry about a pack / manifest root / digest; build the chain of custody.

    Rekor v1 logs are searched by subject digest; on tile logs (Rekor v2) the given bundles (and the pack's
    own) are proven from the tiles and the index lists every other entry by their signers."""
    t0 = time.perf_counter()
    facts = PackFacts(Path(target)) if target is not None else None
    root = facts.root if facts is not None else manifest_root
    keys = _subject_keys(root, digest) + _oms_key(target)
    out = _Logs()
    _rekor_v1(out, trust, keys, state)
    _rekor_v2(
        out, trust, keys, index_for(state, index), unique_bundles([*default_bundles(target), *map(Path, bundles)])
    )
    if not out.logs:
        raise InvalidInput(f"{trust.source}: the trust root names no transparency log")
    events, checks = _unique_events(out.events), out.checks
    events.sort(key=lambda e: (e.time, e.log_index))
    if root is not None:
        checks += _custody_checks(events, root, facts, trust)
    checks += _unattributed_checks(events)
    if facts is not None:
        pc = check_pack(facts, facts.manifest, str(facts.manifest_path))
        checks.append(Check.of(RuleId.PACK_MATCHES, pc.ok, f"{pc.tensors_checked} tensors reconstructed and matched"))
    first = out.logs[0]
    return AuditReport(
        str(target or manifest_root or digest),
        root,
        ", ".join(x["url"] for x in out.logs),
        first["checkpoint"],
        events,
        checks,
        _tensor_rows(facts) if facts is not None else [],
        sum(int(x.get("requests", 0)) for x in out.logs),
        time.perf_counter() - t0,
        out.logs,
    )
