"""The serving kernels (uc_attest/runtime/_serve.c) against NumPy references, bit for bit, on every ISA path and
thread count (DESIGN sections 3 and 10; docs/runtime.md).

exact: each row decoded by the reference decoder, widened to float32, and every output one dot product in the
documented fixed order (16 partial sums by k mod 16, a multiply then an add, a halving tree).
fast:  the activation slice of each group sign-flipped and Walsh-Hadamard transformed in float32, quantized to
integers c in -16256..16256 (scale max|t| / 16256, round half to even), an integer dot product with the codes minus
z times the sum of the c, then y += (s * a) * d group after group in float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from uc_attest.quant import decode
from uc_attest.quant.decode_protocol import Decoding
from uc_attest.quant.rotation import decode_shift, signs_numpy
from uc_attest.runtime import kernels

pytestmark = pytest.mark.skipif(not kernels.available(), reason="serving kernels not compiled (pip install -e .)")
_serve: Any = kernels._native

DTYPE_CODES = {"F32": 0, "F16": 1, "BF16": 2}
C_MAX = kernels.C_MAX


@pytest.fixture(params=["scalar", "avx2", "avx512", "amx"])
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    if name not in kernels.supported_isas():
        pytest.skip(f"this CPU lacks {name} (with VBMI and VNNI for avx512; AMX-INT8 and the kernel's leave for amx)")
    before = kernels.isa()
    kernels.set_isa(name)
    yield name
    kernels.set_isa(before)


class Case:
    """A random packed weight [rows, k] (groups over the flattened tensor) and its decoded float32 values."""

    def __init__(self, rng: np.random.Generator, rows: int, k: int, bits: int, group: int, dtype: str,
                 rotated: bool, period: int, exponent: int = -6) -> None:  # fmt: skip
        n = rows * k
        groups = -(-n // group)
        self.rows, self.k, self.bits, self.group, self.dtype = rows, k, bits, group, dtype
        self.codes = rng.integers(0, 256, groups * group * bits // 8, dtype=np.uint8)
        self.scales = rng.uniform(2.0**-4, 1.0, groups).astype(np.float16)
        self.zeros = rng.integers(0, 1 << bits, groups, dtype=np.uint8)
        self.key = int(rng.integers(0, 2**63)) * 2 + 1 if rotated else None
        self.period, self.exponent = period, exponent
        how = Decoding(dtype, bits, group, exponent, self.key, period)
        flat = decode.decode_rows(self.codes, self.scales[None], self.zeros[None], how, n, native=False)
        self.w = _widen(flat, dtype).reshape(rows, k)

    def args(self) -> tuple[Any, ...]:
        return (self.codes, self.scales.view(np.uint16), self.zeros, self.rows, self.k, self.group, self.bits,
                DTYPE_CODES[self.dtype], self.exponent, self.key is not None, self.key or 0, self.period)  # fmt: skip


def _widen(a: npt.NDArray[Any], dtype: str) -> npt.NDArray[np.float32]:
    if dtype == "BF16":
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def exact_reference(x: npt.NDArray[np.float32], w: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    m, k = x.shape
    acc = np.zeros((16, m, w.shape[0]), dtype=np.float32)
    for j in range(0, k, 16):
        for lane in range(min(16, k - j)):
            acc[lane] = acc[lane] + np.outer(x[:, j + lane], w[:, j + lane]).astype(np.float32)
    h = 8
    while h >= 1:
        acc[:h] = acc[:h] + acc[h : 2 * h]
        h //= 2
    return acc[0]


def fast_reference(x: npt.NDArray[np.float32], c: Case) -> npt.NDArray[np.float32]:
    m, k, g = x.shape[0], c.k, c.group
    t = x.reshape(m, k // g, g).copy()
    if c.key is not None:
        t *= signs_numpy(c.key, 0, k, c.period).reshape(k // g, g)  # row-shared signs (period == k)
        h = 1
        while h < g:  # butterflies h = 1, 2, ... in float32
            v = t.reshape(m, k // g, g // (2 * h), 2, h)
            u, w = v[..., 0, :].copy(), v[..., 1, :].copy()
            v[..., 0, :], v[..., 1, :] = u + w, u - w
            h *= 2
    bad = ~np.isfinite(t).all(axis=-1)  # a NaN or an infinity in the group: scale NaN, codes 0
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        a = np.where(bad, np.float32(np.nan), np.abs(t).max(axis=-1) / np.float32(C_MAX)).astype(np.float32)
        q8 = np.where((a[..., None] > 0) & ~bad[..., None], np.rint(t / a[..., None]), 0)
    q8 = np.nan_to_num(q8).clip(-C_MAX, C_MAX).astype(np.int64)  # c: the kernels split it into two int8 planes
    sums = q8.sum(-1)
    q = decode.unpack_codes_np(c.codes, c.bits).astype(np.int64).reshape(c.rows, k // g, g)
    z = c.zeros.astype(np.int64).reshape(c.rows, k // g)
    shift = decode_shift(g) if c.key is not None else 0
    s = c.scales.astype(np.float32).reshape(c.rows, k // g) * np.float32(2.0 ** (c.exponent + shift))
    y = np.zeros((m, c.rows), dtype=np.float32)
    np.seterr(invalid="ignore")
    for b in range(k // g):
        d = np.einsum("ij,rj->ir", q8[:, b], q[:, b]) - sums[:, b, None] * z[None, :, b]  # exact integers
        y = y + (s[None, :, b] * a[:, b, None]).astype(np.float32) * d.astype(np.float32)
    return y


def _run(fn: str, x: npt.NDArray[np.float32], c: Case, threads: int) -> npt.NDArray[np.float32]:
    y = np.full((x.shape[0], c.rows), np.nan, dtype=np.float32)
    getattr(_serve, fn)(np.ascontiguousarray(x), y, c.args(), threads)
    return y


EXACT_CASES = [  # rows, k, bits, group, rotated, period
    (7, 256, 5, 128, True, 256),
    (5, 200, 4, 64, False, 0),      # rows that are not whole groups (k % g != 0): rows start mid-group
    (3, 576, 5, 128, True, 0),      # signs over the flattened tensor
    (9, 40, 6, 16, True, 16),
    (4, 1024, 3, 1024, True, 1024),
    (2, 37, 3, 8, False, 0),        # a tail shorter than a vector
    (6, 384, 5, 128, False, 0),     # the fused AVX-512 path: unrotated groups of a multiple of 16
    (3, 128, 6, 16, False, 0),
    (17, 512, 6, 128, True, 512),   # and rotated groups of 128 (row-shared signs: moved onto x)
    (5, 256, 2, 128, True, 0),      # rotated groups of 128, signs over the flattened tensor
]  # fmt: skip


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_exact_is_the_fixed_order_dot_of_the_decoded_rows(isa: str, dtype: str) -> None:
    rng = np.random.default_rng(11)
    for rows, k, bits, group, rotated, period in EXACT_CASES:
        c = Case(rng, rows, k, bits, group, dtype, rotated, period)
        for m in (1, 3):
            x = rng.standard_normal((m, k)).astype(np.float32)
            want = exact_reference(x, c.w)
            for threads in (1, 2, 3):
                got = _run("matmul_exact", x, c, threads)
                assert got.tobytes() == want.tobytes(), (isa, dtype, rows, k, bits, group, m, threads)


FAST_CASES = [  # rows, k, bits, group, rotated (16-row blocks and the rows they leave over, per thread)
    (37, 256, 5, 128, True),
    (5, 512, 6, 128, True),
    (48, 192, 5, 64, True),
    (3, 128, 4, 32, True),    # groups below a 64-byte vector: the portable loop on every path
    (33, 384, 5, 128, False),
    (2, 64, 8, 64, False),
    (3, 96, 2, 16, False),
]  # fmt: skip


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_fast_is_the_documented_integer_computation(isa: str, dtype: str) -> None:
    rng = np.random.default_rng(12)
    for rows, k, bits, group, rotated in FAST_CASES:
        c = Case(rng, rows, k, bits, group, dtype, rotated, k if rotated else 0)
        for m in (1, 2, 4, 7):  # a few tokens and a batch take different paths to the same numbers
            x = rng.standard_normal((m, k)).astype(np.float32)
            x[:, :3] = 0.0  # a group may be all zero in a row below
            if m > 1:
                x[1, :group] = 0.0  # an all-zero group: scale 0, contributes 0
            if m > 3:
                x[2, min(group + 1, k - 1)] = np.nan  # a NaN or an infinity makes the outputs it feeds NaN
                x[3, -1] = -np.inf
            want = fast_reference(x, c)
            for threads in (1, 2, 3):
                got = _run("matmul_fast", x, c, threads)
                nan = np.isnan(want)  # NaN payloads are not compared, their places are
                assert (np.isnan(got) == nan).all() and got[~nan].tobytes() == want[~nan].tobytes(), (
                    isa,
                    dtype,
                    rows,
                    k,
                    bits,
                    group,
                    m,
                    threads,
                )


def test_fast_is_close_to_exact() -> None:
    """Activations quantized to 16256 levels each side after the rotation: ~1e-4 relative error per output on
    random data (int8 activations gave ~1e-2; docs/runtime.md measures logits and KL on real models). float32
    weights: with bfloat16 ones exact multiplies the attested, rounded values and fast the codes' unrounded ones,
    ~2e-3 apart on random data by that rounding alone."""
    rng = np.random.default_rng(13)
    c = Case(rng, 64, 1024, 5, 128, "F32", True, 1024)
    x = rng.standard_normal((4, 1024)).astype(np.float32)
    exact, fast = _run("matmul_exact", x, c, 2), _run("matmul_fast", x, c, 2)
    rel = np.linalg.norm(fast - exact) / np.linalg.norm(exact)
    assert 0 < rel < 3e-4, rel


@pytest.mark.parametrize("m", [1, 5])
def test_fast_integer_sums_at_the_edge_of_their_range(isa: str, m: int) -> None:
    """The largest sums fast admits, (2^7 - 1) 16256 1024 = 2.11e9 (just below 2^31): every code at its maximum,
    every activation at the group's maximum (c = 16256 = 128 * 127 + 0), zero-points 0 and then all at maximum;
    the kernels' int32 sums equal the reference's int64 ones."""
    rng = np.random.default_rng(16)
    for zero in (0, 127):
        c = Case(rng, 17, 1024, 7, 1024, "F16", False, 0)  # a block of 16 rows (the AMX tiles) and one more
        c.codes[:] = 0xFF
        c.zeros[:] = zero
        x = np.ones((m, 1024), dtype=np.float32)
        if m > 1:
            x[-1, ::2] = -1.0  # and alternating signs: c = -16256 (h = -127, l = 0)
        got = _run("matmul_fast", x, c, 2)
        assert got.tobytes() == fast_reference(x, c).tobytes(), (isa, m, zero)
        assert np.isfinite(got).all() and (got[0] > 0 if zero == 0 else got[0] == 0).all()


def test_fast_refuses_codes_and_groups_whose_sums_would_overflow() -> None:
    rng = np.random.default_rng(17)
    c = Case(rng, 2, 1024, 8, 1024, "F16", False, 0)
    x = np.ones((1, 1024), dtype=np.float32)
    with pytest.raises(ValueError, match="2\\^31"):
        _run("matmul_fast", x, c, 1)
    assert _run("matmul_exact", x, c, 1).shape == (1, 2)  # exact takes it
    why = kernels.fast_unsupported(torch_size(2, 1024), 1024, False, 0, 8)
    assert why is not None and "overflow" in why
    assert kernels.fast_unsupported(torch_size(2, 1024), 1024, False, 0, 7) is None


def torch_size(*dims: int) -> Any:
    import torch

    return torch.Size(dims)


def test_a_batch_gives_each_row_what_it_gives_alone() -> None:
    rng = np.random.default_rng(14)
    c = Case(rng, 16, 512, 5, 128, "BF16", True, 512)
    x = rng.standard_normal((5, 512)).astype(np.float32)
    for fn in ("matmul_exact", "matmul_fast"):
        whole = _run(fn, x, c, 2)
        for i in range(5):
            assert _run(fn, x[i : i + 1], c, 1).tobytes() == whole[i : i + 1].tobytes(), fn


def test_bad_arguments_are_value_errors_not_crashes() -> None:
    rng = np.random.default_rng(15)
    c = Case(rng, 4, 256, 5, 128, "BF16", True, 256)
    x = rng.standard_normal((1, 256)).astype(np.float32)
    y = np.empty((1, 4), dtype=np.float32)
    good = list(c.args())

    def call(fn: str, args: list[Any], xx: Any = x, yy: Any = y, threads: int = 1, bias: Any = None) -> None:
        getattr(_serve, fn)(xx, yy, tuple(args), threads, bias)

    for i, bad in ((0, c.codes[:-1]), (1, c.scales.view(np.uint16)[:-1]), (2, c.zeros[:-1]), (3, 5), (4, 255),
                   (5, 96), (6, 9), (7, 3), (8, 101), (11, 7)):  # fmt: skip
        args = list(good)
        args[i] = bad
        for fn in ("matmul_exact", "matmul_fast"):
            with pytest.raises(ValueError):
                call(fn, args)
    inf = c.scales.copy()
    inf[1] = np.inf
    for fn in ("matmul_exact", "matmul_fast"):
        with pytest.raises(ValueError, match="non-finite"):
            call(fn, [good[0], inf.view(np.uint16), *good[2:]])
        for kw in ({"xx": x[:, :128]}, {"yy": np.empty((1, 3), dtype=np.float32)}, {"threads": 0},
                   {"xx": x.astype(np.float64)}, {"xx": np.zeros((1, 512), np.float32)[:, ::2]},
                   {"yy": np.empty((1, 4), dtype=np.int32)}, {"bias": np.ones(3, np.float32)},
                   {"xx": np.empty((0, 256), np.float32)}):  # fmt: skip
            with pytest.raises((ValueError, BufferError)):  # BufferError: not C-contiguous
                call(fn, good, **kw)
        with pytest.raises((TypeError, BufferError)):
            call(fn, good, yy=bytes(16))  # not writable
        with pytest.raises(TypeError):
            getattr(_serve, fn)(x, y, tuple(good[:11]), 1)  # the weight is a 12-tuple
    flat = [*good[:-1], 0]  # signs not shared across rows: exact takes it, fast refuses
    call("matmul_exact", flat)
    with pytest.raises(ValueError, match="row-shared"):
        call("matmul_fast", flat)


@pytest.mark.parametrize("fn", ["matmul_exact", "matmul_fast"])
def test_half_precision_in_and_out_with_a_bias_is_the_binary32_result_rounded_once(fn: str) -> None:
    """x and y in float16 or bfloat16 (as int16), a bias: the same sums as in binary32, the bias added in binary32,
    one rounding to the output dtype (round to nearest even)."""
    import torch

    rng = np.random.default_rng(16)
    c = Case(rng, 21, 256, 5, 128, "BF16", True, 256)
    xf = rng.standard_normal((3, 256)).astype(np.float32)
    bias = rng.standard_normal(21).astype(np.float32)
    for dt in (torch.bfloat16, torch.float16):
        x = torch.from_numpy(xf).to(dt)
        b = torch.from_numpy(bias).to(dt)
        want = torch.from_numpy(_run(fn, x.float().numpy(), c, 2) + b.float().numpy()).to(dt)
        y = torch.empty((3, 21), dtype=dt)
        view = (lambda t: t.view(torch.int16).numpy()) if dt == torch.bfloat16 else (lambda t: t.numpy())
        getattr(_serve, fn)(view(x), view(y), c.args(), 2, view(b))
        assert torch.equal(y.view(torch.int16), want.view(torch.int16)), dt
    y32 = np.empty((3, 21), np.float32)
    getattr(_serve, fn)(xf, y32, c.args(), 1, bias)  # float32 out: the bias added in place, no rounding
    assert y32.tobytes() == (_run(fn, xf, c, 1) + bias).tobytes()


def test_out_of_memory_in_a_kernel_names_the_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel's allocation that fails (MemoryError from the C side) becomes OperationalError (exit 4) naming
    the layer. Simulated: a real allocation failure cannot be provoked here without exhausting the machine."""
    import torch

    from uc_attest.errors import OperationalError

    class Weight:
        name = "model.layers.3.mlp.down_proj.weight"
        shape = (4, 256)
        dtype = torch.bfloat16
        record = type("R", (), {"group_size": 128, "bits": 5, "exponent": -6})()
        key, sign_period, parts = 7, 256, ()
        uc_codes = torch.zeros(4 * 256 * 5 // 8, dtype=torch.uint8)
        uc_scales = torch.ones(8, dtype=torch.float16)
        uc_zeros = torch.zeros(8, dtype=torch.uint8)

    class NoMemory:
        def matmul_fast(self, *_a: Any) -> None:
            raise MemoryError

    w = kernels.NativeWeight(Weight())
    monkeypatch.setattr(kernels, "_native", NoMemory())
    with pytest.raises(OperationalError, match=r"out of memory in layer model\.layers\.3\.mlp\.down_proj\.weight"):
        w.matmul(torch.ones(1, 256), kernels.Mode.FAST, torch.bfloat16)


def test_the_best_path_by_default_and_the_environment_lowers_it() -> None:
    """A fresh process serves on the best path the CPU (and, for amx, the kernel) allows; UC_ATTEST_SERVE_ISA
    lowers it, never raises it; set_isa refuses a name it does not know or a path the CPU lacks."""
    import os
    import subprocess
    import sys

    have = kernels.supported_isas()
    code = "from uc_attest.runtime import kernels; print(kernels.isa())"

    def isa_in(env: dict[str, str]) -> str:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, **env})  # fmt: skip
        return r.stdout.strip()

    assert isa_in({}) == have[-1]
    assert isa_in({"UC_ATTEST_SERVE_ISA": "scalar"}) == "scalar"
    assert isa_in({"UC_ATTEST_SERVE_ISA": "no-such-path"}) == have[-1]
    if "amx" in have:
        assert isa_in({"UC_ATTEST_SERVE_ISA": "avx512"}) == "avx512"
    with pytest.raises(ValueError, match="not one of"):
        kernels.set_isa("sse9")
    for name in {"avx2", "avx512", "amx"} - set(have):
        with pytest.raises(ValueError, match="lacks"):
            kernels.set_isa(name)
