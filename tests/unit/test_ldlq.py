"""Error feedback from committed moments (uc-rht-ldlq/1): exact, deterministic, better, rebuildable."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import uc_attest as uc
from uc_attest import calibration
from uc_attest.pack import Pack
from uc_attest.quant import quantize as qz
from uc_attest.quant.decode import decode_rows, native_available
from uc_attest.quant.decode_protocol import Decoding
from uc_attest.quant.ldlq import (
    F_M,
    F_U,
    blocks_to_matrices,
    feedback_codes,
    feedback_matrix,
    moments_to_blocks,
    rotated_hessian,
)
from uc_attest.quant.reconstruct import reconstruct_tensor
from uc_attest.quant.rotation import sign_key, signs_numpy, signs_torch
from uc_attest.quant.scheme import LDLQ_ID, RHT_ID, Scheme
from uc_attest.testing.synth import synth_activations, synth_moments, synth_tensor, write_synth_model


def moments(width: int, seed: int = 5) -> torch.Tensor:
    return synth_moments(width, seed)


def write_calibration(path: Path, entries: dict[str, torch.Tensor]) -> Path:
    calibration.write(path, entries, "test")
    return path


def test_moment_blocks_roundtrip_and_scale() -> None:
    h = moments(256)
    m16 = moments_to_blocks(h, 128)
    assert m16.dtype == torch.int16 and tuple(m16.shape) == (2, 128 * 129 // 2)
    full = blocks_to_matrices(m16, 128)
    assert torch.equal(full, full.transpose(-1, -2))
    assert int(torch.diagonal(full, dim1=-2, dim2=-1).amax()) == 32767
    ref = h[:128, :128] * (32767 / float(h[:128, :128].diagonal().max()))
    assert float((full[0].double() - ref).abs().max()) <= 0.5
    blocks = torch.stack([h[:128, :128], h[128:, 128:]])  # the block form gives the same committed bytes
    assert torch.equal(moments_to_blocks(blocks, 128), m16)


def test_udu_factor_reproduces_the_hessian() -> None:
    h = rotated_hessian(moments_to_blocks(moments(128), 128), 128, sign_key("t.weight"), 128)
    m = feedback_matrix(h).double() / 2**F_M + torch.eye(128, dtype=torch.float64)
    # H = M D M^T with D diagonal: M^-1 H M^-T must be diagonal
    minv = torch.linalg.inv(m[0])
    d = minv @ h[0].double() @ minv.T
    off = d - torch.diag(torch.diagonal(d))
    assert float(off.abs().max()) < 1e-3 * float(torch.diagonal(d).max())


def _reference_codes(y: torch.Tensor, s: torch.Tensor, z: torch.Tensor, m_fx: torch.Tensor, qmax: int) -> torch.Tensor:
    """Python-integer LDLQ (exact by construction), one group at a time."""
    one, shift = 1 << F_U, 1 << F_M
    rows, nb, g = y.shape
    out = torch.empty((rows, nb, g), dtype=torch.uint8)
    mm = m_fx.to(torch.int64).tolist()
    for r in range(rows):
        for b in range(nb):
            u = [int(v) for v in torch.clamp(torch.round(y[r, b] / s[r, b] * one), -(1 << 21), 1 << 21).tolist()]
            zz = int(z[r, b])
            err: list[int] = []
            for k in range(g):
                acc = sum(err[i] * mm[b][i][k] for i in range(k))
                t = u[k] * shift + zz * one * shift + one * shift // 2 + acc
                q = min(max(t // (one * shift), 0), qmax)
                out[r, b, k] = q
                err.append(u[k] - (q - zz) * one)
    return out


def _feedback_inputs(rows: int = 6, width: int = 256, g: int = 128) -> tuple[torch.Tensor, ...]:
    """Rotated groups of a 5-bit tensor with min-max scales, zero-points and its feedback matrix."""
    from uc_attest.quant.rotation import rotate

    w = synth_tensor((rows, width), 3).double()
    y = rotate(w.reshape(-1, g), sign_key("t.weight"), 0, width)
    _, s16, z = qz._search_block(y, 31, -20, (1.0,), 0)
    m_fx = feedback_matrix(rotated_hessian(moments_to_blocks(moments(width), g), g, sign_key("t.weight"), width))
    s = (s16.double() * 2.0**-20).reshape(rows, -1)
    return y.reshape(rows, -1, g), s, z.double().reshape(rows, -1), m_fx


def test_feedback_sums_are_exact_in_any_order() -> None:
    """Batched matmul (any sub-block size) = Python integers: the sums are exact, so any BLAS or GPU agrees."""
    y, s, z, m_fx = _feedback_inputs()
    ref = _reference_codes(y[:2], s[:2], z[:2], m_fx, 31)
    for sub in (1, 5, 16, 128):
        got = feedback_codes(y, s, z, m_fx, 31, sub_block=sub)
        assert torch.equal(got[:2], ref), sub
        assert torch.equal(got, feedback_codes(y, s, z, m_fx, 31))


@pytest.mark.parametrize("width", [256, 64, 32])  # rows of two groups, and groups of two and four rows
def test_feedback_lowers_the_output_error(width: int) -> None:
    """Weighted by the calibration moments, the output error drops well below plain rounding's."""
    h = moments(width)
    w = synth_tensor((64, width), 9)
    x = synth_activations(256, width, 77)  # held-out activations of the same distribution
    errs = {}
    for label, m in (("plain", None), ("feedback", moments_to_blocks(h, min(width, 128)))):
        q = qz.quantize_tensor("t.weight", w, "BF16", Scheme(id=LDLQ_ID), "cpu", m)
        assert q.sign_period == width
        how = Decoding("BF16", 5, 128, q.exponent, sign_key("t.weight"), q.sign_period)
        r = reconstruct_tensor(q.codes, q.scales, q.zeros, how, q.shape)
        errs[label] = float(((x.double() @ (r.double() - w.double()).T) ** 2).mean())
    assert errs["feedback"] < 0.75 * errs["plain"], errs


