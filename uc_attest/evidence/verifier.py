"""uc-attest's own Sigstore bundle verifier: every bundle shape an auditor meets, each check explicit.

sigstore-python verifies what it supports and stays the first verifier there (``evidence/bundle.py``,
``evidence/conformance.py``); this path verifies the rest — Rekor ``intoto`` entries, v0.1 bundles with a
SET and no inclusion proof, TSA-only bundles, managed-key DSSE — and runs beside sigstore-python on the
shapes both read, which must then agree (tests run both over every vector). The checks, in order; each
failure is a :class:`CheckFailed` naming its check:

``bundle.parse``       every field's JSON type (``SHAPE``) and every certificate's extensions, else MalformedBundle;
                       media type (v0.1/v0.2/v0.3), verification material, content, the signing key and message
                       digest in Sigstore's algorithm registry (``REGISTRY``); unknown → UnsupportedBundle
``bundle.timestamps``  RFC 3161 timestamps (``timestamps.py``)
``bundle.tlog``        per entry: its log in the trusted root; kind/version of the body; the body re-derived
                       from the bundle (hashedrekord 0.0.1/0.0.2, dsse 0.0.1, intoto 0.0.2); the SET over
                       (body, integrated time, log id, index) with the log key valid then; the inclusion proof
                       against a checkpoint signed by the log key (v0.1: a SET suffices); without a SET the
                       entry's logIndex must be the proof's; no entry (TSA-only) is refused unless not required
                       or the trusted root lists no log (GitHub's instance)
``bundle.time``        at least one verified time (SET or timestamp) for a certificate
``bundle.certificate`` chain to a CA of the trusted root and code-signing EKU at every verified time
``bundle.sct``         an embedded SCT verifies with a CT log of the trusted root, over the key of the CA that signed
                       the leaf (``chain.issuer_of``) (none listed: not run)
``bundle.identity``    SAN (email, URI, Sigstore OtherName) and OIDC issuer, as the caller expects
``bundle.signature``   DSSE: over the PAE; message: over the artifact's digest; with an algorithm of the registry the
                       key takes (hashedrekord 0.0.2: the one its ``keyDetails`` names) that signs that digest
``bundle.subject``     an in-toto statement (v1 or v0.1, any predicate) subject matches the artifact (sha256,
                       sha384, sha512)
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ..core import merkle
from ..core.digest import canonical_json
from ..core.dsse import pae
from ..core.x509names import cert_identities
from ..errors import MalformedBundle, MerkleError, NoteError, SignatureInvalid
from ..transparency.checkpoint import (
    Checkpoint,
    Verifier,
    ecdsa_key_hash,
    ed25519_key_id,
    ed25519_verifier,
    open_note,
    parse_note,
)
from ..transparency.kinds import EntryKind
from ..transparency.trusted import RootLike, RootSections, TrustedLog
from .chain import issuer_of, verify_chain, verify_sct
from .identity import SignerIdentity, SignerLike, cert_issuer, signer_of
from .timestamps import verify_timestamps

MEDIA_TYPES = {
    "application/vnd.dev.sigstore.bundle+json;version=0.1": "0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2": "0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3": "0.3",
    "application/vnd.dev.sigstore.bundle.v0.3+json": "0.3",
}
KINDS = {
    (EntryKind.HASHEDREKORD, "0.0.1"),
    (EntryKind.HASHEDREKORD, "0.0.2"),
    (EntryKind.DSSE, "0.0.1"),
    (EntryKind.INTOTO, "0.0.2"),
}
DIGEST_NAMES = {
    "SHA2_256": "sha256",
    "SHA2_384": "sha384",
    "SHA2_512": "sha512",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
}


class CheckFailed(SignatureInvalid):
    """One check of the bundle failed; ``check`` names it (``bundle.tlog``, ``bundle.certificate``...)."""

    def __init__(self, where: str, check: str, problem: str) -> None:
        super().__init__(where, f"{check}: {problem}")
        self.check = check


class UnsupportedBundle(MalformedBundle):
    """A bundle no verifier here supports (media type, entry kind/version, key type): names field and version."""


@dataclass(frozen=True)
class Artifact:
    """What the bundle must be about: digests by algorithm (``sha256``...), and the bytes when known."""

    digests: dict[str, bytes]
    data: bytes | None = None

    @classmethod
    def of(cls, data: bytes) -> Artifact:
        return cls({a: hashlib.new(a, data).digest() for a in ("sha256", "sha384", "sha512")}, data)


@dataclass(frozen=True)
class Content:
    signature: bytes
    payload_type: str | None = None  # DSSE
    payload: bytes | None = None
    payload_b64: str | None = None  # as the envelope carries it (intoto entries sign this form)
    digest: tuple[str, bytes] | None = None  # message signature: (algorithm, digest)

    @property
    def is_dsse(self) -> bool:
        return self.payload is not None


@dataclass(frozen=True)
class Parsed:
    version: str
    leaf: x509.Certificate | None
    content: Content
    entries: list[dict[str, Any]]


@dataclass(frozen=True)
class VerifiedEntry:
    log_id: bytes
    index: int
    kind: str
    version: str
    body: bytes
    set_time: int | None
    checkpoint: str | None
    tree_size: int | None
    root: bytes | None
    key_details: str | None = None  # hashedrekord 0.0.2: the algorithm the log verified (PublicKeyDetails)


@dataclass
class Outcome:
    """What a verified bundle proves."""

    payload_type: str | None
    payload: bytes | None
    signer: SignerIdentity | None  # None: a managed key
    set_times: list[tuple[int, str]] = field(default_factory=list)  # (Unix seconds, log id hex)
    tsa_times: list[tuple[dt.datetime, str]] = field(default_factory=list)
    ignored_timestamps: list[str] = field(default_factory=list)
    entries: list[VerifiedEntry] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)


# -- parsing ----------------------------------------------------------------------------------------------------


def _b64(value: Any, what: str, where: str) -> bytes:
    try:
        return base64.b64decode(str(value).replace("\n", ""), validate=True)
    except (ValueError, TypeError):
        raise MalformedBundle(f"{where}: {what} is not base64") from None


_STR, _INT = (str,), (str, int)  # protobuf JSON: int64 fields are strings, ints accepted
_LIST, _DICT = (list,), (dict,)
#: The type of each field the verifiers read, by path ("*": every item of a list); checked before any is read.
SHAPE: dict[str, tuple[type, ...]] = {
    "mediaType": _STR,
    "verificationMaterial": _DICT,
    "verificationMaterial.certificate": _DICT,
    "verificationMaterial.certificate.rawBytes": _STR,
    "verificationMaterial.x509CertificateChain": _DICT,
    "verificationMaterial.x509CertificateChain.certificates": _LIST,
    "verificationMaterial.x509CertificateChain.certificates.*": _DICT,
    "verificationMaterial.x509CertificateChain.certificates.*.rawBytes": _STR,
    "verificationMaterial.publicKey": _DICT,
    "verificationMaterial.timestampVerificationData": _DICT,
    "verificationMaterial.timestampVerificationData.rfc3161Timestamps": _LIST,
    "verificationMaterial.timestampVerificationData.rfc3161Timestamps.*": _DICT,
    "verificationMaterial.timestampVerificationData.rfc3161Timestamps.*.signedTimestamp": _STR,
    "verificationMaterial.tlogEntries": _LIST,
    "verificationMaterial.tlogEntries.*": _DICT,
    "verificationMaterial.tlogEntries.*.logIndex": _INT,
    "verificationMaterial.tlogEntries.*.logId": _DICT,
    "verificationMaterial.tlogEntries.*.logId.keyId": _STR,
    "verificationMaterial.tlogEntries.*.kindVersion": _DICT,
    "verificationMaterial.tlogEntries.*.kindVersion.kind": _STR,
    "verificationMaterial.tlogEntries.*.kindVersion.version": _STR,
    "verificationMaterial.tlogEntries.*.integratedTime": _INT,
    "verificationMaterial.tlogEntries.*.canonicalizedBody": _STR,
    "verificationMaterial.tlogEntries.*.inclusionPromise": _DICT,
    "verificationMaterial.tlogEntries.*.inclusionPromise.signedEntryTimestamp": _STR,
    "verificationMaterial.tlogEntries.*.inclusionProof": _DICT,
    "verificationMaterial.tlogEntries.*.inclusionProof.logIndex": _INT,
    "verificationMaterial.tlogEntries.*.inclusionProof.treeSize": _INT,
    "verificationMaterial.tlogEntries.*.inclusionProof.rootHash": _STR,
    "verificationMaterial.tlogEntries.*.inclusionProof.hashes": _LIST,
    "verificationMaterial.tlogEntries.*.inclusionProof.hashes.*": _STR,
    "verificationMaterial.tlogEntries.*.inclusionProof.checkpoint": _DICT,
    "verificationMaterial.tlogEntries.*.inclusionProof.checkpoint.envelope": _STR,
    "dsseEnvelope": _DICT,
    "dsseEnvelope.payload": _STR,
    "dsseEnvelope.payloadType": _STR,
    "dsseEnvelope.signatures": _LIST,
    "dsseEnvelope.signatures.*": _DICT,
    "dsseEnvelope.signatures.*.sig": _STR,
    "messageSignature": _DICT,
    "messageSignature.signature": _STR,
    "messageSignature.messageDigest": _DICT,
    "messageSignature.messageDigest.algorithm": _STR,
    "messageSignature.messageDigest.digest": _STR,
}


def check_shape(doc: Any, where: str, path: str = "") -> None:
    """Every field the verifiers read has its JSON type (absent or null is left to the checks that need it);
    MalformedBundle naming the first that has not. ``timestampVerificationData: [1]`` is invalid input, not a crash."""
    if not path and not isinstance(doc, dict):
        raise MalformedBundle(f"{where}: the bundle is not a JSON object")
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        sub = f"{path}.{'*' if isinstance(k, int) else k}".lstrip(".")
        want = SHAPE.get(sub)
        if want is None or v is None:
            continue
        if not isinstance(v, want) or isinstance(v, bool):
            raise MalformedBundle(f"{where}: {sub} is a JSON {type(v).__name__}, not a {want[-1].__name__}")
        check_shape(v, where, sub)


def parse(doc: dict[str, Any], where: str) -> Parsed:
    """The bundle's version, signing certificate, content and log entries; UnsupportedBundle/MalformedBundle."""
    check_shape(doc, where)
    version = _media_version(doc, where)
    vm = doc.get("verificationMaterial")
    if not isinstance(vm, dict):
        raise MalformedBundle(f"{where}: verificationMaterial is missing")
    leaf = _leaf_of(vm, version, where)
    entries = _entries_of(vm, where)
    return Parsed(version, leaf, _content_of(doc, where), entries)


