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

import torch

from ..core.stfile import torch_dtype
from .codec import unpack_codes
from .rotation import decode_shift, fwht_torch, signs_torch


def reconstruct_tensor(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    exponent: int,
    shape: tuple[int, ...],
    dtype: str,
    bits: int,
    group_size: int,
    sign_key: int | None = None,
    sign_period: int = 0,
) -> torch.Tensor:
    """Decode pack components into the original shape and dtype (same device as inputs).

    ``sign_key`` (rotated schemes): the tensor's sign key; the integer Hadamard transform of
    ``q - z`` and the per-element signs are then applied (docs/format.md 3.5); ``sign_period`` > 0
    makes the signs row-shared (element index modulo the period).
    """
    n = math.prod(shape)
    n_groups = -(-n // group_size)
    if tuple(scales.shape) != (n_groups,) or tuple(zeros.shape) != (n_groups,):
        raise ValueError(f"scales/zeros must have shape [{n_groups}]")
    q = unpack_codes(codes, bits, n_groups * group_size).reshape(n_groups, group_size)
    vi = q.to(torch.int32) - zeros.to(torch.int32).unsqueeze(-1)
    shift = 0
    if sign_key is not None:
        vi = fwht_torch(vi)  # exact: |H(q - z)| <= (2^bits - 1) * g < 2^13
        shift = decode_shift(group_size)
    w = vi.to(torch.float32) * scales.to(torch.float32).unsqueeze(-1)
    w = w * math.ldexp(1.0, exponent + shift)
    if sign_key is not None:
        w = w * signs_torch(sign_key, 0, n_groups * group_size, w.device, torch.float32, sign_period).reshape(w.shape)
    w = w.reshape(-1)[:n]
    target = torch_dtype(dtype)
    if target is None or not target.is_floating_point:
        raise ValueError(f"unsupported reconstruction dtype {dtype}")
    return w.to(target).reshape(shape)