@pytest.mark.parametrize("width", [256, 64])
def test_row_shared_signs_in_every_decoder(width: int) -> None:
    key = sign_key("m.weight")
    row = signs_numpy(key, 0, 256)
    assert np.array_equal(signs_numpy(key, 512, 768, 256), np.tile(row, 3))
    assert np.array_equal(signs_torch(key, 128, 640, "cpu", torch.float32, 256).numpy(), np.tile(row, 3)[128:768])
    w = synth_tensor((8, width), 4)
    m = moments_to_blocks(moments(width), min(width, 128))
    q = qz.quantize_tensor("m.weight", w, "BF16", Scheme(id=LDLQ_ID), "cpu", m)
    assert q.sign_period == width
    how = Decoding("BF16", 5, 128, q.exponent, key, width)
    ref = reconstruct_tensor(q.codes, q.scales, q.zeros, how, q.shape)
    for native in (False, True):
        if native and not native_available():
            continue
        got = decode_rows(
            q.codes.numpy(),
            q.scales.numpy()[None],
            q.zeros.numpy()[None],
            how,
            8 * width,
            native=native,
        )
        assert np.array_equal(got.reshape(-1), ref.view(torch.uint16).reshape(-1).numpy()), native


def _cal_model(tmp_path: Path) -> tuple[Path, Path]:
    src = write_synth_model(tmp_path / "m", hidden=128, inter=256, layers=1, vocab=32)
    p = "model.layers.0"
    h_in, h_mid = moments(128, 11), moments(256, 12)
    entries = {f"{p}.self_attn.{k}_proj.weight": h_in for k in "qkvo"}
    entries |= {f"{p}.mlp.gate_proj.weight": h_in, f"{p}.mlp.up_proj.weight": h_in, f"{p}.mlp.down_proj.weight": h_mid}
    return src, write_calibration(tmp_path / "cal.safetensors", entries)


