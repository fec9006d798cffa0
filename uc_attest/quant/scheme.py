"""Quantization scheme parameters and which tensors they apply to."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError

SCHEME_ID = "uc-affine-clip/1"
RTN_ID = "uc-rtn/1"
RHT_ID = "uc-rht-clip/1"
LDLQ_ID = "uc-rht-ldlq/1"
#: ``uc-rht-ldlq/1`` with row-aligned parts: a row of c = m·g + t columns (0 < t < g, t dividing g) is quantized as
#: two parts, its first m·g columns and its last t (docs/format.md 3.6), so error feedback reaches every layer.
LDLQ2_ID = "uc-rht-ldlq/2"
#: ``uc-rht-ldlq/2`` whose error feedback runs over blocks of up to ``WIDE_MAX`` columns (whole groups): an error in
#: one group of a row is fed into the next ones, not only within its group (docs/format.md 3.6). It commits larger
#: moments (w(w+1)/2 per block of w columns instead of g(g+1)/2 per group).
LDLQ3_ID = "uc-rht-ldlq/3"
#: Widest feedback block of ``uc-rht-ldlq/3`` (every feedback sum stays exact: ldlq.py).
WIDE_MAX = 2048
FLOAT_DTYPES = ("F32", "F16", "BF16")
DEFAULT_INCLUDE = ("*.weight",)
#: Embeddings and norms stay as they are. The output head (``lm_head``) is quantized like any linear layer, as
#: llama.cpp's K-quants do: on a generated 2048-wide Llama with a 32,000 vocabulary it is a quarter of the
#: quantized weights and of a token's serving time (docs/runtime.md); the allocation measures what it costs.
DEFAULT_EXCLUDE = ("*embed*", "*wte*", "*wpe*", "*norm*")

#: Allowed per-tensor exponents: keeps every decoder step exact in binary32 (format.md 3.3).
EXP_RANGE = (-90, 100)
#: Clipping grid of the exact-objective search: p = 1 - i/100, i = 0..20 (Python doubles).
CLIP_GRID: tuple[float, ...] = tuple(1.0 - i / 100 for i in range(21))
#: Scheme id -> clipping grid. Both share the storage format and the decoder;
#: ``uc-rtn/1`` is plain min-max round-to-nearest, kept as the baseline.
#: Rotated groups are near-Gaussian: a coarser grid (p = 1 - i/50, i = 0..10) loses ~2% of the
#: output metric on MiniLM and keeps packing under 2 s per 10 M weights on 2 cores.
RHT_GRID: tuple[float, ...] = tuple(1.0 - i / 50 for i in range(11))
SCHEMES: dict[str, tuple[float, ...]] = {
    SCHEME_ID: CLIP_GRID,
    RTN_ID: (1.0,),
    RHT_ID: RHT_GRID,
    LDLQ_ID: RHT_GRID,
    LDLQ2_ID: RHT_GRID,
    LDLQ3_ID: RHT_GRID,
}
#: Schemes whose groups are rotated by a randomized Hadamard transform before quantization.
ROTATED = frozenset({RHT_ID, LDLQ_ID, LDLQ2_ID, LDLQ3_ID})
#: Schemes whose rotation signs are shared by all rows (index modulo the row length when groups
#: are row-aligned), and which feed quantization errors forward through committed second
#: moments of each layer's input (ldlq.py) for the tensors that have them.
ROW_SIGNS = frozenset({LDLQ_ID, LDLQ2_ID, LDLQ3_ID})
#: Schemes that split a row whose length is not a multiple of the group size into row-aligned parts.
ROW_PARTS = frozenset({LDLQ2_ID, LDLQ3_ID})
#: Least-squares refit rounds (exact integer normal equations) after the clipping search.
REFIT: dict[str, int] = {RHT_ID: 2, LDLQ_ID: 2, LDLQ2_ID: 2, LDLQ3_ID: 2}
#: (clipping grid, refit rounds) of tensors quantized with error feedback: min-max scales. The
#: feedback does what clipping did; on MiniLM the full search + refit gained 5% of 1-cos at 1.8x
#: the packing time.
FEEDBACK_SEARCH: tuple[tuple[float, ...], int] = ((1.0,), 0)


def check_budget(budget: float) -> None:
    """A bit budget (bits per quantized weight as stored) must be a finite number in (0, 64]: NaN, infinities or
    1e308 would otherwise reach the allocation's integer arithmetic."""
    if (
        isinstance(budget, bool)
        or not isinstance(budget, int | float)
        or not (math.isfinite(budget) and 0 < budget <= 64)
    ):
        raise UsageError(
            "{0} must be a number of bits per weight in (0, 64], got {budget}", option="budget", budget=budget
        )


