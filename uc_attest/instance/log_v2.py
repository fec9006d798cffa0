"""The embedded Rekor v2 log: hashedrekord v0.0.2 entries, batched integration, C2SP tlog-tiles reads.

Write: ``POST <prefix>/api/v2/log/entries`` with a ``hashedRekordRequestV002`` (what sigstore-python sends
for blobs, and for DSSE as a hashedrekord over the PAE); the signature is checked against the
certificate's key, the canonical body is queued, and the request returns once a checkpoint covers the
entry. Integration runs as tessera's does: every ``interval`` seconds (or sooner when ``batch`` entries
wait), the queued entries are appended, the new checkpoint (C2SP signed note, Ed25519) is signed, and
entries and checkpoint are committed in one SQLite transaction (synchronous=FULL) before anyone is
answered — so an acknowledged entry survives kill -9. An identical body is answered with the entry
already in the log. Read: ``<prefix>/checkpoint``, ``<prefix>/tile/<L>/<N>[.p/<W>]``,
``<prefix>/tile/entries/<N>[.p/<W>]``, from the same store, up to the committed size only.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ..core import merkle
from ..errors import OperationalError
from ..transparency.checkpoint import Checkpoint, sign_note_ed25519
from ..transparency.tiles import WIDTH, encode_bundle, parse_tile_path, tile_width

SCHEMA = """
CREATE TABLE IF NOT EXISTS v2_entries (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL UNIQUE, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS v2_checkpoints (size INTEGER PRIMARY KEY, root BLOB NOT NULL, note TEXT NOT NULL);
"""
#: Default batching: integrate every 5 ms, or as soon as 256 entries wait (tessera batches the same way).
INTERVAL_S, BATCH = 0.005, 256
KEY_DETAILS = {"PKIX_ECDSA_P256_SHA_256": hashes.SHA256(), "PKIX_ECDSA_P384_SHA_384": hashes.SHA384()}
DIGEST_SIZES = {"SHA2_256": 32, "SHA2_384": 48}
#: Largest canonical entry: an entry bundle prefixes each entry with its length as a big-endian uint16
#: (C2SP tlog-tiles), so a longer one could be logged but never served. Checked before anything is queued.
MAX_ENTRY = 0xFFFF


class EntryV2Error(Exception):
    """The proposed entry is malformed or its signature does not verify (HTTP 400)."""


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise EntryV2Error(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise EntryV2Error(f"{what} is not valid base64") from None


def canonicalize(request: Any) -> bytes:
    """The canonical body (RFC 8785) of a ``hashedRekordRequestV002``, after checking its signature."""
    req = request.get("hashedRekordRequestV002") if isinstance(request, dict) else None
    if not isinstance(req, dict):
        raise EntryV2Error('expected {"hashedRekordRequestV002": {...}}: only hashedrekord v0.0.2 is accepted')
    digest = _b64(req.get("digest"), "digest")
    sig = req.get("signature")
    if not isinstance(sig, dict) or not isinstance(sig.get("verifier"), dict):
        raise EntryV2Error("signature.content and signature.verifier are required")
    content = _b64(sig.get("content"), "signature.content")
    verifier = sig["verifier"]
    details = verifier.get("keyDetails")
    if details not in KEY_DETAILS:
        raise EntryV2Error(f"keyDetails {details!r} not supported (only {', '.join(KEY_DETAILS)})")
    algo = KEY_DETAILS[details]
    alg_name = "SHA2_256" if isinstance(algo, hashes.SHA256) else "SHA2_384"
    if len(digest) != DIGEST_SIZES[alg_name]:
        raise EntryV2Error(f"digest must be {DIGEST_SIZES[alg_name]} bytes for {details}")
    cert_obj = verifier.get("x509Certificate")
    if not isinstance(cert_obj, dict):
        raise EntryV2Error("verifier.x509Certificate is required (public keys are not accepted here)")
    der = _b64(cert_obj.get("rawBytes"), "verifier.x509Certificate.rawBytes")
    key = _certificate_key(der)
    try:
        key.verify(content, digest, ec.ECDSA(Prehashed(algo)))
    except InvalidSignature:
        raise EntryV2Error("signature does not verify with the certificate's key over the digest") from None
    body = {
        "apiVersion": "0.0.2",
        "kind": "hashedrekord",
        "spec": {
            "hashedRekordV002": {
                "data": {"algorithm": alg_name, "digest": base64.b64encode(digest).decode()},
                "signature": {
                    "content": base64.b64encode(content).decode(),
                    "verifier": {
                        "keyDetails": details,
                        "x509Certificate": {"rawBytes": base64.b64encode(der).decode()},
                    },
                },
            }
        },
    }
    # RFC 8785 of this body is plain sorted, compact JSON: every value is an ASCII string (base64 or one of
    # the names above), so no number or escape rule applies (tests compare it with canonical_json)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    _check_size(canonical)
    return canonical


def _check_size(body: bytes) -> None:
    if len(body) > MAX_ENTRY:
        raise EntryV2Error(f"entry of {len(body)} bytes: a tile log entry holds at most {MAX_ENTRY}")


@functools.lru_cache(maxsize=1024)
def _certificate_key(der: bytes) -> ec.EllipticCurvePublicKey:
    """The ECDSA key of a DER certificate (cached: a signer's certificate arrives with each of its entries)."""
    try:
        key = x509.load_der_x509_certificate(der).public_key()
    except ValueError as exc:
        raise EntryV2Error(f"verifier certificate is not DER: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise EntryV2Error("verifier certificate key must be ECDSA")
    return key


@dataclass
class _Pending:
    body: bytes
    leaf: bytes
    done: threading.Event = field(default_factory=threading.Event)
    index: int = -1
    error: str = ""


@dataclass(frozen=True)
class Integrated:
    """An entry in the log: its index, and a checkpoint (size, root, signed note) that covers it, with the proof."""

    index: int
    size: int
    root: bytes
    note: str
    proof: list[bytes]


class TileLog:
    """A durable, batched, tile-served append-only log. Thread-safe; ``close()`` stops the integrator.

    Concurrency: one integrator thread writes (append to the in-memory tree, commit to SQLite); ``_lock``
    guards the queue and the committed state (size, root, note), and is never held across the commit's
    fsync, so appends queue and reads answer while a batch is made durable. Readers only ever look at
    positions below the committed size, which no later append changes."""

    def __init__(
        self,
        path: Path,
        origin: str,
        name: str,
        key: ed25519.Ed25519PrivateKey,
        log_id: bytes,
        interval: float = INTERVAL_S,
        batch: int = BATCH,
    ) -> None:
        self.origin, self.name, self.log_id, self._key = origin, name, log_id, key
        self.interval, self.batch = interval, batch
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self._reader = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        except sqlite3.Error as exc:
            raise OperationalError(f"{path}: cannot open the v2 log: {exc}", path=str(path)) from exc
        leaves = [bytes(r[0]) for r in self._db.execute("SELECT leaf FROM v2_entries ORDER BY idx")]
        self._tree = merkle.MerkleTree(leaves)
        self._by_leaf = {h: i for i, h in enumerate(leaves)}
        row = self._db.execute("SELECT size, root, note FROM v2_checkpoints ORDER BY size DESC LIMIT 1").fetchone()
        if row is None:
            self._size, self._root = 0, self._tree.root(0)
            self._note = self._sign(0, self._root)
            self._db.execute("INSERT INTO v2_checkpoints VALUES (0, ?, ?)", (self._root, self._note))
        elif row[0] != len(leaves) or bytes(row[1]) != self._tree.root():
            raise OperationalError(
                f"{path}: v2 checkpoint (size {row[0]}) does not match the {len(leaves)} stored entries"
            )
        else:
            self._size, self._root, self._note = int(row[0]), bytes(row[1]), str(row[2])
        self._lock = threading.Lock()  # guards the queue and the committed state (size, root, note)
        self._read_lock = threading.Lock()  # one reader connection, used by one request at a time
        self._queue: list[_Pending] = []
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._thread = threading.Thread(target=self._integrate_forever, name="rekor-v2-integrator", daemon=True)
        self._thread.start()

    def _sign(self, size: int, root: bytes) -> str:
        return sign_note_ed25519(Checkpoint(self.origin, size, root).text(), self.name, self._key)

    # -- writes --------------------------------------------------------------------------------------------

    def submit(self, body: bytes, timeout: float = 30.0) -> Integrated:
        """Queue ``body`` and wait until a committed checkpoint covers it; its index, that checkpoint, a proof.
        EntryV2Error for a body too long to serve in an entry bundle."""
        _check_size(body)
        leaf = merkle.leaf_hash(body)
        with self._lock:
            known = self._by_leaf.get(leaf)
            if known is not None and known < self._size:
                return self._integrated(known, self._size, self._root, self._note)
            item = _Pending(body, leaf)
            self._queue.append(item)
            if len(self._queue) == 1:  # the integrator sleeps while there is nothing to integrate
                self._wake.notify()
        if not item.done.wait(timeout):
            raise OperationalError("the v2 log did not integrate the entry in time")
        if item.error:
            raise OperationalError(f"v2 log append failed: {item.error}")
        with self._lock:
            size, root, note = self._size, self._root, self._note
        return self._integrated(item.index, size, root, note)

    def _integrated(self, index: int, size: int, root: bytes, note: str) -> Integrated:
        """``index`` in the committed tree of ``size`` (its nodes below ``size`` never change)."""
        return Integrated(index, size, root, note, self._tree.inclusion_proof(index, size))

    def _integrate_forever(self) -> None:
        while True:
            with self._lock:
                if not self._queue and not self._stop:
                    self._wake.wait()  # idle: nothing to integrate until an entry arrives
            if self._stop:
                return
            time.sleep(self.interval)  # let a batch gather (or it is full already)
            self._integrate()

    def _integrate(self) -> None:
        """(integrator thread) Append the queued entries, sign, commit durably, then publish and answer."""
        with self._lock:
            batch, self._queue = self._queue, []
        if not batch:
            return
        start = len(self._tree)
        fresh: list[_Pending] = []
        for item in batch:  # duplicates within the batch or of committed entries get the existing index
            known = self._by_leaf.get(item.leaf)
            if known is not None:
                item.index = known
                continue
            item.index = len(self._tree)
            self._tree.append(item.leaf)
            self._by_leaf[item.leaf] = item.index
            fresh.append(item)
        size = len(self._tree)
        root = self._tree.root(size)
        note = self._sign(size, root)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO v2_entries VALUES (?, ?, ?)", [(i.index, i.leaf, i.body) for i in fresh])
            self._db.execute("INSERT INTO v2_checkpoints VALUES (?, ?, ?)", (size, root, note))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._db.execute("ROLLBACK")
            with self._lock:
                self._tree = merkle.MerkleTree([self._tree.leaf(i) for i in range(start)])
                for item in fresh:
                    self._by_leaf.pop(item.leaf, None)
            for item in batch:
                item.error = str(exc)
                item.done.set()
            return
        with self._lock:
            self._size, self._root, self._note = size, root, note
        for item in batch:
            item.done.set()

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._wake.notify()
        self._thread.join(timeout=5)
        self._integrate()
        self._db.close()
        self._reader.close()

    # -- reads (C2SP tlog-tiles) ----------------------------------------------------------------------------

    @property
    def checkpoint(self) -> str:
        return self._note

    @property
    def size(self) -> int:
        return self._size

    def tile(self, path: str) -> bytes | None:
        """The bytes of a tile or entry bundle path (``tile/...``) at the committed size; None: no such tile."""
        try:
            level, index, width = parse_tile_path(path)
        except ValueError:
            return None
        with self._lock:
            size = self._size
        have = tile_width(size, 0 if level is None else level, index)
        if have == 0 or (have != WIDTH if width == WIDTH else width > have):
            return None  # a full tile that is not full yet, or more of a partial tile than there is
        if level is None:
            lo = index * WIDTH
            with self._read_lock:
                rows = self._reader.execute(
                    "SELECT body FROM v2_entries WHERE idx >= ? AND idx < ? ORDER BY idx", (lo, lo + width)
                ).fetchall()
            return encode_bundle(bytes(r[0]) for r in rows)
        return b"".join(self._tree.nodes(level * 8, index * WIDTH, width))
