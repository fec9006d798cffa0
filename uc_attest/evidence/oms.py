"""An OMS signature (``model.sig``) over a model directory: the bundle verified, the statement read strictly,
every file of the directory checked against the signed resources.

Methods, as ``model_signing`` has them: ``sigstore`` (a Fulcio certificate, a transparency-log entry: both
verifiers, ``check.py``), ``key`` (a public key, no log: the own verifier) and ``certificate`` (a private
PKI: the bundle's certificate chain built to CA certificates the caller trusts, at the leaf's notBefore as
``model_signing`` does — there is no signed time — then the DSSE signature with the leaf's key).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..claims.oms import OMS_PREDICATE, HashType, OmsClaim, SerializationMethod, diff, parse_oms, scan
from ..claims.statement import Statement
from ..core.digest import Digest
from ..core.fsutil import inside, read_small
from ..errors import Finding, InvalidInput, SignatureInvalid, VerificationFailed
from ..manifest import SOURCE_SIGNATURE_NAME, OmsMethod, SourceSignature
from ..signing.trust import Trust
from .bundle import read_bundle
from .check import check_bundle
from .identity import SignerLike
from .verifier import Outcome, UnsupportedBundle


@dataclass(frozen=True)
class OmsVerified:
    """A verified OMS signature and what the directory looks like against it."""

    claim: OmsClaim
    method: OmsMethod
    signer: str  # "<identity> via <issuer>", or the key's fingerprint
    identity: str
    issuer: str
    signature_sha256: str
    verified_by: tuple[str, ...]
    findings: list[Finding]  # missing / extra / changed files (empty: the directory is the signed model)
    signed_at: int | None = None  # earliest verified time of the signature (None: a key, no log)
    raw: bytes = field(default=b"", repr=False)  # the signature file's bytes that verified (a pack keeps these)

    @property
    def ok(self) -> bool:
        return not self.findings


def load_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_public_key(read_small(Path(path), "public key"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: public key not found", path=str(path)) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: not a PEM public key: {exc}", path=str(path)) from None


def load_certificates(path: Path) -> list[Any]:
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(read_small(Path(path), "certificate chain"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: certificate chain not found", path=str(path)) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: not PEM certificates: {exc}", path=str(path)) from None
    return certs


def certificate_identity(cert: Any) -> tuple[str, str]:
    """(identity, issuer) of a private-PKI signing certificate: its first e-mail/URI/DNS SAN, else its subject
    (RFC 4514), and its issuer's distinguished name."""
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [
            *san.get_values_for_type(x509.RFC822Name),
            *san.get_values_for_type(x509.UniformResourceIdentifier),
            *san.get_values_for_type(x509.DNSName),
        ]
    except x509.ExtensionNotFound:
        names = []
    return (names[0] if names else cert.subject.rfc4514_string()), cert.issuer.rfc4514_string()


