"""Verify any Sigstore bundle for auditors (the sigstore-conformance ``verify-bundle`` client protocol).

sigstore-python verifies certificate-signed bundles (DSSE and message signatures); managed-key
hashedrekord bundles, which sigstore-python has no API for, are checked here step by step.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

from ..claims.statement import Statement, artifact_hashes
from ..errors import InvalidInput, LogMisbehaved, MalformedBundle, SignatureInvalid
from ..signing.trust import PUBLIC_GOOD, STAGING, Trust
from ..transparency.rekor_v1 import RekorClient, rest_answer_from_bundle_entry
from .bundle import leaf_certificate, read_bundle
from .identity import SignerSpec, sigstore_policy
from .timestamps import verify_timestamps


def _root_trust(trusted_root: Path | None, staging: bool) -> Trust:
    """A pinned trusted root file, else public-good's (or staging's) as shipped with sigstore-python (offline)."""
    if trusted_root is not None:
        return Trust(str(trusted_root))
    return Trust(STAGING if staging else PUBLIC_GOOD, offline=True)


def _artifact(artifact: str) -> dict[str, str]:
    """The artifact's digests (algorithm -> hex): a file's, or the one ``sha256:<hex>`` given."""
    if artifact.startswith("sha256:"):
        hexd = artifact[7:].lower()
        try:
            if len(bytes.fromhex(hexd)) != 32:
                raise ValueError
        except ValueError:
            raise InvalidInput(f"{artifact!r} is not sha256:<64 hex>") from None
        return {"sha256": hexd}
    try:
        return artifact_hashes(path=artifact)
    except OSError as exc:
        raise InvalidInput(f"{artifact}: cannot read the artifact: {exc.strerror}", path=artifact) from None


def verify_any_bundle(
    bundle_path: Path,
    artifact: str,
    *,
    identity: str | None = None,
    issuer: str | None = None,
    key: Path | None = None,
    trusted_root: Path | None = None,
    staging: bool = False,
) -> None:
    """Verify any Sigstore bundle; ``artifact`` is a file path or ``sha256:<hex>``. Without ``trusted_root``
    the public-good production root shipped with sigstore-python is used offline. Raises SignatureInvalid
    with the reason, InvalidInput for unusable arguments."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle, InvalidBundle
    from sigstore.verify import Verifier
    from sigstore_models.common.v1 import HashAlgorithm

    hashes = _artifact(artifact)
    trust = _root_trust(trusted_root, staging)
    if key is not None:
        _verify_key_bundle(Path(bundle_path), bytes.fromhex(hashes["sha256"]), key, trust)
        return
    raw, doc = read_bundle(Path(bundle_path))
    if not identity or not issuer:
        raise InvalidInput("give --certificate-identity and --certificate-oidc-issuer (or --key)")

    def fail(why: str) -> SignatureInvalid:
        return SignatureInvalid(str(bundle_path), why)

    verify_timestamps(doc, trust.root_document, leaf_certificate(doc, str(bundle_path)), str(bundle_path))
    try:
        bundle = Bundle.from_json(raw)
    except (InvalidBundle, ValueError, SigstoreError) as exc:
        raise fail(f"malformed bundle: {exc}") from None
    pol = sigstore_policy([SignerSpec(issuer, identity)])
    try:
        verifier = Verifier(trusted_root=trust.trusted_root)
        if "dsseEnvelope" in doc:
            _, payload = verifier.verify_dsse(bundle, pol)
            try:
                statement = Statement.parse(payload)
            except MalformedBundle as exc:
                raise fail(f"the DSSE payload is not an in-toto statement: {exc.message}") from None
            if not statement.matches_artifact(hashes):
                raise fail("no statement subject matches the artifact's digest")
        else:
            verifier.verify_artifact(
                Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(hashes["sha256"])), bundle, pol
            )
    except (VerificationError, SigstoreError, ValueError) as exc:
        raise fail(f"bundle rejected: {exc}") from None


