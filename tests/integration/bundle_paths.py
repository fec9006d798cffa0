"""Run one bundle vector through each verification path — the own verifier alone, sigstore-python alone (where
it reads the shape), and `verify-bundle` (both) — with mutations; used by test_differential.py and
benchmarks/bundle_table.py. Each runner answers None (verified) or why not ("check: detail")."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import serialization

from uc_attest.claims.statement import Statement
from uc_attest.errors import UcAttestError
from uc_attest.evidence.bundle import leaf_certificate
from uc_attest.evidence.check import _sigstore_python, check_bundle, sigstore_python_gap
from uc_attest.evidence.identity import SignerSpec, signer_of
from uc_attest.evidence.verifier import Artifact, parse, verify_bundle
from uc_attest.signing.trust import Trust
from uc_attest.testing.vectors import Vector

NA = "n/a"


@cache
def trust_of(path: str) -> Trust:
    return Trust(path)


def _why(exc: BaseException) -> str:
    text = getattr(exc, "problem", None) or getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {text}"[:240]


def artifact_of(v: Vector, other: bool = False) -> Artifact:
    if other:
        return Artifact.of(b"not the artifact")
    if v.artifact is not None:
        return Artifact.of(v.artifact.read_bytes())
    assert v.digest is not None
    return Artifact({"sha256": bytes.fromhex(v.digest.removeprefix("sha256:"))})


def signers_of(v: Vector, doc: dict[str, Any], identity: str | None, issuer: str | None) -> list[SignerSpec]:
    if v.identity is not None:
        return [SignerSpec(issuer or v.issuer or "", identity or v.identity)]
    try:
        who = signer_of(leaf_certificate(v.doc(), v.name))
    except UcAttestError:
        return [SignerSpec(issuer or "none", identity or "none")]
    return [SignerSpec(issuer or who.issuer, identity or who.primary)]


def key_of(v: Vector, other: bool = False) -> Any:
    if v.key is None:
        return None
    if other:
        from cryptography.hazmat.primitives.asymmetric import ec

        return ec.generate_private_key(ec.SECP256R1()).public_key()
    try:
        return serialization.load_pem_public_key(v.key.read_bytes())
    except ValueError:
        return "unparseable"


Case = tuple[dict[str, Any], dict[str, Any]]  # (bundle document, runner arguments)


def run_own(v: Vector, doc: dict[str, Any], *, identity: str | None = None, issuer: str | None = None,
            other_artifact: bool = False, other_key: bool = False) -> str | None:  # fmt: skip
    key = key_of(v, other_key)
    if key == "unparseable":
        return "bundle.key: the public key does not parse"
    try:
        verify_bundle(doc, trust_of(str(v.trusted_root)).root_document, where=v.name,
                      signers=None if key is not None else signers_of(v, doc, identity, issuer), key=key,
                      artifact=artifact_of(v, other_artifact))  # fmt: skip
    except UcAttestError as exc:
        return _why(exc)
    return None


def run_sigstore_python(v: Vector, doc: dict[str, Any], *, identity: str | None = None, issuer: str | None = None,
                        other_artifact: bool = False, other_key: bool = False) -> str | None:  # fmt: skip
    """sigstore-python's Verifier (and, for DSSE, the statement's subject against the artifact, which
    sigstore-python leaves to its caller); NA where it does not read the shape."""
    del other_key
    trust = trust_of(str(v.trusted_root))
    try:
        if v.key is not None or sigstore_python_gap(doc, trust.root_document, parse(doc, v.name).leaf) is not None:
            return NA
    except UcAttestError as exc:
        return _why(exc)
    artifact = artifact_of(v, other_artifact)
    try:
        leaf = leaf_certificate(doc, v.name)
        _sigstore_python(json.dumps(doc).encode(), doc, trust, signers_of(v, doc, identity, issuer), leaf, artifact,
                         v.name)  # fmt: skip
        if "dsseEnvelope" in doc:
            payload = base64.b64decode(doc["dsseEnvelope"]["payload"])
            if not Statement.parse_attestation(payload).matches_artifact(
                {a: d.hex() for a, d in artifact.digests.items()}
            ):
                return "subject: no statement subject matches the artifact"
    except UcAttestError as exc:
        return _why(exc)
    except Exception as exc:  # noqa: BLE001 - a crash of the stock verifier is a refusal, reported
        return f"crash {type(exc).__name__}: {exc}"[:240]
    return None


def run_both(v: Vector, doc: dict[str, Any], **kw: Any) -> str | None:
    """What `verify-bundle` answers: both verifiers through check_bundle."""
    key = key_of(v, kw.get("other_key", False))
    if key == "unparseable":
        return "bundle.key: the public key does not parse"
    try:
        check_bundle(json.dumps(doc).encode(), doc, trust_of(str(v.trusted_root)), where=v.name,
                     signers=None if key is not None else signers_of(v, doc, kw.get("identity"), kw.get("issuer")),
                     key=key, artifact=artifact_of(v, kw.get("other_artifact", False)))  # fmt: skip
    except UcAttestError as exc:
        return _why(exc)
    return None


# -- mutations: each returns (document, runner keyword arguments), or None where it does not apply --------------


def _flip(value: str, pos: int = -5) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[pos % len(raw)] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc.get("verificationMaterial", {}).get("tlogEntries") or [])


def m_identity(v: Vector, doc: dict[str, Any]) -> Case | None:
    return None if v.key else (doc, {"identity": "eve@example.com"})


def m_issuer(v: Vector, doc: dict[str, Any]) -> Case | None:
    return None if v.key else (doc, {"issuer": "https://issuer.evil.example"})


def m_key(v: Vector, doc: dict[str, Any]) -> Case | None:
    return (doc, {"other_key": True}) if v.key else None


def m_digest(v: Vector, doc: dict[str, Any]) -> Case | None:
    return doc, {"other_artifact": True}


def m_signature(v: Vector, doc: dict[str, Any]) -> Case | None:
    d = copy.deepcopy(doc)
    if "dsseEnvelope" in d:
        d["dsseEnvelope"]["signatures"][0]["sig"] = _flip(d["dsseEnvelope"]["signatures"][0]["sig"], 20)
    else:
        d["messageSignature"]["signature"] = _flip(d["messageSignature"]["signature"], 20)
    return d, {}


def m_payload(v: Vector, doc: dict[str, Any]) -> Case | None:
    if "dsseEnvelope" not in doc:
        return None
    d = copy.deepcopy(doc)
    d["dsseEnvelope"]["payload"] = _flip(d["dsseEnvelope"]["payload"], 40)
    return d, {}


def m_set(v: Vector, doc: dict[str, Any]) -> Case | None:
    d = copy.deepcopy(doc)
    hit = [e for e in _entries(d) if e.get("inclusionPromise")]
    for e in hit:
        e["inclusionPromise"]["signedEntryTimestamp"] = _flip(e["inclusionPromise"]["signedEntryTimestamp"], 12)
    return (d, {}) if hit else None


def m_integrated_time(v: Vector, doc: dict[str, Any]) -> Case | None:
    d = copy.deepcopy(doc)
    hit = [e for e in _entries(d) if e.get("inclusionPromise")]
    for e in hit:
        e["integratedTime"] = str(int(e["integratedTime"]) + 3600)
    return (d, {}) if hit else None


def m_proof_hash(v: Vector, doc: dict[str, Any]) -> Case | None:
    d = copy.deepcopy(doc)
    hit = [e for e in _entries(d) if e.get("inclusionProof")]
    for e in hit:
        p = e["inclusionProof"]
        if p.get("hashes"):
            p["hashes"][0] = _flip(p["hashes"][0], 3)
        else:
            p["rootHash"] = _flip(p["rootHash"], 3)
    return (d, {}) if hit else None


def m_timestamp(v: Vector, doc: dict[str, Any]) -> Case | None:
    """Only where the timestamp is the only time (no SET): elsewhere an unverifiable timestamp is not counted."""
    d = copy.deepcopy(doc)
    tss = d.get("verificationMaterial", {}).get("timestampVerificationData", {}).get("rfc3161Timestamps") or []
    if not tss or any(e.get("inclusionPromise") for e in _entries(d)):
        return None
    for t in tss:
        t["signedTimestamp"] = _flip(t["signedTimestamp"], -20)
    return d, {}


MUTATIONS: dict[str, Callable[[Vector, dict[str, Any]], Case | None]] = {
    "identity": m_identity, "issuer": m_issuer, "key": m_key, "digest": m_digest, "signature": m_signature,
    "payload": m_payload, "set": m_set, "integrated_time": m_integrated_time, "proof_hash": m_proof_hash,
    "timestamp": m_timestamp,
}  # fmt: skip
