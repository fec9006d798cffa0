"""Write a pack: quantize each tensor (torch, CPU or CUDA), store components, copy files, manifest.

All or nothing: everything goes into a temporary sibling directory that is renamed
into place only when complete. Digests of the reconstruction are computed with the
same host decoder that ``verify`` uses.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..core.device import Device, torch_device
from ..core.digest import Digest, canonical_json, sha256_file
from ..core.fsutil import atomic_output_dir, atomic_write_bytes
from ..core.stfile import OutTensor, SafetensorsFile, TensorInfo, out_tensor, write_safetensors
from ..errors import Finding, MalformedModel, MalformedPack, OperationalError, VerificationFailed
from ..manifest import (
    CalibrationRecord,
    Manifest,
    SourceSignature,
    TensorEntry,
    moments_digest_of,
    parse_tensor_entries,
)
from ..quant.allocate import Candidates
from ..quant.measure import Candidate, measure
from ..quant.quantize import quantize_tensor
from ..quant.records import QuantRecord
from ..quant.scheme import Scheme
from ..source import ModelSource, SourceTensor
from .check import Progress
from .layout import (
    CONFIG_NAME,
    MANIFEST_NAME,
    META_FORMAT,
    META_SCHEME,
    META_TENSORS,
    MOMENTS_SUFFIX,
    PACK_FORMAT,
    PACK_FORMAT_V2,
    QUANT_METHOD,
    QUANTIZATION_CONFIG,
    SUFFIXES,
)

#: Committed calibration moments of a tensor (int16, ldlq.py), or None: quantized without feedback.
MomentsSource = Callable[[str, tuple[int, ...]], torch.Tensor | None]


def _no_progress(_name: str, _n: int) -> None:
    return None


def resolve_device(device: Device | str) -> torch.device:
    """:func:`~uc_attest.core.device.torch_device`, with TF32 off on CUDA (packing reproduces bit for bit)."""
    dev = torch_device(device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return dev


class _HashingWriter:
    """A binary file wrapper that hashes what is written (the shard's digest without re-reading it)."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.hash = hashlib.sha256()

    def write(self, data: bytes | memoryview) -> int:
        self.hash.update(data)
        return int(self._fh.write(data))


def pack_config(config: dict[str, Any], scheme: Scheme, dtype: str | None) -> bytes:
    """The pack's config.json (format 2): the source config plus its ``quantization_config`` (transformers'
    quantizer plugin reads it: ``import uc_attest.hf``), as indented JSON with sorted keys."""
    qc = {"quant_method": QUANT_METHOD, "format": PACK_FORMAT_V2, "scheme": scheme.to_dict(), "dtype": dtype}
    return (json.dumps({**config, QUANTIZATION_CONFIG: qc}, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True)
class PackResult:
    """A written pack; ``rank`` of ``world_size``: which rank of a distributed pack returned it (0 of 1 alone)."""

    path: Path
    manifest: Manifest
    device: str
    rank: int = 0
    world_size: int = 1

    def to_dict(self) -> dict[str, Any]:
        """What ``pack --json`` prints, but the clock (``seconds``, ``stages``): the caller's, who timed it."""
        m = self.manifest
        return {
            "ok": True,
            "pack": str(self.path),
            "root": str(m.root),
            "tensors": len(m.tensors),
            "quantized": sum(1 for t in m.tensors if t.quant),
            "calibrated": sum(1 for t in m.tensors if t.quant and t.quant.moments),
            "scheme": m.scheme,
            "source_signature": m.source_signature.to_dict() if m.source_signature else None,
            "calibration": m.calibration.to_dict() if m.calibration else None,
            "ranks": self.world_size,
        }


#: The source files' digests as the pack read them -> findings (a changed or uncovered file).
SourceCheck = Callable[[dict[str, Digest]], list[Finding]]


@dataclass(frozen=True)
class KeptSignature:
    """A verified source signature the pack keeps: its manifest ``record``, the ``data`` written into the pack
    (the bytes that verified: a signature file swapped after its verification is never what the pack keeps),
    and the ``check`` of the source files as they were read (None: nothing to check again, a rebuild)."""

    record: SourceSignature
    data: bytes = field(repr=False)
    check: SourceCheck | None = None


@dataclass(frozen=True)
class WriteOptions:
    """How :func:`write_pack` writes, beyond the scheme and device.

    ``moments`` gives the committed calibration moments of a tensor (feedback schemes); they are stored in the
    pack next to its codes so a rebuild can reproduce them bit for bit. ``pack_format`` 2 records the
    ``quantization_config`` in the pack's config.json (docs/format.md 1); 1 copies config.json verbatim (what
    packs made before were; a rebuild of such a pack writes format 1). ``signature``: the verified source
    signature to keep and record; its check sees the digests of the source files as they were read and any
    finding aborts the pack (nothing is written). ``skip_files``: source files that are not part of the model
    (a signature inside the source directory). ``calibration``: where the moments came from, recorded in the
    manifest with the digest of the moments committed here. ``progress(name, weights)`` after each quantized
    tensor. ``prepared``: tensors already quantized and measured at their width (the allocation's
    candidates), written as they are. ``known``: source digests already taken, not taken again. ``written``: shards
    the ranks of a distributed pack wrote, moved into the pack instead of written."""

    force: bool = False
    progress: Progress | None = None
    moments: MomentsSource | None = None
    pack_format: int = 2
    signature: KeptSignature | None = None
    skip_files: tuple[str, ...] = ()
    calibration: CalibrationRecord | None = None
    prepared: Candidates | None = None
    known: SourceDigests | None = None
    written: ShardsWritten | None = None


def write_pack(
    source_dir: Path, out_dir: Path, scheme: Scheme, device: str = "auto", options: WriteOptions | None = None
) -> PackResult:
    """Quantize ``source_dir`` into a new pack at ``out_dir`` (all or nothing), as ``options`` say."""
    o = options or WriteOptions()
    dev = resolve_device(device)
    job = _Job(scheme, dev, o.moments, o.progress or _no_progress, o.prepared, o.known)
    src = ModelSource(source_dir, o.skip_files)
    try:
        _refuse_reserved_names(src)
        with atomic_output_dir(Path(out_dir), overwrite=o.force) as tmp:
            shards = [
                _adopt_shard(shard, tensors, o.written, tmp, job)
                if o.written is not None and shard in o.written.shards
                else _write_shard(src, shard, tensors, tmp, job)
                for shard, tensors in src.by_shard()
            ]
            entries = [e for shard in shards for e in shard.entries]
            _write_extra_files(src, tmp, scheme, entries, o.pack_format)
            files, source_files = _file_digests(src, tmp, shards)
            kept = o.signature
            if kept is not None and kept.check is not None and (findings := kept.check(source_files)):
                raise VerificationFailed(findings)  # a source file changed since it was verified, or is not covered
            if kept is not None:
                files[kept.record.file] = _keep_signature(kept.data, tmp / kept.record.file)
            calibration = o.calibration
            if calibration is not None:
                calibration = replace(calibration, moments=moments_digest_of(entries))
            manifest = Manifest(
                scheme=scheme.to_dict(),
                tensors=entries,
                files=files,
                source_files=source_files,
                source_signature=kept.record if kept is not None else None,
                calibration=calibration,
            )
            atomic_write_bytes(tmp / MANIFEST_NAME, manifest.to_json())
        return PackResult(Path(out_dir), manifest, dev.type)
    finally:
        src.close()


@dataclass(frozen=True)
class _Job:
    """What every tensor of a pack is quantized with."""

    scheme: Scheme
    device: torch.device
    moments: MomentsSource | None
    progress: Progress
    prepared: Candidates | None = None
    known: SourceDigests | None = None


@dataclass(frozen=True)
class SourceDigests:
    """Digests of the source already taken (by the ranks of a distributed pack, each over its share): whole
    source files by name, and quantized tensors' source bytes by tensor name."""

    files: dict[str, Digest]
    tensors: dict[str, Digest]


@dataclass
class _ShardParts:
    """What the pack's shard is being built from: its components, header records and stored moments."""

    outs: list[OutTensor] = field(default_factory=list)
    qmeta: dict[str, dict[str, Any]] = field(default_factory=dict)
    stored_moments: dict[Digest, str] = field(default_factory=dict)  # digest -> the tensor whose copy is stored


@dataclass(frozen=True)
class WrittenShard:
    """One shard of the pack as written: its manifest entries, and the digests of the pack's and the source's
    file (as hashed while written and read). A distributed pack's ranks send it to rank 0 as JSON."""

    name: str
    entries: list[TensorEntry]
    digest: Digest
    source_digest: Digest

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entries": [e.to_dict() for e in self.entries],
            "digest": str(self.digest),
            "source_digest": str(self.source_digest),
        }

    @classmethod
    def from_dict(cls, d: Any, origin: str) -> WrittenShard:
        """A record another rank sent: OperationalError naming ``origin`` when it is not well formed."""
        try:
            name = d["name"]
            if not isinstance(name, str):
                raise TypeError(name)
            return cls(
                name,
                parse_tensor_entries(d["entries"], origin),
                Digest.parse(d["digest"]),
                Digest.parse(d["source_digest"]),
            )
        except (KeyError, TypeError, ValueError, MalformedPack):
            raise OperationalError(f"{origin}: a shard record that is not well formed") from None


@dataclass(frozen=True)
class ShardsWritten:
    """Shards of the pack the ranks of a distributed pack wrote into ``directory`` (a scratch directory on the
    filesystem the output is on), and each one's record: :func:`write_pack` moves each file into the pack and
    checks it (the source's tensors in order, its digest as hashed there, the source digests the job knows)."""

    directory: Path
    shards: dict[str, WrittenShard]


def _refuse_reserved_names(src: ModelSource) -> None:
    for t in src.tensors:
        if t.name.endswith((*SUFFIXES, MOMENTS_SUFFIX)):
            raise MalformedModel(f"tensor {t.name!r} ends with a reserved uc-attest suffix", tensor=t.name)


def _write_shard(src: ModelSource, shard: str, tensors: list[SourceTensor], tmp: Path, job: _Job) -> WrittenShard:
    """Quantize or copy each tensor of ``shard`` and write the pack's shard, hashing both files in one pass (the
    source's digests the job already knows are not taken again: a quantized tensor's source bytes are then not
    read at all)."""
    f = src.file(shard)
    parts = _ShardParts()
    entries: list[TensorEntry] = []
    known = job.known.files.get(shard) if job.known else None
    source_hash = None if known else hashlib.sha256(f.header_bytes())  # the tensors are contiguous, in offset order
    for st in tensors:
        info = st.info
        quantized = job.scheme.applies_to(info.name, info.dtype, info.shape)
        sdig = job.known.tensors.get(info.name) if job.known else None
        raw = None
        if not quantized or sdig is None or source_hash is not None:
            raw = f.raw(info.name)
            if source_hash is not None:
                source_hash.update(raw)
            sdig = sdig or Digest.of_bytes(raw)
        quant: QuantRecord | None = None
        if quantized:
            digest, quant = _quantize(f, info, parts, job)
            job.progress(info.name, info.numel)
        else:
            assert raw is not None
            digest = sdig
            parts.outs.append(OutTensor(info.name, info.dtype, info.shape, raw))
        entries.append(TensorEntry(info.name, info.dtype, info.shape, digest, sdig, shard, quant))
    digest = _write_hashed(tmp / shard, parts.outs, _header(job.scheme, parts.qmeta))
    if known is None:
        assert source_hash is not None
        known = Digest(source_hash.hexdigest())
    return WrittenShard(shard, entries, digest, known)


def write_shards(
    source_dir: Path,
    directory: Path,
    scheme: Scheme,
    device: str,
    options: WriteOptions,
    select: Callable[[str], bool],
) -> list[WrittenShard]:
    """The pack's shards ``select`` accepts, written into ``directory`` as :func:`write_pack` writes them (a rank's
    share of a distributed pack's writing; rank 0's writer then moves them into the pack: ``options.written``)."""
    o = options
    job = _Job(scheme, resolve_device(device), o.moments, o.progress or _no_progress, o.prepared, o.known)
    src = ModelSource(source_dir, o.skip_files)
    try:
        return [_write_shard(src, shard, tensors, directory, job) for shard, tensors in src.by_shard() if select(shard)]
    finally:
        src.close()


def _adopt_shard(shard: str, tensors: list[SourceTensor], written: ShardsWritten, tmp: Path, job: _Job) -> WrittenShard:
    """A shard a rank wrote, moved into the pack being built and checked there: it lists the source shard's tensors
    in order (name, dtype, shape, this file), each quantized one at the width and group size of the job's scheme and
    each other one unchanged (its digest its source's), it hashes to its record, and its source digests are the ones
    the job knows. OperationalError naming the shard otherwise (the ranks disagree: nothing is written). A quantized
    tensor's reconstruction digest and quality record are the writing rank's, which checked its part against them
    (parts.py); ``verify`` of the pack is the end-to-end check."""
    rec = written.shards[shard]
    want = [(t.name, t.info.dtype, tuple(t.info.shape), shard, _width(job.scheme, t)) for t in tensors]
    got = [(e.name, e.dtype, tuple(e.shape), e.file, (e.quant.bits, e.quant.group_size) if e.quant else None)
           for e in rec.entries]  # fmt: skip
    if rec.name != shard or got != want:
        raise OperationalError(f"{shard}: the shard a rank wrote does not list the source shard's tensors", path=shard)
    known = job.known or SourceDigests({}, {})
    wrong = [e.name for e in rec.entries if e.name in known.tensors and known.tensors[e.name] != e.source_digest]
    if wrong or (shard in known.files and known.files[shard] != rec.source_digest):
        raise OperationalError(f"{shard}: the shard a rank wrote records other source digests", path=shard)
    if any(e.quant is None and e.digest != e.source_digest for e in rec.entries):
        raise OperationalError(f"{shard}: the shard a rank wrote changes a tensor it stores unchanged", path=shard)
    path, dest = written.directory / shard, tmp / shard
    if path.is_symlink() or not path.is_file():
        raise OperationalError(f"{shard}: the shard a rank wrote is missing", path=shard)
    os.replace(path, dest)  # the same filesystem (the scratch directory sits beside the output)
    if sha256_file(dest) != rec.digest:
        raise OperationalError(f"{shard}: the shard a rank wrote does not hash to its record", path=shard)
    return rec


def _width(scheme: Scheme, t: SourceTensor) -> tuple[int, int] | None:
    """The width and group size ``scheme`` quantizes a source tensor at, or None (stored unchanged)."""
    if not scheme.applies_to(t.name, t.info.dtype, t.info.shape):
        return None
    return scheme.bits_for(t.name), scheme.group_size


def quantize_into(
    store: Candidates,
    source_dir: Path,
    scheme: Scheme,
    device: str,
    moments: MomentsSource | None,
    select: Callable[[str], bool],
    progress: Progress | None = None,
    skip_files: tuple[str, ...] = (),
) -> None:
    """What :func:`write_pack` quantizes, for the tensors ``select`` accepts, measured as it measures them and
    put in ``store`` (a rank's share of a distributed pack: the writer then takes them as they are)."""
    job = _Job(scheme, resolve_device(device), moments, progress or _no_progress)
    src = ModelSource(source_dir, skip_files)
    try:
        for shard, tensors in src.by_shard():
            f = src.file(shard)
            for st in tensors:
                if scheme.applies_to(st.name, st.info.dtype, st.info.shape) and select(st.name):
                    try:
                        c = _candidate(f, st.info, job)
                    except (MemoryError, torch.OutOfMemoryError):
                        raise OperationalError(f"out of memory quantizing {st.name}", tensor=st.name) from None
                    store.put(st.name, c)
                    job.progress(st.name, st.info.numel)
    finally:
        src.close()


def _candidate(f: SafetensorsFile, info: TensorInfo, job: _Job) -> Candidate:
    """One tensor quantized by the job's scheme and measured (or as prepared)."""
    scheme = job.scheme
    c = job.prepared.get(info.name, scheme.bits_for(info.name)) if job.prepared is not None else None
    if c is not None and (tuple(c.q.shape) != tuple(info.shape) or c.q.dtype != info.dtype):
        raise MalformedPack(
            f"the quantized part of {info.name!r} is {c.q.dtype}{list(c.q.shape)}, the source tensor "
            f"{info.dtype}{list(info.shape)}: not a part of this source",
            tensor=info.name,
        )
    if c is None:
        m16 = job.moments(info.name, info.shape) if job.moments else None
        x = f.tensor(info.name)
        c = measure(info.name, x, quantize_tensor(info.name, x, info.dtype, scheme, job.device, m16), scheme.group_size)
    return c


def _quantize(f: SafetensorsFile, info: TensorInfo, parts: _ShardParts, job: _Job) -> tuple[Digest, QuantRecord]:
    """Quantize one tensor into ``parts`` (codes, scales, zero-points; moments once per input): digest, record."""
    scheme = job.scheme
    c = _candidate(f, info, job)
    q, digest, err_ppm = c.q, c.digest, c.err_ppm
    parts.outs += [
        out_tensor(info.name + SUFFIXES[0], q.codes),
        out_tensor(info.name + SUFFIXES[1], q.scales),
        out_tensor(info.name + SUFFIXES[2], q.zeros),
    ]
    moments_digest, shared = _store_moments(info.name, q.moments, parts)
    quant = QuantRecord(q.bits, scheme.group_size, q.exponent, q.moments is not None, moments_digest, err_ppm, shared)
    parts.qmeta[info.name] = quant.to_header(info.dtype, info.shape)
    return digest, quant


def _store_moments(name: str, moments: torch.Tensor | None, parts: _ShardParts) -> tuple[Digest | None, str | None]:
    """The moments' digest, and the tensor already storing the same moments in this shard (q/k/v, gate/up:
    one input, one copy) — else they are stored under ``name``."""
    if moments is None:
        return None, None
    m_out = out_tensor(name + MOMENTS_SUFFIX, moments)
    digest = Digest.of_bytes(m_out.data)
    shared = parts.stored_moments.get(digest)
    if shared is None:
        parts.outs.append(m_out)
        parts.stored_moments[digest] = name
    return digest, shared


def _header(scheme: Scheme, qmeta: dict[str, dict[str, Any]]) -> dict[str, str]:
    """The shard's ``__metadata__``: format, scheme, and every quantized tensor's record (docs/format.md 2)."""
    return {
        META_FORMAT: PACK_FORMAT,
        META_SCHEME: canonical_json(scheme.to_dict()).decode(),
        META_TENSORS: canonical_json(qmeta).decode(),
    }


def _write_hashed(path: Path, outs: list[OutTensor], meta: dict[str, str]) -> Digest:
    """Write a safetensors file and return its SHA-256, computed while writing (not read back)."""
    with open(path, "wb") as fh:
        hashing = _HashingWriter(fh)
        write_safetensors(hashing, outs, meta)  # type: ignore[arg-type]
    return Digest(hashing.hash.hexdigest())


def _write_extra_files(src: ModelSource, tmp: Path, scheme: Scheme, entries: list[TensorEntry], fmt: int) -> None:
    """Copy the model's other files; format 2 writes config.json with its ``quantization_config``."""
    dtypes = sorted({e.dtype for e in entries if e.quant is not None})
    for rel in src.extra_files:
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel == CONFIG_NAME and fmt == 2:
            (tmp / rel).write_bytes(pack_config(src.config, scheme, dtypes[0] if len(dtypes) == 1 else None))
        else:
            shutil.copyfile(src.root / rel, tmp / rel)


def _file_digests(
    src: ModelSource, tmp: Path, shards: list[WrittenShard]
) -> tuple[dict[str, Digest], dict[str, Digest]]:
    """Every file of the pack and of the source it was read from, by SHA-256 (shards: as hashed while written
    and read, other files now)."""
    rels = sorted([*src.shards, *src.extra_files])
    written = {shard.name: shard.digest for shard in shards}
    read = {shard.name: shard.source_digest for shard in shards}
    files = {rel: written.get(rel) or sha256_file(tmp / rel) for rel in rels}
    source_files = {rel: read.get(rel) or sha256_file(src.root / rel) for rel in rels}
    return files, source_files


def _keep_signature(data: bytes, dest: Path) -> Digest:
    """Keep the verified source signature (its bytes as they verified) in the pack; their digest."""
    dest.write_bytes(data)
    return Digest(hashlib.sha256(data).hexdigest())
