"""The typed per-tensor quantization record, and its two encodings (pack header, manifest).

One record says how a tensor was quantized. The pack's shard header stores what a decoder needs
(``uc.quantized``: dtype, shape, exponent, bits, the committed-moments flag; the group size is the
scheme's); the manifest stores what an auditor reads (bits, group size, exponent, the exact relative
error, the committed moments' digest). docs/format.md specifies both byte by byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.digest import Digest
from ..core.stfile import checked_numel


@dataclass(frozen=True)
class QuantRecord:
    bits: int
    group_size: int
    exponent: int  # real scale = float(s16) * 2**exponent
    moments: bool = False  # committed calibration moments stored beside the codes (feedback schemes)
    moments_digest: Digest | None = None  # their digest (manifest only)
    rel_err_ppm: int | None = None  # exact relative squared error of the reconstruction (manifest only)
    moments_from: str | None = None  # the moments are stored once, under this tensor of the shard (header only)

    def to_manifest(self) -> dict[str, int | str]:
        out: dict[str, int | str] = {"bits": self.bits, "group_size": self.group_size, "exponent": self.exponent}
        if self.rel_err_ppm is not None:
            out["rel_err_ppm"] = self.rel_err_ppm
        if self.moments_digest is not None:
            out["moments"] = str(self.moments_digest)
        return out

    @classmethod
    def from_manifest(cls, d: Any) -> QuantRecord:
        """Parse the manifest form; raises ValueError/TypeError naming the key (the caller names file and tensor)."""
        if not isinstance(d, dict):
            raise TypeError("quant must be an object")
        unknown = set(d) - {"bits", "group_size", "exponent", "rel_err_ppm", "moments"}
        if unknown:
            raise ValueError(f"unknown quant key {min(unknown)!r}")
        for key in ("bits", "group_size", "exponent"):
            if not isinstance(d.get(key), int) or isinstance(d.get(key), bool):
                raise TypeError(f"quant.{key} must be an integer")
        ppm = d.get("rel_err_ppm")
        if ppm is not None and (not isinstance(ppm, int) or isinstance(ppm, bool)):
            raise TypeError("quant.rel_err_ppm must be an integer")
        moments = d.get("moments")
        digest = Digest.parse(moments) if isinstance(moments, str) else None
        if moments is not None and digest is None:
            raise ValueError("quant.moments must be a sha256:<hex> digest")
        return cls(d["bits"], d["group_size"], d["exponent"], digest is not None, digest, ppm)

    def to_header(self, dtype: str, shape: tuple[int, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": dtype, "shape": list(shape), "exponent": self.exponent, "bits": self.bits}
        if self.moments:
            out["moments"] = self.moments_from if self.moments_from is not None else 1
        return out

    @classmethod
    def from_header(cls, d: Any, bits: int, group_size: int) -> tuple[str, tuple[int, ...], QuantRecord]:
        """Parse one ``uc.quantized`` entry: (source dtype, shape, record); ``bits`` is the scheme's default.
        Raises ValueError/TypeError naming the field on a malformed entry (the reader names shard and tensor)."""
        if not isinstance(d, dict):
            raise TypeError(f"the record is a JSON {type(d).__name__}, not an object")
        unknown = set(d) - {"dtype", "shape", "exponent", "bits", "moments"}
        if unknown:
            raise ValueError(f"unknown field {min(unknown)!r}")
        dtype, shape = d.get("dtype"), d.get("shape")
        if not isinstance(dtype, str):
            raise TypeError(f"dtype must be a string, got {dtype!r}")
        if not isinstance(shape, list) or not all(_is_uint(x) for x in shape):
            raise TypeError("shape must be a list of unsigned 64-bit integers")
        if checked_numel(shape) is None:
            raise ValueError(f"shape of {len(shape)} dimensions has more than 2^64 - 1 elements")
        if not _is_int(d.get("exponent")) or not _is_int(d.get("bits", bits)):
            key = "bits" if _is_int(d.get("exponent")) else "exponent"
            raise TypeError(f"{key} must be an integer, got {d.get(key)!r}")
        m = d.get("moments", 0)
        if not (m in (0, 1) and not isinstance(m, bool)) and not (isinstance(m, str) and m):
            raise ValueError(f"moments must be 0, 1 or the name of the tensor that stores them, got {m!r}")
        shared = m if isinstance(m, str) else None
        record = cls(d.get("bits", bits), group_size, d["exponent"], bool(m), moments_from=shared)
        return dtype, tuple(shape), record


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_uint(v: Any) -> bool:
    return _is_int(v) and 0 <= v < 1 << 64