def _media_version(doc: dict[str, Any], where: str) -> str:
    """The bundle version its mediaType names; UnsupportedBundle for another."""
    media = doc.get("mediaType")
    version = MEDIA_TYPES.get(str(media))
    if version is None:
        raise UnsupportedBundle(f"{where}: mediaType {media!r}: unsupported bundle version (0.1, 0.2, 0.3 are)")
    return version


def _leaf_of(vm: dict[str, Any], version: str, where: str) -> x509.Certificate | None:
    """The signing certificate (None: a public-key bundle), every certificate's extensions read and the leaf's
    key in the algorithm registry."""
    if "certificate" not in vm and "x509CertificateChain" not in vm:
        if "publicKey" not in vm:
            raise MalformedBundle(f"{where}: verificationMaterial has no certificate and no public key")
        return None
    if version == "0.3" and "x509CertificateChain" in vm:
        raise CheckFailed(where, "bundle.parse", "a v0.3 bundle carries the leaf certificate, not a chain")
    try:
        raw = (vm["certificate"] if "certificate" in vm else vm["x509CertificateChain"]["certificates"][0])["rawBytes"]
        leaf = x509.load_der_x509_certificate(_b64(raw, "certificate", where))
        chain = (vm.get("x509CertificateChain") or {}).get("certificates") or []
        certs = [leaf] + [
            x509.load_der_x509_certificate(_b64(c.get("rawBytes"), "certificate", where)) for c in chain[1:]
        ]
        for cert in certs:  # extensions are read lazily: a malformed or duplicated one is invalid input here
            _ = cert.extensions
        leaf_key = leaf.public_key()
    except (KeyError, IndexError, TypeError, ValueError, x509.DuplicateExtension) as exc:
        raise MalformedBundle(f"{where}: verificationMaterial: no readable certificate ({exc!r})") from None
    except UnsupportedAlgorithm as exc:
        raise UnsupportedBundle(f"{where}: the signing certificate's key: {exc}") from None
    algorithms_of(leaf_key, where)  # a key outside Sigstore's algorithm registry: UnsupportedBundle, named
    return leaf


