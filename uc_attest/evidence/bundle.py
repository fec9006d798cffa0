"""Evidence from a Sigstore bundle: the exact signed payload, who signed it, when, and where it is logged.

sigstore-python's ``Verifier`` checks the bundle (certificate chain and SCT, signature, log entry with its
SET, inclusion proof and signed checkpoint) against the trust root and the signer policy, and returns
the exact payload bytes; nothing else of sigstore-python is used. The verified bundle is then read as the
documented bundle format (protobuf JSON) for the facts rules need: the log proof and the verified times.
Rules never read ``integratedTime`` themselves: they take :attr:`Evidence.times`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509

from ..core.dsse import PAYLOAD_TYPE_IN_TOTO
from ..errors import InvalidInput, MalformedBundle, SignatureInvalid
from ..signing.trust import Trust
from .identity import AnyIdentity, SignerIdentity, SignerLike, describe, signer_of, sigstore_policy
from .timestamps import TimestampInvalid, verify_timestamps


@dataclass(frozen=True)
class TimeProof:
    """A verified point in time at which the signature existed: a log's SET or an RFC 3161 timestamp."""

    kind: Literal["set", "rfc3161"]
    time: int  # Unix seconds
    source: str  # the log id (hex) or the TSA


@dataclass(frozen=True)
class LogProof:
    """The transparency-log entry of a bundle, as verified (inclusion proof against a signed checkpoint)."""

    log_id: bytes
    index: int
    kind: str
    version: str
    canonical_body: bytes
    checkpoint: str
    tree_size: int
    root: bytes


@dataclass(frozen=True)
class Evidence:
    """What a verified bundle proves."""

    bundle: Path
    payload_type: str
    payload: bytes  # the exact signed bytes
    signer: SignerIdentity
    times: tuple[TimeProof, ...]
    log: LogProof | None
    ignored_timestamps: tuple[str, ...] = ()  # timestamps no trusted TSA signed (not counted)

    @property
    def signed_at(self) -> int | None:
        """The earliest verified time (the signature existed then); None if no time is verified."""
        return min((t.time for t in self.times), default=None)


