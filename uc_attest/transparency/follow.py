"""Follow a C2SP tlog-tiles log (Rekor v2) into a local SQLite index: verify everything, then remember.

One run: fetch and verify the checkpoint with the log key; refuse a rollback, and a second root at the
stored size (a fork); download the new entry bundles and extend the stored compact range leaf by leaf —
its root must be the checkpoint's, which proves the new checkpoint consistent with the stored one and the
entries exactly the log's. Then the tiles clients compute proofs from: every new level-0 tile must hold the
entries' leaf hashes, every new higher tile the roots of the full tiles below it, and the tiles' root must
be the checkpoint's. Only then, in one SQLite transaction: the entries the watch concerns (identities,
digests; all when nothing is watched) and the new state. A failure names the tile or entry and leaves the
stored state as it was, so the evidence stays.

Rekor v2 has no search API: this index is how audit and inventory find a model's entries on a v2 log.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.merkle import leaf_hash, root_from_leaf_hashes
from ..errors import InvalidInput, LogMisbehaved
from .tiles import WIDTH, CompactRange, TileCheckpoint, TileClient, TileTree, tile_path, tile_width

#: How long a cache may go on serving a checkpoint after the log signed a newer one (seconds): a larger checkpoint
#: seen after a smaller one verified this long past the log key's end is one the key signed after it.
STALE_CHECKPOINT_S = 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (log_id TEXT PRIMARY KEY, url TEXT NOT NULL, origin TEXT NOT NULL,
    size INTEGER NOT NULL, root TEXT NOT NULL, note TEXT NOT NULL, compact TEXT NOT NULL, verified_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (log_id TEXT NOT NULL, idx INTEGER NOT NULL, leaf TEXT NOT NULL,
    kind TEXT NOT NULL, digest TEXT NOT NULL, identity TEXT NOT NULL, issuer TEXT NOT NULL, body BLOB NOT NULL,
    seen_at INTEGER NOT NULL, PRIMARY KEY (log_id, idx));
CREATE INDEX IF NOT EXISTS entries_identity ON entries (identity);
CREATE INDEX IF NOT EXISTS entries_digest ON entries (digest);
"""


@dataclass(frozen=True)
class EntryFacts:
    """What the index keeps of an entry, read from its canonical body by the caller's ``describe``."""

    kind: str  # e.g. hashedrekord/0.0.2
    digest: str  # sha256:<hex> of what was signed (for DSSE: of the PAE)
    identity: str  # the signing certificate's identity ("" for a key)
    issuer: str


Describe = Callable[[bytes], EntryFacts]


@dataclass(frozen=True)
class IndexedEntry:
    log_id: str
    index: int
    leaf: str
    facts: EntryFacts
    body: bytes
    seen_at: int


@dataclass(frozen=True)
class Watch:
    """Which entries to index: identities (exact), anchored identity regexes, signed digests. Empty: all."""

    identities: tuple[str, ...] = ()
    identity_regexes: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for r in self.identity_regexes:
            if not (r.startswith("^") and r.endswith("$")):
                raise InvalidInput("{0} {regex!r} must be anchored with ^ and $", option="identity_regexes", regex=r)
            try:
                re.compile(r)
            except re.error as exc:
                raise InvalidInput(
                    "{0} {regex!r} does not compile: {error}", option="identity_regexes", regex=r, error=str(exc)
                ) from None
        for d in self.digests:
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", d):
                raise InvalidInput("{0} {digest!r} is not sha256:<64 hex>", option="digests", digest=d)

    @property
    def everything(self) -> bool:
        return not (self.identities or self.identity_regexes or self.digests)

    def concerns(self, e: EntryFacts) -> bool:
        return (
            self.everything
            or e.identity in self.identities
            or any(re.fullmatch(r, e.identity) for r in self.identity_regexes)
            or e.digest in self.digests
        )


@dataclass
class FollowResult:
    url: str
    previous: TileCheckpoint | None
    current: TileCheckpoint | None
    ok: bool
    problem: str = ""
    new_entries: int = 0
    indexed: int = 0
    requests: int = 0
    bytes: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.new_entries} new entries verified, {self.indexed} indexed; {self.requests} requests, "
            f"{self.bytes} bytes, {self.seconds:.2f} s"
        )

    def to_dict(self) -> dict[str, Any]:
        def cp(c: TileCheckpoint | None) -> dict[str, Any] | None:
            return None if c is None else {"size": c.size, "root": c.root.hex(), "origin": c.origin}

        return {
            "ok": self.ok,
            "url": self.url,
            "kind": "tiles",
            "previous": cp(self.previous),
            "current": cp(self.current),
            "problem": self.problem,
            "new_entries": self.new_entries,
            "indexed": self.indexed,
            "requests": self.requests,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
        }


_SELECT = "SELECT log_id, idx, leaf, kind, digest, identity, issuer, body, seen_at FROM entries"


