"""The signing certificate against the trusted root, for bundles sigstore-python does not verify itself.

* ``verify_chain``: the leaf chains to a certificate authority of the trusted root at a verified time
  (cryptography's X.509 path validation, the code-signing EKU, the CA's ``validFor``);
* ``verify_sct``: at least one embedded SCT (RFC 6962 precertificate entry) verifies with a CT log key of
  the trusted root, over the key of the CA that issued the leaf (``issuer_of``: the one whose key verifies
  the leaf's signature, not the first of its name).

Each takes the trusted root as a document or as its sections already parsed (``Trust.sections``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..errors import SignatureInvalid
from ..transparency.trusted import RootLike, RootSections


def ca_certificates(root: RootLike, at: dt.datetime) -> list[x509.Certificate]:
    """The CA certificates of the trusted root whose ``validFor`` covers ``at`` (MalformedBundle: a malformed
    ``certificateAuthorities``, :func:`~uc_attest.transparency.trusted.trusted_cas`)."""
    return [cert for ca in RootSections.of(root).cas if ca.valid_at(at) for cert in ca.chain]


def verify_chain(leaf: x509.Certificate, root: RootLike, at: dt.datetime, where: str) -> None:
    """The leaf is a code-signing certificate issued under the trusted root, valid at ``at``."""
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
        VerificationError,
    )

    cas = ca_certificates(root, at)
    if not cas:
        raise SignatureInvalid(
            where, f"no certificate authority of the trusted root is valid at {at:%Y-%m-%d %H:%M:%S}"
        )
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    verifier = (
        PolicyBuilder()
        .store(Store(cas))
        .time(at)
        .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, [])
    except (VerificationError, ValueError) as exc:
        raise SignatureInvalid(
            where, f"signing certificate does not chain to the trusted root at {at:%Y-%m-%d %H:%M:%S}: {exc}"
        ) from None
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        raise SignatureInvalid(where, "signing certificate has no extended key usage") from None
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise SignatureInvalid(where, "signing certificate is not for code signing")


def verify_sct(leaf: x509.Certificate, issuer: x509.Certificate, root: RootLike, where: str) -> None:
    """An embedded precertificate SCT of the leaf verifies with a CT log key of the trusted root, one valid at
    the SCT's time (MalformedBundle: a malformed ``ctlogs``)."""
    try:
        scts = leaf.extensions.get_extension_for_class(x509.PrecertificateSignedCertificateTimestamps).value
    except x509.ExtensionNotFound:
        raise SignatureInvalid(where, "signing certificate has no embedded SCT") from None
    logs = [log for log in RootSections.of(root).ct_logs if isinstance(log.key, ec.EllipticCurvePublicKey)]
    issuer_key_hash = hashlib.sha256(
        issuer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).digest()
    tbs = leaf.tbs_precertificate_bytes
    for sct in scts:
        ts = int(sct.timestamp.replace(tzinfo=dt.UTC).timestamp() * 1000)
        keys = [log.key for log in logs if log.log_id == sct.log_id and log.valid_at(ts / 1000)]
        if not keys:
            continue
        ext = sct.extension_bytes
        signed = (
            b"\x00\x00"
            + struct.pack(">Q", ts)
            + b"\x00\x01"
            + issuer_key_hash
            + len(tbs).to_bytes(3, "big")
            + tbs
            + len(ext).to_bytes(2, "big")
            + ext
        )
        for key in keys:
            try:
                key.verify(sct.signature, signed, ec.ECDSA(hashes.SHA256()))
                return
            except InvalidSignature:
                continue
    raise SignatureInvalid(where, "no embedded SCT verifies with a CT log of the trusted root")


def issuer_of(leaf: x509.Certificate, root: RootLike, at: dt.datetime) -> x509.Certificate:
    """The CA certificate of the trusted root, valid at ``at``, that issued ``leaf``: its subject is the leaf's
    issuer and its key verifies the leaf's signature. A root may hold several CAs of one name (Sigstore
    staging's two ``sigstore-intermediate``): the name alone does not say which one signed."""
    named = False
    for c in ca_certificates(root, at):
        if c.subject != leaf.issuer:
            continue
        named = True
        try:
            leaf.verify_directly_issued_by(c)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        return c
    if named:
        raise SignatureInvalid(
            "certificate",
            "no certificate authority of the trusted root named as the signing certificate's issuer signed it",
        )
    raise SignatureInvalid("certificate", "the signing certificate's issuer is not in the trusted root")
