"""Bit packing of b-bit codes (2 <= b <= 8) into bytes, integer ops only.

Code ``i`` occupies bits ``[i*b, (i+1)*b)`` of a little-endian bit stream: stream
bit ``j`` is bit ``j % 8`` of byte ``j // 8``. Eight codes fill exactly ``b`` bytes,
so the code count must be a multiple of 8.
"""

from __future__ import annotations

import torch


def packed_size(n: int, bits: int) -> int:
    return n * bits // 8


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack a flat uint8 tensor of codes (< 2**bits, length % 8 == 0) into uint8 bytes."""
    if codes.numel() % 8:
        raise ValueError("code count must be a multiple of 8")
    c = codes.reshape(-1, 8).to(torch.int64)
    word = torch.zeros(c.shape[0], dtype=torch.int64, device=codes.device)
    for k in range(8):
        word |= c[:, k] << (bits * k)
    out = torch.stack([(word >> (8 * j)) & 0xFF for j in range(bits)], dim=1)
    return out.to(torch.uint8).reshape(-1)


def unpack_codes(packed: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_codes`: ``n`` codes as uint8.

    Code ``k`` of an 8-code word starts at bit ``bits*k``: the high bits of its first byte shifted down, OR-ed
    (when it straddles two bytes) with the next byte shifted up, in uint8 arithmetic (bits shifted out of
    the byte are dropped), then masked to ``bits`` bits."""
    if n % 8 or packed.numel() != packed_size(n, bits):
        raise ValueError(f"expected {packed_size(n, bits)} packed bytes for {n} codes, got {packed.numel()}")
    b = packed.reshape(-1, bits)
    out = torch.empty((b.shape[0], 8), dtype=torch.uint8, device=packed.device)
    mask = (1 << bits) - 1
    for k in range(8):
        j, sh = divmod(bits * k, 8)
        c = b[:, j] >> sh
        if sh + bits > 8:
            c = c | (b[:, j + 1] << (8 - sh))
        out[:, k] = c & mask
    return out.reshape(-1)
