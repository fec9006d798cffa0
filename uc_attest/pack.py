"""The on-disk pack: safetensors shards of quantized components, copied files, manifest.

Writing is atomic (temporary directory, fsync, rename). Reading trusts nothing:
tensors are located from the shard headers themselves, every component is
checked against its recorded shape before it is decoded. docs/format.md is the spec.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .digest import Digest, canonical_json, sha256_file
from .errors import MalformedPack, MalformedSafetensors, UsageError
from .fsutil import atomic_output_dir, atomic_write_bytes
from .manifest import Manifest, TensorEntry
from .quant import QuantizedTensor, Scheme, quantize_tensor, reconstruct_tensor
from .quant.codec import packed_size
from .quant.quantize import EXP_RANGE
from .source import ModelSource
from .stfile import TORCH_DTYPES, OutTensor, SafetensorsFile, out_tensor, tensor_bytes, write_safetensors

PACK_FORMAT = "uc-pack/1"
MANIFEST_NAME = "uc-manifest.json"
SUFFIXES = (".uc_codes", ".uc_scales", ".uc_zeros")
META_FORMAT, META_SCHEME, META_TENSORS = "uc.format", "uc.scheme", "uc.quantized"

Progress = Callable[[str, int], None]


def _no_progress(_name: str, _n: int) -> None:
    return None


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` without a GPU is a usage error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return torch.device(device)


def tensor_digest(t: torch.Tensor) -> Digest:
    """SHA-256 of a tensor's raw little-endian C-order bytes (its safetensors bytes)."""
    return Digest.of_bytes(tensor_bytes(t))


def _decode(q: QuantizedTensor, scheme: Scheme) -> torch.Tensor:
    return reconstruct_tensor(q.codes, q.scales, q.zeros, q.exponent, q.shape, q.dtype, scheme.bits, scheme.group_size)


@dataclass(frozen=True)
class PackResult:
    path: Path
    manifest: Manifest


def write_pack(
    source_dir: Path,
    out_dir: Path,
    scheme: Scheme,
    device: str = "auto",
    *,
    force: bool = False,
    progress: Progress = _no_progress,
) -> PackResult:
    """Quantize ``source_dir`` into a new pack at ``out_dir`` (all or nothing)."""
    dev = resolve_device(device)
    src = ModelSource(source_dir)
    try:
        names = {t.name for t in src.tensors}
        for n in sorted(names):
            if n.endswith(SUFFIXES):
                raise MalformedPack(f"tensor {n!r} ends with a reserved uc-attest suffix", tensor=n)
        entries: list[TensorEntry] = []
        with atomic_output_dir(Path(out_dir), overwrite=force) as tmp:
            for shard, tensors in src.by_shard():
                f = src.file(shard)
                outs: list[OutTensor] = []
                qmeta: dict[str, dict[str, Any]] = {}
                for st in tensors:
                    info = st.info
                    raw = f.raw(info.name)
                    sdig = Digest.of_bytes(raw)
                    if scheme.applies_to(info.name, info.dtype, info.shape):
                        q = quantize_tensor(info.name, f.tensor(info.name), info.dtype, scheme, dev)
                        digest = tensor_digest(_decode(q, scheme))
                        outs += [
                            out_tensor(info.name + SUFFIXES[0], q.codes),
                            out_tensor(info.name + SUFFIXES[1], q.scales),
                            out_tensor(info.name + SUFFIXES[2], q.zeros),
                        ]
                        qmeta[info.name] = {"dtype": info.dtype, "shape": list(info.shape), "exponent": q.exponent}
                        quant: dict[str, int] | None = {
                            "bits": scheme.bits,
                            "group_size": scheme.group_size,
                            "exponent": q.exponent,
                        }
                    else:
                        digest, quant = sdig, None
                        outs.append(OutTensor(info.name, info.dtype, info.shape, raw))
                    entries.append(TensorEntry(info.name, info.dtype, info.shape, digest, sdig, shard, quant))
                    progress(info.name, info.numel)
                meta = {
                    META_FORMAT: PACK_FORMAT,
                    META_SCHEME: canonical_json(scheme.to_dict()).decode(),
                    META_TENSORS: canonical_json(qmeta).decode(),
                }
                with open(tmp / shard, "wb") as fh:
                    write_safetensors(fh, outs, meta)
            for rel in src.extra_files:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src.root / rel, tmp / rel)
            files = {rel: sha256_file(tmp / rel) for rel in sorted([*src.shards, *src.extra_files])}
            source_files = {rel: sha256_file(src.root / rel) for rel in sorted([*src.shards, *src.extra_files])}
            manifest = Manifest(scheme=scheme.to_dict(), tensors=entries, files=files, source_files=source_files)
            atomic_write_bytes(tmp / MANIFEST_NAME, manifest.to_json())
        return PackResult(Path(out_dir), manifest)
    finally:
        src.close()