def _row(r: Any) -> IndexedEntry:
    return IndexedEntry(r[0], r[1], r[2], EntryFacts(r[3], r[4], r[5], r[6]), bytes(r[7]), r[8])


class TileIndex:
    """The monitor's SQLite file: per log the verified checkpoint and compact range, and the indexed entries.
    ``None`` keeps it in memory (an audit without a stored index scans the log each time)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(str(path) if path is not None else ":memory:", isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InvalidInput(f"{path}: not a uc-attest log index: {exc}", path=str(path)) from None

    def close(self) -> None:
        self.db.close()

    def state(self, client: TileClient) -> tuple[TileCheckpoint, CompactRange] | None:
        """The stored checkpoint (re-verified with the log key: the file is not trusted) and compact range."""
        row = self.db.execute("SELECT note, compact FROM logs WHERE log_id = ?", (client.log.log_id.hex(),)).fetchone()
        if row is None:
            return None
        where = f"{self.path or 'index'}: stored state of {client.log.base_url}"
        try:
            cp = client.verify_note(row[0])
            cr = CompactRange.from_dict(json.loads(row[1]))
        except (LogMisbehaved, ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{where} does not verify: {exc}") from None
        if cr.size != cp.size or cr.root() != cp.root:
            raise InvalidInput(f"{where}: the compact range is not the stored checkpoint's tree")
        return cp, cr

    def verified_at(self, log_id: bytes) -> float | None:
        """When the stored checkpoint of ``log_id`` was last verified as the log's latest (POSIX); None: never."""
        row = self.db.execute("SELECT verified_at FROM logs WHERE log_id = ?", (log_id.hex(),)).fetchone()
        if row is None:
            return None
        try:
            return dt.datetime.strptime(row[0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
        except (TypeError, ValueError):
            raise InvalidInput(
                f"{self.path or 'index'}: verified_at of log {log_id.hex()} is not a UTC time ({row[0]!r})"
            ) from None

    def commit(
        self, url: str, log_id: bytes, cp: TileCheckpoint, cr: CompactRange, rows: Iterable[IndexedEntry]
    ) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.log_id,
                        r.index,
                        r.leaf,
                        r.facts.kind,
                        r.facts.digest,
                        r.facts.identity,
                        r.facts.issuer,
                        r.body,
                        r.seen_at,
                    )
                    for r in rows
                ],
            )
            self.db.execute(
                "INSERT OR REPLACE INTO logs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (log_id.hex(), url, cp.origin, cp.size, cp.root.hex(), cp.note, json.dumps(cr.to_dict()), now),
            )

    def entries(
        self, log_id: bytes | None = None, *, identities: Iterable[str] = (), digests: Iterable[str] = ()
    ) -> list[IndexedEntry]:
        """Indexed entries (of one log), optionally only those by ``identities`` or over ``digests``."""
        where, args = [], []
        if log_id is not None:
            where.append("log_id = ?")
            args.append(log_id.hex())
        ors, ids, dgs = [], list(identities), list(digests)
        if ids:
            ors.append(f"identity IN ({','.join('?' * len(ids))})")
        if dgs:
            ors.append(f"digest IN ({','.join('?' * len(dgs))})")
        if ors:
            where.append("(" + " OR ".join(ors) + ")")
        sql = _SELECT + ((" WHERE " + " AND ".join(where)) if where else "") + " ORDER BY log_id, idx"
        return [_row(r) for r in self.db.execute(sql, [*args, *ids, *dgs]).fetchall()]

    def entry(self, log_id: bytes, index: int) -> IndexedEntry | None:
        r = self.db.execute(f"{_SELECT} WHERE log_id = ? AND idx = ?", (log_id.hex(), index)).fetchone()
        return None if r is None else _row(r)

    def size(self, log_id: bytes) -> int | None:
        row = self.db.execute("SELECT size FROM logs WHERE log_id = ?", (log_id.hex(),)).fetchone()
        return None if row is None else int(row[0])


@dataclass
class _Run:
    """The work of one catch-up: what was fetched and what will be committed."""

    client: TileClient
    size: int
    start: int
    cr: CompactRange
    full_tiles: dict[tuple[int, int], list[bytes]] = field(default_factory=dict)


