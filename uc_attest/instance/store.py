"""Durable append-only log in SQLite (WAL): entries, search index and signed checkpoints.

Each append writes the entry, its index keys and the new signed checkpoint in one
transaction and commits before the caller answers, so after a crash (even SIGKILL)
the stored checkpoint always matches the stored entries. Appends are serialized by a
lock; reads see committed state. On open, the latest checkpoint is checked against
the root recomputed from every stored leaf.
"""

from __future__ import annotations

import base64
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core import merkle
from ..core.digest import canonical_json
from ..errors import OperationalError
from ..transparency.checkpoint import Checkpoint

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    idx INTEGER PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    kind TEXT NOT NULL,
    integrated_time INTEGER NOT NULL,
    set_sig BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS index_keys (key TEXT NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (key, idx));
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attestations (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
"""


class LogCorrupted(OperationalError):
    """Stored entries and the stored checkpoint disagree."""


@dataclass(frozen=True)
class StoredEntry:
    index: int
    uuid: str
    body: bytes
    kind: str
    integrated_time: int
    set_sig: bytes


@dataclass(frozen=True)
class LogState:
    size: int
    root: bytes
    note: str


#: A Rekor v1 entry UUID: the leaf hash (64 hex digits), optionally after the 16-digit tree ID (80 in all).
UUID_RE = re.compile(r"(?:[0-9a-fA-F]{16})?[0-9a-fA-F]{64}")

Signer = Callable[[bytes], bytes]  # signs bytes with the log key (DER ECDSA)
NoteSigner = Callable[[bytes], str]  # signs checkpoint text into a signed note


class LogStore:
    """An append-only Merkle log on SQLite. Thread-safe."""

    def __init__(self, path: Path, origin: str, log_id: bytes, sign: Signer, sign_note: NoteSigner) -> None:
        self.origin, self.log_id, self._sign, self._sign_note = origin, log_id, sign, sign_note
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise OperationalError(f"{path}: cannot open log database: {exc}", path=str(path)) from exc
        leaves = [merkle.leaf_hash(bytes(b)) for (b,) in self._db.execute("SELECT body FROM entries ORDER BY idx")]
        self._tree = merkle.MerkleTree(leaves)
        self._by_hash = {h: i for i, h in enumerate(leaves)}
        row = self._db.execute("SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        root = self._tree.root()
        if row is None:
            self._state = LogState(0, root, sign_note(Checkpoint(origin, 0, root, self._stamp()).text()))
            self._db.execute("INSERT INTO checkpoints VALUES (0, ?, ?)", (root, self._state.note))
        else:
            if row[0] != len(self._tree) or bytes(row[1]) != root:
                raise LogCorrupted(
                    f"{path}: checkpoint (size {row[0]}) does not match the {len(self._tree)} stored entries",
                    path=str(path),
                )
            self._state = LogState(row[0], bytes(row[1]), row[2])

    @staticmethod
    def _stamp() -> tuple[str, ...]:
        return (f"Timestamp: {time.time_ns()}",)

    @property
    def state(self) -> LogState:
        return self._state

    def set_payload(self, body: bytes, integrated_time: int, index: int) -> bytes:
        """The bytes a signed entry timestamp (SET) covers, as sigstore verifies them."""
        return canonical_json(
            {
                "body": base64.b64encode(body).decode(),
                "integratedTime": integrated_time,
                "logID": self.log_id.hex(),
                "logIndex": index,
            }
        )

    def append(
        self, body: bytes, kind: str, index_keys: list[str], attestation: bytes | None = None
    ) -> tuple[StoredEntry, bool]:
        """Append ``body`` (canonical JSON); returns the entry and whether it was new.

        An identical body already in the log is returned instead of appended (Rekor answers 409).
        """
        leaf = merkle.leaf_hash(body)
        with self._lock:
            if leaf in self._by_hash:
                return self.get(self._by_hash[leaf]), False
            index = len(self._tree)
            now = int(time.time())
            set_sig = self._sign(self.set_payload(body, now, index))
            self._tree.append(leaf)  # visible only up to state.size until committed
            root = self._tree.root(index + 1)
            note = self._sign_note(Checkpoint(self.origin, index + 1, root, self._stamp()).text())
            entry = StoredEntry(index, leaf.hex(), body, kind, now, set_sig)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?)", (index, entry.uuid, body, kind, now, set_sig)
                )
                self._db.executemany("INSERT OR IGNORE INTO index_keys VALUES (?, ?)", [(k, index) for k in index_keys])
                self._db.execute("INSERT INTO checkpoints VALUES (?, ?, ?)", (index + 1, root, note))
                if attestation is not None:
                    self._db.execute("INSERT INTO attestations VALUES (?, ?)", (index, attestation))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                self._tree = merkle.MerkleTree([self._tree.leaf(i) for i in range(index)])
                raise OperationalError(f"log append failed: {exc}") from exc
            self._by_hash[leaf] = index
            self._state = LogState(index + 1, root, note)
            return entry, True

    def get(self, index: int) -> StoredEntry:
        row = self._db.execute(
            "SELECT idx, uuid, body, kind, integrated_time, set_sig FROM entries WHERE idx = ?", (index,)
        ).fetchone()
        if row is None:
            raise KeyError(index)
        return StoredEntry(row[0], row[1], bytes(row[2]), row[3], row[4], bytes(row[5]))

    def attestation(self, index: int) -> bytes | None:
        """The stored DSSE payload of a dsse entry (its hash is in the entry body)."""
        row = self._db.execute("SELECT data FROM attestations WHERE idx = ?", (index,)).fetchone()
        return None if row is None else bytes(row[0])

    def find_uuid(self, uuid: str) -> int | None:
        """The index of the entry ``uuid`` names; None when absent or not a UUID (:data:`UUID_RE`)."""
        if not UUID_RE.fullmatch(uuid):
            return None
        return self._by_hash.get(bytes.fromhex(uuid[-64:]))

    def search(self, key: str) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT idx FROM index_keys WHERE key = ? ORDER BY idx", (key,))]

    def snapshot(self) -> tuple[merkle.MerkleTree, LogState]:
        """The tree and the committed state (proofs are computed for ``state.size`` only)."""
        with self._lock:
            return self._tree, self._state

    def consistency(self, first: int, last: int) -> list[bytes]:
        tree, state = self.snapshot()
        if not 0 < first <= last <= state.size:
            raise ValueError(f"need 0 < firstSize <= lastSize <= {state.size}")
        return tree.consistency_proof(first, last)

    def checkpoint_at(self, size: int) -> str | None:
        row = self._db.execute("SELECT note FROM checkpoints WHERE size = ?", (size,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._db.close()
