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
from ..transparency.trusted import TrustedLog, trusted_logs
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
    media = doc.get("mediaType")
    version = MEDIA_TYPES.get(str(media))
    if version is None:
        raise UnsupportedBundle(f"{where}: mediaType {media!r}: unsupported bundle version (0.1, 0.2, 0.3 are)")
    vm = doc.get("verificationMaterial")
    if not isinstance(vm, dict):
        raise MalformedBundle(f"{where}: verificationMaterial is missing")
    leaf = None
    if "certificate" in vm or "x509CertificateChain" in vm:
        if version == "0.3" and "x509CertificateChain" in vm:
            raise CheckFailed(where, "bundle.parse", "a v0.3 bundle carries the leaf certificate, not a chain")
        try:
            raw = (vm["certificate"] if "certificate" in vm else vm["x509CertificateChain"]["certificates"][0])[
                "rawBytes"
            ]
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
    elif "publicKey" not in vm:
        raise MalformedBundle(f"{where}: verificationMaterial has no certificate and no public key")
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
    if "dsseEnvelope" in doc:
        env = doc["dsseEnvelope"]
        try:
            sigs = env["signatures"]
            if len(sigs) != 1:
                raise CheckFailed(
                    where, "bundle.parse", f"a DSSE envelope with {len(sigs)} signatures (one is verified)"
                )
            content = Content(
                _b64(sigs[0]["sig"], "dsseEnvelope.signatures[0].sig", where),
                str(env["payloadType"]),
                _b64(env["payload"], "dsseEnvelope.payload", where),
                str(env["payload"]),
            )
        except (KeyError, TypeError) as exc:
            raise MalformedBundle(f"{where}: dsseEnvelope is malformed ({exc!r})") from None
    elif "messageSignature" in doc:
        ms = doc["messageSignature"]
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
            content = Content(_b64(ms["signature"], "messageSignature.signature", where), digest=digest)
        except (KeyError, TypeError, AttributeError) as exc:
            raise MalformedBundle(f"{where}: messageSignature is malformed ({exc!r})") from None
    else:
        raise MalformedBundle(f"{where}: the bundle has neither dsseEnvelope nor messageSignature")
    return Parsed(version, leaf, content, entries)


# -- keys -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Algorithm:
    """One algorithm of Sigstore's registry (architecture-docs ``algorithm-registry.md``; protobuf-specs
    ``PublicKeyDetails``): the key it takes and the digest it signs."""

    details: str  # the PublicKeyDetails name
    family: str  # ecdsa, rsa-pkcs1v15, rsa-pss, ed25519, ed25519ph
    size: int  # curve or modulus bits (Ed25519: 0)
    hash: str | None  # the digest it signs, a hashedrekord's messageDigest (pure Ed25519 signs the bytes: None)


