"""The embedded TSA's genTime encoding (a stock verifier reads exactly three fraction digits or none)."""

from __future__ import annotations

import datetime as dt
import re

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from uc_attest.instance.tsa import timestamp


def _key_and_cert() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test tsa")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def test_gen_time_has_no_stripped_fraction() -> None:
    """120 ms would be DER-encoded as ".12Z"; sigstore-js rejects that as "invalid time"."""
    key, cert = _key_and_cert()
    req = tsp.TimeStampReq(
        {
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x01" * 32},
        }
    ).dump()
    when = dt.datetime(2026, 12, 1, 12, 0, 5, 120_000, tzinfo=dt.UTC)
    resp = tsp.TimeStampResp.load(timestamp(req, key, cert, now=when))
    content = resp["time_stamp_token"]["content"]
    assert isinstance(content, cms.SignedData)
    info = content["encap_content_info"]["content"].parsed
    raw = info["gen_time"].contents.decode("ascii")
    assert re.fullmatch(r"\d{14}(\.\d{3})?Z", raw), raw
    assert info["gen_time"].native == when.replace(microsecond=0)
    assert info["accuracy"]["seconds"].native == 1
