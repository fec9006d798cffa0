"""Every path of the C decoder (scalar, AVX2, AVX-512) against the NumPy and torch reference decoders, bit for bit.

DESIGN section 3: SIMD only for exact integer arithmetic and elementwise IEEE operations, and every ISA path
tested against the reference. Each test forces one path with ``set_native_isa`` (skipping the ones this CPU
lacks) and compares random inputs (every dtype, bit width 2-8, unrotated and rotated group sizes, row-shared
signs, tails shorter than a vector, subnormal / ±0 / negative / largest scales, extreme exponents) with the
NumPy path (``native=False``, the fallback used where no compiler is present) and with the torch decoder.
"""

from __future__ import annotations

import ctypes
import hashlib
import mmap
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch

from uc_attest.quant import decode
from uc_attest.quant.decode_protocol import Decoding
from uc_attest.quant.reconstruct import reconstruct_tensor

pytestmark = pytest.mark.skipif(not decode.native_available(), reason="C decoder not compiled (pip install -e .)")

ISAS = ["scalar", "avx2", "avx512"]
DTYPES = ["F32", "F16", "BF16"]
TORCH_DTYPE = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


@pytest.fixture(params=ISAS)
def isa(request: pytest.FixtureRequest) -> Iterator[str]:
    """Force one path of the C decoder for the test, then restore the default."""
    name: str = request.param
    if name not in decode.native_isas():
        pytest.skip(f"this CPU lacks {name}")
    before = decode.native_isa()
    decode.set_native_isa(name)
    yield name
    assert before is not None
    decode.set_native_isa(before)


def _scales(rng: np.random.Generator, count: int, kind: str) -> npt.NDArray[np.float16]:
    """fp16 scales: ordinary positive ones, or a mix of the edge values the format's decoders must agree on."""
    if kind == "normal":
        return rng.uniform(2.0**-4, 1.0, count).astype(np.float16)
    edge = np.array([0.0, -0.0, 2.0**-24, 3 * 2.0**-24, 2.0**-14 - 2.0**-24, 2.0**-14, 65504.0, -65504.0, -1.5, 1.0],
                    dtype=np.float16)  # fmt: skip
    bits = rng.integers(0, 0x7C00, count, dtype=np.uint16) | (rng.integers(0, 2, count, dtype=np.uint16) << 15)
    out = bits.view(np.float16).copy()  # every finite fp16, subnormals and both signs included
    out[: min(count, edge.size)] = edge[: min(count, edge.size)]
    return out


