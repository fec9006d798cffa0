"""The reconstruction contract: one formula, every step exact or correctly rounded.

    w = to_dtype( (fp32(q - z) * fp32(s16)) * 2**e )

``q - z`` is an integer with |q - z| <= 255, ``s16`` an fp16 value (11-bit
significand), so the product is exact in binary32; scaling by ``2**e`` with
e in [-100, 100] is exact; the only rounding is the final fp32 -> bf16/fp16 cast
(round to nearest even). No add follows a multiply, so FMA contraction cannot
change a bit. Any correct implementation, CPU or GPU, gives the same bytes.
"""

from __future__ import annotations

import math

import torch

from ..stfile import torch_dtype
from .codec import unpack_codes


def reconstruct_tensor(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    exponent: int,
    shape: tuple[int, ...],
    dtype: str,
    bits: int,
    group_size: int,
) -> torch.Tensor:
    """Decode pack components into the original shape and dtype (same device as inputs)."""
    n_cols = shape[-1]
    n_rows = math.prod(shape[:-1])
    n_groups = -(-n_cols // group_size)
    if tuple(scales.shape) != (n_rows, n_groups) or tuple(zeros.shape) != (n_rows, n_groups):
        raise ValueError(f"scales/zeros must have shape [{n_rows}, {n_groups}]")
    q = unpack_codes(codes, bits, n_rows * n_groups * group_size).reshape(n_rows, n_groups, group_size)
    v = (q.to(torch.int32) - zeros.to(torch.int32).unsqueeze(-1)).to(torch.float32)
    w = v * scales.to(torch.float32).unsqueeze(-1)
    w = w * math.ldexp(1.0, exponent)
    w = w.reshape(n_rows, n_groups * group_size)[:, :n_cols]
    target = torch_dtype(dtype)
    if target is None or not target.is_floating_point:
        raise ValueError(f"unsupported reconstruction dtype {dtype}")
    return w.to(target).reshape(shape)
