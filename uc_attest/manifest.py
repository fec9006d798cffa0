"""The per-tensor manifest: digests of the reconstructed tensors, a Merkle root, proofs, diff.

Leaf ``i`` of the Merkle tree is ``SHA256(0x00 || JCS({"digest","dtype","name","shape"}))``
of the i-th tensor in UTF-8 byte order of names; the root (RFC 6962) identifies the
reconstruction. Other entry fields (source digest, quantization record) are
informative and covered by the signature of whoever signs the whole manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

from .core import merkle
from .core.digest import Digest, canonical_json
from .core.enums import member
from .core.fsutil import is_safe_relative
from .errors import Finding, FindingKind, MalformedPack, UsageError
from .quant.records import QuantRecord
from .quant.scheme import Scheme

MANIFEST_FORMAT = "uc-manifest/1"


@dataclass(frozen=True)
class TensorEntry:
    """One reconstructed tensor: identity fields (in the Merkle leaf) and informative ones."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    digest: Digest  # of the reconstructed tensor's bytes
    source_digest: Digest  # of the source tensor's bytes (equal to ``digest`` for tensors stored unchanged)
    file: str
    quant: QuantRecord | None = None

    def leaf_data(self) -> bytes:
        return canonical_json(
            {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "digest": str(self.digest)}
        )

    def leaf_hash(self) -> bytes:
        return merkle.leaf_hash(self.leaf_data())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.dtype,
            "shape": list(self.shape),
            "digest": str(self.digest),
            "source_digest": str(self.source_digest),
            "file": self.file,
            "quant": None if self.quant is None else self.quant.to_manifest(),
        }


def _sorted(entries: list[TensorEntry]) -> list[TensorEntry]:
    return sorted(entries, key=lambda e: e.name.encode("utf-8"))


def compute_root(entries: list[TensorEntry]) -> Digest:
    return Digest(merkle.root_from_leaf_hashes([e.leaf_hash() for e in _sorted(entries)]).hex())


class OmsMethod(StrEnum):
    """How an OpenSSF Model Signing signature verifies (a ``str``: it encodes as its value)."""

    SIGSTORE = "sigstore"
    KEY = "key"
    CERTIFICATE = "certificate"


#: The one name a pack keeps its source's OMS signature under: a manifest naming another file (config.json, a
#: shard, a path outside the pack) would make a rebuild copy the pack's file over the one it rebuilt.
SOURCE_SIGNATURE_NAME = "uc-source.model.sig"


@dataclass(frozen=True)
class SourceSignature:
    """The source model's OpenSSF Model Signing signature, verified before the pack was made: the signature
    file kept in the pack (``file``, its ``sha256``), the method (:class:`OmsMethod`), who signed (identity and
    OIDC issuer; for a key, ``sha256:<SPKI digest>`` and no issuer), the signed model (``model``, its OMS
    root digest) and the earliest verified time of the signature (Unix seconds; None for a key)."""

    file: str
    sha256: Digest
    method: OmsMethod
    identity: str
    issuer: str
    model: str
    root: Digest
    signed_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "sha256": str(self.sha256),
            "method": self.method.value,
            "identity": self.identity,
            "issuer": self.issuer,
            "model": self.model,
            "root": str(self.root),
        }
        if self.signed_at is not None:
            out["signed_at"] = self.signed_at
        return out

    @classmethod
    def from_dict(cls, d: Any, origin: str) -> SourceSignature:
        bad = None if isinstance(d, dict) else "source_signature"
        if bad is None:
            texts = ("file", "method", "identity", "issuer", "model")
            t = d.get("signed_at")
            bad = next((k for k in texts if not isinstance(d.get(k), str)), None)
            bad = bad or next((k for k in ("sha256", "root") if not _is_digest(d.get(k))), None)
            if bad is None and member(OmsMethod, d["method"]) is None:
                bad = "method"
            if bad is None and t is not None and (not isinstance(t, int) or isinstance(t, bool)):
                bad = "signed_at"
            if bad is None and d["file"] != SOURCE_SIGNATURE_NAME:  # the writer's name: never another pack file
                bad = "file"
            bad = bad and f"source_signature.{bad}"
        if bad is not None:
            raise MalformedPack(f"{origin}: manifest field {bad} is missing or invalid", path=origin, field=bad)
        return cls(
            d["file"],
            Digest.parse(d["sha256"]),
            OmsMethod(d["method"]),
            d["identity"],
            d["issuer"],
            d["model"],
            Digest.parse(d["root"]),
            t,
        )


def moments_digest_of(entries: list[TensorEntry]) -> Digest:
    """sha256 of the RFC 8785 JSON {tensor name: digest of its committed moments} (CalibrationRecord.moments)."""
    table = {e.name: str(e.quant.moments_digest) for e in entries if e.quant and e.quant.moments_digest}
    return Digest.of_bytes(canonical_json(table))


#: How the committed calibration moments were obtained (``CalibrationRecord.method``).
CALIBRATION_METHODS = ("self-sampled", "python-docstrings", "text-file", "moments-file")


