"""Fulcio-like certificate issuance with an embedded precertificate SCT (RFC 6962).

The leaf has an empty subject, a critical SAN (email, URI, or for ``user!host`` identities Fulcio's
username OtherName 1.3.6.1.4.1.57264.1.7 holding a UTF8String), KeyUsage digitalSignature,
EKU codeSigning, SKI/AKI, both OIDC issuer extensions (1.3.6.1.4.1.57264.1.1 raw bytes and
.1.8 DER UTF8String), a 10-minute validity, and one SCT signed by the instance's CT key over
the precertificate TBS (the final TBS without the SCT extension).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from .state import SIGNING_ONLY, InstanceState

OID_OTHERNAME_USERNAME = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")

OID_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OID_SCT_LIST = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
LEAF_LIFETIME = dt.timedelta(minutes=10)


class CSRError(Exception):
    """The certificate request is malformed or its proof of possession fails."""


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _der_octet_string(data: bytes) -> bytes:
    return b"\x04" + _der_len(len(data)) + data


def _der_utf8(text: str) -> bytes:
    raw = text.encode()
    return b"\x0c" + _der_len(len(raw)) + raw


def check_csr(pem: bytes) -> ec.EllipticCurvePublicKey:
    """Parse a PEM CSR and verify its self-signature (proof of possession)."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as exc:
        raise CSRError(f"malformed CSR: {exc}") from None
    if not csr.is_signature_valid:
        raise CSRError("CSR signature (proof of possession) is invalid")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CSRError("CSR key must be an EC key")
    return key


def issue_leaf(state: InstanceState, public_key: ec.EllipticCurvePublicKey, identity: str) -> x509.Certificate:
    """Issue a short-lived code-signing leaf for ``identity`` with an embedded SCT."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    issuer_key = state.keys["ca-intermediate.key.pem"]
    san: x509.GeneralName
    if "://" in identity:
        san = x509.UniformResourceIdentifier(identity)
    elif "!" in identity:  # Fulcio's username identities (``user!issuer-host``): a Sigstore OtherName SAN
        san = x509.OtherName(OID_OTHERNAME_USERNAME, _der_utf8(identity))
    else:
        san = x509.RFC822Name(identity)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(state.ca_intermediate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + LEAF_LIFETIME)
        .add_extension(SIGNING_ONLY, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
        .add_extension(x509.SubjectAlternativeName([san]), critical=True)
        .add_extension(x509.UnrecognizedExtension(OID_ISSUER_V1, state.issuer.encode()), critical=False)
        .add_extension(x509.UnrecognizedExtension(OID_ISSUER_V2, _der_utf8(state.issuer)), critical=False)
    )
    precert = builder.sign(issuer_key, hashes.SHA384())
    sct = _sign_sct(state, precert.tbs_certificate_bytes, int(now.timestamp()) * 1000)
    final = builder.add_extension(
        x509.UnrecognizedExtension(OID_SCT_LIST, _der_octet_string(sct)), critical=False
    ).sign(issuer_key, hashes.SHA384())
    if final.tbs_precertificate_bytes != precert.tbs_certificate_bytes:  # pragma: no cover - invariant
        raise RuntimeError("precertificate TBS mismatch")
    return final


def _sign_sct(state: InstanceState, tbs: bytes, ts_ms: int) -> bytes:
    """A serialized SignedCertificateTimestampList holding one v1 precert SCT."""
    issuer_spki = state.ca_intermediate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signed = (
        b"\x00\x00"
        + struct.pack(">Q", ts_ms)
        + b"\x00\x01"
        + hashlib.sha256(issuer_spki).digest()
        + len(tbs).to_bytes(3, "big")
        + tbs
        + b"\x00\x00"
    )
    sig = state.ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    sct = (
        b"\x00"
        + state.ct_log_id
        + struct.pack(">Q", ts_ms)
        + b"\x00\x00"
        + b"\x04\x03"
        + struct.pack(">H", len(sig))
        + sig
    )
    return struct.pack(">H", len(sct) + 2) + struct.pack(">H", len(sct)) + sct


def verify_with_cert(cert_pem: bytes, signature: bytes, data: bytes, *, prehashed: bool = False) -> None:
    """Verify an ECDSA-SHA256 signature with the key of a PEM certificate or public key."""
    key: object
    try:
        if b"CERTIFICATE" in cert_pem:
            key = x509.load_pem_x509_certificate(cert_pem).public_key()
        else:
            key = serialization.load_pem_public_key(cert_pem)
    except ValueError as exc:
        raise CSRError(f"bad verifier: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CSRError("verifier key must be ECDSA")
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    algo = ec.ECDSA(Prehashed(hashes.SHA256())) if prehashed else ec.ECDSA(hashes.SHA256())
    try:
        key.verify(signature, data, algo)
    except InvalidSignature:
        raise CSRError("signature does not verify") from None
