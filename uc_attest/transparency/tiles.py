"""C2SP tlog-tiles: tile paths, entry bundles, and the compact range a monitor keeps.

A tile at level ``L`` holds up to 256 hashes of tree level ``8L`` (level 0: leaf hashes), tile ``N``
covering nodes ``[256N, 256N + 256)``; a partial tile of width ``W`` is served as ``.p/<W>`` (W = the
number of those nodes a tree of size ``s`` has: ``floor(s / 256^L) mod 256``). ``N`` is written in
3-digit groups, all but the last prefixed with ``x`` (1234067 → ``x001/x234/067``). An entry bundle
``tile/entries/<N>`` holds entries ``[256N, ...)``, each a big-endian uint16 length then the entry.
"""

from __future__ import annotations

import hashlib
import re
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..core.httpclient import BadURL, Refused, TooLarge, Unreachable, read_body, send, session
from ..core.merkle import leaf_hash, node_hash
from ..core.netio import Deadline
from ..errors import LogMisbehaved, LogUnreachable, NoteError
from .trusted import TrustedLog

WIDTH, HEIGHT, HASH = 256, 8, 32
#: Longest entry an entry bundle can hold (its length prefix is a big-endian uint16).
MAX_ENTRY = 0xFFFF
#: Longest checkpoint read (a signed note is a few hundred bytes; 100 signatures fit many times over).
MAX_CHECKPOINT = 1 << 20


def encode_index(n: int) -> str:
    """``N`` as path segments: 3-digit groups, all but the last prefixed with ``x``."""
    if n < 0:
        raise ValueError("tile index must be non-negative")
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def tile_path(level: int | None, index: int, width: int = WIDTH) -> str:
    """``tile/<L>/<N>[.p/<W>]`` (``level`` None: ``tile/entries/<N>[.p/<W>]``)."""
    if not 1 <= width <= WIDTH:
        raise ValueError(f"tile width {width} outside 1..256")
    head = "tile/entries" if level is None else f"tile/{level}"
    return f"{head}/{encode_index(index)}" + ("" if width == WIDTH else f".p/{width}")


_PATH = re.compile(r"^tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?$")


def parse_tile_path(path: str) -> tuple[int | None, int, int]:
    """(level or None for entries, index, width) of a canonical tile path; ValueError if it is not one."""
    m = _PATH.fullmatch(path)
    if m is None:
        raise ValueError(f"not a tile path: {path!r}")
    level = None if m.group(1) == "entries" else int(m.group(1))
    width = int(m.group(3)) if m.group(3) else WIDTH
    if (level is not None and level > 63) or (width > 255 and m.group(3)):
        raise ValueError(f"not a tile path: {path!r}")
    index = int(m.group(2).replace("x", "").replace("/", ""))
    if tile_path(level, index, width) != path:  # one path per tile: no leading "x000/" groups
        raise ValueError(f"not a canonical tile path: {path!r}")
    return level, index, width


def tile_width(size: int, level: int, index: int) -> int:
    """Hashes tile (level, index) has in a tree of ``size`` leaves (0: the tile does not exist yet)."""
    nodes = size >> (HEIGHT * level)  # size // 256^level
    return max(0, min(WIDTH, nodes - index * WIDTH))


def encode_bundle(entries: Iterable[bytes]) -> bytes:
    out = bytearray()
    for e in entries:
        if len(e) > MAX_ENTRY:
            raise ValueError(f"an entry longer than {MAX_ENTRY} bytes cannot be bundled")
        out += struct.pack(">H", len(e)) + e
    return bytes(out)


def split_tile(data: bytes, width: int, where: str) -> list[bytes]:
    """The ``width`` hashes of a tile; LogMisbehaved if it holds another number of bytes."""
    if len(data) != width * HASH:
        raise LogMisbehaved(f"{where}: {len(data)} bytes, expected {width * HASH}")
    return [data[i : i + HASH] for i in range(0, len(data), HASH)]


def decode_bundle(data: bytes, count: int, where: str) -> list[bytes]:
    """The ``count`` entries of a bundle; LogMisbehaved if it holds another number or is cut."""
    out, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise LogMisbehaved(f"{where}: entry bundle cut inside a length prefix")
        (n,) = struct.unpack(">H", data[pos : pos + 2])
        if pos + 2 + n > len(data):
            raise LogMisbehaved(f"{where}: entry bundle cut inside an entry")
        out.append(data[pos + 2 : pos + 2 + n])
        pos += 2 + n
    if len(out) != count:
        raise LogMisbehaved(f"{where}: entry bundle holds {len(out)} entries, expected {count}")
    return out


