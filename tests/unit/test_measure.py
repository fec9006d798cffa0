"""The measures of a candidate width (measure.py) are exact: the native helpers and the torch/NumPy reference
give the same digest, quality record and damage, whatever the thread budget."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from uc_attest.core import threads
from uc_attest.quant import measure, native
from uc_attest.quant.ldlq import blocks_to_matrices, moments_to_blocks
from uc_attest.quant.quality import relative_error_ppm
from uc_attest.quant.quantize import quantize_tensor, reconstruction
from uc_attest.quant.scheme import LDLQ_ID, RHT_ID, Scheme

pytestmark = pytest.mark.skipif(not native.available(), reason="the native helpers are not compiled")


@pytest.fixture(autouse=True, params=native.module().supported_isas() if native.available() else [])
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every path this CPU has (scalar, avx512) measures the same numbers."""
    q = native.module()
    before = q.get_isa()
    q.set_isa(request.param)
    yield str(request.param)
    q.set_isa(before)
    threads.set_budget(None)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("feedback", [False, True])
@pytest.mark.parametrize("budget", [1, 3])
def test_native_measures_equal_the_reference(
    dtype: torch.dtype, feedback: bool, budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads.set_budget(budget)
    monkeypatch.setattr(measure, "RUN", 999)  # runs that split rows and groups
    scheme = Scheme(bits=5, group_size=64, id=LDLQ_ID if feedback else RHT_ID)
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(40, 256, generator=gen) * 0.03).to(dtype)
    x[3, 7] = 0.5
    m16 = moments_to_blocks(torch.randn(300, 256, generator=gen, dtype=torch.float64).T.cov(), 64) if feedback else None
    q = quantize_tensor("w", x, "X", scheme, "cpu", m16)
    dname = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[dtype]
    q = type(q)(q.codes, q.scales, q.zeros, q.exponent, q.shape, dname, q.bits, q.rotated, q.sign_period, q.moments)
    recon = reconstruction("w", q, 64, x)
    raw = measure.decode_tensor("w", q, 64)
    assert raw.tobytes() == recon.reshape(-1).view(torch.uint8).numpy().tobytes()
    assert measure.error_ppm(x, raw, dname) == relative_error_ppm(x, recon)
    h = blocks_to_matrices(m16, 64) if m16 is not None else None
    energy = measure.Energy((40, 256), h, 64)
    native_ref = measure.reference(x, dname, energy)
    got = measure.damage(x, raw, dname, energy, native_ref)
    monkeypatch.setattr(native, "available", lambda: False)  # the torch reference path
    want = measure.damage(x, raw, dname, energy, measure.reference(x, dname, energy))
    assert got == want and got > 0


@pytest.mark.parametrize(("w", "blocks", "a"), [(1, 5, 0), (64, 3, 7), (384, 2, 0), (2048, 1, 0)])
def test_native_block_energy_is_exact_at_the_extremes(w: int, blocks: int, a: int) -> None:
    """block_energy equals int64 products for the largest scaled values and moments it can be given (int8 ±127,
    int16 down to -32768), at every block width up to 2048, on columns that start inside a row."""
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(w)
    rows, cols = 6, blocks * w
    stride = a + cols + 3
    v = rng.integers(-127, 128, size=(rows, stride), dtype=np.int8)
    v[0, a : a + cols] = 127  # the largest positive sum
    h = rng.integers(-32768, 32768, size=(blocks, w, w), dtype=np.int16)
    h[0] = 32767
    seg = v[:, a : a + cols].astype(np.int64).reshape(rows, blocks, w)
    want = int(np.einsum("rbi,bij,rbj->", seg, h.astype(np.int64), seg, dtype=np.int64))
    q = native.module()
    assert q.block_energy(v, stride, a, cols, h, w, 0, rows) == want
    assert q.block_energy(v, stride, a, cols, h, w, 2, 2) == 0
    parts = q.block_energy(v, stride, a, cols, h, w, 0, 1) + q.block_energy(v, stride, a, cols, h, w, 1, rows)
    assert parts == want


@pytest.mark.parametrize(
    "args",
    [
        (8, 0, 8, 3, 0, 1),  # columns not a multiple of w
        (8, 4, 8, 4, 0, 1),  # columns past the row
        (8, 0, 8, 4, 0, 9),  # rows past the buffer
        (8, 0, 8, 4, 1, 0),  # r1 < r0
        (8, 0, 8, 0, 0, 1),  # w = 0
    ],
)
def test_native_block_energy_refuses_what_it_cannot_read(args: tuple[int, ...]) -> None:
    np = pytest.importorskip("numpy")
    stride, a, cols, w, r0, r1 = args
    v = np.zeros((8, 8), dtype=np.int8)
    h = np.zeros((max(1, cols // max(w, 1)), max(w, 1), max(w, 1)), dtype=np.int16)
    with pytest.raises(ValueError, match="block_energy"):
        native.module().block_energy(v, stride, a, cols, h, w, r0, r1)
