"""Rekor v1 REST client whose every answer is verified, not trusted.

Works against the embedded instance and, unchanged, a real Rekor v1 URL. Checkpoints are
verified against the log key (signed note), entries are re-hashed into their leaf, their
inclusion proof is checked against a verified checkpoint (through a consistency proof when
the proof is for an older tree), and their SET is verified.

Failures are classified, never skipped silently: a log that does not answer *for now* (refused,
timeout, HTTP 5xx or 429) is retried with backoff and then raises :class:`LogUnreachable`
(operational); an answer that is malformed (not JSON, wrong shape, other 4xx) or inconsistent
(bad signature, fork, wrong body) raises :class:`LogMisbehaved` (a finding).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ..core import merkle
from ..core.digest import canonical_json
from ..core.httpclient import BadURL, Refused, TooLarge, Unreachable, read_body, send, session
from ..core.netio import Deadline
from ..errors import LogMisbehaved, LogUnreachable, MerkleError, NoteError
from .checkpoint import Checkpoint, Verifier, open_note
from .kinds import EntryKind
from .trusted import TrustedLog

if TYPE_CHECKING:
    from requests import Session

#: Statuses that mean "try again later" (RFC 9110 / RFC 6585), retried then reported as unreachable.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Attempts per request and the first backoff (doubled each time): 0.25 + 0.5 s before giving up.
MAX_ANSWER = 16 << 20  # a log answer (entries with certificates, proofs) is kilobytes; this bounds a hostile one
ATTEMPTS, BACKOFF_S = 3, 0.25


#: A Rekor v1 log of a trust root (its key: ECDSA): an entry integrated outside the key's validity is refused.
LogKey = TrustedLog


@dataclass(frozen=True)
class VerifiedCheckpoint:
    origin: str
    size: int
    root: bytes
    note: str


@dataclass(frozen=True)
class VerifiedEntry:
    index: int
    uuid: str
    body: bytes
    integrated_time: int
    kind: str
    checkpoint: VerifiedCheckpoint
    attestation: bytes | None = None  # DSSE payload, verified against the body's payloadHash

    raw: dict[str, Any] = field(default_factory=dict)  # the REST answer for this entry

    def body_json(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    def raw_entry(self, log_id: bytes) -> dict[str, Any]:
        """This entry as a Sigstore bundle tlogEntry (protobuf JSON: string ints, base64 bytes)."""
        v = self.raw["verification"]
        p = v["inclusionProof"]

        def b64(h: str) -> str:
            return base64.b64encode(bytes.fromhex(h)).decode()

        return {
            "logIndex": str(self.index),
            "logId": {"keyId": base64.b64encode(log_id).decode()},
            "kindVersion": {"kind": self.kind, "version": "0.0.1"},
            "integratedTime": str(self.integrated_time),
            "inclusionPromise": {"signedEntryTimestamp": v["signedEntryTimestamp"]},
            "inclusionProof": {
                "logIndex": str(p["logIndex"]),
                "rootHash": b64(p["rootHash"]),
                "treeSize": str(p["treeSize"]),
                "hashes": [b64(h) for h in p["hashes"]],
                "checkpoint": {"envelope": p["checkpoint"]},
            },
            "canonicalizedBody": self.raw["body"],
        }


@dataclass
class RekorClient:
    """A verifying client for one log. ``requests`` counts HTTP requests made (for audits)."""

    log: LogKey
    timeout: float = 10.0  # each wait for bytes
    requests: int = field(default=0)
    deadline: float = 30.0  # the whole answer (a peer trickling bytes under the timeout is cut off)
    _session: Session = field(default_factory=session, init=False, repr=False, compare=False)

    def _call(self, path: str, body: Any = None) -> Any:
        """One JSON request (POST with ``body``, else GET), retried on transient failures; classifies what goes
        wrong."""
        url = f"{self.log.base_url}{path}"
        data = json.dumps(body).encode() if body is not None else None
        last = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            self.requests += 1
            try:
                with send(
                    self._session,
                    "GET" if data is None else "POST",
                    url,
                    data=data,
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout,
                ) as r:
                    status = r.status_code
                    raw = read_body(r, MAX_ANSWER, Deadline(self.deadline, what=url)) if 200 <= status < 300 else b""
            except TooLarge:
                raise LogMisbehaved(f"{url}: answer larger than {MAX_ANSWER >> 20} MiB", url=url) from None
            except Refused as exc:
                raise LogMisbehaved(f"{url}: {exc}", url=url) from None
            except (Unreachable, BadURL) as exc:  # refused, reset, timeout, cut short, past the deadline
                last = str(exc)
                continue
            if not 200 <= status < 300:
                if status not in TRANSIENT_STATUS:
                    raise LogMisbehaved(f"{url}: HTTP {status}", url=url, status=status)
                last = f"HTTP {status}"
                continue
            try:
                return json.loads(raw)
            except (ValueError, RecursionError):
                raise LogMisbehaved(f"{url}: answer is not JSON ({len(raw)} bytes)", url=url) from None
        raise LogUnreachable(f"{url}: {last} (after {ATTEMPTS} attempts)", url=url)

    def verify_note(self, note: str) -> VerifiedCheckpoint:
        name = note.split("\n\n", 1)[-1].removeprefix("\u2014 ").split(" ", 1)[0]
        try:
            cp = Checkpoint.parse(open_note(note, [Verifier(name, self.log.log_id[:4], self.log.key)]).text)
        except NoteError as exc:
            raise LogMisbehaved(f"checkpoint does not verify with the log key: {exc.message}") from None
        return VerifiedCheckpoint(cp.origin, cp.size, cp.root, note)

    def checkpoint(self) -> VerifiedCheckpoint:
        """The log's current signed checkpoint, verified; its size/root must match the JSON answer."""
        info = self._call("/api/v1/log")
        try:
            cp = self.verify_note(info["signedTreeHead"])
            if cp.size != int(info["treeSize"]) or cp.root != bytes.fromhex(info["rootHash"]):
                raise LogMisbehaved("log info disagrees with its own signed checkpoint")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise LogMisbehaved(f"malformed log info: {exc!r}") from None
        return cp

    def prove_consistent(self, old: VerifiedCheckpoint, new: VerifiedCheckpoint) -> None:
        """Raise LogMisbehaved unless ``old`` is a prefix of ``new`` (fork or rollback otherwise)."""
        if new.size < old.size:
            raise LogMisbehaved(f"rollback: tree size {new.size} < previously seen {old.size}")
        if new.size == old.size:
            if new.root != old.root:
                raise LogMisbehaved(f"fork: two roots for size {new.size}: {old.root.hex()} and {new.root.hex()}")
            return
        if old.size == 0:
            return
        proof = self._call(f"/api/v1/log/proof?firstSize={old.size}&lastSize={new.size}")
        try:
            merkle.verify_consistency(
                old.size, new.size, old.root, new.root, [bytes.fromhex(h) for h in proof["hashes"]]
            )
        except (KeyError, TypeError, ValueError, MerkleError) as exc:
            raise LogMisbehaved(
                f"fork: no consistency from size {old.size} ({old.root.hex()}) to {new.size} ({new.root.hex()}): {exc}"
            ) from None

    def verify_entry(self, answer: Any, latest: VerifiedCheckpoint) -> VerifiedEntry:
        try:
            ((uuid, e),) = answer.items()
            body = base64.b64decode(e["body"])
            index, itime = int(e["logIndex"]), int(e["integratedTime"])
            leaf = merkle.leaf_hash(body)
            if uuid[-64:] != leaf.hex():
                raise LogMisbehaved(f"entry {index}: body does not hash to its uuid")
            if bytes.fromhex(e["logID"]) != self.log.log_id:
                raise LogMisbehaved(f"entry {index}: log id differs")
            if not self.log.valid_at(itime):
                raise LogMisbehaved(f"entry {index}: integrated at {itime}, outside the log key's validity")
            v = e["verification"]
            set_payload = canonical_json(
                {"body": e["body"], "integratedTime": itime, "logID": e["logID"], "logIndex": index}
            )
            self.log.key.verify(base64.b64decode(v["signedEntryTimestamp"]), set_payload, ec.ECDSA(hashes.SHA256()))
            p = v["inclusionProof"]
            cp = self.verify_note(p["checkpoint"])
            if cp.size != int(p["treeSize"]) or cp.root != bytes.fromhex(p["rootHash"]):
                raise LogMisbehaved(f"entry {index}: proof and checkpoint disagree")
            # the proof index is shard-local on sharded logs (public-good Rekor); the entry index is global
            merkle.verify_inclusion(int(p["logIndex"]), cp.size, leaf, [bytes.fromhex(h) for h in p["hashes"]], cp.root)
            parsed = json.loads(body)
            kind = str(parsed.get("kind", ""))
            attestation = None
            if "attestation" in e and kind == EntryKind.DSSE:
                attestation = base64.b64decode(e["attestation"]["data"])
                want = parsed["spec"]["payloadHash"]["value"]
                if hashlib.sha256(attestation).hexdigest() != want:
                    raise LogMisbehaved(f"entry {index}: stored attestation does not match the payload hash")
        except InvalidSignature:
            raise LogMisbehaved("entry SET does not verify with the log key") from None
        except (KeyError, TypeError, ValueError, AttributeError, MerkleError) as exc:
            raise LogMisbehaved(f"entry does not verify: {exc!r}") from None
        self.prove_consistent(cp, latest)
        return VerifiedEntry(index, uuid, body, itime, kind, latest, attestation, e)

    def entry_by_index(self, index: int, latest: VerifiedCheckpoint | None = None) -> VerifiedEntry:
        latest = latest or self.checkpoint()
        return self.verify_entry(self._call(f"/api/v1/log/entries?logIndex={index}"), latest)

    def entry_by_uuid(self, uuid: str, latest: VerifiedCheckpoint | None = None) -> VerifiedEntry:
        latest = latest or self.checkpoint()
        return self.verify_entry(self._call(f"/api/v1/log/entries/{uuid}"), latest)

    def retrieve(self, indexes: list[int]) -> list[Any]:
        """Raw answers for several log indexes (POST /api/v1/log/entries/retrieve); verify each with
        :meth:`verify_entry`."""
        got = self._call("/api/v1/log/entries/retrieve", {"logIndexes": indexes})
        if not isinstance(got, list):
            raise LogMisbehaved("entries/retrieve answered something that is not a list")
        return got

    def search(self, digest: str) -> list[str]:
        """UUIDs of entries indexed under ``digest`` (``sha256:<hex>``), via the log's index (no scan)."""
        got = self._call("/api/v1/index/retrieve", {"hash": digest})
        if not isinstance(got, list) or not all(isinstance(u, str) for u in got):
            raise LogMisbehaved("index search answered something that is not a list of uuids")
        return got