def _catch_up(run: _Run, describe: Describe, watch: Watch, log_hex: str) -> tuple[list[IndexedEntry], int]:
    """Download the new entry bundles, check them against the level-0 tiles, extend the compact range."""
    client, size, start, rows, now = run.client, run.size, run.start, [], int(time.time())
    for b in range(start // WIDTH, -(-size // WIDTH)):
        entries = client.entries(b, size)
        leaves = [leaf_hash(e) for e in entries]
        tile = client.tile(0, b, size)
        for i, (leaf, got) in enumerate(zip(leaves, tile, strict=True)):
            if leaf != got:
                raise LogMisbehaved(
                    f"entry {b * WIDTH + i} of {tile_path(None, b, len(entries))} does not match "
                    f"{tile_path(0, b, len(tile))} (its leaf hash differs)"
                )
        if len(tile) == WIDTH:
            run.full_tiles[(0, b)] = tile
        for i in range(max(0, start - b * WIDTH), len(entries)):
            run.cr.append(leaves[i])
            facts = describe(entries[i])
            if watch.concerns(facts):
                rows.append(IndexedEntry(log_hex, b * WIDTH + i, leaves[i].hex(), facts, entries[i], now))
    return rows, size - start


def _check_upper_tiles(run: _Run) -> None:
    """Every higher tile position whose child tile was fetched in this run holds that child's root."""
    level, children = 1, dict(run.full_tiles)
    while children:
        parents: dict[tuple[int, int], list[bytes]] = {}
        for (_, c), hashes in sorted(children.items()):
            p = c // WIDTH
            if tile_width(run.size, level, p) == 0:
                continue
            tile = parents.get((level, p)) or run.client.tile(level, p, run.size)
            parents[(level, p)] = tile
            if tile[c % WIDTH] != root_from_leaf_hashes(hashes):
                raise LogMisbehaved(
                    f"{tile_path(level, p, len(tile))} position {c % WIDTH} is not the root of "
                    f"{tile_path(level - 1, c)}: the tile was rewritten"
                )
        children = {k: v for k, v in parents.items() if len(v) == WIDTH}
        level += 1


def _rewritten_history(run: _Run, stored: CompactRange) -> str | None:
    """When the entries do not reach the checkpoint's root: the first tile whose subtree differs from the
    tree verified at the stored size (the log rewrote history), if the tiles show one. The compact range
    holds the stored tree's maximal complete subtrees left to right (the set bits of its size, largest first)."""
    tree, lo = TileTree(run.client, run.size), 0
    bits = [i for i in reversed(range(stored.size.bit_length())) if stored.size >> i & 1]
    for bit, want in zip(bits, stored.hashes, strict=True):
        n = 1 << bit
        if tree.hash_range(lo, n) != want:
            tl, r = divmod(bit, 8)
            first = ((lo >> bit) << r) // WIDTH
            return (
                f"{tile_path(tl, first, tile_width(run.size, tl, first) or WIDTH)} rewrites the history verified "
                f"at size {stored.size} (entries [{lo}, {lo + n}) hash differently): the log forked"
            )
        lo += n
    return None


def follow(index: TileIndex, client: TileClient, describe: Describe, watch: Watch | None = None) -> FollowResult:
    """Catch up with the log's latest checkpoint, verifying everything, and index what ``watch`` concerns.

    LogUnreachable propagates (an operational problem, nothing stored); anything the log answers that does
    not verify is a failed result naming the tile or entry, with the stored state unchanged."""
    t0, watch = time.perf_counter(), watch or Watch()
    url, log_id = client.log.base_url, client.log.log_id
    stored = index.state(client)
    prev = stored[0] if stored else None
    result = FollowResult(url, prev, None, False)

    def done(ok: bool, problem: str = "") -> FollowResult:
        result.ok, result.problem = ok, problem
        result.requests, result.bytes, result.seconds = client.requests, client.bytes, time.perf_counter() - t0
        return result

    try:
        cp = result.current = client.checkpoint()
    except LogMisbehaved as exc:
        return done(False, exc.message)
    if prev is not None and cp.size < prev.size:
        return done(False, f"rollback: the log is at size {cp.size}, it was verified at size {prev.size}")
    if prev is not None and cp.size == prev.size and cp.root != prev.root:
        return done(False, f"fork: two checkpoints of size {cp.size} with different roots, both signed by the log")
    if prev is not None and cp.size > prev.size:
        # A tile checkpoint carries no signed time; but the stored one was still the log's latest when it was
        # verified, so a larger one was signed after that. Verified past the key's end (and a cache's
        # staleness): the log key signed a new tree outside its validity (a retired key may be a compromised one).
        seen = index.verified_at(log_id)
        if seen is not None and seen > client.log.end + STALE_CHECKPOINT_S:
            when = dt.datetime.fromtimestamp(seen, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return done(
                False,
                f"checkpoint of size {cp.size} signed after the log key's validity ended ({client.log.window()}): "
                f"the log was still at size {prev.size} at {when}",
            )
    base = CompactRange(stored[1].size, list(stored[1].hashes)) if stored else CompactRange()
    run = _Run(client, cp.size, base.size, CompactRange(base.size, list(base.hashes)))
    try:
        rows, result.new_entries = _catch_up(run, describe, watch, log_id.hex())
        if run.cr.root() != cp.root:
            why = _rewritten_history(run, base) if base.size else None
            return done(False, why or f"the log's entries do not hash to the checkpoint's root (size {cp.size})")
        _check_upper_tiles(run)
        if TileTree(client, cp.size).root() != cp.root:
            return done(False, f"the tiles do not hash to the checkpoint's root (size {cp.size})")
    except LogMisbehaved as exc:
        return done(False, exc.message)
    index.commit(url, log_id, cp, run.cr, rows)
    result.indexed = len(rows)
    return done(True)