#: Every signature algorithm of the registry but the experimental ML-DSA, each key's own first. P-384 and P-521
#: over SHA-256 are deprecated names the registry keeps because most clients signed so (sigstore-python's
#: assets, CPython's release bundles; sigstore-go verifies them too): accepted. The other deprecated names
#: (PKIX_RSA_PSS, PKIX_RSA_PKCS1V5, PKIX_ECDSA_P256_HMAC_SHA_256...) and LMS are not.
REGISTRY: dict[str, Algorithm] = {
    a.details: a
    for a in (
        Algorithm("PKIX_ECDSA_P256_SHA_256", "ecdsa", 256, "sha256"),
        Algorithm("PKIX_ECDSA_P384_SHA_384", "ecdsa", 384, "sha384"),
        Algorithm("PKIX_ECDSA_P521_SHA_512", "ecdsa", 521, "sha512"),
        Algorithm("PKIX_ECDSA_P384_SHA_256", "ecdsa", 384, "sha256"),
        Algorithm("PKIX_ECDSA_P521_SHA_256", "ecdsa", 521, "sha256"),
        *(Algorithm(f"PKIX_RSA_PKCS1V15_{n}_SHA256", "rsa-pkcs1v15", n, "sha256") for n in (2048, 3072, 4096)),
        *(Algorithm(f"PKIX_RSA_PSS_{n}_SHA256", "rsa-pss", n, "sha256") for n in (2048, 3072, 4096)),
        Algorithm("PKIX_ED25519", "ed25519", 0, None),
        Algorithm("PKIX_ED25519_PH", "ed25519ph", 0, "sha512"),
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
        algs = [a for a in REGISTRY.values() if a.family == "ecdsa" and a.size == _CURVES[key.curve.name]]
    elif isinstance(key, rsa.RSAPublicKey) and key.key_size in (2048, 3072, 4096):
        algs = [a for a in REGISTRY.values() if a.family.startswith("rsa-") and a.size == key.key_size]
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
        algs = [a for a in algs if a.family != "ed25519ph"]
    return any(_verify_with(a, key, sig, message, digest) for a in algs)


def _verify_with(a: Algorithm, key: Any, sig: bytes, message: bytes | None, digest: tuple[str, bytes] | None) -> bool:
    try:
        if a.family == "ed25519":
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
        if a.family == "ed25519ph":
            return _ed25519ph_verify(key.public_bytes_raw(), sig, data if prehashed else hashlib.sha512(data).digest())
        assert a.hash is not None
        algo: Any = Prehashed(_hash(a.hash)) if prehashed else _hash(a.hash)
        if a.family == "ecdsa":
            key.verify(sig, data, ec.ECDSA(algo))
        elif a.family == "rsa-pkcs1v15":
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


def _logs(root_doc: dict[str, Any]) -> dict[bytes, TrustedLog]:
    return {log.log_id: log for log in trusted_logs(root_doc)}


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
    if (kind, version) == (EntryKind.HASHEDREKORD, "0.0.2"):
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
    if not c.is_dsse:
        return f"a {kind} entry logs a DSSE envelope, the bundle has a message signature"
    assert c.payload is not None
    if (kind, version) == (EntryKind.DSSE, "0.0.1"):
        ph = spec.get("payloadHash", {})
        if (ph.get("algorithm"), ph.get("value")) != ("sha256", hashlib.sha256(c.payload).hexdigest()):
            return "the logged payload hash is not the bundle payload's"
        for s in spec.get("signatures") or []:
            if base64.b64decode(s.get("signature", "")) == c.signature and _pem_matches(
                base64.b64decode(s.get("verifier", "")), leaf, key
            ):
                return None
        return "no logged signature is the bundle's, by its signer"
    if (kind, version) == (EntryKind.INTOTO, "0.0.2"):
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
    raise AssertionError("unreachable: kinds are checked first")


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


def verify_entry(e: dict[str, Any], p: Parsed, logs: dict[bytes, TrustedLog], key: Any, where: str) -> VerifiedEntry:
    """One tlog entry of the bundle, every field checked (``bundle.tlog``)."""

    def fail(why: str) -> CheckFailed:
        return CheckFailed(where, "bundle.tlog", why)

    try:
        log_id = base64.b64decode(e["logId"]["keyId"])
        index = int(e["logIndex"])
        kind, version = str(e["kindVersion"]["kind"]), str(e["kindVersion"]["version"])
        raw_body = base64.b64decode(e["canonicalizedBody"])
        body = json.loads(raw_body)
        itime = int(e.get("integratedTime") or 0)
        promise = e.get("inclusionPromise")
        set_sig = base64.b64decode(promise.get("signedEntryTimestamp", "")) if promise else b""
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedBundle(f"{where}: a tlog entry is malformed ({exc!r})") from None
    if not isinstance(body, dict):
        raise fail("the body is not a JSON object")
    if (kind, version) not in KINDS:
        raise UnsupportedBundle(f"{where}: tlogEntries kindVersion {kind} {version}: unsupported entry kind/version")
    if (body.get("kind"), body.get("apiVersion")) != (kind, version):
        raise fail(f"the body is {body.get('kind')} {body.get('apiVersion')}, the entry says {kind} {version}")
    log = logs.get(log_id)
    if log is None:
        raise fail(f"log {log_id.hex()[:16]}… is not in the trusted root")
    try:
        why = _body_matches(body, kind, version, p, key, where)
    except (AttributeError, TypeError, ValueError) as exc:  # a field of the wrong JSON type or not base64
        why = f"the body is malformed ({exc!r})"
    if why is not None:
        raise fail(why)
    set_time = None
    if promise:
        payload = canonical_json(
            {"body": e["canonicalizedBody"], "integratedTime": itime, "logID": log_id.hex(), "logIndex": index}
        )
        if not _verify_sig(log.key, set_sig, payload, None, where):
            raise fail("the SET does not verify with the log key")
        if not log.valid_at(itime):
            raise fail("the integrated time is outside the log key's validity")
        set_time = itime
    proof = e.get("inclusionProof")
    checkpoint = size = root = None
    if proof and p.version == "0.1" and "checkpoint" not in proof:
        if set_time is None:  # a v0.1 proof came without a checkpoint: only the SET signs anything
            raise fail("a v0.1 entry without a checkpoint needs a SET")
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
            raise fail(f"the inclusion proof is malformed ({exc!r})") from None
        except MerkleError as exc:
            raise fail(f"the inclusion proof does not verify: {exc.message}") from None
    elif proof:
        try:
            note = str(proof["checkpoint"]["envelope"])
            cp = _verify_note(note, log)
            pidx, psize = int(proof["logIndex"]), int(proof["treeSize"])
            proot = base64.b64decode(proof["rootHash"])
            path = [base64.b64decode(h) for h in proof.get("hashes") or []]
        except (KeyError, TypeError, ValueError) as exc:
            raise fail(f"the inclusion proof is malformed ({exc!r})") from None
        except NoteError as exc:
            raise fail(f"the checkpoint does not verify with the log key: {exc.message}") from None
        if (cp.size, cp.root) != (psize, proot):
            raise fail("the inclusion proof's tree size or root is not its checkpoint's")
        try:
            merkle.verify_inclusion(pidx, cp.size, merkle.leaf_hash(raw_body), path, cp.root)
        except MerkleError as exc:
            raise fail(f"the inclusion proof does not verify: {exc.message}") from None
        checkpoint, size, root = note, cp.size, cp.root
        if set_time is None and pidx != index:  # no SET signs logIndex: the proof's index is the one proven
            raise fail(f"the entry's logIndex {index} is not the index its inclusion proof proves ({pidx})")
    elif p.version != "0.1":
        raise fail(f"a v{p.version} bundle needs an inclusion proof with a checkpoint")
    elif set_time is None:
        raise fail("a v0.1 entry needs a SET when it has no inclusion proof")
    details = None
    if (kind, version) == (EntryKind.HASHEDREKORD, "0.0.2"):
        named = body["spec"]["hashedRekordV002"]["signature"]["verifier"].get("keyDetails")
        details = str(named) if named else None
    return VerifiedEntry(log_id, index, kind, version, raw_body, set_time, checkpoint, size, root, details)


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
    root_doc: dict[str, Any],
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
    unless the trusted root lists no transparency log (GitHub's instance). Raises CheckFailed naming the check
    that failed, MalformedBundle/UnsupportedBundle for a bundle that cannot be read."""
    p = parse(doc, where)
    out = Outcome(p.content.payload_type, p.content.payload, None)
    if p.leaf is None and key is None:
        raise CheckFailed(where, "bundle.parse", "a public-key bundle needs the key (--key)")
    if p.leaf is None:
        algorithms_of(key, where)  # a key outside Sigstore's algorithm registry: UnsupportedBundle, named
    stamps = verify_timestamps(doc, root_doc, p.leaf, where)
    out.tsa_times, out.ignored_timestamps = stamps.verified, stamps.ignored
    out.checks.append("bundle.timestamps")
    logs = _logs(root_doc)
    for e in p.entries:
        ve = verify_entry(e, p, logs, key, where)
        out.entries.append(ve)
        if ve.set_time is not None:
            out.set_times.append((ve.set_time, ve.log_id.hex()))
    if not out.entries and require_tlog and logs:  # a root listing no log (GitHub's instance): TSA-only by design
        raise CheckFailed(where, "bundle.tlog", "the bundle has no transparency-log entry (a TSA-only bundle)")
    named = {ve.key_details for ve in out.entries if ve.key_details}
    if len(named) > 1:
        raise CheckFailed(where, "bundle.tlog", f"the entries name different algorithms ({', '.join(sorted(named))})")
    out.checks.append("bundle.tlog")
    times = [dt.datetime.fromtimestamp(t, dt.UTC) for t, _ in out.set_times] + [t for t, _ in out.tsa_times]
    # An entry without a SET (Rekor v2, or a proof-only v1 entry): its log key must be valid at the verified
    # timestamps; with none (a key-signed bundle), now: its unsigned integratedTime proves nothing, and a key not
    # yet or no longer valid is refused rather than trusted for a time no one vouches for (outside review).
    checked_at = [t.timestamp() for t, _ in out.tsa_times] or [time.time()]
    for ve in out.entries:
        log = logs[ve.log_id]
        if ve.set_time is None and not all(log.valid_at(t) for t in checked_at):
            raise CheckFailed(where, "bundle.tlog", "the log key is not valid at the bundle's timestamps")
    if p.leaf is not None:
        if not times:
            from .timestamps import TimestampInvalid

            raise TimestampInvalid(where, "bundle.time: no verified time (no SET, no RFC 3161 timestamp)")
        out.checks.append("bundle.time")
        for t in times:
            try:
                verify_chain(p.leaf, root_doc, t, where)
            except SignatureInvalid as exc:
                raise CheckFailed(where, "bundle.certificate", exc.problem) from None
        out.checks.append("bundle.certificate")
        if root_doc.get("ctlogs"):  # a root listing no CT log (GitHub's instance) has no SCT to verify
            try:
                verify_sct(p.leaf, issuer_of(p.leaf, root_doc, times[0]), root_doc, where)
            except SignatureInvalid as exc:
                raise CheckFailed(where, "bundle.sct", exc.problem) from None
            out.checks.append("bundle.sct")
        out.signer = signer_of(p.leaf)
        if signers is not None and not any(signer_matches(s, p.leaf) for s in signers):
            raise CheckFailed(where, "bundle.identity", f"signed by {out.signer}, not by an expected signer")
        out.checks.append("bundle.identity")
        key = p.leaf.public_key()
    c = p.content
    details = next(iter(named), None)
    algs = algorithms_of(key, where, details)
    if c.is_dsse:
        assert c.payload_type is not None and c.payload is not None
        ok = _verify_sig(key, c.signature, pae(c.payload_type, c.payload), None, where, details)
    else:
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
    if not ok:
        raise CheckFailed(
            where,
            "bundle.signature",
            f"the signature does not verify with the signer's key ({', '.join(a.details for a in algs)})",
        )
    out.checks.append("bundle.signature")
    if c.is_dsse and artifact is not None:
        assert c.payload is not None
        hexd = {a: d.hex() for a, d in artifact.digests.items()}
        match = statement_matches or _subject_matches
        if not match(c.payload, hexd):
            raise CheckFailed(where, "bundle.subject", "no statement subject matches the artifact's digest")
        out.checks.append("bundle.subject")
    return out


def _subject_matches(payload: bytes, hexdigests: dict[str, str]) -> bool:
    from ..claims.statement import Statement
    from ..errors import InvalidInput

    try:
        return Statement.parse_attestation(payload).matches_artifact(hexdigests)
    except InvalidInput:
        return False