def _entries_of(vm: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The tlog entries, each of a supported kind/version (read fully by :func:`verify_entry`)."""
    entries = vm.get("tlogEntries") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise MalformedBundle(f"{where}: verificationMaterial.tlogEntries is not a list of entries")
    for e in entries:
        kv = e.get("kindVersion")
        kv_pair = (kv.get("kind"), kv.get("version")) if isinstance(kv, dict) else (None, None)
        if kv_pair not in KINDS:
            raise UnsupportedBundle(
                f"{where}: tlogEntries kindVersion {kv_pair[0]} {kv_pair[1]}: unsupported entry kind/version "
                "(hashedrekord 0.0.1/0.0.2, dsse 0.0.1, intoto 0.0.2 are)"
            )
    return entries


def _content_of(doc: dict[str, Any], where: str) -> Content:
    """What is signed: a DSSE envelope (one signature) or a message signature."""
    if "dsseEnvelope" in doc:
        return _dsse_content(doc["dsseEnvelope"], where)
    if "messageSignature" in doc:
        return _message_content(doc["messageSignature"], where)
    raise MalformedBundle(f"{where}: the bundle has neither dsseEnvelope nor messageSignature")


def _dsse_content(env: Any, where: str) -> Content:
    try:
        sigs = env["signatures"]
        if len(sigs) != 1:
            raise CheckFailed(where, "bundle.parse", f"a DSSE envelope with {len(sigs)} signatures (one is verified)")
        return Content(
            _b64(sigs[0]["sig"], "dsseEnvelope.signatures[0].sig", where),
            str(env["payloadType"]),
            _b64(env["payload"], "dsseEnvelope.payload", where),
            str(env["payload"]),
        )
    except (KeyError, TypeError) as exc:
        raise MalformedBundle(f"{where}: dsseEnvelope is malformed ({exc!r})") from None


def _message_content(ms: Any, where: str) -> Content:
    try:
        md = ms.get("messageDigest")
        digest = None
        if md:
            name = DIGEST_NAMES.get(str(md["algorithm"]))
            if name is None:
                raise UnsupportedBundle(
                    f"{where}: messageSignature.messageDigest.algorithm {md['algorithm']}: unsupported "
                    "(SHA2_256, SHA2_384, SHA2_512 are)"
                )
            digest = (name, _b64(md["digest"], "messageDigest.digest", where))
            if len(digest[1]) != DIGEST_SIZES[name]:
                raise MalformedBundle(f"{where}: messageSignature.messageDigest.digest is not a {name} digest")
        return Content(_b64(ms["signature"], "messageSignature.signature", where), digest=digest)
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedBundle(f"{where}: messageSignature is malformed ({exc!r})") from None


# -- keys -------------------------------------------------------------------------------------------------------


class KeyFamily(StrEnum):
    """How an algorithm of the registry signs: the key type and the signature scheme."""

    ECDSA = "ecdsa"
    RSA_PKCS1V15 = "rsa-pkcs1v15"
    RSA_PSS = "rsa-pss"
    ED25519 = "ed25519"  # pure: signs the bytes
    ED25519PH = "ed25519ph"  # prehashed (SHA-512)


_RSA = (KeyFamily.RSA_PKCS1V15, KeyFamily.RSA_PSS)


@dataclass(frozen=True)
class Algorithm:
    """One algorithm of Sigstore's registry (architecture-docs ``algorithm-registry.md``; protobuf-specs
    ``PublicKeyDetails``): the key it takes and the digest it signs."""

    details: str  # the PublicKeyDetails name
    family: KeyFamily
    size: int  # curve or modulus bits (Ed25519: 0)
    hash: str | None  # the digest it signs, a hashedrekord's messageDigest (pure Ed25519 signs the bytes: None)


#: Every signature algorithm of the registry but the experimental ML-DSA, each key's own first. P-384 and P-521
#: over SHA-256 are deprecated names the registry keeps because most clients signed so (sigstore-python's
#: assets, CPython's release bundles; sigstore-go verifies them too): accepted. The other deprecated names
#: (PKIX_RSA_PSS, PKIX_RSA_PKCS1V5, PKIX_ECDSA_P256_HMAC_SHA_256...) and LMS are not.
REGISTRY: dict[str, Algorithm] = {
    a.details: a
    for a in (
        Algorithm("PKIX_ECDSA_P256_SHA_256", KeyFamily.ECDSA, 256, "sha256"),
        Algorithm("PKIX_ECDSA_P384_SHA_384", KeyFamily.ECDSA, 384, "sha384"),
        Algorithm("PKIX_ECDSA_P521_SHA_512", KeyFamily.ECDSA, 521, "sha512"),
        Algorithm("PKIX_ECDSA_P384_SHA_256", KeyFamily.ECDSA, 384, "sha256"),
        Algorithm("PKIX_ECDSA_P521_SHA_256", KeyFamily.ECDSA, 521, "sha256"),
        *(Algorithm(f"PKIX_RSA_PKCS1V15_{n}_SHA256", KeyFamily.RSA_PKCS1V15, n, "sha256") for n in (2048, 3072, 4096)),
        *(Algorithm(f"PKIX_RSA_PSS_{n}_SHA256", KeyFamily.RSA_PSS, n, "sha256") for n in (2048, 3072, 4096)),
        Algorithm("PKIX_ED25519", KeyFamily.ED25519, 0, None),
        Algorithm("PKIX_ED25519_PH", KeyFamily.ED25519PH, 0, "sha512"),
    )
}
DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
_CURVES = {"secp256r1": 256, "secp384r1": 384, "secp521r1": 521}


def key_name(key: Any) -> str:
    """The key as people name it: ``ECDSA P-384``, ``RSA-3072``, ``Ed25519``, ``DSA-2048``, ``ECDSA secp256k1``."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        size = _CURVES.get(key.curve.name)
        return f"ECDSA P-{size}" if size else f"ECDSA {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA-{key.key_size}"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448"
    return f"a {type(key).__name__}"


