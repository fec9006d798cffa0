"""Evidence from a Sigstore bundle: the exact signed payload, who signed it, when, and where it is logged.

Both verifiers check the bundle (``check.py``: sigstore-python's ``Verifier`` where it reads the shape,
and the own path, ``verifier.py``, always: certificate chain and SCT at every verified time, signature,
log entry with its SET and/or inclusion proof and signed checkpoint, RFC 3161 timestamps). The own
path's outcome gives the facts rules need: the exact payload, the signer, the log proof and the verified
times. Rules never read ``integratedTime`` themselves: they take :attr:`Evidence.times`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509

from ..core.dsse import PAYLOAD_TYPE_IN_TOTO
from ..core.fsutil import open_regular
from ..errors import InvalidInput, MalformedBundle, SignatureInvalid
from ..signing.trust import Trust
from .check import check_bundle
from .identity import SignerIdentity, SignerLike, describe
from .timestamps import TimestampInvalid


class TimeKind(StrEnum):
    """What proves a time: a log's signed entry timestamp or an RFC 3161 timestamp."""

    SET = "set"
    RFC3161 = "rfc3161"


@dataclass(frozen=True)
class TimeProof:
    """A verified point in time at which the signature existed: a log's SET or an RFC 3161 timestamp."""

    kind: TimeKind
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
    checkpoint: str | None  # None: a v0.1 entry proven by its SET alone
    tree_size: int | None
    root: bytes | None


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
    verified_by: tuple[str, ...] = ()  # the verifiers that accepted it
    gap: str | None = None  # why sigstore-python did not verify it, if it did not

    @property
    def signed_at(self) -> int | None:
        """The earliest verified time (the signature existed then); None if no time is verified."""
        return min((t.time for t in self.times), default=None)

    @property
    def has_set(self) -> bool:
        """A log's signed entry timestamp is among the verified times."""
        return any(t.kind is TimeKind.SET for t in self.times)

    @property
    def tsa_sources(self) -> list[str]:
        """The distinct timestamp authorities whose RFC 3161 timestamps verified (a log's SET is not one)."""
        return sorted({t.source for t in self.times if t.kind is TimeKind.RFC3161})


#: The most a bundle file may hold (real bundles are a few KB; an inline manifest of a huge model a few MB).
BUNDLE_LIMIT = 64 << 20


def read_bundle(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The bundle file's bytes and JSON document; InvalidInput if it is missing, MalformedBundle if not JSON."""
    try:
        with open_regular(Path(path), follow=True) as f:  # never a FIFO or device; a bounded read
            raw = f.read(BUNDLE_LIMIT + 1)
    except FileNotFoundError:
        raise InvalidInput(f"{path}: bundle not found", path=str(path)) from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the bundle: {exc.strerror}", path=str(path)) from None
    if len(raw) > BUNDLE_LIMIT:
        raise MalformedBundle(f"{path}: larger than {BUNDLE_LIMIT >> 20} MiB: not a bundle", path=str(path))
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MalformedBundle(f"{path}: bundle is not JSON", path=str(path)) from None
    if not isinstance(doc, dict):
        raise MalformedBundle(f"{path}: bundle is not a JSON object", path=str(path))
    return raw, doc


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


def verify_dsse_bundle(
    path: Path, trust: Trust, signers: Sequence[SignerLike] | None, *, payload_type: str = PAYLOAD_TYPE_IN_TOTO
) -> Evidence:
    """Verify a DSSE bundle against the trust root and the signers (``None``: any signer, reported not pinned),
    with both verifiers (``check.py``): sigstore-python where it reads the shape, the own path always. A
    bundle without a log entry (TSA-only) is verified and has no ``log``: the policy decides (``require_tlog``).
    Raises SignatureInvalid (the reason, and who was expected), TimestampInvalid (``release.timestamps``),
    InvalidInput / MalformedBundle when the file is missing or unparsable."""
    _ = trust.root_document  # an unusable trust config is reported before the bundle is read
    raw, doc = read_bundle(path)
    expected = describe(signers) if signers is not None else None
    where = str(path)
    try:
        checked = check_bundle(raw, doc, trust, where=where, signers=signers, require_tlog=False)
    except TimestampInvalid:
        raise
    except SignatureInvalid as exc:
        raise SignatureInvalid(where, exc.problem, expected) from None
    out = checked.outcome
    if out.payload is None or out.payload_type is None:
        raise SignatureInvalid(where, "not a DSSE bundle (a message signature)", payload_type, "messageSignature")
    if out.payload_type != payload_type:
        raise SignatureInvalid(where, "unexpected DSSE payload type", payload_type, out.payload_type)
    assert out.signer is not None
    times = tuple(TimeProof(TimeKind.SET, t, log) for t, log in out.set_times)
    times += tuple(TimeProof(TimeKind.RFC3161, int(t.timestamp()), name) for t, name in out.tsa_times)
    log = None
    if out.entries:
        e = out.entries[0]
        log = LogProof(e.log_id, e.index, e.kind, e.version, e.body, e.checkpoint, e.tree_size, e.root)
    return Evidence(
        Path(path),
        out.payload_type,
        out.payload,
        out.signer,
        times,
        log,
        tuple(out.ignored_timestamps),
        checked.verified_by,
        checked.gap,
    )
