"""Synthetic Rekor v2 entries for tests and benchmarks: real ECDSA signatures by a key whose self-signed
certificate carries a Fulcio-style identity (SAN email, OIDC issuer extension). The embedded log verifies
the signature against the certificate's key (as Rekor v2 does) but not the chain, so these are accepted
entries; a verifier would refuse them (they chain to no trusted CA)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")


def self_signed_cert(
    key: ec.EllipticCurvePrivateKey, identity: str = "synthetic@example.com", issuer: str = "https://issuer.example"
) -> bytes:
    """DER of a self-signed certificate for ``key`` naming ``identity`` (SAN) and ``issuer`` (v2 extension)."""
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "synthetic")])
    issuer_der = bytes([0x0C, len(issuer)]) + issuer.encode()  # a DER UTF8String (short form)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(identity)]), critical=True)
        .add_extension(x509.UnrecognizedExtension(OID_ISSUER_V2, issuer_der), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def hashedrekord_requests(n: int, identity: str = "synthetic@example.com", seed: int = 0) -> list[dict[str, Any]]:
    """``n`` distinct ``hashedRekordRequestV002`` requests (digests of b"<seed>:<i>"), signed by one key."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = base64.b64encode(self_signed_cert(key, identity)).decode()
    out = []
    for i in range(n):
        digest = hashlib.sha256(f"{seed}:{i}".encode()).digest()
        sig = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))  # the artifact's signature, as Rekor checks
        out.append(
            {
                "hashedRekordRequestV002": {
                    "digest": base64.b64encode(digest).decode(),
                    "signature": {
                        "content": base64.b64encode(sig).decode(),
                        "verifier": {"keyDetails": "PKIX_ECDSA_P256_SHA_256", "x509Certificate": {"rawBytes": cert}},
                    },
                }
            }
        )
    return out