def algorithms_of(key: Any, where: str, details: str | None = None) -> list[Algorithm]:
    """The registry's algorithms for ``key`` (RSA: PKCS#1 v1.5 and PSS; Ed25519: pure and prehashed), or only
    ``details`` when a log entry names them. UnsupportedBundle for a key outside the registry (DSA, secp256k1,
    RSA-1024...) or a name outside it; CheckFailed (``bundle.tlog``) for a name that is not the key's."""
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _CURVES:
        algs = [a for a in REGISTRY.values() if a.family is KeyFamily.ECDSA and a.size == _CURVES[key.curve.name]]
    elif isinstance(key, rsa.RSAPublicKey) and key.key_size in (2048, 3072, 4096):
        algs = [a for a in REGISTRY.values() if a.family in _RSA and a.size == key.key_size]
    elif isinstance(key, ed25519.Ed25519PublicKey):
        algs = [REGISTRY["PKIX_ED25519"], REGISTRY["PKIX_ED25519_PH"]]
    else:
        raise UnsupportedBundle(
            f"{where}: {key_name(key)} key: not in Sigstore's algorithm registry (ECDSA P-256/P-384/P-521, "
            "RSA-2048/3072/4096 PKCS#1 v1.5 or PSS, Ed25519 are supported)"
        )
    if details is None:
        return algs
    if details not in REGISTRY:
        raise UnsupportedBundle(
            f"{where}: keyDetails {details}: not an algorithm of Sigstore's registry this verifier supports "
            f"({', '.join(REGISTRY)})"
        )
    if REGISTRY[details] not in algs:
        raise CheckFailed(where, "bundle.tlog", f"keyDetails {details} is not the signer's {key_name(key)} key")
    return [REGISTRY[details]]


def _verify_sig(
    key: Any,
    sig: bytes,
    message: bytes | None,
    digest: tuple[str, bytes] | None,
    what: str,
    details: str | None = None,
) -> bool:
    """``sig`` by ``key`` with an algorithm of the registry the key allows (``details``: that one only), over
    ``digest`` (algorithm, value) where the algorithm signs that digest, else over the ``message`` bytes. Bytes
    with no digest and no ``details`` are signed as DSSE and SETs are: Ed25519 pure, not prehashed.
    UnsupportedBundle for a key outside the registry; never another exception."""
    algs = algorithms_of(key, what, details)
    if details is None and digest is None:
        algs = [a for a in algs if a.family is not KeyFamily.ED25519PH]
    return any(_verify_with(a, key, sig, message, digest) for a in algs)


def _verify_with(a: Algorithm, key: Any, sig: bytes, message: bytes | None, digest: tuple[str, bytes] | None) -> bool:
    try:
        if a.family is KeyFamily.ED25519:
            if message is None:
                return False
            key.verify(sig, message)
            return True
        if digest is not None:
            if digest[0] != a.hash or len(digest[1]) != DIGEST_SIZES[a.hash]:
                return False
            data, prehashed = digest[1], True
        elif message is not None:
            data, prehashed = message, False
        else:
            return False
        if a.family is KeyFamily.ED25519PH:
            return _ed25519ph_verify(key.public_bytes_raw(), sig, data if prehashed else hashlib.sha512(data).digest())
        assert a.hash is not None
        algo: Any = Prehashed(_hash(a.hash)) if prehashed else _hash(a.hash)
        if a.family is KeyFamily.ECDSA:
            key.verify(sig, data, ec.ECDSA(algo))
        elif a.family is KeyFamily.RSA_PKCS1V15:
            key.verify(sig, data, padding.PKCS1v15(), algo)
        else:  # RSASSA-PSS, MGF1 with SHA-256, any salt length (Go signers use the longest, others the digest's)
            key.verify(sig, data, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO), algo)
    except InvalidSignature:
        return False
    return True


