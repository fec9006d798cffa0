"""Row-aligned parts (``uc-rht-ldlq/2``, docs/format.md 3.1, 3.6): rows of c = m·g + t columns are quantized as two
parts so error feedback reaches layers of any real hidden size; every quantizer, decoder and kernel agrees bit for
bit, the feedback lowers the output error of both parts, and a pack of such a model verifies and rebuilds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import uc_attest as uc
from uc_attest.calibration.file import Calibration
from uc_attest.core import threads
from uc_attest.errors import InvalidInput, UsageError
from uc_attest.pack.reader import Pack
from uc_attest.quant import native
from uc_attest.quant import quantize as qz
from uc_attest.quant.decode import decode_parts_rows
from uc_attest.quant.decode_protocol import Decoding
from uc_attest.quant.ldlq import moments_to_blocks
from uc_attest.quant.reconstruct import reconstruct_tensor
from uc_attest.quant.records import QuantRecord
from uc_attest.quant.rotation import sign_key
from uc_attest.quant.scheme import LDLQ2_ID, LDLQ_ID, Scheme
from uc_attest.runtime import kernels
from uc_attest.runtime.kernels import Mode, NativeWeight
from uc_attest.runtime.packed import PackedWeight

S = Scheme(id=LDLQ2_ID)


@pytest.mark.parametrize(
    ("cols", "parts"),
    [
        (576, [(0, 512, 512, 128), (512, 64, 64, 64)]),  # SmolLM2-135M hidden
        (960, [(0, 896, 896, 128), (896, 64, 64, 64)]),  # SmolLM2-360M
        (2880, [(0, 2816, 2816, 128), (2816, 64, 64, 64)]),
        (2048, [(0, 2048, 2048, 128)]),  # a multiple: one part
        (384, [(0, 384, 384, 128)]),  # MiniLM
        (64, [(0, 64, 64, 64)]),  # stories260K: a group holds two rows
        (1000, [(0, 1000, 0, 0)]),  # t = 104 does not divide 128: one part, no feedback
    ],
)
def test_the_parts_rule_on_real_hidden_sizes(cols: int, parts: list[tuple[int, int, int, int]]) -> None:
    got = S.parts((300, cols))
    assert [(p.col0, p.cols, p.period, p.block) for p in got] == parts
    assert sum(p.groups for p in got) == -(-300 * cols // 128)  # the components' sizes do not depend on the split
    if len(got) == 2:
        assert got[1].first_group == got[0].groups
        assert S.moments_shape((300, cols)) == (got[0].cols // 128 * 8256 + 64 * 65 // 2,)
    assert len(Scheme(id=LDLQ_ID).parts((300, cols))) == 1  # the previous scheme never splits


def _moments(shape: tuple[int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Second moments of a layer's input with strong correlations (a low-rank signal plus noise, as activations
    are) as the full matrix, and their committed form for ``shape``."""
    g = torch.Generator().manual_seed(seed)
    c = shape[1]
    x = torch.randn(2048, 24, generator=g) @ torch.randn(24, c, generator=g) + torch.randn(2048, c, generator=g) / 4
    h = (x.T @ x / 2048).to(torch.float64)
    split = S.split_column(shape)
    m = split // 128
    idx = torch.arange(m)
    blocks = [h[:split, :split].reshape(m, 128, m, 128)[idx, :, idx, :], h[split:, split:][None]]
    m16 = torch.cat([moments_to_blocks(b, p.block).reshape(-1) for p, b in zip(S.parts(shape), blocks, strict=True)])
    return h, m16


def _quantize(w: torch.Tensor, m16: torch.Tensor | None, monkeypatch: pytest.MonkeyPatch, torch_path: bool):
    with monkeypatch.context() as mp:
        if torch_path:
            mp.setenv("UC_ATTEST_QUANTIZER", "torch")
        return qz.quantize_tensor("l.weight", w, "BF16" if w.dtype == torch.bfloat16 else "F32", S, "cpu", m16)


