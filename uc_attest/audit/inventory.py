"""The model inventory as a registry of digests: every release in the logs, grouped by source model.

All entries are read and verified. Each release row says its validations and a status: validated / not
validated / superseded (a newer release of the same source model exists). Entries that do not verify are
listed as such, whatever they claim to be: a bad entry is shown, never dropped. On a tile log (Rekor v2)
statements come from the bundles in ``bundle_dirs``; every entry of the log no bundle accounts for is
listed as "no statement known".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, LogMisbehaved, LogUnreachable, OperationalError
from ..signing.attest import OMS_SUFFIX
from ..signing.trust import Trust
from ..transparency.follow import TileIndex
from ..transparency.rekor_v1 import RekorClient
from .collect import LogReader
from .events import AuditEvent
from .kinds import EventKind
from .tilelog import bundle_events, follow_logs, unattributed

#: The files ``--bundles`` directories are searched for.
BUNDLE_PATTERNS = ("*.sigstore.json", "*" + OMS_SUFFIX)


def _v1_events(trust: Trust, batch: int) -> list[AuditEvent]:
    events: list[AuditEvent] = []
    for log in trust.logs():
        reader = LogReader(trust, RekorClient(log))
        try:
            events += reader.scan(reader.client.checkpoint(), batch)
        except LogUnreachable as exc:
            raise OperationalError(f"log unreachable: {exc.message}", url=log.base_url) from None
        except LogMisbehaved as exc:
            raise OperationalError(f"log does not verify: {exc.message}", url=log.base_url) from None
    return events


def _tile_events(trust: Trust, index: Path | None, bundle_dirs: Sequence[Path]) -> list[AuditEvent]:
    # release and validation bundles, and the OMS signatures attest writes beside each pack (PACK.model.sig)
    bundles = sorted(p for d in bundle_dirs for pat in BUNDLE_PATTERNS for p in Path(d).glob(pat))
    for d in bundle_dirs:
        if not Path(d).is_dir():
            raise InvalidInput(f"{d}: not a directory of bundles", path=str(d))
    idx, events = TileIndex(index), []
    try:
        for r, client in follow_logs(trust, idx):
            if not r.ok or r.current is None:
                raise OperationalError(f"log does not verify: {r.url}: {r.problem}", url=r.url)
            ta = bundle_events(bundles, trust, client, r.current)
            events += ta.events + unattributed(idx, client.log.log_id, (), (), ta.leaves)
    finally:
        idx.close()
    return events


def inventory(
    trust: Trust, *, batch: int = 10, index: Path | None = None, bundle_dirs: Sequence[Path] = ()
) -> list[dict[str, Any]]:
    """Every release in the logs, with its validations and status, then every entry that names no release or
    does not verify (see the module's docstring)."""
    if not trust.logs() and not trust.tile_logs():
        raise InvalidInput(f"{trust.source}: the trust root names no transparency log")
    events = _v1_events(trust, batch)
    if trust.tile_logs():
        events += _tile_events(trust, index, bundle_dirs)
    return _release_rows(events) + _other_rows(events)


def _release_rows(events: list[AuditEvent]) -> list[dict[str, Any]]:
    """One row per verified release, in log order: its verified validations and status (validated / not
    validated / superseded by a newer release of the same source model)."""
    validations: dict[str, list[AuditEvent]] = {}
    for e in events:
        if e.kind is EventKind.VALIDATION and e.ok:
            validations.setdefault(str(e.details.get("root")), []).append(e)
    releases = sorted((e for e in events if e.kind is EventKind.RELEASE and e.ok), key=lambda e: (e.time, e.log_index))
    newest: dict[str, AuditEvent] = {}
    for e in releases:
        newest[str(e.details.get("source_digest"))] = e
    rows = []
    for e in releases:
        root, source = str(e.details.get("root")), str(e.details.get("source_digest"))
        vals = validations.get(root, [])
        if newest[source] is not e and newest[source].details.get("root") != root:
            status = "superseded"
        else:
            status = "validated" if vals else "not validated"
        scheme = e.details.get("scheme", {})
        rows.append(
            {
                "model": source,
                "manifest_root": root,
                "released": e.time,
                "log_index": e.log_index,
                "builder": e.details.get("builder"),
                "signer": e.signer,
                "scheme": f"{scheme.get('id')} {scheme.get('bits')}b/g{scheme.get('group_size')}",
                "validations": len(vals),
                "last_validation": vals[-1].details.get("metrics") if vals else None,
                "status": status,
            }
        )
    return rows


def _other_rows(events: list[AuditEvent]) -> list[dict[str, Any]]:
    """One row per entry no bundle accounts for and per entry that does not verify: shown, never dropped."""
    rows: list[dict[str, Any]] = []
    for e in events:
        if e.kind is EventKind.UNATTRIBUTED:
            rows.append(
                {
                    "model": "?",
                    "manifest_root": "?",
                    "released": None,  # nothing says what it is, let alone when it was released
                    "first_seen": e.time,  # when this machine's index first saw the entry
                    "log_index": e.log_index,
                    "signer": e.signer,
                    "kind": e.kind,
                    "signed_digest": e.details.get("signed_digest"),
                    "status": "no statement known (Rekor v2 entry; no bundle given accounts for it)",
                }
            )
        elif not e.ok:
            rows.append(
                {
                    "model": str(e.details.get("source_digest") or "?"),
                    "manifest_root": str(e.details.get("root") or "?"),
                    "released": e.time,
                    "log_index": e.log_index,
                    "signer": e.signer,
                    "kind": e.kind,
                    "status": "DOES NOT VERIFY: " + "; ".join(e.problems),
                }
            )
    return rows
