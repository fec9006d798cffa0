"""Deterministic per-group affine quantizer (scheme ``uc-affine-clip/1``).

Every float operation is IEEE-754 binary64 elementwise ``+ - * /`` (division is
always tensor/tensor: CUDA turns ``tensor / python_scalar`` into a multiply by
the reciprocal), ``round`` is half-to-even, reductions are ``amin``/``amax`` or
int64 sums, ties go to the lowest candidate index. The result is therefore the
same bytes on any CPU thread count and on any CUDA GPU. docs/format.md is the spec.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import UnsupportedTensor
from .codec import pack_codes
from .rotation import rotate
from .scheme import EXP_RANGE, Scheme

#: Rows are processed in blocks of about this many (padded) elements to bound memory.
BLOCK_ELEMS = 1 << 20
#: Error scaling: e * 2**(ERR_BITS - E_g), |scaled e| <= 2**ERR_BITS, squares summed in int64.
ERR_BITS = 26


@dataclass(frozen=True)
class QuantizedTensor:
    """Pack components of one tensor (all on CPU)."""

    codes: torch.Tensor  # uint8, packed b-bit codes of the tail-padded [groups, g] matrix
    scales: torch.Tensor  # float16 [groups]: scale significands
    zeros: torch.Tensor  # uint8 [groups]: integer zero-points
    exponent: int  # real scale = float(scales) * 2**exponent
    shape: tuple[int, ...]
    dtype: str
    bits: int
    rotated: bool


def _pow2(k: torch.Tensor) -> torch.Tensor:
    """Exact 2**k as float64 built from the bit pattern (k int64 in [-1022, 1023])."""
    return ((k + 1023) << 52).view(torch.float64)


def _div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Correctly rounded a / b; b is always a same-device tensor (never a Python scalar)."""
    return torch.div(a, b)


def tensor_exponent(range_max: float, qmax: int) -> int:
    """Per-tensor exponent e so that the largest scale / 2**e lies in [2**14, 2**15)."""
    if range_max == 0.0:
        return 0
    _m, e = math.frexp(range_max / qmax)
    return e - 15


def _store_scale(s: torch.Tensor, inv_pow: float) -> torch.Tensor:
    """fp64 real scale -> fp16 significand: exact 2**-e scaling, then fp64->fp32->fp16 (RNE each)."""
    s16 = (s * inv_pow).to(torch.float32).to(torch.float16)
    tiny = torch.tensor(2.0**-24, dtype=torch.float16, device=s.device)
    return torch.maximum(s16, tiny)


def _search_block(
    y: torch.Tensor, qmax: int, exponent: int, clip_grid: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact-objective clipping search over ``clip_grid`` for one block; returns codes, s16, z."""
    dev = y.device
    lo = torch.clamp(torch.amin(y, dim=-1), max=0.0)
    hi = torch.clamp(torch.amax(y, dim=-1), min=0.0)
    absmax = torch.maximum(-lo, hi)
    _, e_g = torch.frexp(absmax)
    err_scale = _pow2((ERR_BITS - e_g.to(torch.int64)).clamp(-1022, 1023)).unsqueeze(-1)
    qmax_t = torch.full_like(lo, float(qmax))
    pow_e, inv_pow = math.ldexp(1.0, exponent), math.ldexp(1.0, -exponent)
    zero_range = hi == lo
    best_err = torch.full(lo.shape, torch.iinfo(torch.int64).max, dtype=torch.int64, device=dev)
    best_s16 = torch.ones(lo.shape, dtype=torch.float16, device=dev)
    best_z = torch.zeros(lo.shape, dtype=torch.float64, device=dev)
    lim = float(2 ** (ERR_BITS + 1))
    for p in clip_grid:
        lo_p, hi_p = lo * p, hi * p
        s16 = _store_scale(_div(hi_p - lo_p, qmax_t), inv_pow)
        s16 = torch.where(zero_range, torch.ones_like(s16), s16)
        s = s16.to(torch.float64) * pow_e
        z = torch.clamp(torch.round(_div(-lo_p, s)), 0, qmax)
        q = torch.clamp(torch.round(_div(y, s.unsqueeze(-1))) + z.unsqueeze(-1), 0, qmax)
        e = (y - (q - z.unsqueeze(-1)) * s.unsqueeze(-1)) * err_scale
        ec = torch.clamp(e, -lim, lim)
        err = torch.round(ec * ec).to(torch.int64).sum(dim=-1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_s16 = torch.where(better, s16, best_s16)
        best_z = torch.where(better, z, best_z)
    s = best_s16.to(torch.float64) * pow_e
    q = torch.clamp(torch.round(_div(y, s.unsqueeze(-1))) + best_z.unsqueeze(-1), 0, qmax)
    return q.to(torch.uint8), best_s16, best_z.to(torch.uint8)


def quantize_tensor(
    name: str, w: torch.Tensor, dtype: str, scheme: Scheme, device: torch.device | str = "cpu"
) -> QuantizedTensor:
    """Quantize one float tensor on ``device``: groups of ``g`` consecutive elements in C order."""
    g, bits = scheme.group_size, scheme.bits_for(name)
    qmax = (1 << bits) - 1
    flat = w.reshape(-1)
    n = flat.numel()
    n_groups = -(-n // g)
    block = max(1, BLOCK_ELEMS // g)

    def groups(b0: int, b1: int) -> torch.Tensor:
        """Groups b0..b1 as float64 [b1 - b0, g], the tail zero-padded (zeros never change a result)."""
        seg = flat[b0 * g : min(n, b1 * g)].to(device).to(torch.float64)
        pad = (b1 - b0) * g - seg.numel()
        if pad:
            seg = torch.nn.functional.pad(seg, (0, pad))
        y = seg.reshape(b1 - b0, g)
        return rotate(y, name) if scheme.rotated else y

    # Pass 1: non-finite check and the largest group range (exact min/max).
    range_max = 0.0
    for b0 in range(0, n_groups, block):
        b1 = min(n_groups, b0 + block)
        if not bool(torch.isfinite(flat[b0 * g : min(n, b1 * g)]).all()):
            raise UnsupportedTensor(f"tensor {name!r}: contains NaN or infinity; cannot quantize", tensor=name)
        y = groups(b0, b1)
        rng = torch.clamp(torch.amax(y, -1), min=0.0) - torch.clamp(torch.amin(y, -1), max=0.0)
        range_max = max(range_max, float(torch.amax(rng)))
    exponent = tensor_exponent(range_max, qmax)
    if not EXP_RANGE[0] <= exponent <= EXP_RANGE[1]:
        raise UnsupportedTensor(f"tensor {name!r}: magnitude out of range (scale exponent {exponent})", tensor=name)
    # Pass 2: search per block of groups.
    codes, scales, zeros = [], [], []
    for b0 in range(0, n_groups, block):
        q, s16, z = _search_block(groups(b0, min(n_groups, b0 + block)), qmax, exponent, scheme.clip_grid)
        codes.append(pack_codes(q.reshape(-1), bits).cpu())
        scales.append(s16.cpu())
        zeros.append(z.cpu())
    return QuantizedTensor(torch.cat(codes), torch.cat(scales), torch.cat(zeros), exponent, tuple(w.shape), dtype,
                           bits, scheme.rotated)