def load_manifest(path: Path) -> Manifest:
    """Read a manifest file (``uc-manifest.json`` of a pack or a separately kept one)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise MalformedPack(f"{path}: manifest not found", path=str(path)) from None
    except OSError as exc:
        raise MalformedPack(f"{path}: cannot read manifest: {exc.strerror}", path=str(path)) from None
    return Manifest.from_json(data, str(path))


@dataclass(frozen=True)
class PackedTensor:
    """Where a tensor lives in a pack and how to decode it."""

    name: str
    shard: str
    dtype: str
    shape: tuple[int, ...]
    exponent: int | None  # None: stored unchanged


class Pack:
    """An opened pack directory. Tensors are found from shard headers, not from the manifest."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise MalformedPack(f"{self.root}: not a pack directory", path=str(self.root))
        self.files: dict[str, SafetensorsFile] = {}
        self.unreadable: dict[str, str] = {}
        self.tensors: dict[str, PackedTensor] = {}
        self.schemes: dict[str, Scheme] = {}
        for p in sorted(self.root.glob("*.safetensors")):
            try:
                self._index(p)
            except (MalformedSafetensors, MalformedPack) as exc:
                self.unreadable[p.name] = exc.message

    def _index(self, path: Path) -> None:
        f = SafetensorsFile(path)
        meta = f.metadata
        if meta.get(META_FORMAT) != PACK_FORMAT:
            raise MalformedPack(
                f"{path}: not a {PACK_FORMAT} shard (metadata {META_FORMAT!r} is {meta.get(META_FORMAT)!r})",
                path=str(path),
            )
        try:
            scheme = Scheme.from_dict(json.loads(meta[META_SCHEME]))
            qmeta = json.loads(meta[META_TENSORS])
        except (KeyError, ValueError, TypeError, UsageError) as exc:
            raise MalformedPack(f"{path}: bad pack metadata: {exc}", path=str(path)) from None
        if not isinstance(qmeta, dict):
            raise MalformedPack(f"{path}: bad pack metadata {META_TENSORS!r}", path=str(path))
        self.files[path.name] = f
        self.schemes[path.name] = scheme
        component_names = {n + s for n in qmeta for s in SUFFIXES}
        for name, q in qmeta.items():
            try:
                shape = tuple(int(d) for d in q["shape"])
                pt = PackedTensor(name, path.name, str(q["dtype"]), shape, int(q["exponent"]))
            except (KeyError, ValueError, TypeError):
                raise MalformedPack(f"{path}: bad record for tensor {name!r}", tensor=name) from None
            self._add(pt)
        for name, info in f.infos.items():
            if name not in component_names:
                self._add(PackedTensor(name, path.name, info.dtype, info.shape, None))

    def _add(self, pt: PackedTensor) -> None:
        if pt.name in self.tensors:
            raise MalformedPack(f"{self.root}: tensor {pt.name!r} appears in two shards", tensor=pt.name)
        self.tensors[pt.name] = pt

    def reconstruct(self, name: str) -> torch.Tensor:
        """Decode one tensor on CPU; any inconsistency raises MalformedPack naming the tensor."""
        pt = self.tensors[name]
        f = self.files[pt.shard]
        if pt.exponent is None:
            return f.tensor(name)
        scheme = self.schemes[pt.shard]
        if pt.dtype not in TORCH_DTYPES or len(pt.shape) < 2 or not EXP_RANGE[0] <= pt.exponent <= EXP_RANGE[1]:
            raise MalformedPack(f"tensor {name!r}: bad dtype/shape/exponent record", tensor=name)
        comps = [n for n in (name + s for s in SUFFIXES) if n in f.infos]
        if len(comps) != 3:
            raise MalformedPack(f"tensor {name!r}: quantized components missing in {pt.shard}", tensor=name)
        codes, scales, zeros = (f.infos[c] for c in comps)
        rows = 1
        for d in pt.shape[:-1]:
            rows *= d
        groups = -(-pt.shape[-1] // scheme.group_size)
        want_codes = packed_size(rows * groups * scheme.group_size, scheme.bits)
        if (
            (codes.dtype, codes.shape) != ("U8", (want_codes,))
            or (scales.dtype, scales.shape) != ("F16", (rows, groups))
            or (zeros.dtype, zeros.shape) != ("U8", (rows, groups))
        ):
            raise MalformedPack(f"tensor {name!r}: component dtypes/shapes do not match {list(pt.shape)}", tensor=name)
        return reconstruct_tensor(
            f.tensor(comps[0]),
            f.tensor(comps[1]),
            f.tensor(comps[2]),
            pt.exponent,
            pt.shape,
            pt.dtype,
            scheme.bits,
            scheme.group_size,
        )

    def iter_names(self) -> Iterator[str]:
        return iter(sorted(self.tensors))

    def close(self) -> None:
        for f in self.files.values():
            f.close()
