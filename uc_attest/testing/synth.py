"""Deterministic synthetic models for tests and benchmarks.

Weights come from a counter-based integer hash (SplitMix64-like, int64 wraparound
arithmetic on the CPU), summed into an approximately Gaussian integer and scaled
by a power of two, so every machine and torch version produces the same bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..core.stfile import OutTensor, tensor_bytes, write_safetensors

_MASK32 = (1 << 32) - 1


def _mix(x: torch.Tensor) -> torch.Tensor:
    x = x ^ ((x >> 30) & ((1 << 34) - 1))
    x = x * -4658895280553007687  # 0xBF58476D1CE4E5B9 as signed int64
    x = x ^ ((x >> 27) & ((1 << 37) - 1))
    x = x * -7723592293110705685  # 0x94D049BB133111EB
    return x ^ ((x >> 31) & ((1 << 33) - 1))


def synth_tensor(
    shape: tuple[int, ...], seed: int, scale_log2: int = -21, dtype: torch.dtype = torch.bfloat16, chunk: int = 1 << 22
) -> torch.Tensor:
    """Approx. N(0, (37837 * 2**scale_log2)**2) weights (std ~0.018 by default) with rare 8x outliers, bit-reproducible."""
    n = 1
    for d in shape:
        n *= d
    out = torch.empty(n, dtype=dtype)
    base = (seed & _MASK32) << 32
    for s in range(0, n, chunk):
        idx = torch.arange(s, min(n, s + chunk), dtype=torch.int64)
        h = _mix(idx + base)
        parts = [(h >> (16 * k)) & 0xFFFF for k in range(4)]
        v = parts[0] + parts[1] + parts[2] + parts[3] - 2 * 65535  # Irwin-Hall(4), centred
        v = torch.where((parts[0] & 0x3FF) == 0, v * 8, v)  # ~0.1% outliers
        out[s : s + idx.numel()] = (v.to(torch.float32) * (2.0**scale_log2)).to(dtype)
    return out.reshape(shape)


def synth_activations(tokens: int, width: int, seed: int) -> torch.Tensor:
    """Integer activations [tokens, width] (int64), correlated across neighbouring channels, every
    17th channel loud (like LayerNorm outputs)."""
    base = synth_tensor((tokens, width), seed, scale_log2=0, dtype=torch.float32).to(torch.int64) >> 8
    x = base + torch.roll(base, 1, dims=1) + torch.roll(base, 2, dims=1)
    loud = torch.ones(width, dtype=torch.int64)
    loud[::17] = 8
    return x * loud


def synth_moments(width: int, seed: int, tokens: int = 512, block: int = 0) -> torch.Tensor:
    """Second moments E[x xᵀ] (float64) of ``synth_activations``: the full [width, width] matrix, or
    its diagonal blocks [width/block, block, block]. The sums are int64, so every machine agrees."""
    x = synth_activations(tokens, width, seed)
    if block:
        xb = x.reshape(tokens, width // block, block).transpose(0, 1)  # [nb, tokens, block]
        return torch.bmm(xb.transpose(1, 2), xb).double() / tokens
    return (x.T @ x).double() / tokens


def llama_shapes(hidden: int, inter: int, layers: int, vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    """Tensor names and shapes of a Llama-style decoder."""
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}"
        shapes += [(f"{p}.input_layernorm.weight", (hidden,)), (f"{p}.post_attention_layernorm.weight", (hidden,))]
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            shapes.append((f"{p}.self_attn.{proj}.weight", (hidden, hidden)))
        shapes += [
            (f"{p}.mlp.gate_proj.weight", (inter, hidden)),
            (f"{p}.mlp.up_proj.weight", (inter, hidden)),
            (f"{p}.mlp.down_proj.weight", (hidden, inter)),
        ]
    shapes += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    return shapes


def write_synth_model(
    root: Path,
    *,
    hidden: int = 256,
    inter: int = 688,
    layers: int = 2,
    vocab: int = 512,
    dtype: torch.dtype = torch.bfloat16,
    seed: int = 1,
) -> Path:
    """Write a deterministic Llama-shaped model directory (config.json + model.safetensors)."""
    root.mkdir(parents=True, exist_ok=True)
    outs: list[OutTensor] = []
    for i, (name, shape) in enumerate(llama_shapes(hidden, inter, layers, vocab)):
        t = torch.ones(shape, dtype=dtype) if len(shape) == 1 else synth_tensor(shape, seed * 100_003 + i, dtype=dtype)
        outs.append(
            OutTensor(
                name,
                {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}[dtype],
                shape,
                tensor_bytes(t),
            )
        )
        del t
    with open(root / "model.safetensors", "wb") as f:
        write_safetensors(f, outs, {"format": "pt"})
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "vocab_size": vocab,
        "num_attention_heads": max(1, hidden // 64),
        "num_key_value_heads": max(1, hidden // 64),
        "torch_dtype": str(dtype).removeprefix("torch."),
    }
    (root / "config.json").write_text(json.dumps(config, indent=2))
    return root
