"""Minimal Rekor v1 REST client: fetch an entry and the current signed checkpoint, verified.

Answers are checked, not trusted: the checkpoint's signature against the log key from the
trusted root, the entry's inclusion proof against that checkpoint's root.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .. import merkle
from .checkpoint import Checkpoint, NoteError, Verifier, open_note


class LogUnreachable(Exception):
    """The log did not answer (offline, refused, timeout)."""


class LogMisbehaved(Exception):
    """The log answered something that does not verify."""


@dataclass(frozen=True)
class LogKey:
    base_url: str
    key: ec.EllipticCurvePublicKey
    log_id: bytes


def log_keys(trust_config: Any) -> list[LogKey]:
    """The Rekor logs of a sigstore ClientTrustConfig (ECDSA keys only)."""
    out = []
    for t in trust_config.trusted_root._inner.tlogs:
        key = serialization.load_der_public_key(bytes(t.public_key.raw_bytes))
        if isinstance(key, ec.EllipticCurvePublicKey):
            out.append(LogKey(str(t.base_url), key, bytes(t.log_id.key_id)))
    return out


def _get(url: str, timeout: float) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:
        raise LogMisbehaved(f"{url}: HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise LogUnreachable(f"{url}: {exc}") from None


def _verifiers(log: LogKey, note: str) -> list[Verifier]:
    # The key name is whatever the log calls itself; the 4-byte hint must match our key.
    name = note.split("\n\n", 1)[-1].removeprefix("\u2014 ").split(" ", 1)[0]
    return [Verifier(name, log.log_id[:4], log.key)]


def fetch_verified_entry(log: LogKey, index: int, timeout: float = 5.0) -> bytes:
    """Fetch entry ``index``; verify its inclusion under a freshly fetched signed checkpoint; return the body."""
    info = _get(f"{log.base_url}/api/v1/log", timeout)
    try:
        cp = Checkpoint.parse(open_note(info["signedTreeHead"], _verifiers(log, info["signedTreeHead"])).text)
    except (KeyError, TypeError, NoteError) as exc:
        raise LogMisbehaved(f"log checkpoint does not verify: {exc}") from None
    got = _get(f"{log.base_url}/api/v1/log/entries?logIndex={index}", timeout)
    try:
        (entry,) = got.values()
        body = base64.b64decode(entry["body"])
        p = entry["verification"]["inclusionProof"]
        size, root = int(p["treeSize"]), bytes.fromhex(p["rootHash"])
        merkle.verify_inclusion(index, size, merkle.leaf_hash(body), [bytes.fromhex(h) for h in p["hashes"]], root)
        if size > cp.size:
            raise LogMisbehaved("entry proof is for a tree larger than the log's checkpoint")
        if size == cp.size and root != cp.root:
            raise LogMisbehaved("entry proof root differs from the signed checkpoint")
        if size < cp.size:
            proof = _get(f"{log.base_url}/api/v1/log/proof?firstSize={size}&lastSize={cp.size}", timeout)
            merkle.verify_consistency(size, cp.size, root, cp.root, [bytes.fromhex(h) for h in proof["hashes"]])
    except (KeyError, TypeError, ValueError, merkle.ProofError, merkle.RootMismatch) as exc:
        raise LogMisbehaved(f"entry {index} does not verify against the log: {exc}") from None
    return body
