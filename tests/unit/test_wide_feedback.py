"""Wide error feedback (``uc-rht-ldlq/3``, docs/format.md 3.6): an error in one group of a row is fed into the
row's next groups, over feedback blocks of up to ``WIDE_MAX`` columns, through committed moments of that width."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import uc_attest as uc
from uc_attest import calibration
from uc_attest.pack import Pack
from uc_attest.quant import quantize as qz
from uc_attest.quant.ldlq import feedback_codes, feedback_matrix, moments_to_blocks, rotated_hessian
from uc_attest.quant.native import available as native_available
from uc_attest.quant.scheme import LDLQ2_ID, LDLQ3_ID, WIDE_MAX, Scheme
from uc_attest.testing.synth import synth_tensor, write_synth_model


def low_rank_activations(tokens: int, width: int, seed: int, rank: int = 12) -> torch.Tensor:
    """Integer activations [tokens, width] driven by a few directions shared by every ``seed`` (every group of
    channels correlated with every other, as a transformer's are), plus a little noise and one loud channel."""
    a = torch.randint(-8, 9, (rank, width), generator=torch.Generator().manual_seed(width * 1000 + rank))
    gen = torch.Generator().manual_seed(seed)
    z = torch.randint(-64, 65, (tokens, rank), generator=gen)
    x = z @ a + torch.randint(-16, 17, (tokens, width), generator=gen)
    x[:, 7] *= 6
    return x


def exact_moments(x: torch.Tensor) -> torch.Tensor:
    """E[x xᵀ] from integer sums (the same on every machine)."""
    return (x.T @ x).double() / x.shape[0]


def committed(h: torch.Tensor, scheme: Scheme, shape: tuple[int, ...]) -> torch.Tensor:
    """The committed int16 form of full moments ``h``: each row-aligned part's diagonal blocks (calibration/file.py)."""
    parts = scheme.parts(shape)
    if len(parts) == 1:
        return moments_to_blocks(h, parts[0].block)
    return torch.cat(
        [moments_to_blocks(h[p.col0 : p.col0 + p.cols, p.col0 : p.col0 + p.cols], p.block).reshape(-1) for p in parts]
    )


def output_error(scheme_id: str, w: torch.Tensor, h: torch.Tensor | None, x: torch.Tensor) -> float:
    scheme = Scheme(id=scheme_id)
    m = None if h is None else committed(h, scheme, tuple(w.shape))
    q = qz.quantize_tensor("t.weight", w, "BF16", scheme, "cpu", m)
    r = qz.reconstruction("t.weight", q, 128, w)  # a row in two parts too
    return float(((x.double() @ (r.double() - w.double()).T) ** 2).mean())


@pytest.mark.parametrize(
    ("cols", "block"),
    [(64, 64), (128, 128), (384, 384), (576, 512), (960, 896), (1536, 1536), (2048, 2048), (2880, 1408), (4096, 2048)],
)
def test_the_feedback_width_follows_the_row(cols: int, block: int) -> None:
    """The widest multiple of the group size that divides the row (its first part, when it splits) and is at most
    WIDE_MAX; a row's last t columns keep their t-wide block; ``uc-rht-ldlq/2`` stays per group."""
    assert Scheme(id=LDLQ3_ID).moment_block((8, cols)) == block <= WIDE_MAX
    assert Scheme(id=LDLQ2_ID).moment_block((8, cols)) == min(cols, 128)
    parts = Scheme(id=LDLQ3_ID).parts((8, cols))
    assert [p.block for p in parts[1:]] == [p.cols for p in parts[1:]]  # the tail part: its own t x t block


@pytest.mark.parametrize("width", [384, 576])
def test_wide_feedback_lowers_the_output_error_below_per_group_feedback(width: int) -> None:
    """With activations correlated across groups, feeding errors across the row's groups beats feeding them within
    each group (held-out activations of the same distribution)."""
    w = synth_tensor((48, width), 3)
    h = exact_moments(low_rank_activations(2048, width, 5))
    held = low_rank_activations(512, width, 6)
    plain, per_group, wide = (
        output_error(sid, w, hh, held) for sid, hh in ((LDLQ2_ID, None), (LDLQ2_ID, h), (LDLQ3_ID, h))
    )
    assert wide < 0.7 * per_group < plain, (plain, per_group, wide)


def test_a_near_singular_block_does_not_blow_up() -> None:
    """Moments measured over fewer tokens than the layer has inputs (a pooler fed one token per sentence) round to
    an indefinite int16 block; the damping floor keeps its feedback bounded (it made a 7x error before)."""
    w = synth_tensor((64, 384), 8)
    x = low_rank_activations(300, 384, 9, rank=200)
    x[:, 11] *= 40  # one channel dominates: the others round to a few int16 units
    h = exact_moments(x)
    plain = output_error(LDLQ3_ID, w, None, x)
    assert output_error(LDLQ3_ID, w, h, x) < plain


@pytest.mark.parametrize("width", [32, 96, 384, 1088])  # 1088 > 1024: M clamped at 2^19
def test_the_native_elimination_is_the_reference_bit_for_bit(width: int) -> None:
    """The blocked elimination in C (panels of 16 steps; 32 and 1088 leave a partial panel) on every ISA path is
    the torch loop, bit for bit."""
    if not native_available():
        pytest.skip("the native quantizer is not built")
    from uc_attest.quant import native

    h = rotated_hessian(moments_to_blocks(exact_moments(low_rank_activations(700, width, 1)), width), 32, 7, width)
    ref = feedback_matrix(h, native=False)
    q = native.module()
    before = q.get_isa()
    try:
        for isa in q.supported_isas():
            q.set_isa(isa)
            assert torch.equal(feedback_matrix(h), ref), isa
    finally:
        q.set_isa(before)
    assert float(ref.abs().max()) <= (1 << 19 if width > 1024 else 1 << 20)


@pytest.mark.parametrize(
    ("rows", "cols", "g", "dtype"),
    [(5, 384, 128, torch.bfloat16), (3, 576, 64, torch.float32), (4, 320, 128, torch.float16), (7, 1536, 128, torch.float32), (3, 200, 8, torch.bfloat16), (6, 96, 32, torch.float32), (2, 2880, 128, torch.bfloat16)],
)  # fmt: skip
def test_the_native_wide_feedback_is_the_reference_bit_for_bit(
    rows: int, cols: int, g: int, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole feedback blocks of several groups in C (scalar and AVX-512 alike) are the torch reference, byte for
    byte, in one part or two (576 = 512 + 64), and whatever the split of the groups between runs."""
    if not native_available():
        pytest.skip("the native quantizer is not built")
    from uc_attest.quant import native

    scheme = Scheme(bits=5, group_size=g, id=LDLQ3_ID)
    w = (synth_tensor((rows, cols), cols + g, dtype=torch.float32) * 0.05).to(dtype)
    w[0, 3] = 2.0  # an outlier: clipping matters
    m = committed(exact_moments(low_rank_activations(256, cols, cols)), scheme, (rows, cols))
    from uc_attest.quant import ldlq

    monkeypatch.setenv("UC_ATTEST_QUANTIZER", "torch")  # the codes by the reference; its elimination in C (the same:
    monkeypatch.setattr(ldlq, "_native", native.module)  # test_the_native_elimination_is_the_reference_bit_for_bit)
    ref = qz.quantize_tensor("m.layers.0.w", w, "X", scheme, "cpu", m)
    monkeypatch.delenv("UC_ATTEST_QUANTIZER")
    monkeypatch.setattr(native, "RUN_GROUPS", 5)  # runs of a few blocks, not whole rows
    q = native.module()
    before = q.get_isa()
    try:
        for isa in q.supported_isas():
            q.set_isa(isa)
            got = qz.quantize_tensor("m.layers.0.w", w, "X", scheme, "cpu", m)
            assert torch.equal(got.scales.view(torch.int16), ref.scales.view(torch.int16)), isa
            assert torch.equal(got.zeros, ref.zeros), isa
            assert torch.equal(got.codes, ref.codes), (isa, int((got.codes != ref.codes).sum()))
    finally:
        q.set_isa(before)


def test_wide_feedback_sums_are_exact_in_any_order() -> None:
    """Per-column scales over a block of three groups: any sub-block size gives the same codes (exact sums)."""
    rows, g, nb = 5, 128, 3
    y = synth_tensor((rows, 1, nb * g), 2, dtype=torch.float32).double()
    h = rotated_hessian(moments_to_blocks(exact_moments(low_rank_activations(900, nb * g, 4)), nb * g), g, 99, nb * g)
    m_fx = feedback_matrix(h)
    amax = y.abs().reshape(rows, nb, g).amax(-1)
    s = (2 * amax / 31).repeat_interleave(g, -1).reshape(rows, 1, nb * g)
    z = torch.full_like(s, 16.0)
    ref = feedback_codes(y, s, z, m_fx, 31)
    for sub in (1, 7, 64, 384):
        assert torch.equal(feedback_codes(y, s, z, m_fx, 31, sub_block=sub), ref), sub


def _model(tmp_path: Path, hidden: int) -> tuple[Path, Path]:
    src = write_synth_model(tmp_path / "m", hidden=hidden, inter=3 * 128, layers=1, vocab=32)
    p = "model.layers.0"
    h_in, h_mid = (exact_moments(low_rank_activations(1024, n, s)) for n, s in ((hidden, 11), (3 * 128, 12)))
    entries = {f"{p}.self_attn.{k}_proj.weight": h_in for k in "qkvo"}
    entries |= {f"{p}.mlp.gate_proj.weight": h_in, f"{p}.mlp.up_proj.weight": h_in, f"{p}.mlp.down_proj.weight": h_mid}
    cal = tmp_path / "cal.safetensors"
    calibration.write(cal, entries, "test")
    return src, cal


@pytest.mark.parametrize("hidden", [256, 320])  # whole rows of two groups; 320 = 2·128 + 64: a row in two parts
def test_wide_pack_is_deterministic_and_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hidden: int) -> None:
    src, cal = _model(tmp_path, hidden)
    scheme = Scheme(id=LDLQ3_ID)
    a = uc.write_pack(src, tmp_path / "a", scheme, "cpu", calibration=uc.MomentsFile(cal), allocation=None)
    torch.set_num_threads(1)
    monkeypatch.setattr(qz, "BLOCK_ELEMS", 1 << 14)  # several row blocks instead of one
    try:
        b = uc.write_pack(src, tmp_path / "b", scheme, "cpu", calibration=uc.MomentsFile(cal), allocation=None)
    finally:
        torch.set_num_threads(2)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert a.manifest.root == b.manifest.root
    assert sum(1 for t in a.manifest.tensors if t.quant and t.quant.moments) == 7
    assert uc.check_pack(tmp_path / "a").ok
    v = uc.check_rebuild(tmp_path / "a", src, "cpu")
    assert v.ok, [c for c in v.checks if not c.ok]
    with Pack(tmp_path / "a") as pk:
        m = pk.moments("model.layers.0.mlp.down_proj.weight")
        q = pk.moments("model.layers.0.self_attn.q_proj.weight")
    assert m is not None and m.shape == (1, 384 * 385 // 2)  # one block across the row's three groups
    main = hidden - hidden % 128
    want = (
        (main * (main + 1) // 2 + (hidden - main) * (hidden - main + 1) // 2,) if hidden % 128 else (1, 256 * 257 // 2)
    )
    assert q is not None and q.shape == want


def test_wide_pack_golden(tmp_path: Path) -> None:
    """Pins the bytes of a ``uc-rht-ldlq/3`` pack (any change to the wide feedback must change this on purpose)."""
    src, cal = _model(tmp_path, 320)
    res = uc.write_pack(
        src, tmp_path / "p", Scheme(id=LDLQ3_ID), "cpu", calibration=uc.MomentsFile(cal), allocation=None
    )
    shard = hashlib.sha256((tmp_path / "p" / "model.safetensors").read_bytes()).hexdigest()
    assert (shard, str(res.manifest.root)) == (GOLDEN_WIDE_SHARD, GOLDEN_WIDE_ROOT)


GOLDEN_WIDE_SHARD = "d88ab58aaccbf505b7d410762820a4449d9397722ea9d36b39fb722d26b5bbfd"
GOLDEN_WIDE_ROOT = "sha256:e7f3add4aaec91cf66f276033fa27e60b05e909fd665e509c561bf0808666297"


def test_blocks_narrower_than_the_feedback_are_refused(tmp_path: Path) -> None:
    """A calibration file of g x g blocks cannot feed a wider block: the full [n, n] matrix is asked for."""
    src, _ = _model(tmp_path, 256)
    blocks = exact_moments(low_rank_activations(512, 256, 3)).reshape(2, 128, 2, 128)[[0, 1], :, [0, 1], :]
    cal = tmp_path / "blocks.safetensors"
    calibration.write(cal, {"model.layers.0.self_attn.q_proj.weight": blocks}, "test")
    with pytest.raises(
        uc.InvalidInput, match=r"blocks of 128 columns, but the scheme feeds errors back over blocks of 256"
    ):
        uc.write_pack(src, tmp_path / "p", Scheme(id=LDLQ3_ID), "cpu", calibration=uc.MomentsFile(cal), allocation=None)


def test_default_calibration_measures_blocks_of_the_feedback_width(tmp_path: Path) -> None:
    """The built-in calibration keeps [ceil(n/w), w, w] sums, not the full [n, n] matrix: memory grows as n·w (a
    70B down-projection would otherwise hold 6 GiB of float64 per layer); a row in two parts pads its last block."""
    import json

    from uc_attest.calibration.default import measure

    src = write_synth_model(tmp_path / "m", hidden=576, inter=3 * 128, layers=1, vocab=32, dtype=torch.float32)
    config = json.loads((src / "config.json").read_text())
    got = measure(src, config, Scheme(id=LDLQ3_ID)).moments
    assert tuple(got["model.layers.0.self_attn.q_proj.weight"].shape) == (2, 512, 512)  # 576 = 512 + a 64 tail
    assert tuple(got["model.layers.0.mlp.down_proj.weight"].shape) == (384, 384)  # one block: the whole row


def test_moments_that_are_not_second_moments_are_refused(tmp_path: Path) -> None:
    """Finite, with a non-negative diagonal, yet |h_ij| > sqrt(h_ii h_jj): no calibration measures that, and its
    feedback eliminated to NaN (an outside review packed mostly-zero codes from it, exit 0)."""
    src, _ = _model(tmp_path, 256)
    h = torch.eye(256, dtype=torch.float64)
    h[0, 0], h[0, 1:], h[1:, 0] = 1e30, 1e30, 1e30
    cal = tmp_path / "bad.safetensors"
    calibration.write(cal, {"model.layers.0.self_attn.q_proj.weight": h}, "test")
    with pytest.raises(uc.InvalidInput, match="not second moments"):
        uc.write_pack(src, tmp_path / "p", Scheme(id=LDLQ3_ID), "cpu", calibration=uc.MomentsFile(cal), allocation=None)
    assert not (tmp_path / "p").exists()


def test_an_indefinite_block_gives_no_feedback_not_nan() -> None:
    """Committed moments are read from a pack too (a rebuild): a hostile indefinite block must not reach the codes
    as NaN (whose cast to uint8 is undefined, so machine-dependent); C and torch both zero it, bit for bit."""
    w = 512
    a = torch.zeros(1, w, w, dtype=torch.int64)
    a[0] = torch.eye(w, dtype=torch.int64)
    a[0, 0, 1:] = a[0, 1:, 0] = 1 << 40
    ref = feedback_matrix(a, native=False)
    assert not bool(torch.isnan(ref).any())
    if native_available():
        assert torch.equal(feedback_matrix(a), ref)
