"""Pack, verify and reconstruct through the library: round trips, tampering, bad input, atomicity."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import uc_attest as uc
from uc_attest.core.stfile import SafetensorsFile, write_safetensors
from uc_attest.pack import Pack


def _pack(src: Path, out: Path, **kw: object) -> Any:
    """The plain pack (no calibration, no allocation) of ``uc.Scheme(**kw)``: what these tests pin."""
    return uc.run_pack(uc.PackRequest.uncalibrated(src, out, uc.Scheme(**kw), "cpu"))  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_roundtrip_every_dtype(model_factory: Callable[..., Path], tmp_path: Path, dtype: torch.dtype) -> None:
    src = model_factory(dtype=dtype)
    res = _pack(src, tmp_path / "pack")
    m = res.manifest
    assert {t.name for t in m.tensors if t.quant} == {
        f"model.layers.{i}.{n}.weight" for i in range(2) for n in ("self_attn.q_proj", "mlp.down_proj")
    }
    check = uc.verify_pack(tmp_path / "pack")
    assert check.ok and check.tensors_checked == len(m.tensors) and check.root == m.root
    uc.reconstruct(tmp_path / "pack", tmp_path / "recon", uc.Anchor.pack_itself())
    recon = load_file(str(tmp_path / "recon" / "model.safetensors"))
    original = load_file(str(src / "model.safetensors"))
    # pack format 2: the pack's config.json adds quantization_config; the reconstruction's is the source's again
    assert json.loads((tmp_path / "recon" / "config.json").read_bytes()) == json.loads(
        (src / "config.json").read_bytes()
    )
    qc = json.loads((tmp_path / "pack" / "config.json").read_bytes())["quantization_config"]
    assert qc == {"quant_method": "uc-attest", "format": "uc-pack/2", "scheme": m.scheme, "dtype": m.tensors[0].dtype}
    with SafetensorsFile(tmp_path / "recon" / "model.safetensors") as f:
        for e in m.tensors:
            assert recon[e.name].dtype == dtype and recon[e.name].shape == original[e.name].shape
            # The manifest digest is SHA-256 of the tensor's bytes in the reconstructed file.
            assert hashlib.sha256(f.raw(e.name)).hexdigest() == e.digest.hex
            if not e.quant:
                assert torch.equal(recon[e.name], original[e.name]) and e.digest == e.source_digest


def test_sharded_model_roundtrip(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    src = model_factory(shards=3)
    res = _pack(src, tmp_path / "pack")
    assert sorted(p.name for p in (tmp_path / "pack").glob("*.safetensors")) == sorted(
        p.name for p in src.glob("*.safetensors")
    )
    assert uc.verify_pack(tmp_path / "pack").root == res.manifest.root
    from uc_attest.core.digest import sha256_file

    for shard in (p.name for p in src.glob("*.safetensors")):  # digests computed while streaming = file hashes
        assert res.manifest.source_files[shard] == sha256_file(src / shard)
        assert res.manifest.files[shard] == sha256_file(tmp_path / "pack" / shard)
    uc.reconstruct(tmp_path / "pack", tmp_path / "recon", uc.Anchor.pack_itself())
    index = json.loads((tmp_path / "recon" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == {t.name for t in res.manifest.tensors}


def test_pack_bytes_identical_twice_and_across_threads(bf16_model: Path, tmp_path: Path) -> None:
    digests = []
    before = torch.get_num_threads()
    try:
        for i, threads in enumerate((1, 2, 2)):
            torch.set_num_threads(threads)
            _pack(bf16_model, tmp_path / f"p{i}")
            digests.append(
                {
                    p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                    for p in sorted((tmp_path / f"p{i}").iterdir())
                    if p.is_file()
                }
            )
    finally:
        torch.set_num_threads(before)
    assert digests[0] == digests[1] == digests[2]


def test_sharding_does_not_change_the_root(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    one = _pack(model_factory(shards=1), tmp_path / "a").manifest.root
    three = _pack(model_factory(shards=3), tmp_path / "b").manifest.root
    assert one == three


def test_manifest_inclusion_proof(bf16_model: Path, tmp_path: Path) -> None:
    from uc_attest.core import merkle

    m = _pack(bf16_model, tmp_path / "p").manifest
    for e in m.tensors:
        p = m.prove(e.name)
        merkle.verify_inclusion(
            p["index"],
            p["size"],
            merkle.leaf_hash(p["leaf"].encode()),
            [bytes.fromhex(h) for h in p["proof"]],
            m.root.raw,
        )


# --- tampering: every mismatching tensor is listed ------------------------------------------------------------


def _rewrite_shard(path: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> None:
    with SafetensorsFile(path) as f:
        meta = dict(f.metadata)
        tensors = {n: f.tensor(n).clone() for n in f.names}
    edit(tensors)
    from uc_attest.core.stfile import out_tensor

    with open(path, "wb") as fh:
        write_safetensors(fh, [out_tensor(n, t) for n, t in tensors.items()], meta)


Q = "model.layers.{}.self_attn.q_proj.weight"


def _alter_codes(t: dict[str, torch.Tensor]) -> None:
    t[Q.format(0) + ".uc_codes"][10] ^= 1


def _alter_scale(t: dict[str, torch.Tensor]) -> None:
    t[Q.format(1) + ".uc_scales"][0] *= 2


def _alter_zero(t: dict[str, torch.Tensor]) -> None:
    t[Q.format(0) + ".uc_zeros"][1] ^= 1


def _alter_three(t: dict[str, torch.Tensor]) -> None:
    _alter_codes(t)
    _alter_scale(t)
    t["model.layers.0.mlp.down_proj.bias"][0] += 1


def _remove(t: dict[str, torch.Tensor]) -> None:
    del t["model.layers.1.mlp.down_proj.bias"]


def _add(t: dict[str, torch.Tensor]) -> None:
    t["extra.weight"] = torch.zeros(2)


def _rename(t: dict[str, torch.Tensor]) -> None:
    t["model.layers.1.mlp.down_proj.bias2"] = t.pop("model.layers.1.mlp.down_proj.bias")


def _drop_component(t: dict[str, torch.Tensor]) -> None:
    del t[Q.format(1) + ".uc_zeros"]


def _truncate_codes(t: dict[str, torch.Tensor]) -> None:
    t[Q.format(1) + ".uc_codes"] = t[Q.format(1) + ".uc_codes"][:-5].clone()


@pytest.mark.parametrize(
    ("edit", "expected_subjects"),
    [
        (_alter_codes, {Q.format(0)}),
        (_alter_scale, {Q.format(1)}),
        (_alter_zero, {Q.format(0)}),
        (_alter_three, {Q.format(0), Q.format(1), "model.layers.0.mlp.down_proj.bias"}),
        (_remove, {"model.layers.1.mlp.down_proj.bias"}),
        (_add, {"extra.weight"}),
        (_rename, {"model.layers.1.mlp.down_proj.bias", "model.layers.1.mlp.down_proj.bias2"}),
        (_drop_component, {Q.format(1)}),
        (_truncate_codes, {Q.format(1)}),
    ],
)
def test_tampered_pack_lists_every_mismatching_tensor(
    bf16_model: Path, tmp_path: Path, edit: Callable[[dict[str, torch.Tensor]], None], expected_subjects: set[str]
) -> None:
    _pack(bf16_model, tmp_path / "p")
    _rewrite_shard(tmp_path / "p" / "model.safetensors", edit)
    with pytest.raises(uc.VerificationFailed) as info:
        uc.verify_pack(tmp_path / "p")
    assert {f.subject for f in info.value.findings} == expected_subjects  # the shard proven by its tensors
    with pytest.raises(uc.VerificationFailed) as info:
        uc.verify_pack(tmp_path / "p", shard_digests=True)
    subjects = {f.subject for f in info.value.findings}
    assert subjects - {"model.safetensors"} == expected_subjects
    assert "model.safetensors" in subjects  # the file digest changed too


def test_a_truncated_shard_is_reported_once_with_its_cause(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    """One finding naming the shard, the cause and how many tensors it holds — not one "missing" row each."""
    res = _pack(model_factory(shards=2), tmp_path / "p")
    shard = min((tmp_path / "p").glob("*.safetensors"))
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(uc.VerificationFailed) as info:
        uc.verify_pack(tmp_path / "p")
    in_shard = {t.name for t in res.manifest.tensors if t.file == shard.name}
    (about_shard,) = [f for f in info.value.findings if f.subject == shard.name and "unreadable" in f.problem]
    assert in_shard and f"{len(in_shard)} tensors in it not checked" in about_shard.problem
    assert not in_shard & {f.subject for f in info.value.findings}


def test_validated_manifest_is_the_reference(
    bf16_model: Path, model_factory: Callable[..., Path], tmp_path: Path
) -> None:
    _pack(bf16_model, tmp_path / "validated")
    keep = tmp_path / "validated-manifest.json"
    shutil.copy(tmp_path / "validated" / uc.MANIFEST_NAME, keep)
    _pack(model_factory(seed=5), tmp_path / "other")  # a different model, self-consistent
    assert uc.verify_pack(tmp_path / "other").ok
    with pytest.raises(uc.VerificationFailed) as info:
        uc.verify_pack(tmp_path / "other", keep)
    assert len({f.subject for f in info.value.findings if "digest" in f.problem}) >= 4


# --- bad input: clean error, nothing left behind --------------------------------------------------------------


def _no_leftovers(parent: Path, name: str) -> None:
    assert not (parent / name).exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_pickle_only_model_is_refused_without_unpickling(tmp_path: Path) -> None:
    src = tmp_path / "m"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "pytorch_model.bin").write_bytes(b"\x80\x04crash\n")  # never opened
    with pytest.raises(uc.MalformedModel, match="pickle"):
        _pack(src, tmp_path / "out")
    _no_leftovers(tmp_path, "out")


@pytest.mark.parametrize("config", [None, "{not json", "[1, 2]"])
def test_missing_or_malformed_config(bf16_model: Path, tmp_path: Path, config: str | None) -> None:
    if config is None:
        (bf16_model / "config.json").unlink()
    else:
        (bf16_model / "config.json").write_text(config)
    with pytest.raises(uc.MalformedModel, match="config.json"):
        _pack(bf16_model, tmp_path / "out")
    _no_leftovers(tmp_path, "out")


def test_malformed_safetensors_names_file_and_rule(bf16_model: Path, tmp_path: Path) -> None:
    p = bf16_model / "model.safetensors"
    data = bytearray(p.read_bytes())
    data[:8] = struct.pack("<Q", len(data) + 100)
    p.write_bytes(bytes(data))
    with pytest.raises(uc.MalformedSafetensors, match="model.safetensors.*InvalidHeaderLength"):
        _pack(bf16_model, tmp_path / "out")
    _no_leftovers(tmp_path, "out")


def test_failure_mid_pack_leaves_nothing(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    src = model_factory(shards=2, dtype=torch.float32)
    last = max(src.glob("*.safetensors"))
    t = load_file(str(last))
    name = next(n for n in sorted(t) if n.endswith(("q_proj.weight", "down_proj.weight")))
    t[name][3, 4] = float("nan")
    save_file(t, str(last))
    with pytest.raises(uc.UnsupportedTensor, match=name):
        _pack(src, tmp_path / "out")
    _no_leftovers(tmp_path, "out")


def test_existing_output_is_not_touched(bf16_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("x")
    with pytest.raises(uc.UsageError, match="exists"):
        _pack(bf16_model, out)
    assert (out / "keep").read_text() == "x"


def test_index_naming_a_missing_tensor(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    src = model_factory(shards=2)
    idx = src / "model.safetensors.index.json"
    obj = json.loads(idx.read_text())
    obj["weight_map"]["ghost.weight"] = next(iter(obj["weight_map"].values()))
    idx.write_text(json.dumps(obj))
    with pytest.raises(uc.MalformedModel, match="ghost.weight"):
        _pack(src, tmp_path / "out")


def test_manifest_with_bad_root_is_rejected(bf16_model: Path, tmp_path: Path) -> None:
    _pack(bf16_model, tmp_path / "p")
    mp = tmp_path / "p" / uc.MANIFEST_NAME
    obj = json.loads(mp.read_text())
    obj["tensors"][0]["digest"] = "sha256:" + "0" * 64
    mp.write_text(json.dumps(obj))
    with pytest.raises(uc.MalformedPack, match="root"):
        uc.verify_pack(tmp_path / "p")


def test_pack_reader_ignores_manifest_for_locating_tensors(bf16_model: Path, tmp_path: Path) -> None:
    _pack(bf16_model, tmp_path / "p")
    os.remove(tmp_path / "p" / uc.MANIFEST_NAME)
    pk = Pack(tmp_path / "p")
    assert len(pk.tensors) == 9
    pk.close()


def test_pack_format_golden(tmp_path: Path) -> None:
    """Pins the pack bytes and the root of a tiny integer-generated model (docs/format.md example)."""
    from uc_attest.testing.synth import write_synth_model

    src = write_synth_model(tmp_path / "m", hidden=64, inter=128, layers=1, vocab=32)
    assert hashlib.sha256((src / "model.safetensors").read_bytes()).hexdigest() == GOLDEN_SOURCE
    res = _pack(src, tmp_path / "p", bits=5, group_size=32, exclude=OLD_EXCLUDE)
    shard = (tmp_path / "p" / "model.safetensors").read_bytes()
    assert hashlib.sha256(shard).hexdigest() == GOLDEN_SHARD
    assert str(res.manifest.root) == GOLDEN_ROOT
    # pack format 2: config.json with quantization_config, indented JSON with sorted keys (docs/format.md 1)
    assert hashlib.sha256((tmp_path / "p" / "config.json").read_bytes()).hexdigest() == GOLDEN_CONFIG
    rht = uc.Scheme(bits=5, group_size=32, id="uc-rht-clip/1", bits_overrides=(("*v_proj*", 6),), exclude=OLD_EXCLUDE)
    res = uc.write_pack(src, tmp_path / "p2", rht, "cpu", calibration=None, allocation=None)
    assert hashlib.sha256((tmp_path / "p2" / "model.safetensors").read_bytes()).hexdigest() == GOLDEN_RHT_SHARD
    assert str(res.manifest.root) == GOLDEN_RHT_ROOT
    assert {t.quant.bits for t in res.manifest.tensors if t.quant and "v_proj" in t.name} == {6}


#: The exclude list of the time these were pinned (docs/statement.md's example is that pack); the default now
#: quantizes lm_head (test_the_default_quantizes_the_head): the same scheme still gives the same bytes.
OLD_EXCLUDE = ("*embed*", "*wte*", "*wpe*", "lm_head*", "output.weight", "*norm*")


def test_the_default_quantizes_the_head(tmp_path: Path) -> None:
    """The output head is quantized like any linear layer; embeddings and norms are stored as they are."""
    from uc_attest.testing.synth import write_synth_model

    src = write_synth_model(tmp_path / "m", hidden=64, inter=128, layers=1, vocab=32)
    m = _pack(src, tmp_path / "p", bits=5, group_size=32).manifest
    quantized = {t.name for t in m.tensors if t.quant}
    assert "lm_head.weight" in quantized
    assert not {n for n in quantized if "embed" in n or "norm" in n}


GOLDEN_SOURCE = "523635567805377d59a5b46d6bcb9110990bfa017de3d3337c6d2c4d2e09b8ba"
GOLDEN_SHARD = "16af5df8c876bcd3c68ea5a03167dc0718edd3bbbb335d47b7760fa56cbfa709"
GOLDEN_ROOT = "sha256:cc5821896546d2f2f0aa4ad437fc64a01de0cb1029954e2404d5feedddfc96f5"
GOLDEN_CONFIG = "98ea1f7d8e2c1b2e7d31fe5ac645ab8290d98d59bb17e1656547cebd91a09694"
GOLDEN_RHT_SHARD = "81e806114573dff7dd73f6a16036922d3ff3295577c85d33fd7b3bccd4ba1da8"
GOLDEN_RHT_ROOT = "sha256:9c1284ec9c1e776943b76f8a3a5d6365fbbbc8909381ffda1f9febf600d67927"


def test_the_library_and_the_cli_share_one_set_of_defaults() -> None:
    """write_pack's options are PackRequest's fields with its defaults (the CLI builds a PackRequest): no second
    set; the budget not given is the sentinel, not a float equal to the default."""
    import dataclasses
    import inspect

    from uc_attest.pack.api import UNSET, PackOptions

    fields = {f.name: f.default for f in dataclasses.fields(uc.PackRequest)}
    renamed = {"source_dir": "source", "out_dir": "out"}
    params = {renamed.get(n, n): p for n, p in inspect.signature(uc.write_pack).parameters.items()}
    named = set(params) - {"progress", "warn", "options"}
    assert named == {"source", "out", "scheme", "device"}
    assert all(params[n].default == fields[n] for n in ("scheme", "device"))
    assert set(fields) == named | set(PackOptions.__annotations__)
    request = uc.PackRequest(Path("src"), Path("out"))
    assert request.calibration == uc.Calibration(uc.CalibrationMode.AUTO, None)
    assert request.allocation == uc.Allocation(UNSET, strict=False) and request.allocation.bits == uc.DEFAULT_BUDGET
    assert request.source_signature is None
    assert request.scheme == uc.PACK_SCHEME == uc.scheme_from_options() and not request.scheme.bits_overrides
    plain = uc.PackRequest.uncalibrated(Path("src"), Path("out"))
    assert (plain.calibration, plain.allocation, plain.scheme) == (None, None, uc.DEFAULT_SCHEME)
    with pytest.raises(uc.UsageError, match="calibration mode must be"):
        uc.Calibration("sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize(("flags", "needle"), [
    (["--calibration", "c", "--calibration-text", "t"], "exclusive"),
    (["--no-calibration", "--calibration", "c"], "--no-calibration"),
    (["--source-key", "k"], "need --source-signature"),
    (["--source-signature", "s", "--source-key", "k", "--source-identity", "a"], "--source-key is exclusive"),
    (["--source-signature", "s", "--source-cert-chain", "c", "--source-identity", "a"], "both or neither"),
    (["--source-signature", "s", "--source-identity", "a"], "exactly one of --trust-config FILE or --instance DIR"),
    (["--source-signature", "s", "--instance", "i"], "needs --source-identity"),
    # trust flags without a signature, or with the key method, were silently dropped (found by an outside review)
    (["--instance", "i"], "need --source-signature"),
    (["--trust-config", "t"], "need --source-signature"),
    (["--source-signature", "s", "--source-key", "k", "--instance", "i"], "--source-key is exclusive"),
])  # fmt: skip
def test_flags_that_cannot_be_meant_are_refused_before_any_work(tmp_path: Path, flags: list[str], needle: str) -> None:
    """The CLI parses its flags into the request's typed values; what no value can say is exit 2, naming flags."""
    from typer.testing import CliRunner

    from uc_attest.cli import app

    r = CliRunner().invoke(app, ["pack", str(tmp_path / "no-such-model"), "-o", str(tmp_path / "out"), *flags])
    assert r.exit_code == 2 and needle in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_a_budget_given_must_be_met_and_the_default_need_not(bf16_model: Path, tmp_path: Path) -> None:
    """Whether --bits-budget was given is the parser's answer, not a comparison with 5.3: given, even as the
    default's value, a budget the base widths exceed is exit 2; not given, it means no allocation."""
    from typer.testing import CliRunner

    from uc_attest.cli import app

    base = ["pack", str(bf16_model), "--device", "cpu", "--no-calibration", "--bits", "6"]
    given = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "a"), "--bits-budget", str(uc.DEFAULT_BUDGET)])
    assert given.exit_code == 2 and "--bits-budget" in given.output, given.output
    r = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "b"), "--json"])
    assert r.exit_code == 0, r.output
    assert "allocation" not in uc.load_manifest(tmp_path / "b" / uc.MANIFEST_NAME).scheme