@dataclass(frozen=True)
class CalibrationRecord:
    """Where the pack's committed calibration moments came from: ``method`` (CALIBRATION_METHODS), its
    parameters (seed, counts, length, temperature; a text's sha256 and line count; a moments file's
    sha256), the tool that measured them, and ``moments``: sha256 of the RFC 8785 JSON
    ``{tensor name: moments digest}`` of every committed moments tensor (filled in by the pack writer)."""

    method: str
    params: dict[str, Any]
    tool: str
    moments: Digest | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "params": self.params, "tool": self.tool}
        if self.moments is not None:
            out["moments"] = str(self.moments)
        return out

    @classmethod
    def from_dict(cls, d: Any, origin: str) -> CalibrationRecord:
        try:
            method, params, tool = d["method"], d["params"], d["tool"]
            if method not in CALIBRATION_METHODS or not isinstance(params, dict) or not isinstance(tool, str):
                raise ValueError(method)
            m = d.get("moments")
            return cls(str(method), dict(params), tool, Digest.parse(m) if m is not None else None)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise MalformedPack(
                f"{origin}: manifest field calibration is invalid", path=origin, field="calibration"
            ) from None


@dataclass(frozen=True)
class Manifest:
    """Everything needed to check a pack: scheme, file digests, tensor digests and root."""

    scheme: dict[str, Any]
    tensors: list[TensorEntry]
    files: dict[str, Digest] = field(default_factory=dict)
    source_files: dict[str, Digest] = field(default_factory=dict)
    source_signature: SourceSignature | None = None  # absent in packs of unsigned sources (bytes unchanged)
    calibration: CalibrationRecord | None = None  # absent without calibration, and in older packs

    @cached_property
    def root(self) -> Digest:
        """The Merkle root over the tensor entries (computed once; entries are not changed after construction)."""
        return compute_root(self.tensors)

    def entry(self, name: str) -> TensorEntry | None:
        return next((e for e in self.tensors if e.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "format": MANIFEST_FORMAT,
            "root": str(self.root),
            "scheme": self.scheme,
            "files": {k: str(v) for k, v in sorted(self.files.items())},
            "source_files": {k: str(v) for k, v in sorted(self.source_files.items())},
            "tensors": [e.to_dict() for e in _sorted(self.tensors)],
        }
        if self.source_signature is not None:
            out["source_signature"] = self.source_signature.to_dict()
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        return out

    def to_json(self) -> bytes:
        """Canonical JSON (RFC 8785), the exact bytes of ``uc-manifest.json``."""
        return canonical_json(self.to_dict())

    def prove(self, name: str) -> dict[str, Any]:
        """Inclusion proof of one tensor under the root."""
        ordered = _sorted(self.tensors)
        idx = next((i for i, e in enumerate(ordered) if e.name == name), None)
        if idx is None:
            raise KeyError(name)
        leaves = [e.leaf_hash() for e in ordered]
        return {
            "name": name,
            "index": idx,
            "size": len(ordered),
            "leaf": ordered[idx].leaf_data().decode(),
            "proof": [h.hex() for h in merkle.inclusion_proof(leaves, idx)],
            "root": str(self.root),
        }

    @classmethod
    def from_json(cls, data: bytes, origin: str) -> Manifest:
        """Parse and validate; every structural problem raises MalformedPack naming the field."""
        obj = _load_json(data, origin)
        _need(isinstance(obj, dict) and obj.get("format") == MANIFEST_FORMAT, origin, "format")
        _check_scheme(obj, origin)
        _need(isinstance(obj.get("tensors"), list), origin, "tensors")
        entries = _tensor_entries(obj["tensors"], origin)
        sig, cal = obj.get("source_signature"), obj.get("calibration")
        m = cls(
            scheme=obj["scheme"],
            tensors=entries,
            files=_digests(obj, "files", origin),
            source_files=_digests(obj, "source_files", origin),
            source_signature=SourceSignature.from_dict(sig, origin) if sig is not None else None,
            calibration=CalibrationRecord.from_dict(cal, origin) if cal is not None else None,
        )
        if obj.get("root") != str(m.root):
            raise MalformedPack(
                f"{origin}: manifest root {obj.get('root')} does not match its entries ({m.root})",
                path=origin,
                field="root",
            )
        return m


def _need(cond: bool, origin: str, where: str) -> None:
    if not cond:
        raise MalformedPack(f"{origin}: manifest field {where} is missing or invalid", path=origin, field=where)


def _check_scheme(obj: dict[str, Any], origin: str) -> None:
    """The manifest's scheme is one :class:`Scheme` reads (rebuild and the transformers integration build it)."""
    _need(isinstance(obj.get("scheme"), dict), origin, "scheme")
    try:
        Scheme.from_dict(obj["scheme"])
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError, UsageError) as exc:
        raise MalformedPack(f"{origin}: manifest field scheme is invalid: {exc}", path=origin, field="scheme") from None