def _verify_key_bundle(bundle_path: Path, digest: bytes, key_path: Path, trust: Trust) -> None:
    """A managed-key bundle (hashedrekord 0.0.1): the key parses and is the key logged in the entry, the
    signature is over the artifact's digest, the entry body names that digest and signature, and the log
    entry verifies (SET, inclusion proof and signed checkpoint) with a log key of the trusted root valid at
    the integrated time."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    def fail(why: str) -> SignatureInvalid:
        return SignatureInvalid(str(bundle_path), why)

    try:
        pub = serialization.load_pem_public_key(Path(key_path).read_bytes())
    except (OSError, ValueError) as exc:
        raise fail(f"the public key {key_path} is unusable: {exc}") from None
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise fail("only ECDSA keys are supported for managed-key bundles")
    _, b = read_bundle(bundle_path)
    try:
        ms = b["messageSignature"]
        (entry,) = b["verificationMaterial"]["tlogEntries"]
        body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
        sig = base64.b64decode(ms["signature"])
    except (ValueError, KeyError, TypeError) as exc:
        raise fail(f"not a managed-key message-signature bundle: {exc!r}") from None
    if entry.get("kindVersion") != {"kind": "hashedrekord", "version": "0.0.1"} or body.get("kind") != "hashedrekord":
        raise fail("only hashedrekord 0.0.1 entries are supported for managed-key bundles")
    if base64.b64decode(ms.get("messageDigest", {}).get("digest", "")) not in (b"", digest):
        raise fail("the bundle's message digest is not the artifact's")
    try:
        pub.verify(sig, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        raise fail("the signature does not verify with the given key over the artifact") from None
    try:
        spec = body["spec"]
        logged_key = serialization.load_pem_public_key(base64.b64decode(spec["signature"]["publicKey"]["content"]))
        logged = (spec["data"]["hash"]["value"], base64.b64decode(spec["signature"]["content"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise fail(f"the log entry body is malformed: {exc!r}") from None
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if logged_key.public_bytes(*der) != pub.public_bytes(*der):
        raise fail("the log entry names another public key")
    if logged != (digest.hex(), sig):
        raise fail("the log entry is for another artifact or signature")
    _verify_entry_with_root(entry, trust, fail)


def _verify_entry_with_root(entry: dict[str, Any], trust: Trust, fail: Any) -> None:
    """The entry's SET, inclusion proof and checkpoint with the key of its log in the trusted root."""
    log_id = base64.b64decode(entry["logId"]["keyId"])
    t = int(entry["integratedTime"])
    for i, tl in enumerate(trust.root_document.get("tlogs", [])):
        try:
            if base64.b64decode(tl["logId"]["keyId"]) != log_id:
                continue
            valid = tl["publicKey"].get("validFor", {})
            start = dt.datetime.fromisoformat(valid["start"]).timestamp() if valid.get("start") else 0.0
            end = dt.datetime.fromisoformat(valid["end"]).timestamp() if valid.get("end") else float("inf")
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedBundle(f"{trust.source}: trustedRoot.tlogs[{i}] is malformed: {exc!r}") from None
        if not start <= t <= end:
            raise fail(f"integrated time {dt.datetime.fromtimestamp(t, dt.UTC)} is outside the log key's validity")
        log = next((lg for lg in trust.logs() if lg.log_id == log_id), None)
        if log is None:
            raise fail("unsupported log key type")
        client = RekorClient(log)
        try:
            answer = rest_answer_from_bundle_entry(entry)
            cp = client.verify_note(entry["inclusionProof"]["checkpoint"]["envelope"])
            client.verify_entry(answer, cp)
        except (LogMisbehaved, KeyError, ValueError) as exc:
            raise fail(f"log entry does not verify: {getattr(exc, 'message', exc)}") from None
        return
    raise fail("the entry's log is not in the trusted root")
