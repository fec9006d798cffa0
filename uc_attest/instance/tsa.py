"""RFC 3161 timestamp authority of the embedded instance (``POST /api/v1/timestamp``).

A request (``application/timestamp-query``: a DER TimeStampReq, SHA-256/384/512 message imprint) gets a
TimeStampResp (``application/timestamp-reply``) whose token is a CMS SignedData (RFC 5652) over a TSTInfo:
signed attributes content-type, message-digest and signing-certificate-v2 (RFC 5816, ESSCertIDv2 over
the TSA certificate), ECDSA-SHA256 by the TSA key; the TSA certificate (timestamping EKU, critical) is
included when the request asks (``certReq``). The chain is the instance's TSA root and that certificate,
listed in the trusted root under ``timestampAuthorities``. Anything malformed is a ``TSAError`` (HTTP 400
with the reason), never a 500.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

#: The TSA's policy (an OID under the instance's own arc; any fixed value is valid for RFC 3161).
POLICY_OID = "1.3.6.1.4.1.57264.2"
DIGESTS = {"sha256": 32, "sha384": 48, "sha512": 64}


class TSAError(Exception):
    """The timestamp request is malformed or asks for something this TSA does not do."""


def timestamp(
    request_der: bytes,
    key: ec.EllipticCurvePrivateKey,
    cert: x509.Certificate,
    now: dt.datetime | None = None,
) -> bytes:
    """The DER TimeStampResp granting a timestamp for ``request_der``; TSAError for a bad request."""
    try:
        req = tsp.TimeStampReq.load(request_der, strict=True)
        version = req["version"].native
        imprint = req["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        hashed = imprint["hashed_message"].native
        nonce = req["nonce"].native
        cert_req = bool(req["cert_req"].native)
        policy = req["req_policy"].native
        extensions = req["extensions"].native
    except (ValueError, TypeError, KeyError) as exc:  # asn1crypto parses lazily: every field is read here
        raise TSAError(f"not a DER TimeStampReq: {str(exc).splitlines()[0]}") from None
    if version != "v1":
        raise TSAError(f"unsupported TimeStampReq version {version!r}")
    if algorithm not in DIGESTS or not isinstance(hashed, bytes) or len(hashed) != DIGESTS[algorithm]:
        raise TSAError(f"message imprint must be a {'/'.join(DIGESTS)} digest of its length")
    if policy not in (None, POLICY_OID):
        raise TSAError(f"unsupported policy {policy}")
    if extensions:
        raise TSAError("request extensions are not supported")
    t = now or dt.datetime.now(dt.UTC)
    # Whole seconds: DER strips trailing zeros of a fraction ("…05.12Z"), which
    # sigstore-js rejects (it reads exactly three digits or none).
    gen_time = t.replace(microsecond=0)
    info = tsp.TSTInfo(
        {
            "version": "v1",
            "policy": POLICY_OID,
            "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": hashed},
            "serial_number": secrets.randbits(120),
            "gen_time": gen_time,
            "accuracy": {"seconds": 1},
            "ordering": False,
            **({"nonce": nonce} if nonce is not None else {}),
        }
    )
    return _response(info.dump(), key, cert, cert_req)


def _response(tst_der: bytes, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, with_cert: bool) -> bytes:
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    a_cert = asn1_x509.Certificate.load(cert_der)
    signed_attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(tst_der).digest()]}),
            cms.CMSAttribute(
                {
                    "type": "signing_certificate_v2",
                    "values": [
                        {
                            "certs": [
                                {
                                    "hash_algorithm": {"algorithm": "sha256"},
                                    "cert_hash": hashlib.sha256(cert_der).digest(),
                                    "issuer_serial": {
                                        "issuer": [asn1_x509.GeneralName({"directory_name": a_cert.issuer})],
                                        "serial_number": a_cert.serial_number,
                                    },
                                }
                            ]
                        }
                    ],
                }
            ),
        ]
    )
    signature = key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))  # over the DER SET OF attributes
    signer = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {"issuer_and_serial_number": {"issuer": a_cert.issuer, "serial_number": a_cert.serial_number}}
            ),
            "digest_algorithm": {"algorithm": "sha256"},
            "signed_attrs": signed_attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signature": signature,
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [{"algorithm": "sha256"}],
            "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(tst_der)},
            **({"certificates": [a_cert]} if with_cert else {}),
            "signer_infos": [signer],
        }
    )
    resp = tsp.TimeStampResp(
        {
            "status": {"status": "granted"},
            "time_stamp_token": cms.ContentInfo({"content_type": "signed_data", "content": signed_data}),
        }
    )
    return bytes(resp.dump())


def rejection(reason: str) -> bytes:
    """A TimeStampResp with status ``rejection`` (what an RFC 3161 client parses for a refused request)."""
    return bytes(tsp.TimeStampResp({"status": {"status": "rejection", "status_string": [reason[:200]]}}).dump())
