"""Strict safetensors reading (mmap, zero copy) and deterministic writing.

The reader applies every rule of the safetensors format (the Rust crate's
``read_metadata`` + ``validate``) and additionally rejects duplicate keys and
unknown fields, so a file either reads correctly or raises
:class:`MalformedSafetensors` naming the rule. Nothing is ever unpickled.
"""

from __future__ import annotations

import codecs
import json
import mmap
import os
import struct
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Self

from ..errors import MalformedSafetensors, OperationalError
from .fsutil import open_regular_fd

if TYPE_CHECKING:  # torch is imported lazily: reading and verifying packs must not need it
    import torch

MAX_HEADER = 100_000_000

#: dtype name -> size in bits (safetensors README, "Format").
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "I64": 64,
    "U64": 64,
    "F64": 64,
    "C64": 64,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
}

_TORCH_NAMES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "U16": "uint16",
    "F16": "float16",
    "BF16": "bfloat16",
    "I32": "int32",
    "U32": "uint32",
    "F32": "float32",
    "I64": "int64",
    "U64": "uint64",
    "F64": "float64",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn",
}


def torch_dtype(name: str) -> torch.dtype | None:
    """The torch dtype of a safetensors dtype name, or None if torch has none."""
    import torch

    attr = _TORCH_NAMES.get(name)
    return getattr(torch, attr) if attr else None


def dtype_name(dt: torch.dtype) -> str:
    """The safetensors dtype name of a torch dtype."""
    short = str(dt).removeprefix("torch.")
    return next(k for k, v in _TORCH_NAMES.items() if v == short)


_U64_MAX = (1 << 64) - 1


@dataclass(frozen=True)
class TensorInfo:
    """Header entry of one tensor; offsets are relative to the start of the data buffer."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _HeaderError(f"duplicate key {k!r}")
        out[k] = v
    return out


class _HeaderError(ValueError):
    pass


def _is_uint(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _U64_MAX


def _is_utf8(s: str) -> bool:
    """False for a string with a lone surrogate (a JSON ``\\ud800`` escape), which no UTF-8 file can hold."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def checked_numel(shape: Iterable[int]) -> int | None:
    """The element count of a shape, or None once a running product exceeds 2^64 - 1 (Rust's ``checked_mul``:
    stops at the first overflow, so a header of many huge dimensions costs no big-integer arithmetic)."""
    n = 1
    for d in shape:
        n *= d
        if n > _U64_MAX:
            return None
    return n


