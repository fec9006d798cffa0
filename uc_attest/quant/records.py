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
        Raises KeyError/ValueError/TypeError on a malformed entry (the reader names the shard)."""
        m = d.get("moments", 0)
        if not (m in (0, 1) and not isinstance(m, bool)) and not (isinstance(m, str) and m):
            raise ValueError(f"moments must be 0, 1 or the name of the tensor that stores them, got {m!r}")
        shared = m if isinstance(m, str) else None
        return (
            str(d["dtype"]),
            tuple(int(x) for x in d["shape"]),
            cls(int(d.get("bits", bits)), group_size, int(d["exponent"]), bool(m), moments_from=shared),
        )
