"""Witness / monitor: remember the last verified checkpoint per log; prove each new one extends it.

State file (JSON): ``{"version": 1, "logs": {"<log id hex>": {"url", "origin", "size", "root",
"note", "verified_at"}}}``, written atomically. A fork (same size, other root, or no consistency
proof) or a rollback (smaller tree) fails loudly with both roots; the state is then left as it
was, so the evidence stays.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.fsutil import atomic_write_bytes
from ..errors import InvalidInput, LogMisbehaved, NoteError
from .rekor_v1 import RekorClient, VerifiedCheckpoint


@dataclass(frozen=True)
class WatchResult:
    url: str
    previous: VerifiedCheckpoint | None
    current: VerifiedCheckpoint | None
    ok: bool
    problem: str = ""

    def summary(self) -> str:
        return ""

    def to_dict(self) -> dict[str, Any]:
        def cp(c: VerifiedCheckpoint | None) -> dict[str, Any] | None:
            return None if c is None else {"size": c.size, "root": c.root.hex(), "origin": c.origin}

        return {
            "ok": self.ok,
            "url": self.url,
            "kind": "rekor-v1",
            "previous": cp(self.previous),
            "current": cp(self.current),
            "problem": self.problem,
        }


def load_state(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"version": 1, "logs": {}}
    try:
        state = json.loads(path.read_text())
        if state.get("version") != 1 or not isinstance(state.get("logs"), dict):
            raise ValueError("not a uc-attest monitor state (version 1)")
        return state  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: unreadable monitor state: {exc}", path=str(path)) from None


def stored_checkpoint(state: dict[str, Any], client: RekorClient) -> VerifiedCheckpoint | None:
    """The stored checkpoint of this log, re-verified with the log key (the state file is not trusted)."""
    rec = state["logs"].get(client.log.log_id.hex())
    if rec is None:
        return None
    try:
        return client.verify_note(rec["note"])
    except (KeyError, LogMisbehaved, NoteError) as exc:
        raise InvalidInput(f"monitor state for {client.log.base_url} does not verify: {exc}") from None


def watch(state_path: Path, client: RekorClient) -> WatchResult:
    """Fetch and verify the current checkpoint, prove it extends the stored one, then store it."""
    state = load_state(state_path)
    previous = stored_checkpoint(state, client)
    current = client.checkpoint()
    if previous is not None:
        try:
            client.prove_consistent(previous, current)
        except LogMisbehaved as exc:
            return WatchResult(client.log.base_url, previous, current, False, str(exc))
    state["logs"][client.log.log_id.hex()] = {
        "url": client.log.base_url,
        "origin": current.origin,
        "size": current.size,
        "root": current.root.hex(),
        "note": current.note,
        "verified_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    atomic_write_bytes(state_path, json.dumps(state, indent=2, sort_keys=True).encode())
    return WatchResult(client.log.base_url, previous, current, True)
