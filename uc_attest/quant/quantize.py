"""Deterministic per-group affine quantizer (scheme ``uc-affine-clip/1``).

Every float operation is IEEE-754 binary64 elementwise ``+ - * /`` (division is
always tensor/tensor: CUDA turns ``tensor / python_scalar`` into a multiply by
the reciprocal), ``round`` is half-to-even, reductions are ``amin``/``amax`` or
int64 sums, ties go to the lowest candidate index. The result is therefore the
same bytes on any CPU thread count and on any CUDA GPU. docs/format.md is the spec.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import UnsupportedTensor, UsageError
from . import native
from .codec import pack_codes
from .ldlq import feedback_codes, feedback_matrix, rotated_hessian
from .rotation import rotate, sign_key
from .scheme import EXP_RANGE, FEEDBACK_SEARCH, Part, Scheme

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
    sign_period: int = 0  # > 0: row-shared rotation signs (rotation.py)
    moments: torch.Tensor | None = None  # int16 committed moment blocks used for error feedback
    parts: tuple[Part, ...] = ()  # the row-aligned parts (Scheme.parts); () for one part of period sign_period


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
    """fp64 real scale -> fp16 significand: exact 2**-e scaling, then fp64->fp32->fp16 (RNE each),
    clamped to the finite fp16 range [2**-24, 65504]."""
    s16 = torch.clamp((s * inv_pow).to(torch.float32), max=65504.0).to(torch.float16)
    tiny = torch.tensor(2.0**-24, dtype=torch.float16, device=s.device)
    return torch.maximum(s16, tiny)


def _isum(t: torch.Tensor) -> torch.Tensor:
    """Sum over the last dim of an integer tensor (exact, order-independent); floats are refused."""
    if t.is_floating_point():
        raise TypeError("only integer sums are allowed on the determinism path")
    return t.to(torch.int64).sum(dim=-1)


def _objective(
    y: torch.Tensor, q: torch.Tensor, z: torch.Tensor, s: torch.Tensor, err_scale: torch.Tensor
) -> torch.Tensor:
    """Exact integer squared error per group: sum of int64(round((scaled e)^2))."""
    lim = float(2 ** (ERR_BITS + 1))
    e = torch.clamp((y - (q - z.unsqueeze(-1)) * s.unsqueeze(-1)) * err_scale, -lim, lim)
    return _isum(torch.round(e * e).to(torch.int64))


def _codes(y: torch.Tensor, s: torch.Tensor, z: torch.Tensor, qmax: int) -> torch.Tensor:
    return torch.clamp(torch.round(_div(y, s.unsqueeze(-1))) + z.unsqueeze(-1), 0, qmax)


@dataclass
class _Best:
    """The best (scale, zero-point) of each group of one block [nb, g] so far, under the exact integer error."""

    y: torch.Tensor
    qmax: int
    pow_e: float
    err_scale: torch.Tensor
    err: torch.Tensor
    s16: torch.Tensor
    z: torch.Tensor

    def consider(self, s16: torch.Tensor, z: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Take the candidate where its error is strictly lower (and ``valid``): ties keep the earlier."""
        s = s16.to(torch.float64) * self.pow_e
        err = _objective(self.y, _codes(self.y, s, z, self.qmax), z, s, self.err_scale)
        better = err < self.err if valid is None else (err < self.err) & valid
        self.err = torch.where(better, err, self.err)
        self.s16 = torch.where(better, s16, self.s16)
        self.z = torch.where(better, z, self.z)


