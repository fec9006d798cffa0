"""One bundle, both verifiers: sigstore-python first where it reads the shape, uc-attest's own path always.

The order: the bundle is parsed (an unsupported media type, entry kind or key type is an
``UnsupportedBundle``, exit 3, naming the field and version), its certificate must chain to the trusted root
(the first fact a wrong root fails, ``release.signer``), and its RFC 3161 timestamps are checked against
their limits (``release.timestamps``); sigstore-python's ``Verifier`` then verifies it unless the shape is
one it does not support (:func:`sigstore_python_gap` says which, and the result says so); finally the own
verifier (``verifier.py``) checks everything again, explicitly. A bundle is accepted only if every verifier
that ran accepts it; where they disagree the refusal names the own path's failed check.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import InvalidInput, SignatureInvalid
from ..signing.trust import Trust
from ..transparency.kinds import EntryKind
from ..transparency.trusted import RootLike
from .chain import verify_chain
from .identity import AnyIdentity, SignerLike, sigstore_policy
from .timestamps import TimestampInvalid, authorities, verify_timestamps
from .verifier import Artifact, Outcome, key_name, parse, verify_bundle

SIGSTORE_PYTHON, OWN = "sigstore-python", "uc-attest"


@dataclass(frozen=True)
class Checked:
    """A verified bundle: the own path's outcome, which verifiers accepted it, and why sigstore-python did not
    run (a shape it does not support), if it did not."""

    outcome: Outcome
    verified_by: tuple[str, ...]
    gap: str | None


def _has_othername(leaf: x509.Certificate | None) -> bool:
    if leaf is None:
        return False
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):  # a malformed extension: refused where the bundle is parsed
        return False
    return bool(san.get_values_for_type(x509.OtherName))


def _key_gap(doc: dict[str, Any], leaf: x509.Certificate | None) -> str | None:
    """sigstore-python 4.5.1 verifies certificate keys as ECDSA over SHA-256 only: an RSA or Ed25519 key, or a
    P-384/P-521 key over its own digest, is verified by the own path alone (the registry's other entries)."""
    key = leaf.public_key() if leaf is not None else None
    if key is None or (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"):
        return None
    digest = ((doc.get("messageSignature") or {}).get("messageDigest") or {}).get("algorithm")
    if isinstance(key, ec.EllipticCurvePublicKey) and digest == "SHA2_256":
        return None  # P-384/P-521 over SHA-256: sigstore-python verifies it
    return f"a {key_name(key)} signing key (sigstore-python 4.5.1 verifies ECDSA over SHA-256 only)"


def sigstore_python_gap(doc: dict[str, Any], root: RootLike, leaf: x509.Certificate | None = None) -> str | None:
    """Why sigstore-python 4.5.1 cannot verify this bundle shape (None: it can). Each is a documented gap
    that this project's tests show on a vector."""
    vm = doc.get("verificationMaterial") or {}
    entries = vm.get("tlogEntries") or []
    if "publicKey" in vm:
        return "a managed-key bundle (sigstore-python has no key-based verification)"
    key_gap = _key_gap(doc, leaf)
    if key_gap is not None:
        return key_gap
    if not entries:
        return "no transparency-log entry (a TSA-only bundle; sigstore-python requires one)"
    for e in entries:
        kind = (e.get("kindVersion") or {}).get("kind")
        if kind == EntryKind.INTOTO:
            return "a Rekor intoto entry (sigstore-python supports dsse and hashedrekord only)"
        proof = e.get("inclusionProof")
        if not proof or "checkpoint" not in proof:
            return "a v0.1 entry with a SET and no checkpointed inclusion proof (sigstore-python refuses it at parse)"
    ends = {ta.end for ta in authorities(root) if ta.end is not None}
    if ends:
        from rfc3161_client import decode_timestamp_response

        tvd = vm.get("timestampVerificationData") or {}
        for t in tvd.get("rfc3161Timestamps") or []:
            try:
                when = decode_timestamp_response(base64.b64decode(t["signedTimestamp"])).tst_info.gen_time
            except (KeyError, TypeError, ValueError):
                continue
            when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
            if when in ends:
                return "a timestamp at the last instant of its TSA's validity (sigstore-python treats the end as exclusive)"
    return None


def _unreadable_root(trust: Trust) -> str | None:
    """sigstore-python's model of the trusted root is stricter than the format (e.g. it requires a CA subject's
    commonName, which protobuf-specs leaves optional): such a root is read by the own path only."""
    try:
        _ = trust.trusted_root
    except InvalidInput as exc:
        detail = " ".join(exc.message.split("\n")[1:3]).strip() or exc.message
        return f"sigstore-python cannot read the trusted root ({detail})"
    return None


def _sigstore_python(
    raw: bytes,
    doc: dict[str, Any],
    trust: Trust,
    signers: Sequence[SignerLike] | None,
    leaf: x509.Certificate | None,
    artifact: Artifact | None,
    where: str,
) -> None:
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle, InvalidBundle
    from sigstore.verify import Verifier
    from sigstore_models.common.v1 import HashAlgorithm

    # sigstore-python compares OtherName SANs with their DER wrapper attached: the own path checks those
    policy = AnyIdentity() if signers is None or _has_othername(leaf) else sigstore_policy(signers)
    try:
        bundle = Bundle.from_json(raw)
    except (InvalidBundle, ValueError, SigstoreError) as exc:
        raise SignatureInvalid(where, f"malformed bundle: {exc}") from None
    try:
        verifier = Verifier(trusted_root=trust.trusted_root)
        if "dsseEnvelope" in doc:
            verifier.verify_dsse(bundle, policy)
        else:
            if artifact is None or "sha256" not in artifact.digests:
                raise SignatureInvalid(where, "a message signature is verified against its artifact: none given")
            verifier.verify_artifact(
                Hashed(algorithm=HashAlgorithm.SHA2_256, digest=artifact.digests["sha256"]), bundle, policy
            )
    except (VerificationError, SigstoreError, ValueError) as exc:
        raise SignatureInvalid(where, f"bundle rejected: {exc}") from None


def check_bundle(
    raw: bytes,
    doc: dict[str, Any],
    trust: Trust,
    *,
    where: str,
    signers: Sequence[SignerLike] | None,
    key: Any = None,
    artifact: Artifact | None = None,
    require_tlog: bool = True,
) -> Checked:
    """Verify a bundle with both verifiers (see the module docstring); SignatureInvalid (CheckFailed,
    TimestampInvalid) when it does not verify, UnsupportedBundle/MalformedBundle when it cannot be read."""
    root = trust.sections  # the trusted root's CAs, TSAs, logs: each parsed once, when first read
    parsed = parse(doc, where)
    if key is not None and parsed.leaf is not None:  # a key pin accepts only that key, never a certificate
        raise SignatureInvalid(
            where,
            "the bundle is signed with a certificate, not with the pinned public key "
            "(a key pin accepts only a bundle whose verification material is that key)",
        )
    if parsed.leaf is not None:  # the first fact: was the certificate issued under this trust root at all?
        verify_chain(parsed.leaf, root, parsed.leaf.not_valid_before_utc, where)
    stamps = verify_timestamps(doc, root, parsed.leaf, where)  # the limits, named as release.timestamps
    if parsed.leaf is not None and not stamps.verified and not any(e.get("inclusionPromise") for e in parsed.entries):
        why = "; ".join(stamps.ignored) or "the bundle has none"
        raise TimestampInvalid(
            where, f"no signed time: no SET (Rekor v2 gives none) and no verified RFC 3161 timestamp ({why})"
        )
    gap = sigstore_python_gap(doc, root, parsed.leaf) or _unreadable_root(trust)
    verified_by: tuple[str, ...] = ()
    if gap is None:
        _sigstore_python(raw, doc, trust, signers, parsed.leaf, artifact, where)
        verified_by = (SIGSTORE_PYTHON,)
    outcome = verify_bundle(
        doc, root, where=where, signers=signers, key=key, artifact=artifact, require_tlog=require_tlog
    )
    return Checked(outcome, (*verified_by, OWN), gap)
