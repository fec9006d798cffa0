"""Collect the log entries about a model: through the log's index (Rekor v1 search), or a full scan."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import InvalidInput, LogMisbehaved
from ..signing.trust import Trust
from ..transparency.rekor_v1 import RekorClient, VerifiedCheckpoint
from .events import AuditEvent, verify_event
from .kinds import EventKind


@dataclass
class LogReader:
    """A verifying client for the (first) log of a trust root."""

    trust: Trust
    client: RekorClient

    @classmethod
    def open(cls, trust: Trust) -> LogReader:
        logs = trust.logs()
        if not logs:
            raise InvalidInput(f"{trust.source}: the trust root names no transparency log")
        return cls(trust, RekorClient(logs[0]))

    def by_subjects(self, keys: list[str], latest: VerifiedCheckpoint) -> list[AuditEvent]:
        """Every entry indexed under one of ``keys`` (``sha256:<hex>`` subject digests), verified."""
        uuids = sorted({u for k in keys for u in self.client.search(k)})
        out = []
        for u in uuids:
            try:
                out.append(verify_event(self.client.entry_by_uuid(u, latest), self.client.log.log_id, self.trust))
            except LogMisbehaved as exc:
                out.append(AuditEvent(0, EventKind.OTHER, -1, u, ok=False, problems=[exc.message]))
        return out

    def scan(self, latest: VerifiedCheckpoint, batch: int = 10) -> Iterator[AuditEvent]:
        """Every entry of the log up to ``latest``, ``batch`` per request as Rekor allows, verified."""
        for start in range(0, latest.size, batch):
            for a in self.client.retrieve(list(range(start, min(latest.size, start + batch)))):
                try:
                    yield verify_event(self.client.verify_entry(a, latest), self.client.log.log_id, self.trust)
                except LogMisbehaved as exc:
                    yield AuditEvent(0, EventKind.OTHER, -1, "", ok=False, problems=[exc.message])
