"""The instance state directory: keys (PEM, 0600), CA certificates, log database, trust config.

Layout of DIR::

    instance.json          port, URL, log origin, issuer URL, creation time (not secret)
    ca-root.pem            root CA certificate        ca-root.key.pem          (0600)
    ca-intermediate.pem    intermediate certificate   ca-intermediate.key.pem  (0600)
    ct.key.pem             CT log key (SCTs)          (0600)
    log.key.pem            Rekor v1 log key (SET, checkpoints)      (0600)
    log2.key.pem           Rekor v2 log key (Ed25519, checkpoints)  (0600)
    oidc.key.pem           dev OIDC issuer key (ES256 tokens)       (0600)
    tsa-root.pem / tsa.pem the timestamp authority's root and leaf  tsa-root.key.pem, tsa.key.pem (0600)
    log.sqlite3            both logs (v1 entries, v2 entries and tiles)
    trust_config.json      sigstore ClientTrustConfig for this instance
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..core.fsutil import atomic_write_bytes
from ..errors import InvalidInput, UsageError

#: The instance serves on loopback only.
HOST = "127.0.0.1"
#: What a DEV instance risks, in the one place every warning about it reads it from.
DEV_RISK = "its OIDC issuer can mint any identity"
DEV_LABEL = f"uc-attest DEV instance ({DEV_RISK})"
#: The dev OIDC issuer's name, the same for every embedded instance so policies are portable; the
#: ``.invalid`` TLD can never be a real issuer. Each instance still has its own CA, so a certificate
#: from another instance fails chain verification. Its discovery document is served at <url>/oidc.
DEV_ISSUER = "https://dev-oidc.uc-attest.invalid"
KEY_FILES = ("ca-root.key.pem", "ca-intermediate.key.pem", "ct.key.pem", "log.key.pem", "oidc.key.pem")
CERT_FILES = ("ca-root.pem", "ca-intermediate.pem")
#: Keys and certificates of the Rekor v2 log and the TSA: instances made before them have none and keep
#: serving Rekor v1 only.
V2_KEY_FILES = ("log2.key.pem", "tsa-root.key.pem", "tsa.key.pem")
V2_CERT_FILES = ("tsa-root.pem", "tsa.pem")
#: Where the Rekor v2 log and the TSA answer, under the instance URL.
V2_PREFIX, TSA_PATH = "/rekor-v2", "/api/v1/timestamp"
#: Key usage of a leaf that only signs (code-signing and timestamping certificates).
SIGNING_ONLY = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
TSA_LIFETIME = dt.timedelta(days=3650)
TRUST_CONFIG = "trust_config.json"
LOG_DB = "log.sqlite3"
META = "instance.json"


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _spki_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _ca_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer_cert: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    path_len: int | None,
    now: dt.datetime,
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "uc-attest-dev"),
            x509.NameAttribute(NameOID.COMMON_NAME, subject),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA384())


def _tsa_leaf(
    key: ec.EllipticCurvePrivateKey, root: x509.Certificate, root_key: ec.EllipticCurvePrivateKey, now: dt.datetime
) -> x509.Certificate:
    """The TSA's certificate: timestamping EKU (critical, as RFC 3161 requires), digitalSignature."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "uc-attest-dev"),
            x509.NameAttribute(NameOID.COMMON_NAME, "uc-attest DEV timestamp authority"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + TSA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(SIGNING_ONLY, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA384())
    )


def _write_secret(path: Path, key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())