class _Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def stage(self, name: str) -> None:
        self.events.append(("stage", name))

    def update(self, done: int, total: int, what: str) -> None:
        self.events.append(("update", str(done), str(total), what))


def test_progress_reports_each_stage_and_the_quantized_weights(bf16_model: Path, tmp_path: Path) -> None:
    """Stages in order; the quantization stage counts the weights of quantized tensors only, up to its total
    (the bar does not sit at 0 % and never names a tensor that is only copied, like a bias)."""
    rec, warned = _Recorder(), []
    res = uc.write_pack(bf16_model, tmp_path / "p", device="cpu", progress=rec, warn=warned.append)
    stages = [e[1] for e in rec.events if e[0] == "stage"]
    assert stages == ["checking", "calibration", "allocation", "quantization"]
    assert len(warned) == 1 and "calibration skipped" in warned[0]  # a synthetic model transformers cannot run
    quantized = [t for t in res.manifest.tensors if t.quant]
    weights = str(sum(math.prod(t.shape) for t in quantized))
    at = [i for i, e in enumerate(rec.events) if e[0] == "stage"] + [len(rec.events)]
    for stage in ("allocation", "quantization"):  # each measures or quantizes every quantized tensor once
        i = stages.index(stage)
        updates = rec.events[at[i] + 1 : at[i + 1]]
        assert [u[3].split(" ")[0] for u in updates] == [t.name for t in quantized], stage
        assert updates[-1][1] == updates[-1][2] == weights and all(" weights)" in u[3] for u in updates)
    assert not any(".bias" in e[-1] for e in rec.events)


def test_an_existing_output_fails_before_any_work(bf16_model: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    rec = _Recorder()
    with pytest.raises(uc.UsageError, match="already exists"):
        uc.write_pack(bf16_model, tmp_path / "out", progress=rec)
    assert rec.events == [("stage", "checking")]  # no calibration, no allocation, nothing quantized


def test_the_library_warns_when_it_packs_without_calibration(bf16_model: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="calibration skipped"):
        res = uc.write_pack(bf16_model, tmp_path / "p", device="cpu")
    assert res.manifest.calibration is None and "allocation" in res.manifest.scheme
