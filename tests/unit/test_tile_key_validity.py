"""A tile log's (Rekor v2) key vouches only inside its trusted root ``validFor``, as a Rekor v1 key does for the
entries it integrates. A tile checkpoint carries no signed time, so what is certain is used: a checkpoint read
now was signed no later than now (read before the key's start: signed outside it), and a checkpoint larger than
one verified as the log's latest at some time was signed after that time (verified past the key's end: signed
outside it). A frozen log still serving the checkpoint it signed in time is not a finding.

The log is the embedded instance's ``TileLog``, served to a real ``TileClient`` in process."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from uc_attest.errors import LogMisbehaved
from uc_attest.instance.log_v2 import TileLog
from uc_attest.transparency import follow as follow_mod
from uc_attest.transparency.checkpoint import ed25519_key_id
from uc_attest.transparency.follow import EntryFacts, TileIndex, follow
from uc_attest.transparency.tiles import TileClient, TileLogKey

NAME = "validity.example/log"
HOUR = 3600


class _Served(TileClient):
    """A TileClient whose HTTP is the TileLog's own reads (a missing tile is a 404)."""

    def __init__(self, key: TileLogKey, log: TileLog) -> None:
        super().__init__(key)
        self.served = log

    def _get(self, path: str, limit: int) -> bytes:
        self.requests += 1
        data = self.served.checkpoint.encode() if path == "checkpoint" else self.served.tile(path)
        if data is None:
            raise LogMisbehaved(f"{path}: HTTP 404", status=404)
        return data


@pytest.fixture
def log(tmp_path: Path) -> Iterator[tuple[TileLog, ed25519.Ed25519PublicKey, bytes]]:
    key = ed25519.Ed25519PrivateKey.generate()
    log_id = ed25519_key_id(NAME, key.public_key())
    tl = TileLog(tmp_path / "log.db", NAME, NAME, key, log_id, interval=0.001)
    for i in range(5):
        tl.submit(f'{{"entry":{i}}}'.encode())
    yield tl, key.public_key(), log_id
    tl.close()


def _describe(body: bytes) -> EntryFacts:
    return EntryFacts("test/1", "sha256:" + "00" * 32, "", "")


def _key(log: tuple[TileLog, ed25519.Ed25519PublicKey, bytes], start: float, end: float) -> TileLogKey:
    _, pub, log_id = log
    return TileLogKey("http://log.invalid", pub, log_id, start, end)


def test_a_checkpoint_read_before_the_log_keys_validity_starts_was_signed_outside_it(
    log: tuple[TileLog, ed25519.Ed25519PublicKey, bytes],
) -> None:
    now = time.time()
    early = _Served(_key(log, now + HOUR, float("inf")), log[0])
    with pytest.raises(LogMisbehaved, match=r"checkpoint \(size 5\) signed before the log key's validity"):
        early.checkpoint()
    result = follow(TileIndex(None), early, _describe)
    assert not result.ok and "signed before the log key's validity" in result.problem
    assert _Served(_key(log, now - HOUR, float("inf")), log[0]).checkpoint().size == 5  # in service: verifies


def test_a_retired_log_key_signing_a_larger_tree_is_caught_and_a_frozen_log_is_not(
    log: tuple[TileLog, ed25519.Ed25519PublicKey, bytes], tmp_path: Path
) -> None:
    """The monitor verified the log at size 5 two hours after its key's end; the log (its key) then signs a
    tree of size 6: a checkpoint signed outside the key's validity (a retired key may be a compromised one). The
    stored state stays as it was. While the log stays frozen, each run verifies; a key still valid may grow."""
    tl = log[0]
    now = time.time()
    retired = _key(log, now - 10 * HOUR, now - 4 * HOUR)
    index = TileIndex(tmp_path / "index.db")
    first = follow(index, _Served(retired, tl), _describe)  # its first sight: nothing dates the checkpoint
    assert first.ok and first.current is not None and first.current.size == 5, first.problem
    again = follow(index, _Served(retired, tl), _describe)  # frozen: the same checkpoint, no finding
    assert again.ok, again.problem
    then = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 2 * HOUR))
    with sqlite3.connect(tmp_path / "index.db") as db:  # verified at size 5 two hours after the key's end...
        db.execute("UPDATE logs SET verified_at = ?", (then,))
    assert follow_mod.STALE_CHECKPOINT_S < 2 * HOUR  # ...past any cache's staleness
    tl.submit(b'{"entry":"after the end"}')
    grown = follow(index, _Served(retired, tl), _describe)
    assert not grown.ok and "checkpoint of size 6 signed after the log key's validity ended" in grown.problem
    assert "still at size 5" in grown.problem and index.size(tl.log_id) == 5  # the evidence is kept
    valid = follow(index, _Served(_key(log, now - 10 * HOUR, float("inf")), tl), _describe)
    assert valid.ok and index.size(tl.log_id) == 6, valid.problem


def test_a_stored_verification_time_that_is_not_a_time_names_the_index(tmp_path: Path) -> None:
    from uc_attest.errors import InvalidInput

    index = TileIndex(tmp_path / "index.db")
    index.db.execute("INSERT INTO logs VALUES ('01', 'u', 'o', 0, '', '', '{}', 'yesterday')")
    with pytest.raises(InvalidInput, match=r"index.db: verified_at of log 01 is not a UTC time \('yesterday'\)"):
        index.verified_at(b"\x01")
    assert index.verified_at(b"\x02") is None
