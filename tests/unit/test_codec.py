"""Bit packing: exact inverse, fixed byte layout."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from uc_attest.quant.codec import pack_codes, unpack_codes


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(2, 8), n8=st.integers(1, 40), seed=st.integers(0, 2**31))
def test_roundtrip(bits: int, n8: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 1 << bits, (n8 * 8,), generator=g, dtype=torch.int64).to(torch.uint8)
    packed = pack_codes(codes, bits)
    assert packed.numel() == n8 * bits
    assert torch.equal(unpack_codes(packed, bits, codes.numel()), codes)


def _reference_pack(codes: list[int], bits: int) -> bytes:
    """Naive little-endian bit stream: code i at bits [i*b, (i+1)*b)."""
    acc = 0
    for i, c in enumerate(codes):
        acc |= c << (i * bits)
    return acc.to_bytes(len(codes) * bits // 8, "little")


@settings(max_examples=60, deadline=None)
@given(bits=st.integers(2, 8), data=st.data())
def test_layout_matches_naive_bitstream(bits: int, data: st.DataObject) -> None:
    codes = data.draw(
        st.lists(st.integers(0, (1 << bits) - 1), min_size=8, max_size=64).filter(lambda x: len(x) % 8 == 0)
    )
    got = pack_codes(torch.tensor(codes, dtype=torch.uint8), bits).numpy().tobytes()
    assert got == _reference_pack(codes, bits)


def test_five_bit_golden() -> None:
    codes = torch.tensor([1, 2, 3, 4, 5, 6, 7, 31], dtype=torch.uint8)
    assert pack_codes(codes, 5).numpy().tobytes().hex() == "410c52ccf9"
