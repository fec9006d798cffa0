"""The native quantizer (``_quantize.c``) is the torch reference, bit for bit (DESIGN §3): every scheme, width,
group size, source dtype, shape (tails, rows shorter or longer than a group), with and without committed moments,
whatever the thread budget and the split of the groups between calls; and its entry points guard themselves."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from uc_attest.core import threads
from uc_attest.quant import native
from uc_attest.quant import quantize as qz
from uc_attest.quant.ldlq import moments_to_blocks
from uc_attest.quant.scheme import LDLQ_ID, RHT_ID, RTN_ID, SCHEME_ID, Scheme

pytestmark = pytest.mark.skipif(not native.available(), reason="the native quantizer is not compiled")
EXAMPLES = int(os.environ.get("UC_FUZZ_EXAMPLES", "200"))


ISAS = native.module().supported_isas() if native.available() else []


@pytest.fixture(autouse=True, params=ISAS)
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test runs on every path this CPU has (scalar, avx512): each must be the reference bit for bit."""
    q = native.module()
    before = q.get_isa()
    q.set_isa(request.param)
    yield str(request.param)
    q.set_isa(before)
    threads.set_budget(None)


def reference(name: str, w: torch.Tensor, scheme: Scheme, moments: torch.Tensor | None) -> qz.QuantizedTensor:
    os.environ["UC_ATTEST_QUANTIZER"] = "torch"
    try:
        return qz.quantize_tensor(name, w, "X", scheme, "cpu", moments)
    finally:
        del os.environ["UC_ATTEST_QUANTIZER"]


def assert_same(a: qz.QuantizedTensor, b: qz.QuantizedTensor) -> None:
    assert (a.exponent, a.sign_period, a.bits) == (b.exponent, b.sign_period, b.bits)
    assert torch.equal(a.scales.view(torch.int16), b.scales.view(torch.int16)), "scales differ"
    assert torch.equal(a.zeros, b.zeros), "zero-points differ"
    assert torch.equal(a.codes, b.codes), f"{int((a.codes != b.codes).sum())} code bytes differ"