def _parse_header(path: str, raw: bytes) -> tuple[dict[str, str], list[TensorInfo]]:
    def bad(kind: str, detail: str) -> MalformedSafetensors:
        return MalformedSafetensors(path, kind, detail)

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad("InvalidHeader", f"header is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        obj = json.loads(text, object_pairs_hook=_reject_duplicates)
    except _HeaderError as exc:
        raise bad("InvalidHeaderDeserialization", str(exc)) from None
    except json.JSONDecodeError as exc:
        raise bad("InvalidHeaderDeserialization", f"header is not JSON: {exc.msg} at char {exc.pos}") from None
    except RecursionError:
        raise bad("InvalidHeaderDeserialization", "header nests too deeply") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise bad("InvalidHeaderDeserialization", f"header is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise bad("InvalidHeaderDeserialization", f"header is a JSON {type(obj).__name__}, not an object")
    metadata: dict[str, str] = {}
    infos: list[TensorInfo] = []
    for name, entry in obj.items():
        if not _is_utf8(name):
            raise bad("InvalidHeaderDeserialization", f"tensor name {name!r} has a lone surrogate escape")
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise bad("InvalidHeaderDeserialization", "__metadata__ must map strings to strings")
            if not all(_is_utf8(k) and _is_utf8(v) for k, v in entry.items()):
                raise bad("InvalidHeaderDeserialization", "__metadata__ has a lone surrogate escape")
            metadata = entry
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise bad("InvalidHeaderDeserialization", f"tensor {name!r}: needs exactly dtype, shape, data_offsets")
        dtype, shape, offs = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
            raise bad("InvalidHeaderDeserialization", f"tensor {name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
            raise bad("InvalidHeaderDeserialization", f"tensor {name!r}: shape must be a list of unsigned ints")
        if not isinstance(offs, list) or len(offs) != 2 or not all(_is_uint(o) for o in offs):
            raise bad("InvalidHeaderDeserialization", f"tensor {name!r}: data_offsets must be 2 unsigned ints")
        infos.append(TensorInfo(name, dtype, tuple(shape), offs[0], offs[1]))
    return metadata, infos


def _validate(path: str, infos: list[TensorInfo], data_len: int) -> None:
    def bad(kind: str, detail: str) -> MalformedSafetensors:
        return MalformedSafetensors(path, kind, detail)

    pos = 0
    for info in sorted(infos, key=lambda i: (i.begin, i.end)):
        if info.begin != pos or info.end < info.begin:
            raise bad(
                "InvalidOffset",
                f"tensor {info.name!r}: data_offsets [{info.begin}, {info.end}] "
                f"do not start where the previous tensor ended ({pos})",
            )
        numel = checked_numel(info.shape)
        nbits = DTYPE_BITS[info.dtype] * (numel if numel is not None else _U64_MAX + 1)
        if nbits > _U64_MAX:
            raise bad("ValidationOverflow", f"tensor {info.name!r}: shape {_shape_text(info.shape)} overflows")
        if nbits % 8:
            raise bad("MisalignedSlice", f"tensor {info.name!r}: {nbits} bits is not a whole number of bytes")
        if info.end - info.begin != nbits // 8:
            raise bad(
                "TensorInvalidInfo",
                f"tensor {info.name!r}: {info.end - info.begin} bytes "
                f"for {info.dtype} {_shape_text(info.shape)} (expected {nbits // 8})",
            )
        pos = info.end
    if pos != data_len:
        raise bad("MetadataIncompleteBuffer", f"tensors cover {pos} bytes but the data buffer has {data_len}")


def _shape_text(shape: tuple[int, ...]) -> str:
    """A shape for a one-line message: a hostile header may have thousands of dimensions."""
    return str(list(shape)) if len(shape) <= 8 else f"[{', '.join(map(str, shape[:4]))}, ... ({len(shape)} dims)]"


def _looks_like_text(head: bytes) -> bool:
    """True if the first bytes are printable text: never a safetensors length prefix, whose header length
    (at most 100 MB, so under 2^32) leaves NUL bytes in it."""
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head)  # a character cut at the end is fine
    except UnicodeDecodeError:
        return False
    return bool(text) and all(c.isprintable() or c in "\t\n\r\f\v" for c in text)


def _header_length(path: str, head: bytes, size: int) -> int:
    """The header length from the file's first (up to 8) bytes, checked against the file size before any
    header byte is read: a text file, a header longer than the format allows or than the file is refused."""
    if _looks_like_text(head):
        hint = " (a Git LFS pointer: fetch the real file)" if head.startswith(b"version ") else ""
        raise MalformedSafetensors(
            path,
            "NotSafetensors",
            f"not a safetensors file: it starts with text {head.decode('utf-8', 'replace')!r}{hint}",
        )
    if size < 8:
        raise MalformedSafetensors(path, "HeaderTooSmall", f"file has {size} bytes, fewer than 8")
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER:
        raise MalformedSafetensors(path, "HeaderTooLarge", f"header length {n} exceeds {MAX_HEADER}")
    if 8 + n > size:
        raise MalformedSafetensors(path, "InvalidHeaderLength", f"header length {n} exceeds file size {size}")
    return int(n)


class SafetensorsFile:
    """A validated, memory-mapped safetensors file. Use as a context manager."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        spath = str(path)
        try:
            fd = open_regular_fd(self.path, follow=True)  # a FIFO or device is refused, never waited on
        except OSError as exc:
            raise OperationalError(f"{spath}: cannot open: {exc.strerror}", path=spath) from exc
        try:
            size = os.fstat(fd).st_size
            n = _header_length(spath, os.pread(fd, 8, 0), size)
            self.metadata, infos = _parse_header(spath, os.pread(fd, n, 8))
            self.data_start = 8 + n
            _validate(spath, infos, size - self.data_start)
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd
        self._size = size
        self._mm: mmap.mmap | None = None
        self.infos: dict[str, TensorInfo] = {i.name: i for i in infos}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        # Views handed out keep the mapping alive; dropping our reference is enough.
        self._mm = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _mapping(self) -> mmap.mmap:
        if self._mm is None:
            if self._fd is None:
                raise OperationalError(f"{self.path}: file already closed")
            self._mm = mmap.mmap(self._fd, 0, access=mmap.ACCESS_COPY)
        return self._mm

    def header_bytes(self) -> bytes:
        """The file's first bytes: length prefix and header (the rest is the tensors, contiguous)."""
        if self._fd is None:
            raise OperationalError(f"{self.path}: file already closed")
        return os.pread(self._fd, self.data_start, 0)

    def pread(self, name: str, start: int = 0, length: int | None = None) -> bytes:
        """Copy ``length`` bytes of a tensor's data from ``start`` (no mapping kept in memory)."""
        info = self.infos[name]
        size = info.end - info.begin
        length = size - start if length is None else length
        if not (start >= 0 and length >= 0 and start + length <= size):
            raise ValueError(f"range [{start}, {start + length}) outside tensor {name!r} ({size} bytes)")
        if self._fd is None:
            raise OperationalError(f"{self.path}: file already closed")
        data = os.pread(self._fd, length, self.data_start + info.begin + start)
        if len(data) != length:
            raise OperationalError(f"{self.path}: short read (file changed while reading?)")
        return data

    @property
    def names(self) -> list[str]:
        """Tensor names in file (offset) order."""
        return sorted(self.infos, key=lambda k: self.infos[k].begin)

    def raw(self, name: str) -> memoryview:
        """The tensor's bytes exactly as stored (little-endian, C order)."""
        info = self.infos[name]
        if info.end == info.begin:
            return memoryview(b"")
        return memoryview(self._mapping())[self.data_start + info.begin : self.data_start + info.end]

    def tensor(self, name: str) -> torch.Tensor:
        """Zero-copy CPU tensor over the mapping (valid while any view exists)."""
        import torch

        info = self.infos[name]
        dt = torch_dtype(info.dtype)
        if dt is None:
            raise MalformedSafetensors(
                str(self.path), "UnsupportedDtype", f"tensor {name!r}: {info.dtype} cannot be loaded"
            )
        raw = self.raw(name)
        if len(raw) == 0:
            return torch.empty(info.shape, dtype=dt)
        return torch.frombuffer(raw, dtype=dt).reshape(info.shape)


class StreamedFile:
    """A safetensors file read once from front to back, every byte hashed exactly as it is copied out.

    For loaders that keep what they read: :meth:`read_into` copies a tensor's bytes into the caller's
    buffer and hashes that buffer (what is kept is what was hashed, whatever happens to the file later);
    tensors must be read in file order. :meth:`finish` returns the file's SHA-256. The header is parsed
    and validated as :class:`SafetensorsFile` does.
    """

    CHUNK = 1 << 22

    def __init__(self, path: Path, opened: BinaryIO | None = None) -> None:
        """``opened``: the file already open (by a caller that checked how it was reached), taken over."""
        import hashlib

        self.path = Path(path)
        spath = str(path)
        try:
            fd = os.dup(opened.fileno()) if opened is not None else open_regular_fd(self.path, follow=True)
            self._f = os.fdopen(fd, "rb", buffering=0)  # closed by finish/close
        except OSError as exc:
            raise OperationalError(f"{spath}: cannot open: {exc.strerror}", path=spath) from exc
        finally:
            if opened is not None:
                opened.close()
        try:
            size = os.fstat(self._f.fileno()).st_size
            head = self._read_exact(min(8, size))
            n = _header_length(spath, head, size)
            header = self._read_exact(n)
            self.metadata, infos = _parse_header(spath, header)
            _validate(spath, infos, size - 8 - n)
        except BaseException:
            self._f.close()
            raise
        self.hash = hashlib.sha256(head + header)
        self.infos: dict[str, TensorInfo] = {i.name: i for i in infos}
        self.order = sorted(self.infos, key=lambda k: self.infos[k].begin)
        self._pos = 0
        self._size = size - 8 - n

    def _read_exact(self, n: int) -> bytes:
        data = self._f.read(n)
        if data is None or len(data) != n:
            raise OperationalError(f"{self.path}: short read (file changed while reading?)")
        return data

    def read_into(self, name: str, dest: memoryview) -> None:
        """Copy tensor ``name`` (the next one in file order) into ``dest`` and hash those bytes."""
        info = self.infos[name]
        if info.begin != self._pos:
            raise OperationalError(f"{self.path}: tensor {name!r} read out of file order")
        view = dest.cast("B")
        if len(view) != info.end - info.begin:
            raise ValueError(f"{name!r}: buffer of {len(view)} bytes for {info.end - info.begin}")
        done = 0
        while done < len(view):
            got = self._f.readinto(view[done : done + self.CHUNK])
            if not got:
                raise OperationalError(f"{self.path}: short read (file changed while reading?)")
            done += got
        self.hash.update(view)
        self._pos = info.end

    def skip(self, name: str) -> None:
        """Read and hash tensor ``name`` (the next in file order) without keeping it."""
        info = self.infos[name]
        scratch = bytearray(min(self.CHUNK, max(1, info.end - info.begin)))
        left = info.end - info.begin
        if info.begin != self._pos:
            raise OperationalError(f"{self.path}: tensor {name!r} read out of file order")
        while left:
            chunk = memoryview(scratch)[: min(left, len(scratch))]
            got = self._f.readinto(chunk)
            if not got:
                raise OperationalError(f"{self.path}: short read (file changed while reading?)")
            self.hash.update(chunk[:got])
            left -= got
        self._pos = info.end

    def finish(self) -> str:
        """The hex SHA-256 of the whole file; every tensor must have been read, and nothing may follow."""
        if self._pos != self._size or self._f.read(1):
            raise OperationalError(f"{self.path}: file changed while reading")
        self._f.close()
        return self.hash.hexdigest()

    def close(self) -> None:
        self._f.close()


@dataclass(frozen=True)
class OutTensor:
    """A tensor to write: dtype name, shape and its raw little-endian bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: bytes | memoryview


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """Raw little-endian C-order bytes of a CPU tensor, as safetensors stores them."""
    if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
        raise OperationalError("uc-attest needs a little-endian host")
    import torch

    t = t.detach().to("cpu").contiguous()
    if t.numel() == 0:
        return memoryview(b"")
    arr = t.view(torch.uint8).reshape(-1).numpy()
    return memoryview(arr.data)


def out_tensor(name: str, t: torch.Tensor) -> OutTensor:
    return OutTensor(name, dtype_name(t.dtype), tuple(t.shape), tensor_bytes(t))


def nbytes(dtype: str, shape: tuple[int, ...]) -> int:
    n = DTYPE_BITS[dtype]
    for d in shape:
        n *= d
    return n // 8


def encode_header(specs: Iterable[tuple[str, str, tuple[int, ...]]], metadata: Mapping[str, str]) -> bytes:
    """Header JSON (``__metadata__`` first, then tensors in order), space-padded to 8 bytes."""
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    pos = 0
    for name, dtype, shape in specs:
        n = nbytes(dtype, shape)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + n]}
        pos += n
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def write_safetensors(f: BinaryIO, tensors: list[OutTensor], metadata: Mapping[str, str]) -> None:
    """Write tensors in the given order; identical inputs give identical bytes."""
    for t in tensors:
        if len(t.data) != nbytes(t.dtype, t.shape):
            raise ValueError(f"tensor {t.name!r}: {len(t.data)} bytes for {t.dtype} {list(t.shape)}")
    f.write(encode_header(((t.name, t.dtype, t.shape) for t in tensors), metadata))
    for t in tensors:
        f.write(t.data)