def _hash(name: str) -> hashes.HashAlgorithm:
    return {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[name]


# Ed25519ph (RFC 8032 5.1, no context): the prehashed Ed25519 of hashedrekord (PKIX_ED25519_PH), which
# cryptography does not offer. Extended coordinates (RFC 8032 5.1.4); decoding as 5.1.3 (non-canonical
# encodings refused); the check is cofactorless, [S]B - [k]A must encode to R, as Go's crypto/ed25519 does.
_ED_P = 2**255 - 19
_ED_L = 2**252 + 27742317777372353535851937790883648493
_ED_D = -121665 * pow(121666, -1, _ED_P) % _ED_P
_ED_SQRT_M1 = pow(2, (_ED_P - 1) // 4, _ED_P)
_ED_DOM2_PH = b"SigEd25519 no Ed25519 collisions\x01\x00"  # dom2(phflag = 1, context = "")
_EdPoint = tuple[int, int, int, int]


def _ed_add(p: _EdPoint, q: _EdPoint) -> _EdPoint:
    a = (p[1] - p[0]) * (q[1] - q[0]) % _ED_P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _ED_P
    c = 2 * p[3] * q[3] * _ED_D % _ED_P
    d = 2 * p[2] * q[2] % _ED_P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _ED_P, g * h % _ED_P, f * g % _ED_P, e * h % _ED_P


def _ed_mul(s: int, p: _EdPoint) -> _EdPoint:
    q: _EdPoint = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _ed_add(q, p)
        p, s = _ed_add(p, p), s >> 1
    return q


def _ed_decode(raw: bytes) -> _EdPoint | None:
    if len(raw) != 32:
        return None
    n = int.from_bytes(raw, "little")
    sign, y = n >> 255, n & ((1 << 255) - 1)
    if y >= _ED_P:
        return None
    u, v = (y * y - 1) % _ED_P, (_ED_D * y * y + 1) % _ED_P
    x = u * pow(v, 3, _ED_P) * pow(u * pow(v, 7, _ED_P), (_ED_P - 5) // 8, _ED_P) % _ED_P
    if v * x * x % _ED_P == (-u) % _ED_P:
        x = x * _ED_SQRT_M1 % _ED_P
    if v * x * x % _ED_P != u or (x == 0 and sign):
        return None
    if x & 1 != sign:
        x = _ED_P - x
    return x, y, 1, x * y % _ED_P


def _ed_encode(p: _EdPoint) -> bytes:
    zinv = pow(p[2], -1, _ED_P)
    x, y = p[0] * zinv % _ED_P, p[1] * zinv % _ED_P
    return (y | (x & 1) << 255).to_bytes(32, "little")


_ED_B = _ed_decode((4 * pow(5, -1, _ED_P) % _ED_P).to_bytes(32, "little"))


def _ed25519ph_verify(public: bytes, sig: bytes, prehash: bytes) -> bool:
    """An Ed25519ph signature by the raw key ``public`` over ``prehash`` = SHA-512(message)."""
    a = _ed_decode(public)
    if len(sig) != 64 or len(prehash) != 64 or a is None or _ed_decode(sig[:32]) is None or _ED_B is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= _ED_L:
        return False
    k = int.from_bytes(hashlib.sha512(_ED_DOM2_PH + sig[:32] + public + prehash).digest(), "little") % _ED_L
    minus_a = ((_ED_P - a[0]) % _ED_P, a[1], a[2], (_ED_P - a[3]) % _ED_P)
    return _ed_encode(_ed_add(_ed_mul(s, _ED_B), _ed_mul(k, minus_a))) == sig[:32]


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def _pem_matches(pem: bytes, leaf: x509.Certificate | None, key: Any) -> bool:
    """A PEM certificate or public key from a log entry is the bundle's signer."""
    try:
        if b"CERTIFICATE" in pem:
            cert = x509.load_pem_x509_certificate(pem)
            return leaf is not None and cert.public_bytes(serialization.Encoding.DER) == leaf.public_bytes(
                serialization.Encoding.DER
            )
        return key is not None and _spki(serialization.load_pem_public_key(pem)) == _spki(key)
    except ValueError:
        return False


# -- the log ----------------------------------------------------------------------------------------------------


def _logs(root: RootLike) -> dict[bytes, TrustedLog]:
    return {log.log_id: log for log in RootSections.of(root).tlogs}


def _body_matches(
    body: dict[str, Any], kind: str, version: str, p: Parsed, key: Any, where: str = "bundle"
) -> str | None:
    """Why the entry's body is not this bundle's signature (None: it is). Every field is re-derived.
    hashedrekord 0.0.2 names the algorithm (``keyDetails``): it must be the signer key's (else CheckFailed, or
    UnsupportedBundle for a name outside the registry), and a DSSE PAE is logged with a digest it signs."""
    c, leaf = p.content, p.leaf
    spec = body.get("spec")
    if not isinstance(spec, dict):
        return "the body has no spec"
    if (kind, version) == (EntryKind.HASHEDREKORD, "0.0.1"):
        return _hashedrekord_001_matches(spec, c, leaf, key)
    if (kind, version) == (EntryKind.HASHEDREKORD, "0.0.2"):
        return _hashedrekord_002_matches(spec, c, leaf, key, where)
    if not c.is_dsse:
        return f"a {kind} entry logs a DSSE envelope, the bundle has a message signature"
    assert c.payload is not None
    if (kind, version) == (EntryKind.DSSE, "0.0.1"):
        return _dsse_001_matches(spec, c, leaf, key)
    if (kind, version) == (EntryKind.INTOTO, "0.0.2"):
        return _intoto_002_matches(spec, c, leaf, key)
    raise AssertionError("unreachable: kinds are checked first")


def _hashedrekord_001_matches(spec: dict[str, Any], c: Content, leaf: x509.Certificate | None, key: Any) -> str | None:
    """A hashedrekord 0.0.1 body: the signature, the PEM certificate or key, the message digest."""
    sig = spec.get("signature", {})
    if base64.b64decode(sig.get("content", "")) != c.signature:
        return "the logged signature is not the bundle's"
    if not _pem_matches(base64.b64decode(sig.get("publicKey", {}).get("content", "")), leaf, key):
        return "the logged certificate or key is not the bundle's"
    h = spec.get("data", {}).get("hash", {})
    if c.is_dsse or c.digest is None:
        return "a hashedrekord 0.0.1 entry logs a message digest, the bundle has none"
    if (h.get("algorithm"), h.get("value")) != (c.digest[0], c.digest[1].hex()):
        return "the logged digest is not the bundle's message digest"
    return None


def _hashedrekord_002_matches(
    spec: dict[str, Any], c: Content, leaf: x509.Certificate | None, key: Any, where: str
) -> str | None:
    """A hashedrekord 0.0.2 body: the signature, the verifier (DER certificate or SPKI), then the digest, of the
    message or of the DSSE PAE, with an algorithm its ``keyDetails`` (or the signer's key) signs."""
    h = spec.get("hashedRekordV002", {})
    data, sig = h.get("data", {}), h.get("signature", {})
    if base64.b64decode(sig.get("content", "")) != c.signature:
        return "the logged signature is not the bundle's"
    v = sig.get("verifier", {})
    if "x509Certificate" in v:
        if leaf is None or base64.b64decode(v["x509Certificate"].get("rawBytes", "")) != leaf.public_bytes(
            serialization.Encoding.DER
        ):
            return "the logged certificate is not the bundle's"
    elif "publicKey" in v:
        if key is None or base64.b64decode(v["publicKey"].get("rawBytes", "")) != _spki(key):
            return "the logged public key is not the given one"
    else:
        return "the entry names no verifier"
    signer = key if key is not None else leaf.public_key() if leaf is not None else None
    details = v.get("keyDetails")
    algs = algorithms_of(signer, where, str(details) if details else None) if signer is not None else []
    got = (DIGEST_NAMES.get(str(data.get("algorithm"))), base64.b64decode(data.get("digest", "")))
    if c.is_dsse:
        assert c.payload_type is not None and c.payload is not None
        signs = sorted({a.hash for a in algs if a.hash}) if signer is not None else ["sha256"]
        if got[0] not in signs:
            return f"the logged digest of the DSSE PAE is {got[0]}: the signer's key signs {', '.join(signs)}"
        assert got[0] is not None
        want = (got[0], hashlib.new(got[0], pae(c.payload_type, c.payload)).digest())
    elif c.digest is not None:
        want = c.digest
    else:
        return "the bundle has no message digest"
    return None if got == want else "the logged digest is not the bundle's (message digest or DSSE PAE)"


def _dsse_001_matches(spec: dict[str, Any], c: Content, leaf: x509.Certificate | None, key: Any) -> str | None:
    """A dsse 0.0.1 body: the payload hash, and one logged signature that is the bundle's, by its signer."""
    assert c.payload is not None
    ph = spec.get("payloadHash", {})
    if (ph.get("algorithm"), ph.get("value")) != ("sha256", hashlib.sha256(c.payload).hexdigest()):
        return "the logged payload hash is not the bundle payload's"
    for s in spec.get("signatures") or []:
        if base64.b64decode(s.get("signature", "")) == c.signature and _pem_matches(
            base64.b64decode(s.get("verifier", "")), leaf, key
        ):
            return None
    return "no logged signature is the bundle's, by its signer"


def _intoto_002_matches(spec: dict[str, Any], c: Content, leaf: x509.Certificate | None, key: Any) -> str | None:
    """An intoto 0.0.2 body: payload hash, payload type, payload, and one logged signature that is the bundle's,
    by its signer."""
    assert c.payload is not None
    content = spec.get("content", {})
    ph = content.get("payloadHash", {})
    if (ph.get("algorithm"), ph.get("value")) != ("sha256", hashlib.sha256(c.payload).hexdigest()):
        return "the logged payload hash is not the bundle payload's"
    env = content.get("envelope", {})
    if env.get("payloadType") != c.payload_type:
        return "the logged payload type is not the bundle's"
    if "payload" in env and base64.b64decode(env["payload"]).decode(errors="replace") != c.payload_b64:
        return "the logged payload is not the bundle's"
    for s in env.get("signatures") or []:  # intoto 0.0.2 stores base64 of the base64 signature and PEM
        try:
            sig = base64.b64decode(base64.b64decode(s.get("sig", "")))
        except ValueError:
            continue
        if sig == c.signature and _pem_matches(base64.b64decode(s.get("publicKey", "")), leaf, key):
            return None
    return "no logged signature is the bundle's, by its signer"


def _verify_note(note: str, log: TrustedLog) -> Checkpoint:
    """The checkpoint, verified with the log key (ECDSA: key hash = SHA-256(SPKI)[:4]; Ed25519: C2SP key id)."""
    verifiers = []
    for s in parse_note(note).signatures:
        if isinstance(log.key, ed25519.Ed25519PublicKey):
            if ed25519_key_id(s.name, log.key)[:4] == s.key_hash:
                verifiers.append(ed25519_verifier(s.name, log.key))
        elif isinstance(log.key, ec.EllipticCurvePublicKey) and ecdsa_key_hash(log.key) == s.key_hash:
            verifiers.append(Verifier(s.name, s.key_hash, log.key))
    return Checkpoint.parse(open_note(note, verifiers).text)


@dataclass(frozen=True)
class _Entry:
    """A tlog entry's fields, decoded, not yet checked."""

    log_id: bytes
    index: int
    kind: str
    version: str
    body_b64: str  # canonicalizedBody as the entry carries it (the SET signs this form)
    raw_body: bytes
    body: Any
    integrated_time: int
    set_sig: bytes | None  # None: no inclusion promise


def _tlog_failure(where: str, why: str) -> CheckFailed:
    return CheckFailed(where, "bundle.tlog", why)


def verify_entry(e: dict[str, Any], p: Parsed, logs: dict[bytes, TrustedLog], key: Any, where: str) -> VerifiedEntry:
    """One tlog entry of the bundle, every field checked (``bundle.tlog``)."""
    r = _read_entry(e, where)
    log = _check_entry_body(r, p, logs, key, where)
    set_time = _verify_set(r, log, where)
    checkpoint, size, root = _verify_proof(e.get("inclusionProof"), r, p.version, log, set_time, where)
    details = None
    if (r.kind, r.version) == (EntryKind.HASHEDREKORD, "0.0.2"):
        named = r.body["spec"]["hashedRekordV002"]["signature"]["verifier"].get("keyDetails")
        details = str(named) if named else None
    return VerifiedEntry(r.log_id, r.index, r.kind, r.version, r.raw_body, set_time, checkpoint, size, root, details)


def _read_entry(e: dict[str, Any], where: str) -> _Entry:
    """The entry's fields decoded; MalformedBundle for one missing or unreadable."""
    try:
        log_id = base64.b64decode(e["logId"]["keyId"])
        index = int(e["logIndex"])
        kind, version = str(e["kindVersion"]["kind"]), str(e["kindVersion"]["version"])
        raw_body = base64.b64decode(e["canonicalizedBody"])
        body = json.loads(raw_body)
        itime = int(e.get("integratedTime") or 0)
        promise = e.get("inclusionPromise")
        set_sig = base64.b64decode(promise.get("signedEntryTimestamp", "")) if promise else None
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedBundle(f"{where}: a tlog entry is malformed ({exc!r})") from None
    return _Entry(log_id, index, kind, version, e["canonicalizedBody"], raw_body, body, itime, set_sig)


def _check_entry_body(r: _Entry, p: Parsed, logs: dict[bytes, TrustedLog], key: Any, where: str) -> TrustedLog:
    """The body's kind/version is the entry's and a supported one, the log is trusted, and the body is this
    bundle's signature (:func:`_body_matches`); the entry's log."""
    if not isinstance(r.body, dict):
        raise _tlog_failure(where, "the body is not a JSON object")
    kind, version = r.kind, r.version
    if (kind, version) not in KINDS:
        raise UnsupportedBundle(f"{where}: tlogEntries kindVersion {kind} {version}: unsupported entry kind/version")
    if (r.body.get("kind"), r.body.get("apiVersion")) != (kind, version):
        raise _tlog_failure(
            where, f"the body is {r.body.get('kind')} {r.body.get('apiVersion')}, the entry says {kind} {version}"
        )
    log = logs.get(r.log_id)
    if log is None:
        raise _tlog_failure(where, f"log {r.log_id.hex()[:16]}… is not in the trusted root")
    try:
        why = _body_matches(r.body, kind, version, p, key, where)
    except (AttributeError, TypeError, ValueError) as exc:  # a field of the wrong JSON type or not base64
        why = f"the body is malformed ({exc!r})"
    if why is not None:
        raise _tlog_failure(where, why)
    return log


def _verify_set(r: _Entry, log: TrustedLog, where: str) -> int | None:
    """The signed entry timestamp over (body, integrated time, log id, index), by the log key valid then: the
    integrated time it proves (None: the entry has no SET)."""
    if r.set_sig is None:
        return None
    payload = canonical_json(
        {"body": r.body_b64, "integratedTime": r.integrated_time, "logID": r.log_id.hex(), "logIndex": r.index}
    )
    if not _verify_sig(log.key, r.set_sig, payload, None, where):
        raise _tlog_failure(where, "the SET does not verify with the log key")
    if not log.valid_at(r.integrated_time):
        raise _tlog_failure(where, "the integrated time is outside the log key's validity")
    return r.integrated_time


def _verify_proof(
    proof: Any, r: _Entry, version: str, log: TrustedLog, set_time: int | None, where: str
) -> tuple[str | None, int | None, bytes | None]:
    """The inclusion proof the bundle version needs (v0.1: a SET suffices, a proof may come without a
    checkpoint); the checkpoint, tree size and root it was verified against (None for each without one)."""
    if proof and version == "0.1" and "checkpoint" not in proof:
        if set_time is None:  # a v0.1 proof came without a checkpoint: only the SET signs anything
            raise _tlog_failure(where, "a v0.1 entry without a checkpoint needs a SET")
        _verify_bare_proof(proof, r.raw_body, where)
    elif proof:
        return _verify_checkpointed_proof(proof, r, log, set_time, where)
    elif version != "0.1":
        raise _tlog_failure(where, f"a v{version} bundle needs an inclusion proof with a checkpoint")
    elif set_time is None:
        raise _tlog_failure(where, "a v0.1 entry needs a SET when it has no inclusion proof")
    return None, None, None


def _verify_bare_proof(proof: dict[str, Any], raw_body: bytes, where: str) -> None:
    """A v0.1 inclusion proof without a checkpoint: the path from the body's leaf to the root it carries."""
    try:
        path = [base64.b64decode(h) for h in proof.get("hashes") or []]
        merkle.verify_inclusion(
            int(proof["logIndex"]),
            int(proof["treeSize"]),
            merkle.leaf_hash(raw_body),
            path,
            base64.b64decode(proof["rootHash"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _tlog_failure(where, f"the inclusion proof is malformed ({exc!r})") from None
    except MerkleError as exc:
        raise _tlog_failure(where, f"the inclusion proof does not verify: {exc.message}") from None


def _verify_checkpointed_proof(
    proof: dict[str, Any], r: _Entry, log: TrustedLog, set_time: int | None, where: str
) -> tuple[str, int, bytes]:
    """An inclusion proof against its checkpoint, signed by the log key; without a SET the proof's index must be
    the entry's. The checkpoint note, its tree size and root."""
    try:
        note = str(proof["checkpoint"]["envelope"])
        cp = _verify_note(note, log)
        pidx, psize = int(proof["logIndex"]), int(proof["treeSize"])
        proot = base64.b64decode(proof["rootHash"])
        path = [base64.b64decode(h) for h in proof.get("hashes") or []]
    except (KeyError, TypeError, ValueError) as exc:
        raise _tlog_failure(where, f"the inclusion proof is malformed ({exc!r})") from None
    except NoteError as exc:
        raise _tlog_failure(where, f"the checkpoint does not verify with the log key: {exc.message}") from None
    if (cp.size, cp.root) != (psize, proot):
        raise _tlog_failure(where, "the inclusion proof's tree size or root is not its checkpoint's")
    try:
        merkle.verify_inclusion(pidx, cp.size, merkle.leaf_hash(r.raw_body), path, cp.root)
    except MerkleError as exc:
        raise _tlog_failure(where, f"the inclusion proof does not verify: {exc.message}") from None
    if set_time is None and pidx != r.index:  # no SET signs logIndex: the proof's index is the one proven
        raise _tlog_failure(
            where, f"the entry's logIndex {r.index} is not the index its inclusion proof proves ({pidx})"
        )
    return note, cp.size, cp.root


# -- the whole bundle -------------------------------------------------------------------------------------------


def signer_matches(signer: SignerLike, cert: x509.Certificate) -> bool:
    """The certificate's OIDC issuer is the signer's and one SAN is its identity (exact or anchored regex)."""
    import re

    if cert_issuer(cert) != signer.issuer:
        return False
    ids = cert_identities(cert)
    if signer.identity is not None:
        return signer.identity in ids
    return any(re.fullmatch(signer.identity_regex or "", i) for i in ids)


def verify_bundle(
    doc: dict[str, Any],
    root_doc: RootLike,
    *,
    where: str,
    signers: Sequence[SignerLike] | None = None,
    key: Any = None,
    artifact: Artifact | None = None,
    require_tlog: bool = True,
    statement_matches: Callable[[bytes, dict[str, str]], bool] | None = None,
) -> Outcome:
    """Verify a bundle; ``signers`` (any one must match; None: any signer, reported) or ``key`` (managed).
    ``artifact``: the message's or the statement subject's digests; ``statement_matches(payload, hexdigests)``
    decides the subject match for DSSE (in-toto). ``require_tlog``: a bundle without a log entry is refused,
    unless the trusted root lists no transparency log (GitHub's instance). ``root_doc``: the trusted root's
    document, or its sections (``Trust.sections``: parsed once per trust root), each section read when needed.
    Raises CheckFailed naming the check that failed, MalformedBundle/UnsupportedBundle for a bundle that cannot
    be read."""
    root = RootSections.of(root_doc)
    p = parse(doc, where)
    out = Outcome(p.content.payload_type, p.content.payload, None)
    if p.leaf is None and key is None:
        raise CheckFailed(where, "bundle.parse", "a public-key bundle needs the key (--key)")
    if p.leaf is None:
        algorithms_of(key, where)  # a key outside Sigstore's algorithm registry: UnsupportedBundle, named
    stamps = verify_timestamps(doc, root, p.leaf, where)
    out.tsa_times, out.ignored_timestamps = stamps.verified, stamps.ignored
    out.checks.append("bundle.timestamps")
    out.entries = _verify_tlog(p, _logs(root), key, out.tsa_times, require_tlog, where)
    out.set_times = [(ve.set_time, ve.log_id.hex()) for ve in out.entries if ve.set_time is not None]
    out.checks.append("bundle.tlog")
    if p.leaf is not None:
        times = [dt.datetime.fromtimestamp(t, dt.UTC) for t, _ in out.set_times] + [t for t, _ in out.tsa_times]
        out.signer, checks = _verify_certificate(p.leaf, root, times, signers, where)
        out.checks += checks
        key = p.leaf.public_key()
    details = next((ve.key_details for ve in out.entries if ve.key_details), None)  # one at most (bundle.tlog)
    _verify_signature(p.content, key, artifact, details, where)
    out.checks.append("bundle.signature")
    if p.content.is_dsse and artifact is not None:
        assert p.content.payload is not None
        hexd = {a: d.hex() for a, d in artifact.digests.items()}
        if not (statement_matches or _subject_matches)(p.content.payload, hexd):
            raise CheckFailed(where, "bundle.subject", "no statement subject matches the artifact's digest")
        out.checks.append("bundle.subject")
    return out


def _verify_tlog(
    p: Parsed,
    logs: dict[bytes, TrustedLog],
    key: Any,
    tsa_times: list[tuple[dt.datetime, str]],
    require_tlog: bool,
    where: str,
) -> list[VerifiedEntry]:
    """``bundle.tlog``: every entry verified (:func:`verify_entry`); none is refused when required and the root
    lists a log; the entries name one algorithm at most; an entry without a SET has its log key valid at the
    verified timestamps (none: now)."""
    entries = [verify_entry(e, p, logs, key, where) for e in p.entries]
    if not entries and require_tlog and logs:  # a root listing no log (GitHub's instance): TSA-only by design
        raise CheckFailed(where, "bundle.tlog", "the bundle has no transparency-log entry (a TSA-only bundle)")
    named = {ve.key_details for ve in entries if ve.key_details}
    if len(named) > 1:
        raise CheckFailed(where, "bundle.tlog", f"the entries name different algorithms ({', '.join(sorted(named))})")
    # An entry without a SET (Rekor v2, or a proof-only v1 entry): its log key must be valid at the verified
    # timestamps; with none (a key-signed bundle), now: its unsigned integratedTime proves nothing, and a key not
    # yet or no longer valid is refused rather than trusted for a time no one vouches for (outside review).
    checked_at = [t.timestamp() for t, _ in tsa_times] or [time.time()]
    for ve in entries:
        log = logs[ve.log_id]
        if ve.set_time is None and not all(log.valid_at(t) for t in checked_at):
            raise CheckFailed(where, "bundle.tlog", "the log key is not valid at the bundle's timestamps")
    return entries


def _verify_certificate(
    leaf: x509.Certificate,
    root: RootSections,
    times: list[dt.datetime],
    signers: Sequence[SignerLike] | None,
    where: str,
) -> tuple[SignerIdentity, list[str]]:
    """``bundle.time``, ``bundle.certificate``, ``bundle.sct`` (when the root lists CT logs), ``bundle.identity``:
    the signer and the checks run."""
    if not times:
        from .timestamps import TimestampInvalid

        raise TimestampInvalid(where, "bundle.time: no verified time (no SET, no RFC 3161 timestamp)")
    checks = ["bundle.time"]
    for t in times:
        try:
            verify_chain(leaf, root, t, where)
        except SignatureInvalid as exc:
            raise CheckFailed(where, "bundle.certificate", exc.problem) from None
    checks.append("bundle.certificate")
    if root.ct_logs:  # a root listing no CT log (GitHub's instance) has no SCT to verify
        try:
            verify_sct(leaf, issuer_of(leaf, root, times[0]), root, where)
        except SignatureInvalid as exc:
            raise CheckFailed(where, "bundle.sct", exc.problem) from None
        checks.append("bundle.sct")
    signer = signer_of(leaf)
    if signers is not None and not any(signer_matches(s, leaf) for s in signers):
        raise CheckFailed(where, "bundle.identity", f"signed by {signer}, not by an expected signer")
    checks.append("bundle.identity")
    return signer, checks


def _verify_signature(c: Content, key: Any, artifact: Artifact | None, details: str | None, where: str) -> None:
    """``bundle.signature``: DSSE over the PAE, a message signature over the artifact (:func:`_verify_message`),
    with an algorithm of the registry ``key`` takes (``details``: that one)."""
    algs = algorithms_of(key, where, details)
    if c.is_dsse:
        assert c.payload_type is not None and c.payload is not None
        ok = _verify_sig(key, c.signature, pae(c.payload_type, c.payload), None, where, details)
    else:
        ok = _verify_message(c, key, algs, artifact, details, where)
    if not ok:
        raise CheckFailed(
            where,
            "bundle.signature",
            f"the signature does not verify with the signer's key ({', '.join(a.details for a in algs)})",
        )


def _verify_message(
    c: Content, key: Any, algs: list[Algorithm], artifact: Artifact | None, details: str | None, where: str
) -> bool:
    """A message signature: its digest must be the artifact's (``bundle.subject``) and one the key's algorithms
    sign (else pure Ed25519 over the artifact's bytes); without one, each digest they sign as the artifact has it.
    Whether the signature verifies over one of them."""
    data = artifact.data if artifact is not None else None
    signs = list(dict.fromkeys(a.hash for a in algs if a.hash))  # the digests the key's algorithms sign
    pure = any(a.hash is None for a in algs) and data is not None  # Ed25519 over the artifact's bytes
    if c.digest is not None:
        if artifact is not None:
            have = artifact.digests.get(c.digest[0])
            if have is None:
                raise UnsupportedBundle(
                    f"{where}: messageDigest.algorithm {c.digest[0]}: cannot compute it for the artifact"
                )
            if c.digest[1] != have:
                raise CheckFailed(where, "bundle.subject", "the bundle's message digest is not the artifact's")
        if c.digest[0] not in signs and not pure:
            raise CheckFailed(
                where,
                "bundle.signature",
                f"the message digest is {c.digest[0]}: the signer's {key_name(key)} key signs "
                f"{', '.join(signs)} digests ({', '.join(a.details for a in algs)})",
            )
        digests: list[tuple[str, bytes] | None] = [c.digest]
    elif artifact is not None:  # no message digest: each the key's algorithms sign, as the artifact has them
        digests = [(h, artifact.digests[h]) for h in signs if h in artifact.digests] or ([None] if pure else [])
        if not digests:
            raise UnsupportedBundle(f"{where}: cannot compute {', '.join(signs)} for the artifact")
    else:
        raise CheckFailed(where, "bundle.signature", "no message digest and no artifact to verify against")
    ok = any(_verify_sig(key, c.signature, data, d, where, details) for d in digests)
    if not ok and c.digest is not None and c.digest[0] not in signs:
        raise CheckFailed(
            where,
            "bundle.signature",
            f"the signature does not verify with the signer's {key_name(key)} key over the artifact's bytes "
            f"(pure Ed25519); a {c.digest[0]} message digest is not signed by {', '.join(signs)} algorithms",
        )
    return ok


def _subject_matches(payload: bytes, hexdigests: dict[str, str]) -> bool:
    from ..claims.statement import Statement
    from ..errors import InvalidInput

    try:
        return Statement.parse_attestation(payload).matches_artifact(hexdigests)
    except InvalidInput:
        return False