@pytest.mark.parametrize("group", [128, 256])  # rows of one or two groups; groups of one or two rows
def test_calibrated_pack_is_deterministic_and_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: int
) -> None:
    src, cal = _cal_model(tmp_path)
    scheme = Scheme(id=LDLQ_ID, group_size=group, bits_overrides=(("*v_proj*", 6),) if group == 128 else ())
    a = uc.write_pack(src, tmp_path / "a", scheme, "cpu", calibration=uc.MomentsFile(cal), allocation=None)
    assert sum(1 for t in a.manifest.tensors if t.quant and t.quant.moments) == 7
    torch.set_num_threads(1)
    monkeypatch.setattr(qz, "BLOCK_ELEMS", 1 << 9)  # many row blocks instead of one
    try:
        b = uc.write_pack(src, tmp_path / "b", scheme, "cpu", calibration=uc.MomentsFile(cal), allocation=None)
    finally:
        torch.set_num_threads(2)
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
    assert a.manifest.root == b.manifest.root
    assert uc.check_pack(tmp_path / "a").ok
    v = uc.check_rebuild(tmp_path / "a", src, "cpu")
    assert v.ok, [c for c in v.checks if not c.ok]
    # the committed moments are what the rebuild uses: the pack's own copy, bound by the manifest
    with Pack(tmp_path / "a") as pk:
        m = pk.moments("model.layers.0.mlp.down_proj.weight")
    assert m is not None and m.shape == ((2, 128 * 129 // 2) if group == 128 else (1, 256 * 257 // 2))
    entry = a.manifest.entry("model.layers.0.mlp.down_proj.weight")
    assert entry is not None and entry.quant is not None
    assert str(entry.quant.moments_digest) == "sha256:" + hashlib.sha256(m.astype("<i2").tobytes()).hexdigest()


def test_calibrated_pack_golden(tmp_path: Path) -> None:
    """Pins the bytes of a calibrated pack (any change to the feedback spec must change this on purpose)."""
    src, cal = _cal_model(tmp_path)
    # The exclude list of the time it was pinned (the default now quantizes lm_head): the feedback bytes unchanged.
    scheme = Scheme(bits=5, id=LDLQ_ID, exclude=("*embed*", "*wte*", "*wpe*", "lm_head*", "output.weight", "*norm*"))
    res = uc.write_pack(src, tmp_path / "p", scheme, "cpu", calibration=uc.MomentsFile(cal), allocation=None)
    shard = hashlib.sha256((tmp_path / "p" / "model.safetensors").read_bytes()).hexdigest()
    assert (shard, str(res.manifest.root)) == (GOLDEN_LDLQ_SHARD, GOLDEN_LDLQ_ROOT)


#: Changed on purpose (issue 16): moments shared by tensors with one input are stored once; the root is unchanged.
GOLDEN_LDLQ_SHARD = "a96bfad6145c3713fe6f3585f9c149f293313532fc005893c0dd528fff60e23f"
GOLDEN_LDLQ_ROOT = "sha256:681f30544232e13ba811145991112f9291aad21072d9bcd4d4859b8f39927ca8"


def test_shared_moments_are_stored_once_and_bound_by_the_manifest(tmp_path: Path) -> None:
    """Tensors whose inputs are the same (q/k/v) commit equal moments: one copy in the shard, every entry's
    digest in the manifest; a header pointing at a tensor that stores none is refused, naming it."""
    import json

    from safetensors import safe_open

    from uc_attest.core.stfile import OutTensor, SafetensorsFile, write_safetensors
    from uc_attest.pack.layout import META_TENSORS

    src, cal = _cal_model(tmp_path)
    res = uc.write_pack(
        src, tmp_path / "p", Scheme(bits=5, id=LDLQ_ID), "cpu", calibration=uc.MomentsFile(cal), allocation=None
    )
    with_moments = [t for t in res.manifest.tensors if t.quant and t.quant.moments_digest]
    distinct = {t.quant.moments_digest for t in with_moments if t.quant}
    with safe_open(str(tmp_path / "p" / "model.safetensors"), "np") as f:
        stored = [k for k in f.keys() if k.endswith(".uc_moments")]  # noqa: SIM118 - safe_open is not a dict
        meta = f.metadata()
    assert len(stored) == len(distinct) < len(with_moments)
    assert uc.check_pack(tmp_path / "p").ok
    # a header whose sharing points nowhere: the reader refuses it naming the tensor
    qmeta = json.loads(meta[META_TENSORS])
    sharer = next(n for n, q in qmeta.items() if isinstance(q.get("moments"), str))
    qmeta[sharer]["moments"] = "no.such.tensor"
    sf = SafetensorsFile(tmp_path / "p" / "model.safetensors")
    outs = [OutTensor(n, i.dtype, i.shape, bytes(sf.raw(n))) for n, i in sf.infos.items()]
    sf.close()
    with open(tmp_path / "p" / "model.safetensors", "wb") as fh:
        write_safetensors(fh, outs, {**meta, META_TENSORS: json.dumps(qmeta, separators=(",", ":"), sort_keys=True)})
    r = subprocess.run([sys.executable, "-m", "uc_attest.cli", "verify", str(tmp_path / "p"), "--integrity-only"], capture_output=True,
                       text=True, check=False)  # fmt: skip
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "no.such.tensor" in out and "Traceback" not in out, out


def test_feedback_changes_codes_but_not_the_format(tmp_path: Path) -> None:
    src, cal = _cal_model(tmp_path)
    plain = uc.write_pack(src, tmp_path / "plain", Scheme(id=LDLQ_ID), "cpu", calibration=None, allocation=None)
    fed = uc.write_pack(
        src, tmp_path / "fed", Scheme(id=LDLQ_ID), "cpu", calibration=uc.MomentsFile(cal), allocation=None
    )
    assert plain.manifest.root != fed.manifest.root
    assert all(t.quant is None or not t.quant.moments for t in plain.manifest.tensors)


@pytest.mark.parametrize(
    "case,match",
    [
        ("not_square", "square float matrix"),
        ("wrong_width", "rows of 128"),
        ("nan", "NaN or infinity"),
        ("negative_diag", "negative diagonal"),
        ("unknown_name", "name no quantized tensor"),
        ("wrong_scheme", "needs a feedback scheme"),
    ],
)
def test_bad_calibration_files(tmp_path: Path, case: str, match: str) -> None:
    src = write_synth_model(tmp_path / "m", hidden=128, inter=256, layers=1, vocab=32)
    name = "model.layers.0.self_attn.q_proj.weight"
    h = moments(128)
    entries = {
        "not_square": {name: torch.zeros(128, 64)},
        "wrong_width": {name: moments(256)},
        "nan": {name: torch.where(torch.eye(128, dtype=torch.bool), float("nan"), h)},
        "negative_diag": {name: h - 2 * torch.diag(torch.diagonal(h))},
        "unknown_name": {"model.layers.0.self_attn.qq_proj.weight": h},
        "wrong_scheme": {name: h},
    }[case]
    cal = write_calibration(tmp_path / "cal.safetensors", entries)
    scheme = Scheme(id=RHT_ID if case == "wrong_scheme" else LDLQ_ID)
    with pytest.raises(uc.UcAttestError, match=match):
        uc.write_pack(src, tmp_path / "p", scheme, "cpu", calibration=uc.MomentsFile(cal), allocation=None)
    assert not (tmp_path / "p").exists()


def test_rows_not_aligned_to_groups(tmp_path: Path) -> None:
    src = write_synth_model(tmp_path / "m", hidden=64, inter=96, layers=1, vocab=32)
    cal = write_calibration(tmp_path / "c.safetensors", {"model.layers.0.mlp.down_proj.weight": moments(96)})
    with pytest.raises(uc.UsageError, match="neither a multiple nor a divisor of the group size 64"):
        uc.write_pack(
            src,
            tmp_path / "p",
            Scheme(id=LDLQ_ID, group_size=64),
            "cpu",
            calibration=uc.MomentsFile(cal),
            allocation=None,
        )
