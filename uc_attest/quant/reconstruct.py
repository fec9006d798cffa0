"""The reconstruction contract: one formula, every step exact or correctly rounded.

    w = to_dtype( (fp32(q - z) * fp32(s16)) * 2**e )

``q - z`` is an integer with |q - z| <= 255, ``s16`` an fp16 value (11-bit
significand), so the product is exact in binary32; scaling by ``2**e`` with
e in [-100, 100] is exact; the only rounding is the final fp32 -> bf16/fp16 cast
(round to nearest even). No add follows a multiply, so FMA contraction cannot
change a bit. Any correct implementation, CPU or GPU, gives the same bytes.
Rotated schemes insert an exact integer Hadamard transform of ``q - z`` and a ±1 sign
(rotation.py); the single rounding is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from ..core.stfile import torch_dtype
from .codec import unpack_codes
from .decode_protocol import Decoding
from .rotation import decode_shift, inverse_rotation
from .scheme import Part

#: Groups decoded per block by :func:`reconstruct_into`: bounds the int32/float32 temporaries (~16 MB).
BLOCK_GROUPS = 8192


def reconstruct_into(
    out: torch.Tensor,
    codes: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    how: Decoding,
    block_groups: int = BLOCK_GROUPS,
) -> torch.Tensor:
    """Decode into ``out`` (any float dtype, ``n`` elements, on the device of the inputs), block by block of
    groups so temporaries stay bounded. Every element goes through the same exact steps whatever the block
    size — ``(q - z)`` (small integers, exact in binary32), the rotation's exact integer transform, one
    multiply by ``S = s16 * 2^(e + shift)`` (exact: a power-of-two scaling of an fp16 value), the ±1 signs,
    then the one rounding to ``out``'s dtype — so the bytes are those of a whole-tensor decode (tested).
    ``out``'s dtype is the target: ``how.dtype`` is not read."""
    bits, group_size, exponent, sign_key, sign_period = (
        how.bits,
        how.group_size,
        how.exponent,
        how.sign_key,
        how.sign_period,
    )
    flat = out.view(-1)
    n, g = flat.numel(), group_size
    n_groups = -(-n // g)
    if tuple(scales.shape) != (n_groups,) or tuple(zeros.shape) != (n_groups,):
        raise ValueError(f"scales/zeros must have shape [{n_groups}]")
    if codes.numel() != n_groups * g * bits // 8:
        raise ValueError(f"expected {n_groups * g * bits // 8} packed code bytes, got {codes.numel()}")
    shift = decode_shift(g) if sign_key is not None else 0
    factor = math.ldexp(1.0, exponent + shift)
    step = g * bits // 8
    for b0 in range(0, n_groups, block_groups):
        b1 = min(n_groups, b0 + block_groups)
        q = unpack_codes(codes[b0 * step : b1 * step], bits, (b1 - b0) * g).reshape(b1 - b0, g)
        v = q.to(torch.float32) - zeros[b0:b1].to(torch.float32).unsqueeze(-1)
        if sign_key is not None:
            v = inverse_rotation(v, sign_key, b0, sign_period)  # the signs multiply last: exact, -0 kept
        w = v * (scales[b0:b1].to(torch.float32) * factor).unsqueeze(-1)
        lo, hi = b0 * g, min(n, b1 * g)
        flat[lo:hi].copy_(w.reshape(-1)[: hi - lo])  # the one rounding: fp32 -> out dtype, nearest even
    return out


def reconstruct_parts_into(
    out: torch.Tensor,
    codes: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    how: Decoding,
    parts: tuple[Part, ...],
) -> torch.Tensor:
    """:func:`reconstruct_into` for a tensor stored in row-aligned parts (``Scheme.parts``): each part decoded
    from its own groups (its group size and sign period replace ``how``'s), then placed in its columns of
    ``out``."""
    rows = out.view(-1, out.shape[-1])
    for p in parts:
        step = p.group * how.bits // 8
        a, b = p.first_group, p.first_group + p.groups
        piece = torch.empty((p.rows, p.cols), dtype=out.dtype, device=out.device)
        part = replace(how, group_size=p.group, sign_period=p.period)
        reconstruct_into(piece, codes[a * step : b * step], scales[a:b], zeros[a:b], part)
        rows[:, p.col0 : p.col0 + p.cols].copy_(piece)
    return out


def reconstruct_tensor(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    how: Decoding,
    shape: tuple[int, ...],
    parts: tuple[Part, ...] = (),
) -> torch.Tensor:
    """Decode pack components into the original shape and ``how.dtype`` (same device as inputs); ``parts``: the
    tensor's row-aligned parts when there are two (``Scheme.parts``; each part's group size and sign period
    replace ``how``'s).

    ``how.sign_key`` (rotated schemes): the tensor's sign key; the integer Hadamard transform of
    ``q - z`` and the per-element signs are then applied (docs/format.md 3.5); ``how.sign_period`` > 0
    makes the signs row-shared (element index modulo the period).
    """
    target = torch_dtype(how.dtype)
    if target is None or not target.is_floating_point:
        raise ValueError(f"unsupported reconstruction dtype {how.dtype}")
    out = torch.empty(shape, dtype=target, device=codes.device)
    if len(parts) > 1:
        return reconstruct_parts_into(out, codes, scales, zeros, how, parts)
    return reconstruct_into(out, codes, scales, zeros, how)