def init_instance(root: Path, port: int = 8787, *, force: bool = False, rekor_version: int = 2) -> InstanceState:
    """Create a new instance state directory with fresh keys and its trust config. Both logs and the TSA
    are served and trusted; ``rekor_version`` is the log the signing config offers signers (2: Rekor v2
    with TSA timestamps, as Sigstore signs in 2026; 1: Rekor v1 with its SET)."""
    root = Path(root)
    if root.exists() and any(root.iterdir()) and not force:
        raise UsageError(
            "{path}: directory is not empty (use {0:=True} to re-create the instance)", option="force", path=str(root)
        )
    if not 1 <= port <= 65535:
        raise UsageError("{0} must be 1-65535, got {port}", option="port", port=port)
    if rekor_version not in (1, 2):
        raise UsageError("{0} must be 1 or 2, got {rekor_version}", option="rekor_version", rekor_version=rekor_version)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    every = (*KEY_FILES, *CERT_FILES, *V2_KEY_FILES, *V2_CERT_FILES, TRUST_CONFIG, LOG_DB, META)
    for name in (*every, f"{LOG_DB}-wal", f"{LOG_DB}-shm"):
        (root / name).unlink(missing_ok=True)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    keys = {
        name: ec.generate_private_key(ec.SECP384R1() if name.startswith("ca-") else ec.SECP256R1())
        for name in KEY_FILES
    }
    for name, key in keys.items():
        _write_secret(root / name, key)
    ca_root = _ca_cert("uc-attest DEV root CA", keys["ca-root.key.pem"], None, keys["ca-root.key.pem"], 1, now)
    ca_int = _ca_cert(
        "uc-attest DEV intermediate CA", keys["ca-intermediate.key.pem"], ca_root, keys["ca-root.key.pem"], 0, now
    )
    for name, cert in zip(CERT_FILES, (ca_root, ca_int), strict=True):
        atomic_write_bytes(root / name, cert.public_bytes(serialization.Encoding.PEM))
    log2 = ed25519.Ed25519PrivateKey.generate()
    tsa_root_key, tsa_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP256R1())
    _write_secret(root / V2_KEY_FILES[0], log2)
    _write_secret(root / V2_KEY_FILES[1], tsa_root_key)
    _write_secret(root / V2_KEY_FILES[2], tsa_key)
    tsa_root = _ca_cert("uc-attest DEV timestamping root CA", tsa_root_key, None, tsa_root_key, 0, now)
    for name, cert in zip(V2_CERT_FILES, (tsa_root, _tsa_leaf(tsa_key, tsa_root, tsa_root_key, now)), strict=True):
        atomic_write_bytes(root / name, cert.public_bytes(serialization.Encoding.PEM))
    base = f"http://{HOST}:{port}"
    meta = {
        "label": DEV_LABEL,
        "port": port,
        "url": base,
        "issuer": DEV_ISSUER,
        # Rekor's convention: "<log host> - <tree id>", and the checkpoint is signed under the host's name
        # (sigstore-js requires the signer name to be found in the log's base URL).
        "origin": f"{HOST} - {int(now.timestamp())}",
        # Rekor v2 (C2SP tlog-checkpoint): the origin names the log; its key is named after the host
        "origin_v2": f"{HOST}/rekor-v2/{int(now.timestamp())}",
        "rekor_version": rekor_version,
        "created": _rfc3339(now),
    }
    atomic_write_bytes(root / META, json.dumps(meta, indent=2).encode())
    state = InstanceState.load(root)
    atomic_write_bytes(root / TRUST_CONFIG, json.dumps(state.trust_config(now), indent=2).encode())
    return state


