"""Quantization scheme parameters and which tensors they apply to."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

SCHEME_ID = "uc-affine-clip/1"
RTN_ID = "uc-rtn/1"
FLOAT_DTYPES = ("F32", "F16", "BF16")
DEFAULT_INCLUDE = ("*.weight",)
DEFAULT_EXCLUDE = ("*embed*", "*wte*", "*wpe*", "lm_head*", "output.weight", "*norm*")

#: Allowed per-tensor exponents: keeps every decoder step exact in binary32 (format.md 3.3).
EXP_RANGE = (-100, 100)
#: Clipping grid of the exact-objective search: p = 1 - i/100, i = 0..20 (Python doubles).
CLIP_GRID: tuple[float, ...] = tuple(1.0 - i / 100 for i in range(21))
#: Scheme id -> clipping grid. Both share the storage format and the decoder;
#: ``uc-rtn/1`` is plain min-max round-to-nearest, kept as the baseline.
SCHEMES: dict[str, tuple[float, ...]] = {SCHEME_ID: CLIP_GRID, RTN_ID: (1.0,)}


@dataclass(frozen=True)
class Scheme:
    """Versioned, self-describing quantization parameters (recorded in every pack)."""

    bits: int = 5
    group_size: int = 128
    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    id: str = field(default=SCHEME_ID)

    def __post_init__(self) -> None:
        if self.id not in SCHEMES:
            raise UsageError(f"unknown quantization scheme {self.id!r} (known: {', '.join(SCHEMES)})")
        if not 2 <= self.bits <= 8:
            raise UsageError(f"--bits must be between 2 and 8, got {self.bits}")
        if self.group_size % 8 or not 8 <= self.group_size <= 1024:
            raise UsageError(f"--group-size must be a multiple of 8 between 8 and 1024, got {self.group_size}")

    @property
    def clip_grid(self) -> tuple[float, ...]:
        return SCHEMES[self.id]

    @property
    def qmax(self) -> int:
        return (1 << self.bits) - 1

    def applies_to(self, name: str, dtype: str, shape: tuple[int, ...]) -> bool:
        """True if the tensor is quantized: float, at least 2-D, non-empty, included and not excluded."""
        if dtype not in FLOAT_DTYPES or len(shape) < 2 or 0 in shape:
            return False
        if not any(fnmatch.fnmatchcase(name, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.exclude)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "bits": self.bits,
            "group_size": self.group_size,
            "include": list(self.include),
            "exclude": list(self.exclude),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scheme:
        return cls(
            bits=int(d["bits"]),
            group_size=int(d["group_size"]),
            include=tuple(d["include"]),
            exclude=tuple(d["exclude"]),
            id=str(d["id"]),
        )


DEFAULT_SCHEME = Scheme()
