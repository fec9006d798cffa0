"""One quantized width of one tensor, measured once: its reconstruction's digest, its quality record and (for
the allocation) its damage — the :class:`Candidate` that the allocation compares and the writer stores as is.

Everything here is exact (integer sums, correctly rounded binary64 elementwise steps), so the native helpers of
``_quantize.c`` (run over runs of whole elements in the thread pool) and the torch/NumPy reference give the same
numbers: tests/unit/test_measure.py compares them.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np
import numpy.typing as npt
import torch

from ..core.digest import Digest
from ..core.threads import pool
from . import native
from .decode import decode_parts_rows, decode_rows
from .decode_protocol import Decoding
from .quality import relative_error_ppm
from .quantize import QuantizedTensor
from .rotation import sign_key

#: Elements per run of the native measures in the thread pool.
RUN = 1 << 20
_LEVEL = 7  # |scaled values| < 2^7: with |H| <= 2^15 and w <= 1024 every partial sum is below 2^49
_ROWS = 4096  # rows per block of the moments-weighted energy


@dataclass(frozen=True)
class Candidate:
    """A tensor quantized at one width, as the pack stores it: the components, the SHA-256 of the reconstruction,
    its relative error in ppm (the quality record) and, when measured for the allocation, its damage."""

    q: QuantizedTensor
    digest: Digest
    err_ppm: int
    damage: Fraction | None = None

    @property
    def nbytes(self) -> int:
        return int(self.q.codes.numel() + 2 * self.q.scales.numel() + self.q.zeros.numel())


def raw_bytes(x: torch.Tensor) -> npt.NDArray[np.uint8]:
    """A CPU tensor's C-order little-endian bytes, without a copy when it is contiguous."""
    return x.detach().contiguous().reshape(-1).view(torch.uint8).numpy()