@dataclass
class CompactRange:
    """The right edge of a Merkle tree: the roots of its maximal complete subtrees, left to right. Enough
    to extend the tree leaf by leaf and to compute its root, in O(log n) memory (what a monitor stores)."""

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def append(self, leaf: bytes) -> None:
        h, n = leaf, self.size
        while n & 1:  # merge with the complete subtrees this leaf completes
            h = node_hash(self.hashes.pop(), h)
            n >>= 1
        self.hashes.append(h)
        self.size += 1

    def extend_entries(self, entries: Iterable[bytes]) -> list[bytes]:
        leaves = [leaf_hash(e) for e in entries]
        for leaf in leaves:
            self.append(leaf)
        return leaves

    def root(self) -> bytes:
        if not self.hashes:
            return hashlib.sha256(b"").digest()
        h = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            h = node_hash(left, h)
        return h

    def to_dict(self) -> dict[str, object]:
        return {"size": self.size, "hashes": [x.hex() for x in self.hashes]}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> CompactRange:
        size, hashes = d["size"], d["hashes"]
        if not isinstance(size, int) or not isinstance(hashes, list) or len(hashes) != size.bit_count():
            raise ValueError("compact range: size and hashes disagree")
        return cls(size, [bytes.fromhex(str(h)) for h in hashes])


#: A tile-based log (Rekor v2) of a trust root: its key Ed25519, its log id the key's C2SP key id.
TileLogKey = TrustedLog


@dataclass(frozen=True)
class TileCheckpoint:
    origin: str
    size: int
    root: bytes
    note: str