@pytest.mark.skipif(not native.available(), reason="the native quantizer is not compiled")
@pytest.mark.parametrize("rows", [36, 37])  # 37: the second part's last group is padded
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("fed", [False, True])
def test_native_and_torch_quantizers_give_the_same_bytes(
    rows: int, dtype: torch.dtype, fed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = (torch.randn(rows, 576, generator=torch.Generator().manual_seed(rows)) * 0.02).to(dtype)
    m16 = _moments((rows, 576))[1] if fed else None
    a, b = _quantize(w, m16, monkeypatch, False), _quantize(w, m16, monkeypatch, True)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.zeros, b.zeros)
    assert torch.equal(a.scales.view(torch.int16), b.scales.view(torch.int16)) and a.exponent == b.exponent
    assert len(a.parts) == 2 and a.scales.numel() == -(-rows * 576 // 128)


def test_every_decoder_gives_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """NumPy, C (when compiled) and torch decoders, whole or row by row, on a tensor in two parts."""
    shape = (37, 960)
    w = (torch.randn(shape, generator=torch.Generator().manual_seed(3)) * 0.05).to(torch.bfloat16)
    q = _quantize(w, _moments(shape)[1], monkeypatch, True)
    key = sign_key("l.weight")
    how = Decoding("BF16", q.bits, 128, q.exponent, key)
    args = (q.codes.numpy(), q.scales.numpy(), q.zeros.numpy(), how, q.parts)
    ref = decode_parts_rows(*args, 0, shape[0], native=False)
    assert ref.shape == shape
    t = reconstruct_tensor(q.codes, q.scales, q.zeros, how, shape, q.parts)
    assert np.array_equal(t.view(torch.int16).numpy().view(np.uint16), ref)
    by_rows = np.concatenate([decode_parts_rows(*args, r, min(37, r + 4), native=False) for r in range(0, 37, 4)])
    assert np.array_equal(by_rows, ref)  # starting rows inside a group of the second part
    if native.available():
        assert np.array_equal(decode_parts_rows(*args, 0, shape[0]), ref)
    err = t.double() - w.double()
    assert float((err**2).sum() / (w.double() ** 2).sum()) < 0.01


def test_feedback_lowers_the_output_error_of_both_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the parts: with hidden 576 the feedback now reaches the first 512 columns and the last 64."""
    shape = (128, 576)
    w = (torch.randn(shape, generator=torch.Generator().manual_seed(5)) * 0.02).to(torch.bfloat16)
    h, m16 = _moments(shape)
    out = {}
    for fed in (False, True):
        q = _quantize(w, m16 if fed else None, monkeypatch, False)
        e = qz.reconstruction("l.weight", q, 128, w).double() - w.double()
        out[fed] = [
            float(torch.einsum("ri,ij,rj->", e[:, a:b], h[a:b, a:b], e[:, a:b])) for a, b in ((0, 512), (512, 576))
        ]
    assert out[True][0] < 0.8 * out[False][0] and out[True][1] < 0.8 * out[False][1], out


@pytest.mark.skipif(not kernels.available(), reason="the native serving kernels are not built")
@pytest.mark.parametrize("mode", [Mode.EXACT, Mode.FAST])
def test_a_weight_in_two_parts_is_served_natively(mode: Mode, monkeypatch: pytest.MonkeyPatch) -> None:
    shape = (96, 576)
    w = (torch.randn(shape, generator=torch.Generator().manual_seed(7)) * 0.05).to(torch.bfloat16)
    q = _quantize(w, _moments(shape)[1], monkeypatch, False)
    pw = PackedWeight("l.weight", shape, torch.bfloat16, QuantRecord(q.bits, 128, q.exponent), True,
                      S.sign_period(shape), device="cpu", parts=S.parts(shape))  # fmt: skip
    for buf, val in ((pw.uc_codes, q.codes), (pw.uc_scales, q.scales), (pw.uc_zeros, q.zeros)):
        buf.copy_(val)
    dense = pw.decode()
    assert torch.equal(dense.view(torch.int16), qz.reconstruction("l.weight", q, 128, w).view(torch.int16))
    assert kernels.layer_mode(Mode.FAST, pw) == (Mode.FAST, None)  # the first part takes the fused kernel
    x = torch.randn(5, 576, generator=torch.Generator().manual_seed(8)).to(torch.bfloat16)
    bias = torch.randn(96, generator=torch.Generator().manual_seed(9)).to(torch.bfloat16)
    ref = x.double() @ dense.double().T + bias.double()
    outs = []
    for n in (1, 2, 3):
        threads.set_budget(n)
        outs.append(NativeWeight(pw).matmul(x, mode, torch.float32, bias))
    threads.set_budget(None)
    assert all(torch.equal(outs[0], o) for o in outs[1:])  # the thread count never changes a bit
    tol = 1e-6 if mode is Mode.EXACT else 2e-2  # fast: int8 activations
    assert float((outs[0].double() - ref).abs().max() / ref.abs().max()) < tol


def test_a_calibration_file_gives_the_same_moments_full_or_as_padded_blocks(tmp_path: Path) -> None:
    shape = (64, 576)
    h, m16 = _moments(shape)
    padded = torch.zeros(640, 640, dtype=torch.float64)
    padded[:576, :576] = h
    idx = torch.arange(5)
    blocks = padded.reshape(5, 128, 5, 128)[idx, :, idx, :]
    got = []
    for form in (h, blocks):
        path = tmp_path / f"cal{len(got)}.safetensors"
        save_file({"l.weight": form.to(torch.float32).contiguous()}, str(path))
        cal = Calibration(path, S)
        got.append(cal("l.weight", shape))
        cal.close()
    assert got[0] is not None and got[1] is not None
    assert torch.equal(got[0], got[1]) and tuple(got[0].shape) == S.moments_shape(shape)
    # float32 in the file: the committed int16 may differ from the float64 form only by rounding
    assert int((got[0].to(torch.int32) - m16.to(torch.int32)).abs().max()) <= 1
    bad = tmp_path / "bad.safetensors"
    save_file({"l.weight": torch.ones(4, 128, 128)}, str(bad))
    with pytest.raises(InvalidInput, match="rows of 576"):
        Calibration(bad, S)("l.weight", shape)
    with pytest.raises(UsageError, match="calibration moments are"):
        qz.quantize_tensor("l.weight", torch.zeros(shape), "F32", S, "cpu", m16[:-1])


def test_a_model_with_hidden_576_packs_verifies_and_rebuilds(tmp_path: Path) -> None:
    from uc_attest.testing.synth import write_synth_model

    src = write_synth_model(tmp_path / "src", hidden=576, inter=1536, layers=1, vocab=256)
    cal = tmp_path / "cal.safetensors"
    gen = torch.Generator().manual_seed(1)
    moments = {}
    for name, cols in (("self_attn.q_proj", 576), ("self_attn.o_proj", 576), ("mlp.gate_proj", 576),
                       ("mlp.down_proj", 1536)):  # fmt: skip
        x = torch.randn(512, cols, generator=gen)
        moments[f"model.layers.0.{name}.weight"] = (x.T @ x / 512).contiguous()
    save_file(moments, str(cal))
    res = uc.write_pack(
        src, tmp_path / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=uc.MomentsFile(cal), allocation=None
    )
    assert uc.DEFAULT_SCHEME.id == LDLQ2_ID
    with Pack(tmp_path / "pack") as pack:
        q = pack.tensors["model.layers.0.self_attn.q_proj.weight"]
        assert q.quant is not None and q.quant.moments
        assert pack.moments("model.layers.0.self_attn.q_proj.weight").shape == S.moments_shape(q.shape)
        for name in pack.iter_names():
            assert pack.digest(name) == next(e.digest for e in res.manifest.tensors if e.name == name)
    verdict = uc.check_rebuild(tmp_path / "pack", src, "cpu")
    assert verdict.ok, verdict.findings