def _certificate_method(doc: dict[str, Any], where: str, ca_file: Path) -> tuple[bytes, str, Any]:
    """The certificate method: (payload, payload type, leaf) once the chain and the signature verify."""
    import base64
    import binascii

    from cryptography import x509
    from OpenSSL import crypto

    from ..core.dsse import pae
    from .verifier import _verify_sig

    try:
        chain = [
            x509.load_der_x509_certificate(base64.b64decode(c["rawBytes"], validate=True))
            for c in doc["verificationMaterial"]["x509CertificateChain"]["certificates"]
        ]
        env = doc["dsseEnvelope"]
        payload, ptype = base64.b64decode(env["payload"], validate=True), env["payloadType"]
        if not isinstance(ptype, str):
            raise TypeError(f"payloadType is {type(ptype).__name__}, not a string")
        (sig,) = env["signatures"]
        signature = base64.b64decode(sig["sig"], validate=True)
    except KeyError as exc:  # the field's name, as data (never the bundle's text)
        raise InvalidInput(
            f"{where}: certificate-method bundle: no {str(exc.args[0])[:64]!r} field", path=where
        ) from None
    except (TypeError, ValueError, binascii.Error) as exc:
        raise InvalidInput(f"{where}: certificate-method bundle: {type(exc).__name__}: {exc}", path=where) from None
    if not chain:
        raise InvalidInput(f"{where}: verificationMaterial.x509CertificateChain.certificates is empty", path=where)
    store = crypto.X509Store()
    for ca in load_certificates(ca_file):
        store.add_cert(crypto.X509.from_cryptography(ca))
    leaf = chain[0]
    store.set_time(leaf.not_valid_before_utc)
    ctx = crypto.X509StoreContext(
        store, crypto.X509.from_cryptography(leaf), [crypto.X509.from_cryptography(c) for c in chain[1:]]
    )
    try:
        ctx.verify_certificate()
    except crypto.X509StoreContextError as exc:
        raise SignatureInvalid(where, f"the signing certificate does not chain to {ca_file}: {exc}") from None
    try:
        usage_ok = leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    except x509.ExtensionNotFound:
        usage_ok = False
    if not usage_ok:
        try:
            eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            usage_ok = x509.oid.ExtendedKeyUsageOID.CODE_SIGNING in eku
        except x509.ExtensionNotFound:
            pass
    if not usage_ok:
        raise SignatureInvalid(
            where, "the signing certificate is not for signing (no digitalSignature, no codeSigning)"
        )
    if not _verify_sig(leaf.public_key(), signature, pae(ptype, payload), None, where):
        raise SignatureInvalid(where, "the DSSE signature does not verify with the signing certificate's key")
    return payload, ptype, leaf


def _logged_bundle(signature: Path) -> tuple[bytes, dict[str, Any]]:
    """The OMS bundle's bytes and document, for the sigstore and key methods: a private PKI's bundle (a
    certificate chain, no log, no timestamp) is refused, naming what verifies it."""
    raw, doc = read_bundle(Path(signature))
    vm = doc.get("verificationMaterial") or {}
    private_pki = "x509CertificateChain" in vm and not vm.get("tlogEntries") and not vm.get("timestampVerificationData")
    if private_pki:
        raise UnsupportedBundle(
            "{path}: a certificate-method OMS signature (a private PKI, no log): give the CA certificates it "
            "chains to ({0})",
            option="cert_chain",
            path=str(signature),
        )
    return raw, doc


def verify_oms_sigstore(model_dir: Path, signature: Path, trust: Trust, signers: Sequence[SignerLike]) -> OmsVerified:
    """The sigstore method: ``signature`` (an OMS bundle) by one of ``signers`` under ``trust``, and ``model_dir``
    checked against it. SignatureInvalid when the bundle does not verify or is not OMS; InvalidInput (exit 3) for
    a malformed statement or an unsafe resource name (the same for each method)."""
    raw, doc = _logged_bundle(signature)
    return _verified(model_dir, Path(signature), raw, doc, trust, signers, None)


def verify_oms_key(model_dir: Path, signature: Path, key: Path) -> OmsVerified:
    """The key method: ``signature`` by the public key in ``key`` (PEM; no log needed), ``model_dir`` checked."""
    raw, doc = _logged_bundle(signature)
    public_key = load_key(key)
    return _verified(model_dir, Path(signature), raw, doc, Trust.public_good(offline=True), None, public_key)


def verify_oms_certificate(
    model_dir: Path, signature: Path, cert_chain: Path, signers: Sequence[SignerLike] | None
) -> OmsVerified:
    """The certificate method: ``signature``'s certificate chains to the CA certificates in ``cert_chain``,
    ``signers`` (optional) matched against the leaf's identity and issuer DN, ``model_dir`` checked."""
    raw, doc = read_bundle(Path(signature))
    return _verify_private_pki(model_dir, Path(signature), raw, doc, cert_chain, signers)