def decode_tensor(name: str, q: QuantizedTensor, group_size: int) -> npt.NDArray[np.uint8]:
    """The reconstruction's bytes (the host decoder, docs/format.md 3.3), decoded in runs of groups in the pool."""
    n = math.prod(q.shape)
    elem = 4 if q.dtype == "F32" else 2
    out = np.empty(n * elem, dtype=np.uint8)
    n_groups = -(-n // group_size)
    per = max(1, RUN // group_size)
    step = group_size * q.bits // 8
    codes, scales, zeros = q.codes.numpy(), q.scales.numpy(), q.zeros.numpy()
    key = sign_key(name) if q.rotated else None
    how = Decoding(q.dtype, q.bits, group_size, q.exponent, key, q.sign_period)
    if len(q.parts) > 1:  # row-aligned parts: whole rows at a time, the parts' columns side by side
        cols = q.shape[-1]
        rows = n // cols
        per_rows = max(1, RUN // cols) * group_size  # a multiple of every part's rows per group

        def rows_run(r0: int) -> None:
            r1 = min(rows, r0 + per_rows)
            block = decode_parts_rows(codes, scales, zeros, how, q.parts, r0, r1)
            out[r0 * cols * elem : r1 * cols * elem] = block.reshape(-1).view(np.uint8)

        list(pool().map(rows_run, range(0, rows, per_rows)))
        return out

    def run(g0: int) -> None:
        g1 = min(n_groups, g0 + per)
        count = min(n, g1 * group_size) - g0 * group_size
        block = decode_rows(
            codes[g0 * step : g1 * step],
            scales[None, g0:g1],
            zeros[None, g0:g1],
            how,
            count,
            g0,
        )
        out[g0 * group_size * elem : (g0 * group_size + count) * elem] = block.reshape(-1).view(np.uint8)

    list(pool().map(run, range(0, n_groups, per)))
    return out


def _dtype_code(dtype: str) -> int:
    return {"F32": 0, "F16": 1, "BF16": 2}[dtype]


def _runs(n: int) -> list[tuple[int, int]]:
    return [(a, min(n, a + RUN)) for a in range(0, n, RUN)]


def error_ppm(original: torch.Tensor, recon: npt.NDArray[np.uint8], dtype: str) -> int:
    """quality.py ``relative_error_ppm`` of the reconstruction whose bytes are ``recon``."""
    if not native.available():
        return relative_error_ppm(original, torch.from_numpy(recon.copy()).view(original.dtype).reshape(original.shape))
    q = native.module()
    a, n, code = raw_bytes(original), original.numel(), _dtype_code(dtype)
    absmax = max(pool().map(lambda r: q.diff_amax(a, None, code, r[0], r[1]), _runs(n)), default=0.0)
    if absmax == 0.0:
        return 0
    scale = math.ldexp(1.0, 16 - math.frexp(absmax)[1])
    sums = list(pool().map(lambda r: q.error_sums(a, recon, code, r[0], r[1], scale), _runs(n)))
    num, den = sum(s[0] for s in sums), sum(s[1] for s in sums)
    return (num * 1_000_000) // den if den else 0


class Energy:
    """The moments-weighted energy of a tensor's scaled values (allocate.py): ``h`` the committed moment blocks
    as int64 [cols / w, w, w], or None (the identity: a sum of squares). :meth:`of_parts`: one such set of blocks
    per row-aligned part (its first column, its columns, its blocks, their width)."""

    def __init__(self, shape: tuple[int, ...], h: torch.Tensor | None, w: int) -> None:
        self.cols = shape[-1]
        self.rows = math.prod(shape) // self.cols
        self.segments = None if h is None else [(0, self.cols, h.to(torch.float64), w)]

    @classmethod
    def of_parts(cls, shape: tuple[int, ...], parts: list[tuple[int, int, torch.Tensor, int]]) -> Energy:
        e = cls(shape, None, 0)
        e.segments = [(a, c, h.to(torch.float64), w) for a, c, h, w in parts]
        return e

    @property
    def h(self) -> torch.Tensor | None:
        return None if self.segments is None else self.segments[0][2]

    def of_torch(self, v: torch.Tensor) -> int:
        """:meth:`of` for int64 scaled values (the reference path: float64 products, exact)."""
        if self.segments is None:
            return int((v.reshape(-1) * v.reshape(-1)).to(torch.int64).sum())
        return self._of_products(v.to(torch.int8).numpy())

    def of(self, v: npt.NDArray[np.int8], squares: int) -> int:
        """Σ over rows, parts and w-wide blocks of v_b H_b v_bᵀ, exactly (``squares``: Σ v², the identity's answer):
        in integers by the native helper over runs of rows in the pool where the blocks are int16 (the committed
        moments always are), else as :meth:`of_torch`."""
        if self.segments is None:
            return squares
        blocks16 = self._blocks16
        if not native.available() or blocks16 is None:
            return self._of_products(v)
        q, per = native.module(), max(1, RUN // self.cols)
        runs = [(r, min(self.rows, r + per)) for r in range(0, self.rows, per)]
        total = 0
        for (a, cols, _h, w), h in zip(self.segments, blocks16, strict=True):
            total += sum(pool().map(lambda r: q.block_energy(v, self.cols, a, cols, h, w, r[0], r[1]), runs))  # noqa: B023
        return total

    @cached_property
    def _blocks16(self) -> list[npt.NDArray[np.int16]] | None:
        """Each segment's blocks as int16 for the native helper (once per tensor: the reference and every width's
        damage use them), or None when one is not exactly int16."""
        assert self.segments is not None
        out = []
        for _a, _c, h, _w in self.segments:
            b16 = h.to(torch.int16)
            if not torch.equal(b16.to(torch.float64), h):
                return None
            out.append(b16.contiguous().numpy())
        return out

    def _of_products(self, v: npt.NDArray[np.int8]) -> int:
        """:meth:`of` by float64 batched products (integers below 2^53 at every step: exact in any order)."""
        assert self.segments is not None
        rows = torch.from_numpy(v).reshape(self.rows, self.cols)
        total = 0
        for a, cols, h, w in self.segments:
            vt = rows[:, a : a + cols].reshape(self.rows, cols // w, w)
            for r in range(0, self.rows, _ROWS):
                b = vt[r : r + _ROWS].to(torch.float64).transpose(0, 1).contiguous()  # [nb, rows, w]
                total += int((torch.bmm(b, h) * b).to(torch.int64).sum())  # integers < 2^39 each: exact
        return total


def scaled(a: torch.Tensor, b: npt.NDArray[np.uint8] | None, dtype: str) -> tuple[npt.NDArray[np.int8], int, int]:
    """round((a - b)·2^k) as int8 with max |.| < 2^_LEVEL (``b`` None: a itself), k, and Σ of their squares."""
    q = native.module()
    raw, n, code = raw_bytes(a), a.numel(), _dtype_code(dtype)
    amax = max(pool().map(lambda r: q.diff_amax(raw, b, code, r[0], r[1]), _runs(n)), default=0.0)
    out = np.zeros(n, dtype=np.int8)
    if amax == 0.0:
        return out, 0, 0
    k = _LEVEL - 1 - math.frexp(amax)[1]
    squares = sum(pool().map(lambda r: q.diff_scaled(raw, b, code, r[0], r[1], k, out[r[0] : r[1]].data), _runs(n)))
    return out, k, squares


@dataclass(frozen=True)
class Reference:
    """The original's scaled energy (the denominator of every width's damage) and its scale, measured once."""

    energy: int
    k: int


def reference(original: torch.Tensor, dtype: str, energy: Energy) -> Reference:
    if not native.available():
        vt, kt = _scaled_torch(original.to(torch.float64).reshape(-1, original.shape[-1]))
        return Reference(energy.of_torch(vt), kt)
    v, k, squares = scaled(original, None, dtype)
    return Reference(energy.of(v, squares), k)


def damage(
    original: torch.Tensor, recon: npt.NDArray[np.uint8], dtype: str, energy: Energy, ref: Reference
) -> Fraction:
    """The moments-weighted relative error of ``recon`` (allocate.py's module docstring), exactly."""
    if ref.energy == 0:
        return Fraction(0)
    if native.available():
        v, ke, squares = scaled(original, recon, dtype)
        num = energy.of(v, squares) if squares else 0
    else:
        orig = original.to(torch.float64).reshape(-1, original.shape[-1])
        r = torch.from_numpy(recon.copy()).view(original.dtype).to(torch.float64).reshape(orig.shape)
        err, ke = _scaled_torch(orig - r)
        num = energy.of_torch(err)
    shift = ref.k - ke  # the two energies' scales: 4^k each (exact, Python ints)
    return Fraction(num * 4**shift, ref.energy) if shift >= 0 else Fraction(num, ref.energy * 4**-shift)


def _scaled_torch(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The reference of :func:`scaled`: round(x·2^k) as int64 with max |.| < 2^_LEVEL, and k."""
    amax = float(torch.amax(torch.abs(x))) if x.numel() else 0.0
    if amax == 0.0:
        return torch.zeros_like(x, dtype=torch.int64), 0
    k = _LEVEL - 1 - math.frexp(amax)[1]
    return torch.round(x * math.ldexp(1.0, k)).to(torch.int64), k


def measure(
    name: str,
    original: torch.Tensor,
    q: QuantizedTensor,
    group_size: int,
    energy: Energy | None = None,
    ref: Reference | None = None,
) -> Candidate:
    """The candidate of ``q``: decoded once, hashed, its quality record, and its damage when ``energy`` is given."""
    recon = decode_tensor(name, q, group_size)
    digest = Digest(hashlib.sha256(recon.data).hexdigest())
    ppm = error_ppm(original, recon, q.dtype)
    dmg = None
    if energy is not None and ref is not None:
        dmg = damage(original, recon, q.dtype, energy, ref)
    return Candidate(q, digest, ppm, dmg)
