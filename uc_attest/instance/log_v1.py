"""Rekor v1 entry kinds accepted by the log: ``dsse`` and ``hashedrekord`` version 0.0.1.

A proposed entry is checked (shape, signature by its verifier) and turned into the
canonical body that is stored and hashed into the log, exactly as sigstore-python
expects to find it when it verifies a bundle.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..core.digest import canonical_json
from ..core.dsse import PAYLOAD_TYPE_IN_TOTO, pae
from ..transparency.kinds import EntryKind
from .ca import CSRError, verify_with_cert


class EntryError(Exception):
    """The proposed entry is malformed, of an unsupported kind, or its signature fails."""


@dataclass(frozen=True)
class CanonicalEntry:
    body: bytes
    kind: str
    index_keys: list[str]
    attestation: bytes | None = None  # the DSSE payload, kept like Rekor's attestation storage


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise EntryError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise EntryError(f"{what} is not valid base64") from None


def _subject_keys(payload_type: str, payload: bytes) -> list[str]:
    """Index keys for the subjects of an in-toto statement (``alg:hex``), if it is one."""
    if payload_type != PAYLOAD_TYPE_IN_TOTO:
        return []
    try:
        stmt = json.loads(payload)
        return sorted(
            {
                f"{alg}:{val}"
                for s in stmt.get("subject", [])
                for alg, val in s.get("digest", {}).items()
                if isinstance(alg, str) and isinstance(val, str)
            }
        )
    except (ValueError, AttributeError, TypeError):
        return []


def canonicalize(proposed: Any) -> CanonicalEntry:
    """Validate a proposed entry and return the body to log, or raise EntryError."""
    if not isinstance(proposed, dict):
        raise EntryError("entry must be a JSON object")
    kind, version, spec = proposed.get("kind"), proposed.get("apiVersion"), proposed.get("spec")
    if version != "0.0.1" or not isinstance(spec, dict):
        raise EntryError(f"unsupported entry {kind}/{version}: only dsse and hashedrekord 0.0.1")
    if kind == EntryKind.DSSE:
        return _dsse(spec)
    if kind == EntryKind.HASHEDREKORD:
        return _hashedrekord(spec)
    raise EntryError(f"unsupported entry kind {kind!r}: only dsse and hashedrekord 0.0.1")


def _dsse(spec: dict[str, Any]) -> CanonicalEntry:
    content = spec.get("proposedContent")
    if not isinstance(content, dict) or not isinstance(content.get("envelope"), str):
        raise EntryError("dsse: spec.proposedContent.envelope must be the envelope JSON string")
    env_text: str = content["envelope"]
    try:
        env = json.loads(env_text)
    except ValueError:
        raise EntryError("dsse: envelope is not JSON") from None
    if not isinstance(env, dict) or not isinstance(env.get("payloadType"), str):
        raise EntryError("dsse: envelope needs payloadType, payload and signatures")
    payload = _b64(env.get("payload"), "dsse: envelope payload")
    sigs = env.get("signatures")
    verifiers = content.get("verifiers")
    if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(verifiers, list) or len(verifiers) != 1:
        raise EntryError("dsse: exactly one signature and one verifier are supported")
    sig = _b64(sigs[0].get("sig") if isinstance(sigs[0], dict) else None, "dsse: signature")
    verifier_pem = _b64(verifiers[0], "dsse: verifier")
    try:
        verify_with_cert(verifier_pem, sig, pae(env["payloadType"], payload))
    except CSRError as exc:
        raise EntryError(f"dsse: {exc}") from None
    body = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(env_text.encode()).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": [{"signature": base64.b64encode(sig).decode(), "verifier": verifiers[0]}],
        },
    }
    keys = [f"sha256:{hashlib.sha256(payload).hexdigest()}", *_subject_keys(env["payloadType"], payload)]
    return CanonicalEntry(canonical_json(body), "dsse", keys, payload)


def _hashedrekord(spec: dict[str, Any]) -> CanonicalEntry:
    sig_obj, data = spec.get("signature"), spec.get("data")
    if not isinstance(sig_obj, dict) or not isinstance(data, dict):
        raise EntryError("hashedrekord: spec.signature and spec.data are required")
    h = data.get("hash")
    if not isinstance(h, dict) or h.get("algorithm") != "sha256" or not isinstance(h.get("value"), str):
        raise EntryError("hashedrekord: spec.data.hash must be {algorithm: sha256, value: hex}")
    try:
        digest = bytes.fromhex(h["value"])
    except ValueError:
        raise EntryError("hashedrekord: hash value is not hex") from None
    if len(digest) != 32:
        raise EntryError("hashedrekord: sha256 digest must be 32 bytes")
    sig = _b64(sig_obj.get("content"), "hashedrekord: signature.content")
    pk = sig_obj.get("publicKey")
    pem = _b64(pk.get("content") if isinstance(pk, dict) else None, "hashedrekord: signature.publicKey.content")
    try:
        verify_with_cert(pem, sig, digest, prehashed=True)
    except CSRError as exc:
        raise EntryError(f"hashedrekord: {exc}") from None
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {
                "content": base64.b64encode(sig).decode(),
                "publicKey": {"content": base64.b64encode(pem).decode()},
            },
        },
    }
    return CanonicalEntry(canonical_json(body), "hashedrekord", [f"sha256:{digest.hex()}"])