def _moments(scheme: Scheme, shape: tuple[int, ...], seed: int) -> torch.Tensor | None:
    w = scheme.moment_block(shape)
    if not w:
        return None
    x = torch.randn(3 * shape[-1], shape[-1], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return moments_to_blocks(x.t() @ x + torch.diag(torch.rand(shape[-1], dtype=torch.float64)), w)


schemes = st.sampled_from([SCHEME_ID, RTN_ID, RHT_ID, LDLQ_ID])
dtypes = st.sampled_from([torch.float32, torch.float16, torch.bfloat16])


@settings(max_examples=EXAMPLES // 4, deadline=None)
@given(
    sid=schemes,
    bits=st.integers(2, 8),
    g=st.sampled_from([8, 16, 32, 64, 128, 256]),
    rows=st.integers(1, 9),
    cols=st.sampled_from([8, 24, 64, 96, 128, 200, 256, 576]),
    dtype=dtypes,
    feedback=st.booleans(),
    scale=st.sampled_from([1e-4, 0.02, 3.0, 300.0]),
    seed=st.integers(0, 2**16),
)
def test_the_native_quantizer_is_the_reference_bit_for_bit(
    sid: str, bits: int, g: int, rows: int, cols: int, dtype: torch.dtype, feedback: bool, scale: float, seed: int
) -> None:
    rotated = sid in (RHT_ID, LDLQ_ID)
    if rotated and bits + g.bit_length() - 1 > 13:
        bits = 13 - (g.bit_length() - 1)
    scheme = Scheme(bits=bits, group_size=g, id=sid)
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=gen, dtype=torch.float64) * scale
    w[0, 0] = scale * 40  # an outlier: clipping matters
    if cols > 3:
        w[-1, 1:3] = 0.0
    w = w.to(dtype)
    m = _moments(scheme, (rows, cols), seed) if feedback and scheme.row_signs else None
    assert_same(reference("m.layers.0.w", w, scheme, m), qz.quantize_tensor("m.layers.0.w", w, "X", scheme, "cpu", m))


@pytest.mark.parametrize("budget", [1, 2, 3])
def test_the_split_between_threads_changes_nothing(budget: int, monkeypatch: pytest.MonkeyPatch) -> None:
    scheme = Scheme(bits=5, group_size=128, id=LDLQ_ID)
    w = (torch.randn(64, 1024, generator=torch.Generator().manual_seed(7)) * 0.03).to(torch.bfloat16)
    m = _moments(scheme, (64, 1024), 7)
    want = reference("x", w, scheme, m)
    threads.set_budget(budget)
    monkeypatch.setattr(native, "RUN_GROUPS", 37)  # odd runs: splits inside rows
    assert_same(want, qz.quantize_tensor("x", w, "BF16", scheme, "cpu", m))


def test_non_finite_and_out_of_range_tensors_are_refused_naming_the_tensor() -> None:
    from uc_attest.errors import UnsupportedTensor

    scheme = Scheme(bits=5, group_size=128, id=LDLQ_ID)
    w = torch.zeros(4, 128, dtype=torch.bfloat16)
    w[2, 5] = float("nan")
    with pytest.raises(UnsupportedTensor, match="'bad'.*NaN"):
        qz.quantize_tensor("bad", w, "BF16", scheme, "cpu")
    huge = torch.full((2, 128), 3e38, dtype=torch.float32)
    with pytest.raises(UnsupportedTensor, match="out of range"):
        qz.quantize_tensor("huge", huge, "F32", scheme, "cpu")


@pytest.mark.parametrize(("cols", "g"), [(4096, 128), (576, 64), (64, 128), (200, 8), (96, 32), (256, 256)])
def test_native_feedback_matrices_are_the_reference(cols: int, g: int) -> None:
    from uc_attest.quant.ldlq import feedback_matrix, rotated_hessian
    from uc_attest.quant.rotation import sign_key

    scheme = Scheme(bits=5, group_size=g, id=LDLQ_ID)
    shape = (10, cols)
    m16 = _moments(scheme, shape, cols)
    assert m16 is not None
    period, key = scheme.sign_period(shape), sign_key("a.weight")
    want = feedback_matrix(rotated_hessian(m16, g, key, period))
    raw = native.module().feedback_matrices(m16.numpy().tobytes(), scheme.moment_block(shape), g, key, period)
    assert torch.equal(torch.frombuffer(bytearray(raw), dtype=torch.float64).reshape(want.shape), want)


def test_the_entry_points_guard_their_arguments() -> None:
    from uc_attest.quant import _quantize  # type: ignore[attr-defined]

    src = bytes(2 * 256)
    grid = bytes(8)
    out = (bytearray(2 * 16 * 5), bytearray(4), bytearray(2))
    ok = (src, 2, 256, 128, 0, 2, True, 1, 0, 5, 0, grid, 0, None, 1, 1, *out)
    _quantize.quantize_groups(*ok)
    bad: list[tuple[int, object]] = [
        (1, 7),  # dtype
        (2, -1),  # n
        (2, 2**62),  # n: overflow
        (3, 100),  # group size not a multiple of 8
        (3, 4096),  # group size too large
        (4, 3),  # first > last
        (5, 3),  # beyond the tensor
        (9, 9),  # bits
        (11, b""),  # empty grid
        (13, bytes(8)),  # feedback matrices of the wrong size
        (16, bytearray(1)),  # codes buffer too small
    ]
    for i, v in bad:
        args = list(ok)
        args[i] = v
        with pytest.raises((ValueError, OverflowError)):
            _quantize.quantize_groups(*args)
    with pytest.raises(ValueError, match="src has"):
        _quantize.group_ranges(bytes(10), 2, 256, 128, 0, 2, True, 1, 0)


def test_the_wide_feedback_entry_points_guard_their_arguments() -> None:
    """Feedback blocks of several groups (uc-rht-ldlq/3): a block count, run or matrix that does not fit is refused
    before any work, never read past its buffers."""
    from uc_attest.quant import _quantize  # type: ignore[attr-defined]

    g, rows, cols = 8, 2, 32  # rows of four groups: blocks of fb = 2 or 4 groups
    src, grid = bytes(2 * rows * cols), bytes(8)

    def call(fb: int, first: int, last: int, m: bytes) -> None:
        n = last - first
        out = (bytearray(n * g * 5 // 8), bytearray(2 * n), bytearray(n))
        _quantize.quantize_groups(src, 2, rows * cols, g, first, last, True, 1, cols, 5, 0, grid, 0, m, 4, fb, *out)

    call(2, 0, 8, bytes(2 * 16 * 16 * 8))  # two blocks of 16 columns per row
    call(4, 4, 8, bytes(1 * 32 * 32 * 8))
    for fb, first, last, m in [
        (0, 0, 8, bytes(8)),  # no block
        (3, 0, 6, bytes(3 * 24 * 24 * 8)),  # 3 does not divide the row's 4 groups
        (2, 1, 7, bytes(2 * 16 * 16 * 8)),  # a run that starts inside a block
        (2, 0, 7, bytes(2 * 16 * 16 * 8)),  # ... or ends inside one
        (2, 0, 8, bytes(16 * 16 * 8)),  # matrices for one block where a row has two
        (512, 0, 8, bytes(8)),  # wider than 2048 columns
    ]:
        with pytest.raises(ValueError):
            call(fb, first, last, m)
    tri = lambda w: bytes(w * (w + 1))  # int16 upper triangles of one w x w block
    assert len(_quantize.feedback_matrices(tri(24), 24, 8, 1, 24)) == 24 * 24 * 8
    for w, g_ in [(20, 8), (4096, 128), (24, 12)]:  # not a multiple of g; wider than 2048; g not a power of two
        with pytest.raises(ValueError):
            _quantize.feedback_matrices(tri(w), w, g_, 1, w)