def _load_key(p: Path) -> Any:
    if not p.is_file():
        raise InvalidInput(f"{p}: key file missing", path=str(p))
    mode = stat.S_IMODE(p.stat().st_mode)
    if mode & 0o077:
        raise InvalidInput(f"{p}: permissions {oct(mode)} are too open (need 0600)", path=str(p))
    try:
        return serialization.load_pem_private_key(p.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{p}: not a PEM private key: {exc}", path=str(p)) from None


def _load_cert(p: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(p.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{p}: missing or not a PEM certificate: {exc}", path=str(p)) from None


@dataclass
class V2Material:
    """The Rekor v2 log key and the TSA (key, certificate, root) of an instance that has them."""

    log_key: ed25519.Ed25519PrivateKey
    tsa_key: ec.EllipticCurvePrivateKey
    tsa_cert: x509.Certificate
    tsa_root: x509.Certificate


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _ec_key(k: ec.EllipticCurvePrivateKey, start: dict[str, str]) -> dict[str, Any]:
    """A trusted root's entry for a P-256 public key."""
    return {"rawBytes": _b64(_spki_der(k.public_key())), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": start}


def _tlog(url: str, public_key: dict[str, Any], log_id: bytes) -> dict[str, Any]:
    """A trusted root's transparency (or CT) log."""
    return {"baseUrl": url, "hashAlgorithm": "SHA2_256", "publicKey": public_key, "logId": {"keyId": _b64(log_id)}}


def _authority(
    name: str, url: str, chain: tuple[x509.Certificate, x509.Certificate], start: dict[str, str]
) -> dict[str, Any]:
    """A trusted root's certificate or timestamp authority: its chain, leaf-most first."""
    certs = [{"rawBytes": _b64(c.public_bytes(serialization.Encoding.DER))} for c in chain]
    return {
        "subject": {"organization": "uc-attest-dev", "commonName": name},
        "uri": url,
        "certChain": {"certificates": certs},
        "validFor": start,
    }


def _service(url: str, start: dict[str, str], version: int = 1) -> dict[str, Any]:
    """A signing config's service."""
    return {"url": url, "majorApiVersion": version, "validFor": start, "operator": "uc-attest-dev"}


@dataclass
class InstanceState:
    """A loaded instance directory (keys checked for existence and 0600 permissions)."""

    root: Path
    meta: dict[str, Any]
    keys: dict[str, ec.EllipticCurvePrivateKey]
    ca_root: x509.Certificate
    ca_intermediate: x509.Certificate
    v2: V2Material | None = None

    @classmethod
    def load(cls, root: Path) -> InstanceState:
        root = Path(root)
        if not (root / META).is_file():
            raise InvalidInput(
                f"{root}: not an instance directory ({META} missing; run 'uc-attest instance init')", path=str(root)
            )
        keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        for name in KEY_FILES:
            key = _load_key(root / name)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise InvalidInput(f"{root / name}: not an EC private key", path=str(root / name))
            keys[name] = key
        certs = [_load_cert(root / name) for name in CERT_FILES]
        try:
            meta = json.loads((root / META).read_text())
            int(meta["port"]), str(meta["issuer"]), str(meta["origin"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{root / META}: malformed: {exc}", path=str(root / META)) from None
        v2 = None
        if "origin_v2" in meta:  # made with the Rekor v2 log and the TSA: their files must all be there
            log2, _tsa_root_key, tsa_key = (_load_key(root / n) for n in V2_KEY_FILES)  # the root key: 0600 checked
            if not isinstance(log2, ed25519.Ed25519PrivateKey) or not isinstance(tsa_key, ec.EllipticCurvePrivateKey):
                raise InvalidInput(f"{root}: log2.key.pem must be Ed25519 and tsa.key.pem EC", path=str(root))
            tsa_root, tsa_cert = (_load_cert(root / n) for n in V2_CERT_FILES)
            v2 = V2Material(log2, tsa_key, tsa_cert, tsa_root)
        return cls(root, meta, keys, certs[0], certs[1], v2)

    def moved_to(self, port: int) -> InstanceState:
        """The same instance (keys, log) served on another loopback port: instance.json and the trust config
        are rewritten atomically to name it. Clients holding a copy of the old trust config must take the new one."""
        if not 1 <= port <= 65535:
            raise UsageError("{0} must be 1-65535, got {port}", option="port", port=port)
        meta = {**self.meta, "port": port, "url": f"http://{HOST}:{port}"}
        atomic_write_bytes(self.root / META, json.dumps(meta, indent=2).encode())
        moved = InstanceState.load(self.root)
        created = dt.datetime.strptime(str(meta["created"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        atomic_write_bytes(self.root / TRUST_CONFIG, json.dumps(moved.trust_config(created), indent=2).encode())
        return moved

    def to_dict(self) -> dict[str, Any]:
        """What ``instance init --json`` prints: where it is, how to reach and trust it, and its risk."""
        return {
            "ok": True,
            "directory": str(self.root),
            "url": self.url,
            "issuer": self.issuer,
            "trust_config": str(self.root / TRUST_CONFIG),
            "rekor_version": self.rekor_version,
            "warning": f"DEV instance: {DEV_RISK}",
        }

    @property
    def url(self) -> str:
        return str(self.meta["url"])

    @property
    def issuer(self) -> str:
        return str(self.meta["issuer"])

    @property
    def port(self) -> int:
        return int(self.meta["port"])

    @property
    def log_name(self) -> str:
        """The name the log signs its checkpoints under: the log's host, as Rekor does (``rekor.sigstore.dev``)."""
        return HOST

    @property
    def origin(self) -> str:
        return str(self.meta["origin"])

    @property
    def log_key(self) -> ec.EllipticCurvePrivateKey:
        return self.keys["log.key.pem"]

    @property
    def ct_key(self) -> ec.EllipticCurvePrivateKey:
        return self.keys["ct.key.pem"]

    @property
    def oidc_key(self) -> ec.EllipticCurvePrivateKey:
        return self.keys["oidc.key.pem"]

    @property
    def rekor_version(self) -> int:
        return int(self.meta.get("rekor_version", 1))

    @property
    def origin_v2(self) -> str:
        return str(self.meta["origin_v2"])

    @cached_property
    def log_id_v2(self) -> bytes:
        """The Rekor v2 log id: its checkpoint key's C2SP key id, SHA-256(name || 0x0A || 0x01 || key)."""
        assert self.v2 is not None
        raw = self.v2.log_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(self.log_name.encode() + b"\n\x01" + raw).digest()

    @property
    def log_id(self) -> bytes:
        return hashlib.sha256(_spki_der(self.log_key.public_key())).digest()

    @property
    def ct_log_id(self) -> bytes:
        return hashlib.sha256(_spki_der(self.ct_key.public_key())).digest()

    def trust_config(self, now: dt.datetime) -> dict[str, Any]:
        """A sigstore ClientTrustConfig (trusted root v0.1 + signing config v0.2) for this instance."""
        start = {"start": _rfc3339(now - dt.timedelta(days=1))}
        trusted_root: dict[str, Any] = {
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [_tlog(self.url, _ec_key(self.log_key, start), self.log_id)],
            "certificateAuthorities": [
                _authority(DEV_LABEL, self.url, (self.ca_intermediate, self.ca_root), start),
            ],
            "ctlogs": [_tlog(self.url, _ec_key(self.ct_key, start), self.ct_log_id)],
            "timestampAuthorities": [],
        }
        signing_config: dict[str, Any] = {
            "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
            "caUrls": [_service(self.url, start)],
            "oidcUrls": [_service(f"{self.url}/oidc", start)],
            "rekorTlogUrls": [_service(self.url, start)],
            "tsaUrls": [],
            "rekorTlogConfig": {"selector": "ANY"},
            "tsaConfig": {"selector": "ANY"},
        }
        if self.v2 is not None:
            self._add_v2(self.v2, trusted_root, signing_config, start)
        return {
            "mediaType": "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json",
            "trustedRoot": trusted_root,
            "signingConfig": signing_config,
        }

    def _add_v2(
        self, v2: V2Material, trusted_root: dict[str, Any], signing_config: dict[str, Any], start: dict[str, str]
    ) -> None:
        """The Rekor v2 log and the TSA in the trust config (an instance made with them)."""
        v2_key = {"rawBytes": _b64(v2.log_key.public_key().public_bytes(*_SPKI)), "keyDetails": "PKIX_ED25519"}
        trusted_root["tlogs"].append(_tlog(self.url + V2_PREFIX, {**v2_key, "validFor": start}, self.log_id_v2))
        trusted_root["timestampAuthorities"] = [
            _authority("uc-attest DEV timestamp authority", self.url + TSA_PATH, (v2.tsa_cert, v2.tsa_root), start)
        ]
        signing_config["tsaUrls"] = [_service(self.url + TSA_PATH, start)]
        if self.rekor_version == 2:  # both logs offered: the stock client takes the highest version it speaks
            signing_config["rekorTlogUrls"] = [_service(self.url + V2_PREFIX, start, 2), _service(self.url, start)]