def read_bundle(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The bundle file's bytes and JSON document; InvalidInput if it is missing, MalformedBundle if not JSON."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{path}: bundle not found", path=str(path)) from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the bundle: {exc.strerror}", path=str(path)) from None
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MalformedBundle(f"{path}: bundle is not JSON", path=str(path)) from None
    if not isinstance(doc, dict):
        raise MalformedBundle(f"{path}: bundle is not a JSON object", path=str(path))
    return raw, doc


def _log_proof(doc: dict[str, Any]) -> LogProof | None:
    entries = doc.get("verificationMaterial", {}).get("tlogEntries") or []
    if not entries:
        return None
    e = entries[0]
    p = e["inclusionProof"]
    return LogProof(
        base64.b64decode(e["logId"]["keyId"]),
        int(e["logIndex"]),
        str(e["kindVersion"]["kind"]),
        str(e["kindVersion"]["version"]),
        base64.b64decode(e["canonicalizedBody"]),
        str(p["checkpoint"]["envelope"]),
        int(p["treeSize"]),
        base64.b64decode(p["rootHash"]),
    )


def _times(doc: dict[str, Any]) -> tuple[TimeProof, ...]:
    out = []
    for e in doc.get("verificationMaterial", {}).get("tlogEntries") or []:
        t = int(e.get("integratedTime") or 0)
        if e.get("inclusionPromise") and t > 0:  # a SET signs the integrated time (verified by sigstore-python)
            out.append(TimeProof("set", t, base64.b64decode(e["logId"]["keyId"]).hex()))
    return tuple(out)


def leaf_certificate(doc: dict[str, Any], where: str) -> x509.Certificate:
    """The signing certificate of a bundle (v0.3 ``certificate``, or the first of an older ``x509CertificateChain``)."""
    vm = doc.get("verificationMaterial") or {}
    try:
        raw = (
            vm["certificate"]["rawBytes"]
            if "certificate" in vm
            else vm["x509CertificateChain"]["certificates"][0]["rawBytes"]
        )
        return x509.load_der_x509_certificate(base64.b64decode(raw))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MalformedBundle(f"{where}: verificationMaterial has no readable signing certificate: {exc!r}") from None


def _verify_without_log(doc: dict[str, Any], leaf: x509.Certificate, times: list[dt.datetime], trust: Trust,
                        policy: Any, where: str) -> tuple[str, bytes]:  # fmt: skip
    """A bundle with no transparency-log entry (TSA-only, as GitHub's instance for private repositories
    issues them): certificate chain and code-signing EKU at every verified time, an SCT, the signer policy,
    and the DSSE signature over the PAE. sigstore-python refuses such bundles at parse time."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from sigstore.errors import VerificationError

    from ..core.dsse import pae
    from .chain import issuer_of, verify_chain, verify_sct

    if not times:
        raise TimestampInvalid(where, "a bundle without a log entry needs at least one verified RFC 3161 timestamp")
    root = trust.root_document
    for t in times:
        verify_chain(leaf, root, t, where)
    verify_sct(leaf, issuer_of(leaf, root, times[0]), root, where)
    try:
        policy.verify(leaf)
    except VerificationError as exc:
        raise SignatureInvalid(where, f"bundle rejected: {exc}") from None
    try:
        env = doc["dsseEnvelope"]
        payload, ptype = base64.b64decode(env["payload"]), str(env["payloadType"])
        sig = base64.b64decode(env["signatures"][0]["sig"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MalformedBundle(f"{where}: dsseEnvelope is malformed: {exc!r}") from None
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise SignatureInvalid(where, "only ECDSA signing certificates are supported without a log entry")
    try:
        key.verify(sig, pae(ptype, payload), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureInvalid(where, "bundle rejected: the DSSE signature does not verify") from None
    return ptype, payload


def verify_dsse_bundle(
    path: Path, trust: Trust, signers: Sequence[SignerLike] | None, *, payload_type: str = PAYLOAD_TYPE_IN_TOTO
) -> Evidence:
    """Verify a DSSE bundle against the trust root and the signers (``None``: any signer, reported not pinned).

    The RFC 3161 timestamps are verified first (TimestampInvalid naming the one that fails); a bundle with a
    log entry (Rekor v1 or v2) is then verified by sigstore-python, one without by :func:`_verify_without_log`.
    Raises SignatureInvalid (the reason, and who was expected) when it does not verify, InvalidInput /
    MalformedBundle when the file is missing or unparsable."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle, InvalidBundle
    from sigstore.verify import Verifier

    raw, doc = read_bundle(path)
    expected = describe(signers) if signers is not None else None
    where = str(path)
    leaf = leaf_certificate(doc, where)
    stamps = verify_timestamps(doc, trust.root_document, leaf, where)
    tsa_times = stamps.verified
    policy = AnyIdentity() if signers is None else sigstore_policy(signers)
    entries = doc.get("verificationMaterial", {}).get("tlogEntries") or []
    if entries and not tsa_times and not any(isinstance(e, dict) and e.get("inclusionPromise") for e in entries):
        why = "; ".join(stamps.ignored) or "the bundle has none"
        raise TimestampInvalid(
            where, f"the log entry has no signed time (Rekor v2 gives none) and no verified RFC 3161 timestamp ({why})"
        )
    if not entries:
        try:
            got_type, payload = _verify_without_log(doc, leaf, [t for t, _ in tsa_times], trust, policy, where)
        except SignatureInvalid as exc:
            raise SignatureInvalid(where, exc.problem, expected) from None
        if got_type != payload_type:
            raise SignatureInvalid(where, "unexpected DSSE payload type", payload_type, got_type)
        times = tuple(TimeProof("rfc3161", int(t.timestamp()), name) for t, name in tsa_times)
        return Evidence(Path(path), got_type, payload, signer_of(leaf), times, None, tuple(stamps.ignored))
    try:
        bundle = Bundle.from_json(raw)
    except (InvalidBundle, ValueError, SigstoreError) as exc:
        raise SignatureInvalid(str(path), f"malformed bundle: {exc}", expected) from None
    try:
        got_type, payload = Verifier(trusted_root=trust.trusted_root).verify_dsse(bundle, policy)
    except (VerificationError, SigstoreError, ValueError) as exc:
        raise SignatureInvalid(str(path), f"bundle rejected: {exc}", expected) from None
    if got_type != payload_type:
        raise SignatureInvalid(str(path), "unexpected DSSE payload type", payload_type, got_type)
    try:
        log, times = _log_proof(doc), _times(doc)
    except (KeyError, TypeError, ValueError) as exc:  # sigstore-python accepted it, so this is a shape we do not read
        raise MalformedBundle(f"{path}: unreadable log entry in a verified bundle: {exc!r}", path=str(path)) from None
    times += tuple(TimeProof("rfc3161", int(t.timestamp()), name) for t, name in tsa_times)
    return Evidence(Path(path), got_type, payload, signer_of(bundle.signing_certificate), times, log,
                    tuple(stamps.ignored))  # fmt: skip
