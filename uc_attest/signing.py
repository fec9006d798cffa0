"""Sign and verify DSSE bundles with sigstore-python (public-good, private or embedded instance).

One code path for every deployment: a sigstore ClientTrustConfig selects Fulcio, Rekor and
the trusted root. Verification always pins both the signer identity and the OIDC issuer.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import Finding, InvalidInput, OperationalError, UsageError, VerificationFailed

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def load_trust_config(path: Path) -> Any:
    """Load a sigstore ClientTrustConfig JSON file (no network), or ``public-good`` / ``staging`` (TUF)."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig

    if str(path) in ("public-good", "staging"):  # Sigstore's TUF repositories (network, verified by TUF)
        try:
            return ClientTrustConfig.production() if str(path) == "public-good" else ClientTrustConfig.staging()
        except (SigstoreError, OSError) as exc:
            raise OperationalError(f"cannot fetch the {path} trust root through TUF: {exc}") from None
    try:
        return ClientTrustConfig.from_json(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{path}: trust config not found", path=str(path)) from None
    except (ValueError, SigstoreError) as exc:  # pydantic ValidationError is a ValueError
        raise InvalidInput(f"{path}: not a sigstore ClientTrustConfig: {exc}", path=str(path)) from None


def resolve_identity_token(explicit: str | None) -> Any:
    """The identity token: explicit, ``SIGSTORE_IDENTITY_TOKEN``, or ambient CI credentials (GitHub Actions)."""
    from sigstore.oidc import IdentityError, IdentityToken, detect_credential

    raw = explicit or os.environ.get("SIGSTORE_IDENTITY_TOKEN")
    if not raw:
        try:
            raw = detect_credential()
        except IdentityError as exc:
            raise OperationalError(f"ambient OIDC credential detection failed: {exc}") from None
    if not raw:
        raise UsageError(
            "no identity token: pass --identity-token, set SIGSTORE_IDENTITY_TOKEN, run in GitHub "
            "Actions with 'id-token: write', or use --instance (dev tokens)"
        )
    try:
        return IdentityToken(raw)
    except IdentityError as exc:
        raise InvalidInput(f"identity token rejected: {exc}") from None


def sign_statement(statement: dict[str, Any], trust_config: Any, token: Any) -> str:
    """Sign ``statement`` as DSSE; returns the Sigstore bundle v0.3 JSON."""
    from sigstore import dsse
    from sigstore.errors import Error as SigstoreError
    from sigstore.sign import SigningContext

    payload = json.dumps(statement, separators=(",", ":"), sort_keys=True).encode()
    try:
        stmt = dsse.Statement(payload)
        ctx = SigningContext.from_trust_config(trust_config)
        # cache=True is required: with cache=False sigstore-python 4.5.1 draws a new ephemeral key on every
        # access, so the DSSE signature and the certificate disagree. A fresh Signer per call is still ephemeral.
        with ctx.signer(token, cache=True) as signer:
            bundle = signer.sign_dsse(stmt)
    except (SigstoreError, OSError) as exc:
        raise OperationalError(f"signing failed (is the signing service reachable?): {exc}") from exc
    except Exception as exc:
        raise OperationalError(f"signing failed: {exc}") from exc
    return str(bundle.to_json())


class SignerLike(Protocol):
    """A trusted signer: OIDC issuer plus exact identity or anchored regex (policy.Signer fits)."""

    @property
    def issuer(self) -> str: ...
    @property
    def identity(self) -> str | None: ...
    @property
    def identity_regex(self) -> str | None: ...


@dataclass(frozen=True)
class SignerSpec:
    issuer: str
    identity: str | None = None
    identity_regex: str | None = None


def cert_identities(cert: Any) -> list[str]:
    """Every SAN identity of a Fulcio-style certificate (email, URI, Sigstore OtherName)."""
    from cryptography.x509 import OtherName, RFC822Name, SubjectAlternativeName, UniformResourceIdentifier

    san = cert.extensions.get_extension_for_class(SubjectAlternativeName).value
    out = list(san.get_values_for_type(RFC822Name)) + list(san.get_values_for_type(UniformResourceIdentifier))
    out += [o.value.decode(errors="replace") for o in san.get_values_for_type(OtherName)]
    return out


def cert_issuer(cert: Any) -> str:
    """The OIDC issuer from the v2 extension (DER UTF8String), else the legacy raw one."""
    from cryptography.x509 import ExtensionNotFound, ObjectIdentifier

    for oid, der in (("1.3.6.1.4.1.57264.1.8", True), ("1.3.6.1.4.1.57264.1.1", False)):
        try:
            raw = cert.extensions.get_extension_for_oid(ObjectIdentifier(oid)).value.value
        except ExtensionNotFound:
            continue
        if der and len(raw) >= 2:
            n = raw[1]
            start = 2 if n < 0x80 else 2 + (n & 0x7F)
            return bytes(raw[start:]).decode(errors="replace")
        return bytes(raw).decode(errors="replace")
    return ""


class _RegexIdentity:
    """sigstore VerificationPolicy: issuer exact (both extensions) and a SAN matching an anchored regex."""

    def __init__(self, pattern: str, issuer: str) -> None:
        self._re = re.compile(pattern)
        self._issuer = issuer

    def verify(self, cert: Any) -> None:
        from sigstore.errors import VerificationError
        from sigstore.verify import policy

        policy.OIDCIssuer(self._issuer).verify(cert)
        policy.OIDCIssuerV2(self._issuer).verify(cert)
        if not any(self._re.fullmatch(i) for i in cert_identities(cert)):
            raise VerificationError(f"no certificate identity matches {self._re.pattern}")


def sigstore_policy(signers: Sequence[SignerLike]) -> Any:
    """AnyOf the signers, each pinning identity (or regex) AND issuer."""
    from sigstore.verify import policy

    if not signers:
        raise UsageError("no trusted signer given: verification fails closed")
    rules: list[Any] = []
    for sg in signers:
        if sg.identity is not None:
            rules.append(
                policy.AllOf([policy.Identity(identity=sg.identity, issuer=sg.issuer), policy.OIDCIssuerV2(sg.issuer)])
            )
        else:
            rules.append(_RegexIdentity(sg.identity_regex or "^$", sg.issuer))
    return rules[0] if len(rules) == 1 else policy.AnyOf(rules)


@dataclass(frozen=True)
class VerifiedBundle:
    payload: bytes
    log_index: int
    integrated_time: int
    identity: str
    issuer: str
    canonical_body: bytes
    log_id: bytes


def verify_bundle(bundle_path: Path, trust_config: Any, signers: Sequence[SignerLike]) -> VerifiedBundle:
    """Verify signature, certificate chain + SCT, identity and issuer, SET, inclusion proof and checkpoint.

    Offline: everything comes from the bundle and the trusted root. Raises VerificationFailed
    with the reason, InvalidInput for a missing bundle.
    """
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle, InvalidBundle
    from sigstore.verify import Verifier

    try:
        bundle = Bundle.from_json(Path(bundle_path).read_bytes())
    except FileNotFoundError:
        raise InvalidInput(f"{bundle_path}: bundle not found", path=str(bundle_path)) from None
    except (InvalidBundle, ValueError) as exc:
        raise VerificationFailed([Finding(str(bundle_path), f"malformed bundle: {exc}")]) from None
    verifier = Verifier(trusted_root=trust_config.trusted_root)
    try:
        payload_type, payload = verifier.verify_dsse(bundle, sigstore_policy(signers))
    except VerificationError as exc:
        raise VerificationFailed([Finding(str(bundle_path), f"bundle rejected: {exc}")]) from None
    if payload_type != PAYLOAD_TYPE:
        raise VerificationFailed(
            [Finding(str(bundle_path), "unexpected DSSE payload type", PAYLOAD_TYPE, payload_type)]
        )
    entry = bundle.log_entry._inner
    cert = bundle.signing_certificate
    ids = cert_identities(cert)
    return VerifiedBundle(
        payload,
        int(entry.log_index or 0),
        int(entry.integrated_time or 0),
        ids[0] if ids else "",
        cert_issuer(cert),
        bytes(entry.canonicalized_body),
        bytes(entry.log_id.key_id),
    )


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
    """Verify any Sigstore bundle for auditors (sigstore-conformance ``verify-bundle`` semantics).

    ``artifact`` is a file path or ``sha256:<hex>``. Without ``trusted_root`` the public-good
    production root shipped with sigstore-python is used offline. Raises VerificationFailed with
    the reason, or InvalidInput for unusable arguments.
    """
    import hashlib

    from sigstore import dsse
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle, InvalidBundle, TrustedRoot
    from sigstore.verify import Verifier
    from sigstore_models.common.v1 import HashAlgorithm

    def fail(why: str) -> VerificationFailed:
        return VerificationFailed([Finding(str(bundle_path), why)])

    if artifact.startswith("sha256:"):
        try:
            digest = bytes.fromhex(artifact[7:])
        except ValueError:
            raise InvalidInput(f"{artifact!r} is not sha256:<hex>") from None
    else:
        try:
            digest = hashlib.sha256(Path(artifact).read_bytes()).digest()
        except OSError as exc:
            raise InvalidInput(f"{artifact}: cannot read the artifact: {exc.strerror}", path=artifact) from None
    hashed = Hashed(algorithm=HashAlgorithm.SHA2_256, digest=digest)
    if key is not None:
        _verify_key_bundle(Path(bundle_path), digest, key, trusted_root, staging)
        return
    try:
        bundle = Bundle.from_json(Path(bundle_path).read_bytes())
    except OSError as exc:
        raise InvalidInput(f"{bundle_path}: cannot read the bundle: {exc.strerror}", path=str(bundle_path)) from None
    except (InvalidBundle, ValueError, SigstoreError) as exc:
        raise fail(f"malformed bundle: {exc}") from None
    if not identity or not issuer:
        raise InvalidInput("give --certificate-identity and --certificate-oidc-issuer (or --key)")
    try:
        root = TrustedRoot.from_file(str(trusted_root)) if trusted_root else _default_root(staging)
    except (OSError, ValueError, SigstoreError) as exc:
        raise InvalidInput(f"trusted root unusable: {exc}") from None
    pol = sigstore_policy([SignerSpec(issuer, identity)])
    try:
        verifier = Verifier(trusted_root=root)
        if bundle._dsse_envelope is not None:
            _, payload = verifier.verify_dsse(bundle, pol)
            if not dsse.Statement(payload)._matches_digest(hashed):
                raise fail("no statement subject matches the artifact's sha256")
        else:
            verifier.verify_artifact(hashed, bundle, pol)
    except (VerificationError, SigstoreError, ValueError) as exc:
        raise fail(f"bundle rejected: {exc}") from None


def _default_root(staging: bool) -> Any:
    """Sigstore's public-good (or staging) trusted root as shipped with sigstore-python (offline)."""
    from sigstore.models import ClientTrustConfig

    cfg = ClientTrustConfig.staging(offline=True) if staging else ClientTrustConfig.production(offline=True)
    return cfg.trusted_root


def _verify_key_bundle(
    bundle_path: Path, digest: bytes, key_path: Path, trusted_root: Path | None, staging: bool = False
) -> None:
    """A managed-key bundle (hashedrekord 0.0.1): sigstore-python has no key-based API, so this checks
    it directly: the key parses and is the key logged in the entry, the signature is over the artifact's
    digest, the entry body names that digest and signature, and the log entry verifies (SET, inclusion
    proof and signed checkpoint) with a log key of the trusted root valid at the integrated time."""
    import base64
    import datetime as dt

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from sigstore.models import TrustedRoot

    from .tlog.client import LogKey, LogMisbehaved, RekorClient, rest_answer_from_bundle_entry

    def fail(why: str) -> VerificationFailed:
        return VerificationFailed([Finding(str(bundle_path), why)])

    try:
        key = serialization.load_pem_public_key(Path(key_path).read_bytes())
    except (OSError, ValueError) as exc:
        raise fail(f"the public key {key_path} is unusable: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise fail("only ECDSA keys are supported for managed-key bundles")
    try:
        b = json.loads(Path(bundle_path).read_bytes())
        ms = b["messageSignature"]
        (entry,) = b["verificationMaterial"]["tlogEntries"]
        body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
        sig = base64.b64decode(ms["signature"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fail(f"not a managed-key message-signature bundle: {exc}") from None
    if entry.get("kindVersion") != {"kind": "hashedrekord", "version": "0.0.1"} or body.get("kind") != "hashedrekord":
        raise fail("only hashedrekord 0.0.1 entries are supported for managed-key bundles")
    if base64.b64decode(ms.get("messageDigest", {}).get("digest", "")) not in (b"", digest):
        raise fail("the bundle's message digest is not the artifact's")
    try:
        key.verify(sig, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        raise fail("the signature does not verify with the given key over the artifact") from None
    spec = body.get("spec", {})
    logged_key = serialization.load_pem_public_key(base64.b64decode(spec["signature"]["publicKey"]["content"]))
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if logged_key.public_bytes(*der) != key.public_bytes(*der):
        raise fail("the log entry names another public key")
    if spec["data"]["hash"]["value"] != digest.hex() or base64.b64decode(spec["signature"]["content"]) != sig:
        raise fail("the log entry is for another artifact or signature")
    root = TrustedRoot.from_file(str(trusted_root)) if trusted_root else _default_root(staging)
    log_id = base64.b64decode(entry["logId"]["keyId"])
    t = int(entry["integratedTime"])
    for tl in root._inner.tlogs:
        if bytes(tl.log_id.key_id) != log_id:
            continue
        valid = tl.public_key.valid_for
        start = valid.start.timestamp() if valid and valid.start else 0.0
        end = valid.end.timestamp() if valid and valid.end else float("inf")
        if not start <= t <= end:
            raise fail(f"integrated time {dt.datetime.fromtimestamp(t, dt.UTC)} is outside the log key's validity")
        log_key = serialization.load_der_public_key(bytes(tl.public_key.raw_bytes or b""))
        if not isinstance(log_key, ec.EllipticCurvePublicKey):
            raise fail("unsupported log key type")
        client = RekorClient(LogKey(str(tl.base_url), log_key, log_id))
        try:
            answer = rest_answer_from_bundle_entry(entry)
            cp = client.verify_note(entry["inclusionProof"]["checkpoint"]["envelope"])
            client.verify_entry(answer, cp)
        except (LogMisbehaved, KeyError, ValueError) as exc:
            raise fail(f"log entry does not verify: {exc}") from None
        return
    raise fail("the entry's log is not in the trusted root")