@dataclass(frozen=True)
class Part:
    """Columns ``[col0, col0 + cols)`` of every row of a tensor, quantized as a tensor of their own
    (``rows`` x ``cols``, flattened in C order, groups of ``group`` elements, the last one zero-padded) whose
    groups follow those of the part before it in the tensor's components (docs/format.md 3.1, 3.6)."""

    col0: int
    cols: int
    rows: int
    group: int
    #: Rotation sign period: the part's row length when signs are row-shared, else 0 (flattened index).
    period: int
    #: Width of its committed moment blocks (0: it takes none).
    block: int
    #: Index of its first group among the tensor's groups.
    first_group: int

    @property
    def n(self) -> int:
        return self.rows * self.cols

    @property
    def groups(self) -> int:
        return -(-self.n // self.group)

    @property
    def moment_blocks(self) -> int:
        """Committed moment blocks: one per ``block`` columns."""
        return self.cols // self.block if self.block else 0


@dataclass(frozen=True)
class Scheme:
    """Versioned, self-describing quantization parameters (recorded in every pack)."""

    bits: int = 5
    group_size: int = 128
    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    id: str = field(default=SCHEME_ID)
    #: (glob, bits) pairs: the first glob matching a tensor name sets its bits (mixed precision).
    bits_overrides: tuple[tuple[str, int], ...] = ()
    #: How measured overrides were chosen (quant/allocate.py), sorted (key, value) pairs; () when not.
    allocation: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.id not in SCHEMES:
            raise UsageError(f"unknown quantization scheme {self.id!r} (known: {', '.join(SCHEMES)})")
        if not 2 <= self.bits <= 8:
            raise UsageError("{0} must be between 2 and 8, got {bits}", option="bits", bits=self.bits)
        if self.group_size % 8 or not 8 <= self.group_size <= 1024:
            raise UsageError(
                "{0} must be a multiple of 8 between 8 and 1024, got {group_size}",
                option="group_size",
                group_size=self.group_size,
            )
        for glob, b in self.bits_overrides:
            if not 2 <= b <= 8:
                raise UsageError(f"bits override {glob}={b}: bits must be between 2 and 8")
        if self.rotated:
            g = self.group_size
            if g & (g - 1):
                raise UsageError(
                    "{scheme} needs a power-of-two {0}, got {group_size}",
                    option="group_size",
                    scheme=self.id,
                    group_size=g,
                )
            widest = max([self.bits, *(b for _, b in self.bits_overrides)])
            if widest + g.bit_length() - 1 > 13:  # |H(q - z)| * s16 must stay exact in binary32
                raise UsageError(
                    f"{self.id}: bits {widest} with group size {g} exceeds the exact range "
                    "(bits + log2(group size) <= 13)"
                )

    @property
    def clip_grid(self) -> tuple[float, ...]:
        return SCHEMES[self.id]

    @property
    def rotated(self) -> bool:
        return self.id in ROTATED

    @property
    def row_signs(self) -> bool:
        """Row-shared rotation signs and error feedback from committed moments (``uc-rht-ldlq/1``)."""
        return self.id in ROW_SIGNS

    def sign_period(self, shape: tuple[int, ...]) -> int:
        """Period of the rotation signs for a tensor: its row length when signs are row-shared and
        groups are row-aligned (the row length is a multiple of the group size, or divides it:
        a group is then several whole rows), else 0 (signs indexed over the flattened tensor).
        A tensor split into parts (:meth:`parts`) has one period per part."""
        cols = shape[-1] if shape else 0
        g = self.group_size
        return cols if self.row_signs and cols and (cols % g == 0 or g % cols == 0) else 0

    def split_column(self, shape: tuple[int, ...]) -> int:
        """Where a row splits into two row-aligned parts (``uc-rht-ldlq/2``): ``c - t`` for a row of
        ``c = m·g + t`` columns with ``m >= 1`` and ``0 < t < g`` dividing ``g``; 0 when it does not split."""
        cols, g = (shape[-1] if shape else 0), self.group_size
        t = cols % g if cols else 0
        return cols - t if self.id in ROW_PARTS and cols > g and t and g % t == 0 else 0

    def parts(self, shape: tuple[int, ...]) -> tuple[Part, ...]:
        """The row-aligned parts of a tensor, in storage order: one part of all its columns, or two
        (:meth:`split_column`), each with its own sign period and moment blocks."""
        g = self.group_size
        cols = shape[-1] if shape else 1
        rows = math.prod(shape[:-1]) if len(shape) > 1 else 1
        split = self.split_column(shape)
        if not split:
            period = self.sign_period(shape)
            return (Part(0, cols, rows, g, period, self._feedback_width(period), 0),)
        main = Part(0, split, rows, g, split, self._feedback_width(split), 0)
        t = cols - split
        return (main, Part(split, t, rows, g, t, t, main.groups))

    def _feedback_width(self, period: int) -> int:
        """Columns of a feedback block for a part whose rows are ``period`` long: the group size (or the row, when
        a group holds several); ``uc-rht-ldlq/3``: the widest multiple of the group size that divides the row and
        is at most ``WIDE_MAX``."""
        g = self.group_size
        if self.id != LDLQ3_ID or period <= g:
            return min(period, g)
        return max(k * g for k in range(1, WIDE_MAX // g + 1) if period % (k * g) == 0)

    def moment_block(self, shape: tuple[int, ...]) -> int:
        """Width of the first part's committed moment blocks: the group size, or the row length when
        a group holds several rows (0: the tensor cannot take moments)."""
        return self.parts(shape)[0].block

    def moments_shape(self, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """Shape of a tensor's committed int16 moments: [n_cols / w, w(w+1)/2] upper triangles of
        w x w blocks (w = ``moment_block``); for a tensor in two parts, the two parts' triangles one
        after the other, flattened ([total]); None when it cannot take moments."""
        parts = self.parts(shape)
        if not parts[0].block:
            return None
        if len(parts) == 1:
            w = parts[0].block
            return (shape[-1] // w, w * (w + 1) // 2)
        return (sum(p.moment_blocks * p.block * (p.block + 1) // 2 for p in parts),)

    def split_moments(self, shape: tuple[int, ...], moments: Any) -> list[Any]:
        """A tensor's committed moments (``moments_shape``) as one [blocks, w(w+1)/2] array per part."""
        parts = self.parts(shape)
        if len(parts) == 1:
            return [moments]
        out, at = [], 0
        for p in parts:
            tri = p.block * (p.block + 1) // 2
            out.append(moments[at : at + p.moment_blocks * tri].reshape(p.moment_blocks, tri))
            at += p.moment_blocks * tri
        return out

    @property
    def refit_rounds(self) -> int:
        """Least-squares refit rounds after the clipping search (0 for RTN)."""
        return REFIT.get(self.id, 0)

    def bits_for(self, name: str) -> int:
        """Bits of one tensor: the first matching override, else the scheme's bits."""
        return next((b for glob, b in self.bits_overrides if fnmatch.fnmatchcase(name, glob)), self.bits)

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
            "bits_overrides": [[g, b] for g, b in self.bits_overrides],
            **({"allocation": dict(self.allocation)} if self.allocation else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scheme:
        """A scheme as a manifest or shard header records it: types checked (ValueError naming the field; the
        caller names the file), then its values (UsageError, as for options)."""

        def need(ok: bool, field: str, what: str) -> None:
            if not ok:
                raise ValueError(f"scheme field {field} must be {what}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        need(isinstance(d, dict), "(top level)", "an object")
        for key in ("bits", "group_size"):
            need(is_int(d.get(key)), key, "an integer")
        for key in ("include", "exclude"):
            need(isinstance(d.get(key), list) and all(isinstance(g, str) for g in d[key]), key, "a list of globs")
        need(isinstance(d.get("id"), str), "id", "a string")
        overrides = d.get("bits_overrides", [])
        need(
            isinstance(overrides, list)
            and all(isinstance(o, list) and len(o) == 2 and isinstance(o[0], str) and is_int(o[1]) for o in overrides),
            "bits_overrides",
            "a list of [glob, bits]",
        )
        allocation = d.get("allocation", {})
        need(isinstance(allocation, dict), "allocation", "an object")
        return cls(
            bits=d["bits"],
            group_size=d["group_size"],
            include=tuple(d["include"]),
            exclude=tuple(d["exclude"]),
            id=d["id"],
            bits_overrides=tuple((g, b) for g, b in overrides),
            allocation=tuple(sorted((str(k), str(v)) for k, v in allocation.items())),
        )


#: Value projections are the most sensitive tensors (measured on MiniLM, and llama.cpp's _M mixes
#: keep attn_v higher too): 6 bits for them costs ~0.08 bits per weight on MiniLM.
VALUE_PROJECTIONS_AT_6 = (("*value.weight", 6), ("*v_proj.weight", 6), ("*.wv.weight", 6))
DEFAULT_SCHEME = Scheme(id=LDLQ2_ID, bits_overrides=VALUE_PROJECTIONS_AT_6)