def _search_block(
    y: torch.Tensor, qmax: int, exponent: int, clip_grid: tuple[float, ...], refit_rounds: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact-objective search for one block of groups [nb, g]; returns codes, s16, z.

    1. clipping grid: scale from the clipped range, zero-point from the clipped minimum;
    2. ``refit_rounds`` rounds of least-squares refit of (scale, offset) to the current codes with
       exact integer normal equations, trying z in round(-c/s) + {0, -1, +1}.
    A candidate replaces the best only on a strictly lower integer error (ties keep the earlier).
    """
    dev = y.device
    lo = torch.clamp(torch.amin(y, dim=-1), max=0.0)
    hi = torch.clamp(torch.amax(y, dim=-1), min=0.0)
    absmax = torch.maximum(-lo, hi)
    _, e_g = torch.frexp(absmax)
    e_g = e_g.to(torch.int64)
    err_scale = _pow2((ERR_BITS - e_g).clamp(-1022, 1023)).unsqueeze(-1)
    pow_e, inv_pow = math.ldexp(1.0, exponent), math.ldexp(1.0, -exponent)
    zero_range = hi == lo
    best = _Best(
        y,
        qmax,
        pow_e,
        err_scale,
        torch.full(lo.shape, torch.iinfo(torch.int64).max, dtype=torch.int64, device=dev),
        torch.ones(lo.shape, dtype=torch.float16, device=dev),
        torch.zeros(lo.shape, dtype=torch.float64, device=dev),
    )
    _clip_search(best, lo, hi, clip_grid, zero_range, inv_pow)
    if refit_rounds:
        _refit_search(best, lo, e_g, zero_range, refit_rounds, inv_pow)
    s = best.s16.to(torch.float64) * pow_e
    return _codes(y, s, best.z, qmax).to(torch.uint8), best.s16, best.z.to(torch.uint8)


def _clip_search(
    best: _Best,
    lo: torch.Tensor,
    hi: torch.Tensor,
    clip_grid: tuple[float, ...],
    zero_range: torch.Tensor,
    inv_pow: float,
) -> None:
    """:func:`_search_block`'s step 1: each clipping of the group range ``[lo, hi]`` in ``clip_grid``."""
    qmax_t = torch.full_like(lo, float(best.qmax))
    for p in clip_grid:
        lo_p, hi_p = lo * p, hi * p
        s16 = _store_scale(_div(hi_p - lo_p, qmax_t), inv_pow)
        s16 = torch.where(zero_range, torch.ones_like(s16), s16)
        s = s16.to(torch.float64) * best.pow_e
        best.consider(s16, torch.clamp(torch.round(_div(-lo_p, s)), 0, best.qmax))


def _refit_search(
    best: _Best, lo: torch.Tensor, e_g: torch.Tensor, zero_range: torch.Tensor, rounds: int, inv_pow: float
) -> None:
    """:func:`_search_block`'s step 2: ``rounds`` least-squares refits of (scale, offset) to the best codes."""
    y, qmax, pow_e, g = best.y, best.qmax, best.pow_e, best.y.shape[-1]
    # Fixed point: y ~ w_fx * 2^(E_g - F) with F small enough that no int64 sum overflows.
    f_bits = 61 - (qmax.bit_length()) - 2 * max(1, (g - 1).bit_length())
    to_fx = _pow2((f_bits - e_g).clamp(-1022, 1023))
    from_fx = _pow2((e_g - f_bits).clamp(-1022, 1023))
    w_fx = torch.round(y * to_fx.unsqueeze(-1)).to(torch.int64)
    s_w = _isum(w_fx)
    n_t = torch.full_like(lo, float(g))
    for _ in range(rounds):
        s = best.s16.to(torch.float64) * pow_e
        qi = _codes(y, s, best.z, qmax).to(torch.int64)
        s_q, s_qq, s_qw = _isum(qi), _isum(qi * qi), _isum(qi * w_fx)
        num, den = g * s_qw - s_q * s_w, g * s_qq - s_q * s_q
        valid = (den > 0) & ~zero_range
        den_f = torch.where(valid, den, torch.ones_like(den)).to(torch.float64)
        a = _div(num.to(torch.float64), den_f) * from_fx
        valid = valid & (a > 0)
        c = _div(s_w.to(torch.float64) * from_fx - a * s_q.to(torch.float64), n_t)
        s16 = _store_scale(torch.where(valid, a, torch.ones_like(a)), inv_pow)
        s_new = s16.to(torch.float64) * pow_e
        z0 = torch.round(_div(-c, s_new))
        for dz in (0.0, -1.0, 1.0):
            best.consider(s16, torch.clamp(z0 + dz, 0, qmax), valid)


def reconstruction(name: str, q: QuantizedTensor, group_size: int, like: torch.Tensor) -> torch.Tensor:
    """The reconstruction of ``q`` by the host decoder (docs/format.md 3.3), in ``like``'s dtype and shape."""
    from .decode import decode_parts_rows
    from .decode_protocol import Decoding
    from .scheme import Part

    rows = math.prod(q.shape[:-1])
    parts = q.parts or (Part(0, q.shape[-1], rows, group_size, q.sign_period, 0, 0),)
    if len(parts) == 1:  # the whole tensor as one part of one "row" (groups may span rows)
        n = math.prod(q.shape)
        parts = (Part(0, n, 1, group_size, q.sign_period, 0, 0),)
        rows = 1
    key = sign_key(name) if q.rotated else None
    how = Decoding(q.dtype, q.bits, group_size, q.exponent, key, q.sign_period)
    out = decode_parts_rows(q.codes.numpy(), q.scales.numpy(), q.zeros.numpy(), how, parts, 0, rows)
    return torch.from_numpy(out.reshape(-1).copy()).view(like.dtype).reshape(like.shape)


def check_moments(name: str, shape: tuple[int, ...], scheme: Scheme, moments: torch.Tensor) -> None:
    """Committed moments must be int16 of ``scheme.moments_shape`` for a row-aligned tensor of a feedback scheme."""
    if not scheme.row_signs:
        raise UsageError(f"tensor {name!r}: scheme {scheme.id} does not use calibration moments")
    want = scheme.moments_shape(shape)
    if want is None:
        raise UsageError(
            f"tensor {name!r}: row length {shape[-1]} is not a multiple or a divisor of the group size "
            f"{scheme.group_size}; calibration moments cannot be used for it"
        )
    if moments.dtype != torch.int16 or tuple(moments.shape) != want:
        raise UsageError(
            f"tensor {name!r}: calibration moments are {moments.dtype}{list(moments.shape)}, expected int16{list(want)}"
        )


@dataclass
class Prepared:
    """What quantizing one tensor at any width shares (pass 1 and the feedback's matrices): its row-aligned parts
    flattened, their moments, the largest group range over them and, natively with moments, each part's feedback
    matrices. Made by :func:`prepare` for a scheme; valid for that scheme at any ``bits``."""

    name: str
    shape: tuple[int, ...]
    scheme_key: tuple[object, ...]
    pieces: list[torch.Tensor]
    parts: tuple[Part, ...]
    m_parts: list[torch.Tensor | None]
    moments: torch.Tensor | None
    range_max: float
    native: bool
    matrices: list[bytes | None]


def _scheme_key(scheme: Scheme) -> tuple[object, ...]:
    """What a :class:`Prepared` depends on: everything of the scheme but its widths."""
    return (scheme.id, scheme.group_size, scheme.rotated, scheme.row_signs)


def prepare(
    name: str, w: torch.Tensor, scheme: Scheme, device: torch.device | str = "cpu", moments: torch.Tensor | None = None
) -> Prepared:
    """Pass 1 of :func:`quantize_tensor`: the non-finite check and the largest group range (exact min/max) over
    every part, and the feedback matrices of each part's moments (natively)."""
    shape = tuple(w.shape)
    if moments is not None:
        check_moments(name, shape, scheme, moments)
    parts = scheme.parts(shape)
    on_native = (
        torch.device(device).type == "cpu"
        and w.device.type == "cpu"
        and native.available()
        and native.native_dtype(w) is not None
    )
    if len(parts) == 1:
        pieces = [w.reshape(-1)]
    else:
        rows = w.reshape(-1, shape[-1])
        pieces = [rows[:, p.col0 : p.col0 + p.cols].contiguous().reshape(-1) for p in parts]
    m_parts = scheme.split_moments(shape, moments) if moments is not None else [None] * len(parts)
    range_max = 0.0
    for x, p in zip(pieces, parts, strict=True):
        if on_native:
            r = native.part_range(name, x, scheme, p.period)
        else:
            r = _part_range(name, x, scheme, p.period, device)
        range_max = max(range_max, r)
    matrices: list[bytes | None] = [
        native.feedback_matrices(name, scheme, p, m.cpu()) if on_native and m is not None else None
        for p, m in zip(parts, m_parts, strict=True)
    ]
    return Prepared(name, shape, _scheme_key(scheme), pieces, parts, m_parts, moments, range_max, on_native, matrices)


def quantize_tensor(
    name: str,
    w: torch.Tensor,
    dtype: str,
    scheme: Scheme,
    device: torch.device | str = "cpu",
    moments: torch.Tensor | None = None,
    prepared: Prepared | None = None,
) -> QuantizedTensor:
    """Quantize one float tensor on ``device``: per part (``Scheme.parts``: all its columns, or a row's first m·g
    columns and its last t), groups of ``g`` consecutive elements in C order; one exponent for the tensor.

    ``moments`` (feedback schemes): committed int16 second-moment blocks of the layer's input; quantization errors
    are then fed forward within each group (ldlq.py). ``prepared``: :func:`prepare`'s pass 1 for this tensor,
    moments and scheme (at any width), shared by the widths an allocation measures."""
    bits = scheme.bits_for(name)
    qmax = (1 << bits) - 1
    prep = prepared if prepared is not None else prepare(name, w, scheme, device, moments)
    assert prep.name == name and prep.scheme_key == _scheme_key(scheme) and prep.moments is moments
    exponent = tensor_exponent(prep.range_max, qmax)
    if not EXP_RANGE[0] <= exponent <= EXP_RANGE[1]:
        raise UnsupportedTensor(f"tensor {name!r}: magnitude out of range (scale exponent {exponent})", tensor=name)
    # Pass 2: search per block of groups (then error feedback when there are moments).
    codes, scales, zeros = [], [], []
    for x, p, m, mat in zip(prep.pieces, prep.parts, prep.m_parts, prep.matrices, strict=True):
        if prep.native:
            got = native.quantize_part(name, x, scheme, p, mat, exponent)
        else:
            got = _quantize_part(name, x, scheme, p, m, exponent, device)
        codes.append(got[0])
        scales.append(got[1])
        zeros.append(got[2])
    return QuantizedTensor(
        torch.cat(codes),
        torch.cat(scales),
        torch.cat(zeros),
        exponent,
        prep.shape,
        dtype,
        bits,
        scheme.rotated,
        prep.parts[0].period,
        None if moments is None else moments.cpu(),
        prep.parts,
    )


def _groups_of(
    flat: torch.Tensor, name: str, scheme: Scheme, period: int, device: torch.device | str
) -> Callable[[int, int], torch.Tensor]:
    """Groups b0..b1 of a flattened part as float64 [b1 - b0, g] (rotated when the scheme rotates), the tail
    zero-padded (zeros never change a result)."""
    g, n = scheme.group_size, flat.numel()

    def groups(b0: int, b1: int) -> torch.Tensor:
        seg = flat[b0 * g : min(n, b1 * g)].to(device).to(torch.float64)
        pad = (b1 - b0) * g - seg.numel()
        if pad:
            seg = torch.nn.functional.pad(seg, (0, pad))
        y = seg.reshape(b1 - b0, g)
        return rotate(y, sign_key(name), b0, period) if scheme.rotated else y

    return groups


def _block(scheme: Scheme, period: int) -> int:
    """Groups per block: whole rows when groups are row-aligned (the feedback runs over a row's groups)."""
    g = scheme.group_size
    row_groups = max(1, period // g)
    return row_groups * max(1, BLOCK_ELEMS // max(period, g)) if period else max(1, BLOCK_ELEMS // g)


def _part_range(name: str, flat: torch.Tensor, scheme: Scheme, period: int, device: torch.device | str) -> float:
    """The largest group range (hi - lo) of a flattened part; UnsupportedTensor on NaN or infinity."""
    g, n = scheme.group_size, flat.numel()
    n_groups = -(-n // g)
    groups = _groups_of(flat, name, scheme, period, device)
    block = _block(scheme, period)
    range_max = 0.0
    for b0 in range(0, n_groups, block):
        b1 = min(n_groups, b0 + block)
        if not bool(torch.isfinite(flat[b0 * g : min(n, b1 * g)]).all()):
            raise UnsupportedTensor(f"tensor {name!r}: contains NaN or infinity; cannot quantize", tensor=name)
        y = groups(b0, b1)
        rng = torch.clamp(torch.amax(y, -1), min=0.0) - torch.clamp(torch.amin(y, -1), max=0.0)
        range_max = max(range_max, float(torch.amax(rng)))
    return range_max


def _quantize_part(
    name: str,
    flat: torch.Tensor,
    scheme: Scheme,
    part: Part,
    moments: torch.Tensor | None,
    exponent: int,
    device: torch.device | str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Packed codes, fp16 scales and zero-points of one flattened part (the torch reference)."""
    g, bits = scheme.group_size, scheme.bits_for(name)
    qmax = (1 << bits) - 1
    period = part.period
    m_fx = None
    if moments is not None:
        m_fx = feedback_matrix(rotated_hessian(moments.to(device), g, sign_key(name), period))
    n_groups = -(-flat.numel() // g)
    row_groups = max(1, period // g)  # groups per row (1 when a group holds several rows)
    block = _block(scheme, period)
    groups = _groups_of(flat, name, scheme, period, device)
    grid, refit = FEEDBACK_SEARCH if m_fx is not None else (scheme.clip_grid, scheme.refit_rounds)
    codes, scales, zeros = [], [], []
    for b0 in range(0, n_groups, block):
        y = groups(b0, min(n_groups, b0 + block))
        q, s16, z = _search_block(y, qmax, exponent, grid, refit)
        if m_fx is not None and part.block > g:  # feedback blocks of several groups: scales per column
            per = part.block // g
            s = (s16.to(torch.float64) * math.ldexp(1.0, exponent)).reshape(-1, row_groups // per, per)
            zz = z.to(torch.float64).reshape(-1, row_groups // per, per)
            s, zz = (t.repeat_interleave(g, -1) for t in (s, zz))
            q = feedback_codes(y.reshape(-1, row_groups // per, part.block), s, zz, m_fx, qmax)
        elif m_fx is not None:
            s = (s16.to(torch.float64) * math.ldexp(1.0, exponent)).reshape(-1, row_groups)
            q = feedback_codes(y.reshape(-1, row_groups, g), s, z.to(torch.float64).reshape(-1, row_groups), m_fx, qmax)
        codes.append(pack_codes(q.reshape(-1), bits).cpu())
        scales.append(s16.cpu())
        zeros.append(z.cpu())
    return torch.cat(codes), torch.cat(scales), torch.cat(zeros)