def _digests(obj: dict[str, Any], key: str, origin: str) -> dict[str, Digest]:
    """The file digests under ``key`` ({} when absent), each name safe to join to a directory."""
    val = obj.get(key, {})
    _need(isinstance(val, dict), origin, key)
    unsafe = next((k for k in val if not is_safe_relative(k)), None)
    if unsafe is not None:  # a name that would leave the directory it is joined to
        raise MalformedPack(
            f"{origin}: manifest field {key} names an unsafe file {unsafe!r} (absolute, '..' or empty parts)",
            path=origin,
            field=key,
        )
    bad = next((k for k, v in val.items() if not _is_digest(v)), None)
    if bad is not None:
        raise MalformedPack(f"{origin}: manifest field {key} holds a bad digest for {bad!r}", path=origin, field=key)
    return {k: Digest.parse(v) for k, v in val.items()}


def parse_tensor_entries(tensors: Any, origin: str) -> list[TensorEntry]:
    """Tensor entries as a manifest lists them (``TensorEntry.to_dict``), each checked as the manifest's are:
    MalformedPack naming ``origin`` and the field."""
    _need(isinstance(tensors, list), origin, "tensors")
    return _tensor_entries(tensors, origin)


def _tensor_entries(tensors: list[Any], origin: str) -> list[TensorEntry]:
    """The tensor entries, each checked: name and dtype, shape, a name not seen before, a safe file name."""
    entries: list[TensorEntry] = []
    seen: set[str] = set()
    for i, t in enumerate(tensors):
        where = f"tensors[{i}]"
        _need(isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("dtype"), str), origin, where)
        _need(isinstance(t.get("shape"), list) and all(_is_dim(d) for d in t["shape"]), origin, f"{where}.shape")
        _need(t["name"] not in seen, origin, f"{where}.name (duplicate {t['name']!r})")
        _need(isinstance(t.get("file", ""), str), origin, f"{where}.file")
        _need(t.get("file", "") == "" or is_safe_relative(t["file"]), origin, f"{where}.file (unsafe file name)")
        seen.add(t["name"])
        entries.append(_tensor_entry(t, where, origin))
    return entries


def _tensor_entry(t: dict[str, Any], where: str, origin: str) -> TensorEntry:
    """One checked tensor entry: its quantization record and digests read."""
    try:
        quant = None if t.get("quant") is None else QuantRecord.from_manifest(t["quant"])
    except (ValueError, TypeError) as exc:
        raise MalformedPack(
            f"{origin}: manifest {where} ({t['name']!r}): {exc}", path=origin, field=f"{where}.quant"
        ) from None
    try:
        return TensorEntry(
            t["name"],
            t["dtype"],
            tuple(t["shape"]),
            Digest.parse(t["digest"]),
            Digest.parse(t["source_digest"]),
            t.get("file", ""),
            quant,
        )
    except (KeyError, ValueError, TypeError):
        raise MalformedPack(
            f"{origin}: manifest {where} ({t['name']!r}) has a bad digest", path=origin, field=where
        ) from None


def _is_digest(v: Any) -> bool:
    try:
        Digest.parse(v)
    except (ValueError, TypeError):
        return False
    return True


def _is_dim(d: Any) -> bool:
    return isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 64


def _load_json(data: bytes, origin: str) -> Any:
    """The manifest's JSON value; MalformedPack unless it is JSON that RFC 8785 can write back (no floats,
    NaN or Infinity, no lone surrogate escapes, no nesting beyond what the parser handles)."""
    try:
        obj = json.loads(data)
        canonical_json(obj)
    except RecursionError:
        raise MalformedPack(f"{origin}: manifest nests too deeply", path=origin) from None
    except (ValueError, TypeError) as exc:  # UnicodeError is a ValueError; canonical JSON refuses floats (TypeError)
        raise MalformedPack(f"{origin}: manifest is not JSON uc-attest writes: {exc}", path=origin) from None
    return obj


def shape_finding(want: TensorEntry, dtype: str, shape: tuple[int, ...]) -> Finding | None:
    """A tensor's dtype and shape against its entry: None when they are the entry's."""
    if (dtype, tuple(shape)) == (want.dtype, want.shape):
        return None
    return FindingKind.SHAPE_DIFFERS.at(want.name, f"{want.dtype}{list(want.shape)}", f"{dtype}{list(shape)}")


def digest_finding(want: TensorEntry, got: Digest, differs: FindingKind = FindingKind.DIGEST_DIFFERS) -> Finding | None:
    """A tensor's digest against its entry: None when it is the entry's."""
    return None if got == want.digest else differs.at(want.name, str(want.digest), str(got))


def diff_tensors(expected: Manifest, actual: dict[str, TensorEntry]) -> list[Finding]:
    """Every difference between expected entries and what was reconstructed, by tensor name."""
    findings: list[Finding | None] = []
    for e in _sorted(expected.tensors):
        a = actual.get(e.name)
        if a is None:
            findings.append(FindingKind.MISSING_TENSOR.at(e.name, str(e.digest)))
        else:
            findings.append(shape_finding(e, a.dtype, a.shape) or digest_finding(e, a.digest))
    for name in sorted(set(actual) - {e.name for e in expected.tensors}):
        findings.append(FindingKind.ADDED_TENSOR.at(name, None, str(actual[name].digest)))
    return [f for f in findings if f is not None]
