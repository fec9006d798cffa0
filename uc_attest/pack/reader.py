"""Open a pack and stream the bytes of each reconstructed tensor (NumPy, no torch).

Reading trusts nothing: tensors are located from the shard headers themselves,
every component's dtype and shape is checked before decoding, and scales must be
finite. Output is produced in blocks of rows so memory stays bounded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from ..core.digest import Digest
from ..core.stfile import SafetensorsFile, TensorInfo, nbytes
from ..errors import MalformedPack, MalformedSafetensors, UsageError
from ..quant import native_decode
from ..quant.decode_protocol import Decoding
from ..quant.records import QuantRecord
from ..quant.rotation import sign_key
from ..quant.scheme import EXP_RANGE, FLOAT_DTYPES, Scheme
from .layout import BLOCK_BYTES, META_FORMAT, META_SCHEME, META_TENSORS, MOMENTS_SUFFIX, PACK_FORMAT, SUFFIXES

#: Bytes per read of a tensor stored unchanged: hashing what was just copied while it is still in L2 runs at the
#: hash's speed, not at the memory's (measured: 0.8 -> 1.4 GB/s on this project's 2-core machines).
STORED_BLOCK = 512 << 10


@dataclass(frozen=True)
class PackedTensor:
    """Where a tensor lives in a pack and how to decode it (``quant`` None: stored unchanged)."""

    name: str
    shard: str
    dtype: str
    shape: tuple[int, ...]
    quant: QuantRecord | None = None

    @property
    def nbytes(self) -> int:
        return nbytes(self.dtype, self.shape)


def parse_shard_header(
    path: str, metadata: dict[str, str], infos: dict[str, TensorInfo]
) -> tuple[Scheme, list[PackedTensor]]:
    """The scheme and the tensors of one pack shard, from its safetensors header: quantized tensors from
    ``uc.quantized`` (their components named by suffix), every other tensor as stored. MalformedPack otherwise."""
    shard = Path(path).name
    if metadata.get(META_FORMAT) != PACK_FORMAT:
        raise MalformedPack(
            f"{path}: not a {PACK_FORMAT} shard (metadata {META_FORMAT!r} is {metadata.get(META_FORMAT)!r})",
            path=path,
        )
    scheme_doc, qmeta = _json_metadata(path, metadata, META_SCHEME), _json_metadata(path, metadata, META_TENSORS)
    if not isinstance(scheme_doc, dict) or not isinstance(qmeta, dict):
        bad = META_SCHEME if not isinstance(scheme_doc, dict) else META_TENSORS
        raise MalformedPack(f"{path}: pack metadata {bad!r} is not a JSON object", path=path, field=bad)
    try:
        scheme = Scheme.from_dict(scheme_doc)
    except (KeyError, ValueError, TypeError, AttributeError, OverflowError, UsageError) as exc:
        raise MalformedPack(f"{path}: bad pack metadata {META_SCHEME!r}: {exc}", path=path, field=META_SCHEME) from None
    records: list[PackedTensor] = []
    for name, q in qmeta.items():
        try:
            records.append(PackedTensor(name, shard, *QuantRecord.from_header(q, scheme.bits, scheme.group_size)))
        except (ValueError, TypeError) as exc:
            raise MalformedPack(
                f"{path}: {META_TENSORS} record of tensor {name!r}: {exc}", path=path, tensor=name
            ) from None
    components = {pt.name + s for pt in records for s in SUFFIXES}
    components |= {pt.name + MOMENTS_SUFFIX for pt in records if pt.quant and pt.quant.moments}
    by_name = {pt.name: pt for pt in records}
    for pt in records:
        owner = pt.quant.moments_from if pt.quant else None
        if owner is not None:
            o = by_name.get(owner)
            if o is None or o.quant is None or not o.quant.moments or o.quant.moments_from is not None:
                raise MalformedPack(
                    f"{path}: tensor {pt.name!r}: its moments are said to be stored under "
                    f"{owner!r}, which stores none in this shard",
                    path=path,
                    tensor=pt.name,
                )
    stored = [
        PackedTensor(name, shard, info.dtype, info.shape) for name, info in infos.items() if name not in components
    ]
    both = next((pt.name for pt in stored if pt.name in by_name), None)
    if both is not None:
        raise MalformedPack(
            f"{path}: tensor {both!r} is both quantized ({META_TENSORS}) and stored", path=path, tensor=both
        )
    return scheme, records + stored


def _json_metadata(path: str, metadata: dict[str, str], key: str) -> Any:
    """A JSON value of the shard metadata; MalformedPack naming the key when missing or not JSON."""
    raw = metadata.get(key)
    if raw is None:
        raise MalformedPack(f"{path}: pack metadata {key!r} is missing", path=path, field=key)
    try:
        value = json.loads(raw)
        json.dumps(value, ensure_ascii=False).encode("utf-8")  # a lone surrogate escape names no tensor
        return value
    except RecursionError:
        raise MalformedPack(f"{path}: pack metadata {key!r} nests too deeply", path=path, field=key) from None
    except ValueError as exc:  # UnicodeEncodeError included
        raise MalformedPack(f"{path}: pack metadata {key!r} is not JSON: {exc}", path=path, field=key) from None


def component_specs(pt: PackedTensor, scheme: Scheme) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Dtype and shape each component of a quantized tensor must have; MalformedPack for a record no decoder
    can honour (the checks every decoder makes before it decodes)."""
    assert pt.quant is not None
    g, bits, exponent = scheme.group_size, pt.quant.bits, pt.quant.exponent
    if (
        pt.dtype not in FLOAT_DTYPES
        or len(pt.shape) < 2
        or 0 in pt.shape
        or not (EXP_RANGE[0] <= exponent <= EXP_RANGE[1])
        or not 2 <= bits <= 8
        or (scheme.rotated and (bits + g.bit_length() - 1 > 13 or g & (g - 1)))
    ):
        raise MalformedPack(f"tensor {pt.name!r}: bad dtype/shape/exponent/bits record", tensor=pt.name)
    groups = -(-(pt.nbytes // nbytes(pt.dtype, (1,))) // g)
    return {
        SUFFIXES[0]: ("U8", (groups * g * bits // 8,)),
        SUFFIXES[1]: ("F16", (groups,)),
        SUFFIXES[2]: ("U8", (groups,)),
    }


def check_components(pt: PackedTensor, scheme: Scheme, infos: dict[str, TensorInfo]) -> None:
    """Every component of a quantized tensor is in the shard with the dtype and shape its record implies."""
    for suffix, (dtype, shape) in component_specs(pt, scheme).items():
        info = infos.get(pt.name + suffix)
        if info is None:
            raise MalformedPack(f"tensor {pt.name!r}: component {suffix} missing in {pt.shard}", tensor=pt.name)
        if (info.dtype, info.shape) != (dtype, shape):
            raise MalformedPack(
                f"tensor {pt.name!r}: component {suffix} is {info.dtype}{list(info.shape)}, "
                f"expected {dtype}{list(shape)}",
                tensor=pt.name,
            )


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
            if p.is_symlink():  # never opened: it may lead anywhere (pack files are regular files)
                self.unreadable[p.name] = "a symbolic link, not a regular file of the pack"
                continue
            try:
                self._index(p)
            except (MalformedSafetensors, MalformedPack) as exc:
                self.unreadable[p.name] = exc.message

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _index(self, path: Path) -> None:
        f = SafetensorsFile(path)
        try:
            scheme, tensors = parse_shard_header(str(path), f.metadata, f.infos)
            twice = next((pt for pt in tensors if pt.name in self.tensors), None)
            if twice is not None:
                raise MalformedPack(
                    f"{path}: tensor {twice.name!r} is also in {self.tensors[twice.name].shard}",
                    path=str(path),
                    tensor=twice.name,
                )
        except MalformedPack:
            f.close()
            raise
        self.files[path.name] = f  # registered only once the whole shard is known to be consistent
        self.schemes[path.name] = scheme
        self.tensors.update((pt.name, pt) for pt in tensors)

    def iter_bytes(self, name: str) -> Iterator[bytes | memoryview]:
        """The reconstructed tensor's little-endian C-order bytes, in blocks.

        Raises MalformedPack naming the tensor on any inconsistency.
        """
        pt = self.tensors[name]
        f = self.files[pt.shard]
        if pt.quant is None:  # blocks that fit in L2: copied from the page cache, then hashed or written from cache
            size = pt.nbytes
            for start in range(0, size, STORED_BLOCK):
                yield f.pread(name, start, min(STORED_BLOCK, size - start))
            return
        yield from self._decode(pt, f, self.schemes[pt.shard])

    def _components(self, pt: PackedTensor, f: SafetensorsFile, scheme: Scheme) -> native_decode.Encoded:
        """The checked components of a quantized tensor, as the decoder takes them (the codes read lazily)."""
        assert pt.quant is not None
        name = pt.name
        check_components(pt, scheme, f.infos)
        scales, zeros = f.pread(name + SUFFIXES[1]), f.pread(name + SUFFIXES[2])
        return native_decode.Encoded(
            n=pt.nbytes // nbytes(pt.dtype, (1,)),
            dtype=pt.dtype,
            bits=pt.quant.bits,
            group_size=scheme.group_size,
            exponent=pt.quant.exponent,
            scales=bytes(scales),
            zeros=bytes(zeros),
            sign_key=sign_key(name) if scheme.rotated else None,
            sign_period=scheme.sign_period(pt.shape),
        )

    def _decode(self, pt: PackedTensor, f: SafetensorsFile, scheme: Scheme) -> Iterator[memoryview]:
        import numpy as np

        from ..quant.decode import decode_rows  # NumPy: only where a tensor's bytes are streamed out

        enc = self._components(pt, f, scheme)
        g, code_bytes = enc.group_size, enc.group_size * enc.bits // 8
        scales = np.frombuffer(enc.scales, dtype="<f2")
        zeros = np.frombuffer(enc.zeros, dtype=np.uint8)
        if not np.isfinite(scales).all():
            raise MalformedPack(f"tensor {pt.name!r}: non-finite scale", tensor=pt.name)
        groups = len(scales)
        how = Decoding(enc.dtype, enc.bits, g, enc.exponent, enc.sign_key, enc.sign_period)
        parts = scheme.parts(pt.shape)
        if len(parts) > 1:  # row-aligned parts: whole rows at a time, the parts' columns side by side
            from ..quant.decode import decode_parts_rows

            codes_all = np.frombuffer(f.pread(pt.name + SUFFIXES[0]), np.uint8)
            cols = pt.shape[-1]
            rows = enc.n // cols
            per = max(1, BLOCK_BYTES // (cols * 4 * g)) * g  # a multiple of every part's rows per group
            for r0 in range(0, rows, per):
                r1 = min(rows, r0 + per)
                out = decode_parts_rows(codes_all, scales, zeros, how, parts, r0, r1)
                yield out.reshape(-1).view(np.uint8).data
            return
        block = max(1, BLOCK_BYTES // (g * 4))
        for b0 in range(0, groups, block):
            b1 = min(groups, b0 + block)
            codes = np.frombuffer(f.pread(pt.name + SUFFIXES[0], b0 * code_bytes, (b1 - b0) * code_bytes), np.uint8)
            count = min(enc.n, b1 * g) - b0 * g
            out = decode_rows(
                codes,
                scales[None, b0:b1],
                zeros[None, b0:b1],
                how,
                count,
                b0,
            )
            yield out.reshape(-1).view(np.uint8).data

    def moments_bytes(self, name: str) -> bytes | None:
        """The committed calibration moments of a quantized tensor as stored (little-endian int16,
        ``Scheme.moments_shape``), or None."""
        pt = self.tensors[name]
        if pt.quant is None or not pt.quant.moments:
            return None
        shape = self.schemes[pt.shard].moments_shape(pt.shape)
        key = (pt.quant.moments_from or name) + MOMENTS_SUFFIX  # stored once for tensors sharing their input
        info = self.files[pt.shard].infos.get(key)
        if shape is None or info is None or (info.dtype, info.shape) != ("I16", shape):
            got = f"{info.dtype}{list(info.shape)}" if info else "missing"
            raise MalformedPack(
                f"tensor {name!r}: component {MOMENTS_SUFFIX} is {got}, expected I16{list(shape or ())}", tensor=name
            )
        return bytes(self.files[pt.shard].pread(key))

    def moments(self, name: str) -> Any:
        """:meth:`moments_bytes` as an int16 NumPy array of ``Scheme.moments_shape`` (what a rebuild feeds)."""
        import numpy as np

        raw = self.moments_bytes(name)
        if raw is None:
            return None
        shape = self.schemes[self.tensors[name].shard].moments_shape(self.tensors[name].shape)
        return np.frombuffer(raw, dtype="<i2").reshape(shape).copy()

    def digest(self, name: str) -> Digest:
        """SHA-256 of the reconstructed tensor's bytes."""
        h = hashlib.sha256()
        pt = self.tensors[name]
        split = pt.quant is not None and len(self.schemes[pt.shard].parts(pt.shape)) > 1
        if pt.quant is not None and native_decode.available() and not split:  # decode and hash chunk by chunk in C
            f = self.files[pt.shard]
            enc = self._components(pt, f, self.schemes[pt.shard])
            try:
                native_decode.hash_decoded(h, f.pread(name + SUFFIXES[0]), enc)
            except ValueError as exc:  # the decoder's own checks: a non-finite scale, a short component
                raise MalformedPack(f"tensor {name!r}: {str(exc).removeprefix('decode_hash: ')}", tensor=name) from None
            return Digest(h.hexdigest())
        for block in self.iter_bytes(name):
            h.update(block)
        return Digest(h.hexdigest())

    def iter_names(self) -> Iterator[str]:
        return iter(sorted(self.tensors))

    def close(self) -> None:
        for f in self.files.values():
            f.close()
