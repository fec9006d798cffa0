"""The model inventory as a registry of digests: every release in the log, grouped by source model.

All entries are read and verified. Each release row says its validations and a status: validated / not
validated / superseded (a newer release of the same source model exists). Entries that do not verify are
listed as such, whatever they claim to be: a bad entry is shown, never dropped.
"""

from __future__ import annotations

from typing import Any

from ..errors import LogMisbehaved, LogUnreachable, OperationalError
from ..signing.trust import Trust
from .collect import LogReader
from .events import AuditEvent


def inventory(trust: Trust, *, batch: int = 10) -> list[dict[str, Any]]:
    reader = LogReader.open(trust)
    try:
        latest = reader.client.checkpoint()
        events = list(reader.scan(latest, batch))
    except LogUnreachable as exc:
        raise OperationalError(f"log unreachable: {exc.message}", url=reader.client.log.base_url) from None
    except LogMisbehaved as exc:
        raise OperationalError(f"log does not verify: {exc.message}", url=reader.client.log.base_url) from None
    validations: dict[str, list[AuditEvent]] = {}
    for e in events:
        if e.kind == "validation" and e.ok:
            validations.setdefault(str(e.details.get("root")), []).append(e)
    releases = sorted((e for e in events if e.kind == "release" and e.ok), key=lambda e: (e.time, e.log_index))
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
    for e in events:
        if not e.ok:
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