def _case(
    rng: np.random.Generator, rows: int, cols: int, bits: int, group: int, kind: str
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float16], npt.NDArray[np.uint8]]:
    groups = -(-cols // group)
    codes = rng.integers(0, 256, rows * groups * group * bits // 8, dtype=np.uint8)  # any bytes are valid codes
    zeros = rng.integers(0, 1 << bits, (rows, groups), dtype=np.uint8)
    return codes, _scales(rng, rows * groups, kind).reshape(rows, groups), zeros


def _both(*args: object, **kw: object) -> tuple[bytes, bytes]:
    with np.errstate(over="ignore"):  # F16 may round to infinity, in both decoders alike
        native = decode.decode_rows(*args, **kw, native=True).tobytes()  # type: ignore[arg-type]
        ref = decode.decode_rows(*args, **kw, native=False).tobytes()  # type: ignore[arg-type]
    return native, ref


UNROTATED = [(b, g) for b in range(2, 9) for g in (8, 16, 24, 40, 64, 128, 1024)]
ROTATED = [(b, g) for b in range(2, 9) for g in (8, 16, 32, 64, 128, 256, 512, 1024) if b + g.bit_length() - 1 <= 13]


@pytest.mark.parametrize("dtype", DTYPES)
def test_unrotated_every_bit_width_and_group_matches_numpy(isa: str, dtype: str) -> None:
    rng = np.random.default_rng(1)
    for bits, group in UNROTATED:
        for rows, cols in ((1, group), (3, 5 * group - 8), (2, 7), (1, 3 * group + 1)):
            kind = "edge" if rng.integers(2) else "normal"
            codes, scales, zeros = _case(rng, rows, cols, bits, group, kind)
            exponent = int(rng.choice([-90, -40, -20, 0, 30, 100]))
            native, ref = _both(codes, scales, zeros, Decoding(dtype, bits, group, exponent), cols)
            assert native == ref, (isa, dtype, bits, group, rows, cols, kind, exponent)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotated_every_bit_width_and_group_matches_numpy(isa: str, dtype: str) -> None:
    rng = np.random.default_rng(2)
    for bits, group in ROTATED:
        for rows, cols, period in ((1, 2 * group, 0), (3, 3 * group - 8, 0), (2, 5, 0), (2, 2 * group, group),
                                   (1, 4 * group, 2 * group), (4, max(8, group // 2), max(8, group // 2))):  # fmt: skip
            kind = "edge" if rng.integers(2) else "normal"
            codes, scales, zeros = _case(rng, rows, cols, bits, group, kind)
            key = int(rng.integers(0, 2**63)) * 2 + 1
            first = int(rng.integers(0, 1000))
            exponent = int(rng.choice([-90, -30, 0, 60, 100]))
            native, ref = _both(codes, scales, zeros, Decoding(dtype, bits, group, exponent, key, period), cols, first)
            assert native == ref, (isa, dtype, bits, group, rows, cols, period, first, kind, exponent)


@pytest.mark.parametrize("rotated", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_path_matches_the_torch_decoder(isa: str, dtype: str, rotated: bool) -> None:
    rng = np.random.default_rng(3)
    for bits, group in ROTATED if rotated else UNROTATED[::3]:
        n = 6 * group - 8 if group > 8 else 45
        codes, scales, zeros = _case(rng, 1, n, bits, group, "normal")
        key = int(rng.integers(0, 2**63)) if rotated else None
        period = group if rotated and bits % 2 else 0
        how = Decoding(dtype, bits, group, -18, key, period)
        got = decode.decode_rows(codes, scales, zeros, how, n)
        ref = reconstruct_tensor(torch.from_numpy(codes), torch.from_numpy(scales[0]), torch.from_numpy(zeros[0]),
                                 how, (n,))  # fmt: skip
        assert got.tobytes() == ref.view(torch.uint8).numpy().tobytes(), (isa, dtype, bits, group)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rotated", [False, True])
def test_fused_decode_and_hash_equals_hash_of_the_decode(isa: str, dtype: str, rotated: bool) -> None:
    rng = np.random.default_rng(4)
    for bits, group, n in ((5, 128, 128 * 37 + 3), (4, 64, 64 * 5), (8, 16, 1), (3, 1024, 1024 * 3 - 8)):
        codes, scales, zeros = _case(rng, 1, n, bits, group, "normal")
        key = int(rng.integers(0, 2**63)) if rotated else None
        how = Decoding(dtype, bits, group, -12, key)
        want = hashlib.sha256(decode.decode_rows(codes, scales, zeros, how, n, native=False).tobytes()).hexdigest()
        for native, chunk in ((True, 1), (True, 3 * group), (True, 1 << 16), (False, 1 << 16)):
            h = hashlib.sha256()
            decode.hash_decoded(h, codes.tobytes(), scales[0], zeros[0], how, n, native=native, chunk_weights=chunk)
            assert h.hexdigest() == want, (isa, dtype, bits, group, native, chunk)


def _guarded(data: bytes) -> tuple[mmap.mmap, npt.NDArray[np.uint8]]:
    """``data`` placed so its last byte is the last readable one: the next page is PROT_NONE."""
    page = mmap.PAGESIZE
    size = -(-len(data) // page) * page
    m = mmap.mmap(-1, size + page)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    if libc.mprotect(ctypes.c_void_p(base + size), page, 0) != 0:
        pytest.skip("mprotect unavailable")
    m[size - len(data) : size] = data
    return m, np.frombuffer(m, dtype=np.uint8, count=len(data), offset=size - len(data))


@pytest.mark.skipif(sys.platform != "linux", reason="uses mprotect on an anonymous mapping")
def test_vector_loads_never_read_past_the_codes(isa: str) -> None:
    rng = np.random.default_rng(5)
    for bits in range(2, 9):
        for group in (8, 16, 128):
            codes, scales, zeros = _case(rng, 1, 3 * group, bits, group, "normal")
            key = 7 if bits + group.bit_length() - 1 <= 13 else None
            m, guarded = _guarded(codes.tobytes())
            how = Decoding("BF16", bits, group, 0, key)
            native = decode.decode_rows(guarded, scales, zeros, how, 3 * group).tobytes()
            assert native == decode.decode_rows(codes, scales, zeros, how, 3 * group, native=False).tobytes()
            h = hashlib.sha256()
            decode.hash_decoded(h, guarded, scales[0], zeros[0], how, 3 * group)
            assert h.digest() == hashlib.sha256(native).digest()
            del guarded
            m.close()


@pytest.mark.parametrize("bad", [0x7C00, 0xFC00, 0x7E00, 0x7C01])
def test_non_finite_scales_are_refused(isa: str, bad: int) -> None:
    """The format refuses Inf/NaN scales (the reader checks first); the C decoder refuses them too rather than
    produce NaN bit patterns that differ between machines."""
    codes, scales, zeros = _case(np.random.default_rng(6), 1, 256, 5, 128, "normal")
    scales.view(np.uint16)[0, 1] = bad
    with pytest.raises(ValueError, match="non-finite scale"):
        decode.decode_rows(codes, scales, zeros, Decoding("BF16", 5, 128, 0), 256)
    with pytest.raises(ValueError, match="non-finite scale"):
        decode.hash_decoded(hashlib.sha256(), codes.tobytes(), scales[0], zeros[0], Decoding("BF16", 5, 128, 0), 256)


def test_non_finite_scale_found_at_every_position() -> None:
    """The scale check reads four patterns a word: a non-finite scale is found in every lane of every word and
    in the tail, and the largest finite patterns (exponent 11110) pass in every lane."""
    rng = np.random.default_rng(61)
    finite = np.array([0x7BFF, 0xFBFF, 0x03FF, 0x8000, 0x0000, 0x7800], dtype=np.uint16)
    for n in range(1, 12):
        codes, scales, zeros = _case(rng, 1, 128 * n, 5, 128, "normal")
        scales.view(np.uint16)[0] = finite[np.arange(n) % len(finite)]
        decode.decode_rows(codes, scales, zeros, Decoding("F32", 5, 128, 0), 128 * n)  # all finite: decodes
        for pos in range(n):
            for bad in (0x7C00, 0xFFFF):
                hostile = scales.copy()
                hostile.view(np.uint16)[0, pos] = bad
                with pytest.raises(ValueError, match="non-finite scale"):
                    decode.decode_rows(codes, hostile, zeros, Decoding("F32", 5, 128, 0), 128 * n)


def test_inconsistent_arguments_are_refused() -> None:
    codes, scales, zeros = _case(np.random.default_rng(7), 1, 256, 5, 128, "normal")
    with pytest.raises(ValueError):
        decode.decode_rows(codes[:-1], scales, zeros, Decoding("BF16", 5, 128, 0), 256)
    with pytest.raises(ValueError):
        decode.decode_rows(codes, scales, zeros, Decoding("BF16", 5, 128, 101), 256)
    with pytest.raises(ValueError):  # rotated needs b + log2(g) <= 13
        decode.decode_rows(np.zeros(256, np.uint8), np.ones((1, 1), np.float16), np.zeros((1, 1), np.uint8),
                           Decoding("BF16", 8, 256, 0, 1), 256)  # fmt: skip


def test_isa_selection() -> None:
    isas = decode.native_isas()
    assert isas[0] == "scalar" and decode.native_isa() == isas[-1]  # the best the CPU has, by default
    with pytest.raises(ValueError):
        decode.set_native_isa("sse9")
    env = {**os.environ, "UC_ATTEST_DECODE_ISA": "scalar"}
    code = "from uc_attest.quant import decode; print(decode.native_isa())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "scalar"


def test_pack_digest_native_equals_numpy_path(model_factory: object, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The verify pipeline's fused decode + hash (Pack.digest) against the NumPy fallback on a real pack."""
    import uc_attest as uc
    from uc_attest.pack import Pack, reader

    src = model_factory()  # type: ignore[operator]
    res = uc.run_pack(uc.PackRequest.uncalibrated(src, tmp_path / "pack", uc.DEFAULT_SCHEME, "cpu"))
    with Pack(tmp_path / "pack") as pack:
        names = [n for n in pack.iter_names() if pack.tensors[n].quant is not None]
        assert names
        fused = {n: pack.digest(n) for n in names}
        monkeypatch.setattr(reader.native_decode, "available", lambda: False)
        monkeypatch.setattr(decode, "_native", None)  # the pure NumPy decoder, as without a compiler
        slow = {n: pack.digest(n) for n in names}
    assert fused == slow
    assert all(fused[e.name] == e.digest for e in res.manifest.tensors if e.name in fused)


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_flush_to_zero_mode_does_not_change_a_bit(isa: str, dtype: str) -> None:
    """Another library may set FTZ/DAZ (torch.set_flush_denormal): the decoder's inputs and products are normal
    numbers and F16 subnormal results come from a correctly rounded conversion, so the bytes stay the same."""
    rng = np.random.default_rng(8)
    codes, scales, zeros = _case(rng, 2, 1024, 5, 128, "normal")
    scales[0, 0] = np.float16(2.0**-24)  # a subnormal scale
    for key in (None, 11):
        how = Decoding(dtype, 5, 128, -22, key)
        want = decode.decode_rows(codes, scales, zeros, how, 1024, native=False).tobytes()
        if not torch.set_flush_denormal(True):
            pytest.skip("this CPU has no flush-to-zero mode")
        try:
            got = decode.decode_rows(codes, scales, zeros, how, 1024).tobytes()
        finally:
            torch.set_flush_denormal(False)
        assert got == want, (isa, dtype, key)
        w = np.frombuffer(want, np.uint16)
        assert dtype != "F16" or np.any(((w & 0x7C00) == 0) & ((w & 0x3FF) != 0))  # F16 subnormals were produced