class TileClient:
    """A verifying client of a C2SP tlog-tiles log. Every answer is checked: the checkpoint's signature
    (the key whose C2SP key id is the log id), tile sizes, and — by :class:`TileTree` — every hash against
    the checkpoint's root. ``requests``/``bytes`` count what was fetched (for monitors' figures).

    How failures are told apart (:class:`LogUnreachable`: not now, an operational problem;
    :class:`LogMisbehaved`: the log answered wrongly, a finding):

    * refused, reset, timeout, a cut answer, HTTP 408/425/429/5xx: retried, then LogUnreachable;
    * any other HTTP status, an answer larger than the resource can be, bytes that do not parse (a tile of
      the wrong length, an entry bundle cut short or with another number of entries, a checkpoint that is
      not UTF-8 or does not verify): LogMisbehaved at once;
    * a tile or entry bundle still answering HTTP 500 after the retries while the log serves a valid
      checkpoint: LogMisbehaved. The log is up and signs a tree that commits to that tile, yet its own
      server fails on it (as an entry too long for a bundle made rekor-tiles-like logs fail, forever); a
      verifier must not read that as a log that is merely away. 502/503/504/429 stay LogUnreachable: they
      are a gateway's or an overloaded server's, not an answer about the tile;
    * a partial tile or bundle answering 404 is fetched again as the full one (C2SP lets a log delete
      partial tiles once the full tile exists); a full one answering 404 is LogMisbehaved.
    """

    def __init__(
        self, log: TileLogKey, timeout: float = 10.0, cache: dict[str, bytes] | None = None, deadline: float = 30.0
    ) -> None:
        self.log, self.timeout, self.deadline = log, timeout, deadline  # per read; per whole answer
        self.requests = self.bytes = 0
        self._session = session()
        self._cache: dict[str, bytes] = {} if cache is None else cache  # a tile path (with its width) is immutable

    def _get(self, path: str, limit: int) -> bytes:
        """The body at ``path`` (at most ``limit`` bytes), retried on transient failures (see the class doc).
        A LogUnreachable carries the last HTTP status as ``data["status"]`` (absent: no HTTP answer)."""
        from .rekor_v1 import ATTEMPTS, BACKOFF_S, TRANSIENT_STATUS

        url = f"{self.log.base_url}/{path}"
        last, status = "", None
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            self.requests += 1
            try:
                with send(self._session, "GET", url, timeout=self.timeout) as r:
                    code = r.status_code
                    data = read_body(r, limit, Deadline(self.deadline, what=url)) if 200 <= code < 300 else b""
            except TooLarge:
                raise LogMisbehaved(f"{url}: answer longer than {limit} bytes", url=url) from None
            except Refused as exc:
                raise LogMisbehaved(f"{url}: {exc}", url=url) from None
            except (Unreachable, BadURL) as exc:  # refused, reset, timeout, cut short, past the deadline
                last, status = str(exc), None
                continue
            if not 200 <= code < 300:
                if code not in TRANSIENT_STATUS:
                    raise LogMisbehaved(f"{url}: HTTP {code}", url=url, status=code)
                last, status = f"HTTP {code}", code
                continue
            self.bytes += len(data)
            return data
        raise LogUnreachable(f"{url}: {last} (after {ATTEMPTS} attempts)", url=url, status=status)

    def _get_committed(self, level: int | None, index: int, width: int) -> bytes:
        """A tile or entry bundle that a verified checkpoint commits to (see the class doc for 404 and 500)."""
        path = tile_path(level, index, width)
        limit = WIDTH * (HASH if level is not None else 2 + MAX_ENTRY)
        try:
            return self._get(path, limit)
        except LogMisbehaved as exc:
            if exc.data.get("status") != 404 or width == WIDTH:
                raise
            full = self._get_committed(level, index, WIDTH)
            if level is not None:
                return full[: width * HASH]
            where = f"{self.log.base_url}/{tile_path(level, index)}"
            return encode_bundle(decode_bundle(full, WIDTH, where)[:width])
        except LogUnreachable as exc:
            if exc.data.get("status") != 500:
                raise
            self.checkpoint()  # unreachable or misbehaving itself: that is the answer
            raise LogMisbehaved(
                f"{self.log.base_url}/{path}: HTTP 500 on every attempt while the log serves a valid checkpoint: "
                "it does not serve a tile its checkpoint commits to",
                url=f"{self.log.base_url}/{path}",
                status=500,
            ) from None

    def verify_note(self, note: str) -> TileCheckpoint:
        from .checkpoint import Checkpoint, Verifier, ed25519_key_id, open_note, parse_note

        try:
            names = {s.name for s in parse_note(note).signatures if s.key_hash == self.log.log_id[:4]}
            name = next((n for n in names if ed25519_key_id(n, self.log.key) == self.log.log_id), None)
            if name is None:
                raise NoteError("no signature by the log's key (name and key must give the log id)")
            cp = Checkpoint.parse(open_note(note, [Verifier(name, self.log.log_id[:4], self.log.key)]).text)
        except NoteError as exc:
            raise LogMisbehaved(
                f"{self.log.base_url}: checkpoint does not verify with the log key: {exc.message}"
            ) from None
        return TileCheckpoint(cp.origin, cp.size, cp.root, note)

    def checkpoint(self) -> TileCheckpoint:
        """The log's latest checkpoint, verified with its key. A tile checkpoint carries no signed time, but the
        one read now was signed no later than now: read before the key's validity starts, it was signed outside
        it (LogMisbehaved), as a Rekor v1 entry integrated outside its key's validity is."""
        try:
            note = self._get("checkpoint", MAX_CHECKPOINT).decode("utf-8")
        except UnicodeDecodeError:
            raise LogMisbehaved(f"{self.log.base_url}/checkpoint is not UTF-8") from None
        cp = self.verify_note(note)
        if time.time() < self.log.start:
            raise LogMisbehaved(
                f"{self.log.base_url}: checkpoint (size {cp.size}) signed before the log key's validity "
                f"({self.log.window()})"
            )
        return cp

    def tile(self, level: int, index: int, size: int) -> list[bytes]:
        """The hashes of tile (level, index) for a tree of ``size`` (partial at the right edge)."""
        width = tile_width(size, level, index)
        if width == 0:
            raise LogMisbehaved(f"tile {level}/{index} does not exist at size {size}")
        path = tile_path(level, index, width)
        data = self._cache.get(path)
        if data is None:
            data = self._get_committed(level, index, width)
            split_tile(data, width, f"{self.log.base_url}/{path}")  # only a well-formed tile is cached
            self._cache[path] = data
        return split_tile(data, width, f"{self.log.base_url}/{path}")

    def entries(self, index: int, size: int) -> list[bytes]:
        """The entries of bundle ``index`` for a tree of ``size``."""
        width = tile_width(size, 0, index)
        if width == 0:
            raise LogMisbehaved(f"entry bundle {index} does not exist at size {size}")
        path = tile_path(None, index, width)
        return decode_bundle(self._get_committed(None, index, width), width, f"{self.log.base_url}/{path}")


class TileTree:
    """Subtree hashes of a tree of ``size`` leaves computed from a log's tiles; ``root()`` must equal the
    verified checkpoint's root, which is what makes every hash taken from here trustworthy."""

    def __init__(self, client: TileClient, size: int) -> None:
        self.client, self.size = client, size

    def _node(self, level: int, index: int) -> bytes:
        """The hash of the complete subtree of 2^level leaves number ``index``."""
        tl, r = divmod(level, HEIGHT)
        lo = index << r  # its first node at tree level 8 * tl
        hashes = self.client.tile(tl, lo // WIDTH, self.size)[lo % WIDTH : lo % WIDTH + (1 << r)]
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        return hashes[0]

    def hash_range(self, lo: int, n: int) -> bytes:
        k = n.bit_length() - 1
        if n == 1 << k and lo % n == 0:
            return self._node(k, lo >> k)
        split = 1 << ((n - 1).bit_length() - 1)
        return node_hash(self.hash_range(lo, split), self.hash_range(lo + split, n - split))

    def root(self) -> bytes:
        return hashlib.sha256(b"").digest() if self.size == 0 else self.hash_range(0, self.size)