def _verified(
    model_dir: Path,
    signature: Path,
    raw: bytes,
    doc: dict[str, Any],
    trust: Trust,
    signers: Sequence[SignerLike] | None,
    public_key: Any,
) -> OmsVerified:
    """A logged OMS bundle verified (by ``public_key``, else by one of ``signers`` with a log entry) and
    ``model_dir`` checked against its claim."""
    where = str(signature)
    checked = check_bundle(
        raw,
        doc,
        trust,
        where=where,
        signers=signers,
        key=public_key,
        require_tlog=public_key is None,
    )
    out = checked.outcome
    claim = _oms_claim(out, where)
    actual = scan(Path(model_dir), claim.serialization, exclude=(Path(signature),))
    ident, issuer, method, who = _oms_signer(out, public_key)
    times = [t for t, _ in out.set_times] + [int(t.timestamp()) for t, _ in out.tsa_times]
    return OmsVerified(
        claim,
        method,
        who,
        ident,
        issuer,
        hashlib.sha256(raw).hexdigest(),
        checked.verified_by,
        diff(claim, actual),
        min(times, default=None),
        raw,
    )


def _oms_claim(out: Outcome, where: str) -> OmsClaim:
    """The OMS claim of a verified bundle: an in-toto DSSE envelope with the OMS predicate, else SignatureInvalid."""
    if out.payload is None or out.payload_type != "application/vnd.in-toto+json":
        raise SignatureInvalid(where, "not an OMS signature: the bundle carries no in-toto DSSE envelope")
    statement = Statement.parse(out.payload)
    if statement.predicate_type != OMS_PREDICATE:
        raise SignatureInvalid(where, f"not an OMS signature: predicate type {statement.predicate_type!r}")
    return parse_oms(statement)


def _oms_signer(out: Outcome, public_key: Any) -> tuple[str, str, OmsMethod, str]:
    """Who signed (identity, issuer, method, as people read it): the key by its SPKI digest, or the Sigstore
    signer."""
    if public_key is not None:
        from cryptography.hazmat.primitives import serialization

        spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        ident = f"sha256:{hashlib.sha256(spki).hexdigest()}"
        return ident, "", OmsMethod.KEY, f"the key {ident}"
    assert out.signer is not None
    return out.signer.primary, out.signer.issuer, OmsMethod.SIGSTORE, str(out.signer)


def _verify_private_pki(
    model_dir: Path,
    signature: Path,
    raw: bytes,
    doc: dict[str, Any],
    cert_chain: Path,
    signers: Sequence[SignerLike] | None,
) -> OmsVerified:
    import re

    where = str(signature)
    payload, ptype, leaf = _certificate_method(doc, where, cert_chain)
    if ptype != "application/vnd.in-toto+json":
        raise SignatureInvalid(where, "not an OMS signature: the bundle carries no in-toto DSSE envelope")
    ident, issuer = certificate_identity(leaf)

    def named(s: SignerLike) -> bool:
        want = s.identity == ident if s.identity else bool(s.identity_regex and re.fullmatch(s.identity_regex, ident))
        return want and s.issuer == issuer

    if signers and not any(named(s) for s in signers):
        raise SignatureInvalid(where, f"signed by {ident} (issued by {issuer}), not an expected signer")
    statement = Statement.parse(payload)
    if statement.predicate_type != OMS_PREDICATE:
        raise SignatureInvalid(where, f"not an OMS signature: predicate type {statement.predicate_type!r}")
    claim = parse_oms(statement)
    actual = scan(Path(model_dir), claim.serialization, exclude=(signature,))
    return OmsVerified(
        claim,
        OmsMethod.CERTIFICATE,
        f"{ident} (issued by {issuer})",
        ident,
        issuer,
        hashlib.sha256(raw).hexdigest(),
        ("uc-attest (certificate chain)",),
        diff(claim, actual),
        raw=raw,
    )


