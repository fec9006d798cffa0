"""The determinism contract of the quantizer and the exactness of reconstruction."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from uc_attest.errors import UnsupportedTensor
from uc_attest.quant import Scheme
from uc_attest.quant.codec import unpack_codes
from uc_attest.quant.decode import decode_rows
from uc_attest.quant.decode_protocol import Decoding
from uc_attest.quant.quantize import quantize_tensor
from uc_attest.quant.reconstruct import reconstruct_tensor
from uc_attest.testing.synth import synth_tensor

QUANT_DIR = Path(__file__).resolve().parents[2] / "uc_attest" / "quant"


def _components(q: object) -> bytes:
    return b"".join(t.numpy().tobytes() for t in (q.codes, q.scales, q.zeros)) + str(q.exponent).encode()  # type: ignore[attr-defined]


def _hadamard64(g: int) -> torch.Tensor:
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < g:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


CASES = [
    ("uc-affine-clip/1", 5, 128),
    ("uc-affine-clip/1", 4, 64),
    ("uc-affine-clip/1", 6, 32),
    ("uc-affine-clip/1", 8, 8),
    ("uc-affine-clip/1", 2, 1024),
    ("uc-rht-clip/1", 5, 128),
    ("uc-rht-clip/1", 6, 128),
    ("uc-rht-clip/1", 4, 256),
    ("uc-rht-clip/1", 8, 32),
    ("uc-rtn/1", 5, 64),
    ("uc-rht-ldlq/1", 5, 128),
    ("uc-rht-ldlq/1", 6, 32),
    ("uc-rht-ldlq/1", 4, 64),
    ("uc-rht-ldlq/1", 4, 512),
]


def _moments(cols: int, group: int) -> torch.Tensor:
    """Committed moments for a feedback scheme: exact integer activations (same on every machine)."""
    from uc_attest.quant.ldlq import moments_to_blocks
    from uc_attest.testing.synth import synth_moments

    return moments_to_blocks(synth_moments(cols, seed=cols, tokens=128), min(cols, group))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize(("sid", "bits", "group"), CASES)
def test_reconstruction_equals_float64_then_one_rounding(dtype: torch.dtype, sid: str, bits: int, group: int) -> None:
    from uc_attest.quant.rotation import sign_key, sign_of

    scheme = Scheme(bits=bits, group_size=group, id=sid)
    cols = 256 if scheme.row_signs else 300  # feedback schemes: row-aligned groups, with moments
    w = synth_tensor((33, cols), seed=bits * 1000 + group, dtype=dtype)
    q = quantize_tensor(
        "t.weight",
        w,
        {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}[dtype],
        scheme,
        "cpu",
        _moments(cols, group) if scheme.row_signs else None,
    )
    assert q.sign_period == (cols if scheme.row_signs else 0)
    key = sign_key("t.weight") if scheme.rotated else None
    how = Decoding(q.dtype, bits, group, q.exponent, key, q.sign_period)
    got = reconstruct_tensor(q.codes, q.scales, q.zeros, how, q.shape)
    # Second way: every step in float64 (dense Hadamard matrix for rotated schemes), one final rounding.
    groups = math.ceil(33 * cols / group)
    codes = unpack_codes(q.codes, bits, groups * group).reshape(groups, group).to(torch.float64)
    ref = (codes - q.zeros.to(torch.float64)[..., None]) * q.scales.to(torch.float64)[..., None] * 2.0**q.exponent
    if key is not None:  # signs from the pure-Python reference of SplitMix64
        k = group.bit_length() - 1
        period = q.sign_period or groups * group
        d = torch.tensor([sign_of(key, i % period) for i in range(groups * group)], dtype=torch.float64).reshape(
            groups, group
        )
        ref = (ref @ _hadamard64(group)) * 2.0 ** (k // 2 - k) * d
    ref = ref.reshape(-1)[: 33 * cols].reshape(33, cols).to(dtype)
    assert got.dtype == dtype and torch.equal(got.view(torch.uint8), ref.view(torch.uint8))
    # Third and fourth ways: the NumPy and C host decoders used by verify give the same bytes.
    for native in (False, True):
        host = decode_rows(
            q.codes.numpy(),
            q.scales.numpy()[None],
            q.zeros.numpy()[None],
            how,
            33 * cols,
            native=native,
        )
        assert host.tobytes() == got.contiguous().view(torch.uint8).numpy().tobytes()
    err = ((got.double() - w.double()) ** 2).sum() / (w.double() ** 2).sum()
    # feedback trades weight error for output error: its weight error may be higher
    assert err < {2: 0.6, 4: 0.015, 5: 0.003, 6: 0.001, 8: 1e-4}[bits] * (3.0 if scheme.row_signs else 1.0)


@pytest.mark.parametrize("sid", ["uc-affine-clip/1", "uc-rht-clip/1", "uc-rtn/1", "uc-rht-ldlq/1"])
def test_same_bytes_twice_and_across_thread_counts(sid: str) -> None:
    scheme = Scheme(id=sid)
    cols = 1024 if scheme.row_signs else 1000
    w = synth_tensor((96, cols), seed=7)
    m = _moments(cols, 128) if scheme.row_signs else None
    before = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2, 1, 2):
            torch.set_num_threads(threads)
            runs.append(_components(quantize_tensor("t.weight", w, "BF16", scheme, "cpu", m)))
    finally:
        torch.set_num_threads(before)
    assert len(set(runs)) == 1


def test_block_size_does_not_change_result(monkeypatch: pytest.MonkeyPatch) -> None:
    import uc_attest.quant.quantize as qmod

    w = synth_tensor((64, 256), seed=3)
    whole = _components(quantize_tensor("t.weight", w, "BF16", Scheme()))
    monkeypatch.setattr(qmod, "BLOCK_ELEMS", 256 * 5)  # 5 rows per block, last block partial
    assert _components(quantize_tensor("t.weight", w, "BF16", Scheme())) == whole


def test_groups_run_across_rows_with_only_the_tail_padded() -> None:
    w = synth_tensor((4, 130), seed=1)
    q = quantize_tensor("t.weight", w, "BF16", Scheme(group_size=128))
    assert tuple(q.scales.shape) == (5,)  # 520 elements: 4 full groups and a padded tail
    r = reconstruct_tensor(q.codes, q.scales, q.zeros, Decoding(q.dtype, 5, 128, q.exponent), q.shape)
    assert r.shape == w.shape


def test_zero_and_constant_tensors_are_exact() -> None:
    for w in (torch.zeros(8, 64, dtype=torch.bfloat16), torch.full((8, 64), 0.5, dtype=torch.bfloat16)):
        q = quantize_tensor("t.weight", w, "BF16", Scheme(group_size=64))
        r = reconstruct_tensor(q.codes, q.scales, q.zeros, Decoding(q.dtype, 5, 64, q.exponent), q.shape)
        assert torch.equal(r, w)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(bad: float) -> None:
    w = torch.zeros(4, 16)
    w[2, 3] = bad
    with pytest.raises(UnsupportedTensor, match="'layer.w'"):
        quantize_tensor("layer.w", w, "F32", Scheme(group_size=16))


def test_clipping_search_beats_plain_minmax() -> None:
    from uc_attest.quant.scheme import RTN_ID, SCHEME_ID

    w = synth_tensor((64, 512), seed=11)
    err = {}
    for sid in (RTN_ID, SCHEME_ID):
        q = quantize_tensor("t.weight", w, "BF16", Scheme(id=sid))
        r = reconstruct_tensor(q.codes, q.scales, q.zeros, Decoding(q.dtype, 5, 128, q.exponent), q.shape)
        err[sid] = float(((r.double() - w.double()) ** 2).sum())
    assert err[SCHEME_ID] < err[RTN_ID]


FORBIDDEN = {
    "matmul",
    "mm",
    "bmm",
    "einsum",
    "exp",
    "log",
    "log2",
    "pow",
    "mean",
    "norm",
    "cumsum",
    "ldexp",
    "compile",
    "sum_to_size",
    "std",
    "var",
    "sigmoid",
    "tanh",
}


#: The exceptions, integer matmuls exact in any order: ldlq.py multiplies integer-valued float64 matrices
#: whose partial sums are all below 2^53 (clamped by construction); rotation.py's decoder-side Hadamard
#: multiplies integers |q - z| <= 2^bits - 1 by ±1 with partial sums below 2^13 in float32; measure.py
#: multiplies integers below 2^7 by int16 moments, partial sums below 2^49 in float64.
EXACT_INTEGER_MATMUL = {"ldlq.py": {"bmm"}, "rotation.py": {"matmul"}, "measure.py": {"bmm"}}
#: Modules whose built-in ``sum(...)`` adds Python ints (partial sums the native helpers return): exact.
PYTHON_INT_SUMS = {"measure.py", "scheme.py"}  # Python int sums (sizes, exact)


def test_quant_code_uses_no_forbidden_operations() -> None:
    """Static guard for DESIGN.md section 3: no BLAS, transcendental, float reduction or compile on the path.

    Python's ``math`` functions act on per-tensor scalars (exact ``frexp``/``ldexp``) and are allowed.
    """
    for path in QUANT_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                fn = node.func
                name = fn.attr if isinstance(fn, ast.Attribute) else fn.id if isinstance(fn, ast.Name) else ""
                on_math = isinstance(fn, ast.Attribute) and isinstance(fn.value, ast.Name) and fn.value.id == "math"
                allowed = on_math or name in EXACT_INTEGER_MATMUL.get(path.name, set())
                assert allowed or name not in FORBIDDEN, f"{path.name}:{node.lineno} calls {name}"
                builtin = isinstance(fn, ast.Name) and path.name in PYTHON_INT_SUMS
                if name == "sum" and not builtin:  # only integer sums are allowed: must follow .to(torch.int64)
                    assert "int64" in ast.unparse(fn), f"{path.name}:{node.lineno}: sum over a non-integer"
            is_matmul_operator = isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult)  # `a @ b`
            assert not is_matmul_operator, f"{path.name}:{getattr(node, 'lineno', 0)}: the @ operator (a matmul)"
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
                assert isinstance(node.left, ast.Constant), f"{path.name}:{node.lineno}: tensor ** is forbidden"


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
@pytest.mark.parametrize("bits,group", [(5, 128), (3, 8), (8, 64), (6, 32)])
def test_native_and_numpy_decoders_agree(dtype: str, bits: int, group: int) -> None:
    from uc_attest.quant import decode

    if not decode.native_available():
        pytest.skip("C decoder not compiled (pip install -e . builds it)")
    tdt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    w = synth_tensor((17, 333), seed=bits + group, dtype=tdt)
    q = quantize_tensor("t.weight", w, dtype, Scheme(bits=bits, group_size=group))
    how = Decoding(dtype, bits, group, q.exponent)
    args = (q.codes.numpy(), q.scales.numpy()[None], q.zeros.numpy()[None], how, 17 * 333)
    assert decode.decode_rows(*args).tobytes() == decode.decode_rows(*args, native=False).tobytes()


def test_native_float_conversions_match_numpy_on_edge_values() -> None:
    from uc_attest.quant import decode

    if not decode.native_available():
        pytest.skip("C decoder not compiled (pip install -e . builds it)")
    rng = np.random.default_rng(0)
    bits = np.concatenate(
        [
            rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32),
            np.array(
                [
                    0x33000000,
                    0x33000001,
                    0x337FFFFF,
                    0x38800000,
                    0x387FFFFF,
                    0x477FEFFF,
                    0x477FF000,
                    0x7F7FFFFF,
                    0x7F800000,
                    0x00000001,
                    0x3F808000,
                    0x3F818000,
                ],
                dtype=np.uint32,
            ),
        ]
    )
    bits = np.concatenate([bits, bits | np.uint32(0x80000000)])
    x = bits.view(np.float32)
    x = x[~np.isnan(x)]
    f16 = np.empty(x.size, np.uint16)
    decode._native.convert(x, 1, f16)
    with np.errstate(over="ignore"):
        assert np.array_equal(f16, x.astype(np.float16).view(np.uint16))
    bf16 = np.empty(x.size, np.uint16)
    decode._native.convert(x, 2, bf16)
    ref = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    assert np.array_equal(bf16, ref)


def test_sign_streams_agree_numpy_torch_python_and_blocks() -> None:
    from uc_attest.quant.rotation import sign_key, sign_of, signs_numpy, signs_torch

    key = sign_key("model.layers.0.self_attn.v_proj.weight")
    ref = [sign_of(key, i) for i in range(1000, 1300)]
    assert signs_numpy(key, 1000, 300).tolist() == ref
    assert signs_torch(key, 1000, 300, "cpu", torch.float32).tolist() == ref
    assert signs_numpy(key, 0, 1300)[1000:].tolist() == ref
    assert sign_key("a") != sign_key("b") and len(set(ref)) == 2


def test_rotated_decode_in_blocks_matches_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    from uc_attest.quant.rotation import sign_key

    w = synth_tensor((40, 256), seed=5)
    q = quantize_tensor("t.weight", w, "BF16", Scheme(id="uc-rht-clip/1"))
    key = sign_key("t.weight")
    how = Decoding("BF16", 5, 128, q.exponent, key)
    whole = decode_rows(q.codes.numpy(), q.scales.numpy()[None], q.zeros.numpy()[None], how, 40 * 256)
    for native in (False, True):
        parts = [
            decode_rows(
                q.codes.numpy()[b * 80 : (b + 1) * 80],
                q.scales.numpy()[None, b : b + 1],
                q.zeros.numpy()[None, b : b + 1],
                how,
                128,
                b,
                native=native,
            )
            for b in range(80)
        ]
        assert b"".join(p.tobytes() for p in parts) == whole.tobytes()