def source_gate(
    verified: OmsVerified, model_dir: Path, signature: Path, read: Sequence[str]
) -> tuple[SourceSignature, Callable[[dict[str, Digest]], list[Finding]]]:
    """What a pack of a signed source records, and the check of the source files as the pack reads them.

    Every file the pack reads (``read``) must be covered by the signature; after reading, their sha256
    digests must still be the signed ones (a file changed between verification and packing is caught)."""
    claim = verified.claim
    if claim.serialization.method is SerializationMethod.FILES:
        covered = set(claim.resources)
    else:
        covered = {name.rsplit(":", 2)[0] for name in claim.resources}
    missing = [
        Finding(rel, "read by the pack but not covered by the source signature", None, None)
        for rel in read
        if rel not in covered
    ]
    if missing:
        raise VerificationFailed(missing)
    record = SourceSignature(
        SOURCE_SIGNATURE_NAME,
        Digest(verified.signature_sha256),
        verified.method,
        verified.identity,
        verified.issuer,
        claim.model_name,
        Digest(claim.root),
        verified.signed_at,
    )

    def check(read_digests: dict[str, Digest]) -> list[Finding]:
        if claim.serialization.method is SerializationMethod.FILES and claim.serialization.hash_type is HashType.SHA256:
            return [
                Finding(rel, "changed since its signature was verified", claim.resources[rel], d.hex)
                for rel, d in sorted(read_digests.items())
                if claim.resources.get(rel) != d.hex
            ]
        return diff(claim, scan(Path(model_dir), claim.serialization, exclude=(Path(signature),)))

    return record, check


def kept_log_index(pack_dir: Path, record: SourceSignature) -> int | None:
    """The transparency-log index the kept source signature's bundle carries (None if it has no entry)."""
    try:
        _raw, doc = read_bundle(inside(Path(pack_dir), record.file))
        return int(doc["verificationMaterial"]["tlogEntries"][0]["logIndex"])
    except (InvalidInput, KeyError, IndexError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class KeptSignatureCheck:
    """The kept source signature checked again: ``problems`` (it does not verify; each one line) and ``notes``
    (informative: what could not be checked here, e.g. a key-method signature without its key)."""

    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """Notes then problems, one line each (as they are shown together)."""
        return [*self.notes, *self.problems]


def verify_kept_source_signature(
    pack_dir: Path, record: SourceSignature, source_files: dict[str, Digest], trust: Trust | None
) -> KeptSignatureCheck:
    """The source signature a pack keeps, checked again without the source: the file is the recorded one, its
    bundle verifies for the recorded signer (sigstore method, under ``trust``), and it signs the recorded model
    root and exactly the source files the manifest lists (files/sha256 method)."""
    notes: tuple[str, ...] = ()
    try:
        path = inside(Path(pack_dir), record.file)
        raw, doc = read_bundle(path)
    except InvalidInput as exc:
        return KeptSignatureCheck((exc.message,))
    if hashlib.sha256(raw).hexdigest() != record.sha256.hex:
        return KeptSignatureCheck((f"{record.file}: not the recorded signature file (sha256 differs)",))
    if record.method is not OmsMethod.SIGSTORE or trust is None:
        anchor = "CA certificates" if record.method is OmsMethod.CERTIFICATE else "key"
        note = (
            f"{record.file}: signed with the {record.method} method: its signature is not re-verified "
            f"here (no {anchor}; it was verified when the pack was made)"
        )
        notes = (note,)
        payload = None
    else:
        from .identity import SignerSpec

        try:
            out = check_bundle(raw, doc, trust, where=str(path), signers=[SignerSpec(record.issuer, record.identity)])
            payload = out.outcome.payload
        except SignatureInvalid as exc:
            return KeptSignatureCheck((f"{record.file}: {exc.problem or exc.message}",))
        except InvalidInput as exc:
            return KeptSignatureCheck((f"{record.file}: {exc.message}",))
    if payload is None:
        import base64

        try:
            payload = base64.b64decode(doc["dsseEnvelope"]["payload"])
        except (KeyError, TypeError, ValueError):
            return KeptSignatureCheck((f"{record.file}: no DSSE payload",), notes)
    try:
        claim = parse_oms(Statement.parse(payload))
    except InvalidInput as exc:
        return KeptSignatureCheck((f"{record.file}: {exc.message}",), notes)
    problems: list[str] = []
    if claim.root != record.root.hex:
        problems.append(f"{record.file}: signs model root sha256:{claim.root}, the provenance records {record.root}")
    if claim.serialization.method is SerializationMethod.FILES and claim.serialization.hash_type is HashType.SHA256:
        for rel, d in sorted(source_files.items()):
            if claim.resources.get(rel) != d.hex:
                problems.append(f"{rel}: the source file the pack was made from is not the signed one")
    return KeptSignatureCheck(tuple(problems), notes)
