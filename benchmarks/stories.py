"""stories260K (karpathy llama2.c TinyStories Llama, ../shared/models/stories260K) as a real-weights fixture.

Converts the legacy llama2.c checkpoint to a Llama-layout safetensors model directory (fp32),
runs it with a small reference forward pass (RMSNorm, interleaved RoPE theta 1e4, GQA,
SwiGLU), samples fixed sequences from the fp32 model (T=1, seed 1234) and measures a
quantized reconstruction by perplexity ratio and KL(p_ref || p_q) on those sequences.
The file is read with struct/NumPy only (never unpickled).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch

from uc_attest.core.stfile import OutTensor, write_safetensors

SHARED_BIN = Path(__file__).resolve().parents[2] / "shared" / "models" / "stories260K" / "stories260K.bin"


def convert(bin_path: Path, out_dir: Path, *, hf_layout: bool = False) -> Path:
    """llama2.c legacy checkpoint -> config.json + model.safetensors (HF Llama names, fp32).

    ``hf_layout``: q/k rows permuted from llama2.c's interleaved RoPE pairs to transformers' rotate-half
    layout, and ``architectures`` set, so that transformers' LlamaForCausalLM computes this model (the
    runtime serves it); the default keeps llama2.c's layout for the reference forward below."""
    raw = bin_path.read_bytes()
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    head = dim // heads
    kv_dim = kv_heads * head
    arr = np.frombuffer(raw, dtype="<f4", offset=28)
    pos = 0

    def take(*shape: int) -> np.ndarray:
        nonlocal pos
        n = int(np.prod(shape))
        out = arr[pos : pos + n].reshape(shape)
        pos += n
        return out

    emb = take(vocab, dim)
    rms_att, wq, wk = take(layers, dim), take(layers, dim, dim), take(layers, kv_dim, dim)
    wv, wo, rms_ffn = take(layers, kv_dim, dim), take(layers, dim, dim), take(layers, dim)
    w1, w2, w3 = take(layers, hidden, dim), take(layers, dim, hidden), take(layers, hidden, dim)
    rms_final = take(dim)
    tensors: dict[str, np.ndarray] = {"model.embed_tokens.weight": emb, "model.norm.weight": rms_final}
    if hf_layout:
        wq = np.stack([_rotate_half_rows(wq[i], heads) for i in range(layers)])
        wk = np.stack([_rotate_half_rows(wk[i], kv_heads) for i in range(layers)])
    for i in range(layers):
        p = f"model.layers.{i}"
        tensors.update(
            {
                f"{p}.input_layernorm.weight": rms_att[i],
                f"{p}.post_attention_layernorm.weight": rms_ffn[i],
                f"{p}.self_attn.q_proj.weight": wq[i],
                f"{p}.self_attn.k_proj.weight": wk[i],
                f"{p}.self_attn.v_proj.weight": wv[i],
                f"{p}.self_attn.o_proj.weight": wo[i],
                f"{p}.mlp.gate_proj.weight": w1[i],
                f"{p}.mlp.down_proj.weight": w2[i],
                f"{p}.mlp.up_proj.weight": w3[i],
            }
        )
    if not shared:
        tensors["lm_head.weight"] = take(vocab, dim)
    out_dir.mkdir(parents=True, exist_ok=True)
    outs = [OutTensor(n, "F32", tuple(a.shape), np.ascontiguousarray(a).tobytes()) for n, a in sorted(tensors.items())]
    with open(out_dir / "model.safetensors", "wb") as f:
        write_safetensors(f, outs, {"format": "pt"})
    cfg = {
        "model_type": "llama",
        "hidden_size": dim,
        "intermediate_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": vocab,
        "max_position_embeddings": seq_len,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": shared,
        "source": "llama2.c stories260K (MIT)",
    }
    if hf_layout:
        cfg |= {
            "architectures": ["LlamaForCausalLM"],
            "hidden_act": "silu",
            "bos_token_id": 1,
            "eos_token_id": 2,
            "torch_dtype": "float32",
        }
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    return out_dir


def _rotate_half_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """Rows of one head come as RoPE pairs (2i, 2i+1); transformers rotates halves (i, i + d/2)."""
    rows, dim = w.shape
    hd = rows // heads
    return w.reshape(heads, hd // 2, 2, dim).transpose(0, 2, 1, 3).reshape(rows, dim)


def _interleave_rows(w: np.ndarray, heads: int) -> np.ndarray:
    """The inverse of ``_rotate_half_rows``."""
    rows, dim = w.shape
    hd = rows // heads
    return w.reshape(heads, 2, hd // 2, dim).transpose(0, 2, 1, 3).reshape(rows, dim)


def to_llama2c_layout(hf_dir: Path, out_dir: Path) -> Path:
    """A model directory in transformers' layout (``convert(hf_layout=True)``, or a reconstruction of a pack
    of one) back in llama2.c's, so the reference forward below computes exactly that model."""
    from safetensors.numpy import load_file, save_file

    cfg = json.loads((hf_dir / "config.json").read_text())
    t = load_file(str(hf_dir / "model.safetensors"))
    heads = {"q_proj": cfg["num_attention_heads"], "k_proj": cfg["num_key_value_heads"]}
    for k in list(t):
        for proj, n in heads.items():
            if k.endswith(f"{proj}.weight"):
                t[k] = np.ascontiguousarray(_interleave_rows(t[k], n))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(cfg))
    save_file(t, str(out_dir / "model.safetensors"))
    return out_dir


class Llama:
    """Minimal reference forward pass of the llama2.c architecture (interleaved RoPE pairs)."""

    def __init__(self, model_dir: Path) -> None:
        from safetensors.torch import load_file

        self.cfg = json.loads((model_dir / "config.json").read_text())
        self.w = {k: v.to(torch.float64) for k, v in load_file(str(model_dir / "model.safetensors")).items()}

    def as_float32(self) -> Llama:
        fast = Llama.__new__(Llama)
        fast.cfg, fast.w, fast.dt = self.cfg, {k: v.to(torch.float32) for k, v in self.w.items()}, torch.float32
        return fast

    dt = torch.float64
    #: When a dict: ``logits`` adds each linear layer's input second moments (sum of x xᵀ, token count).
    record: dict[str, list[object]] | None = None

    def logits(self, tokens: torch.Tensor) -> torch.Tensor:
        c, w = self.cfg, self.w

        def lin(v: torch.Tensor, name: str) -> torch.Tensor:
            if self.record is not None:
                flat = v.reshape(-1, v.shape[-1]).double()
                acc = self.record.setdefault(name, [0, 0])
                acc[0] = acc[0] + flat.T @ flat
                acc[1] = int(acc[1]) + flat.shape[0]  # type: ignore[call-overload]
            return v @ w[name].T

        b, t = tokens.shape
        dim, heads, kvh = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        hd = dim // heads
        x = w["model.embed_tokens.weight"][tokens]
        pos = torch.arange(t, dtype=self.dt)
        freqs = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=self.dt) / hd))
        ang = pos[:, None] * freqs[None, :]
        cos, sin = torch.cos(ang), torch.sin(ang)

        def rope(v: torch.Tensor) -> torch.Tensor:  # [b, h, t, hd], pairs (2i, 2i+1)
            a, bb = v[..., 0::2], v[..., 1::2]
            return torch.stack((a * cos - bb * sin, a * sin + bb * cos), dim=-1).flatten(-2)

        def norm(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
            return v * torch.rsqrt((v * v).mean(-1, keepdim=True) + 1e-5) * g

        mask = torch.full((t, t), float("-inf"), dtype=self.dt).triu(1)
        for i in range(c["num_hidden_layers"]):
            p = f"model.layers.{i}"
            h = norm(x, w[f"{p}.input_layernorm.weight"])
            q = lin(h, f"{p}.self_attn.q_proj.weight").view(b, t, heads, hd).transpose(1, 2)
            k = lin(h, f"{p}.self_attn.k_proj.weight").view(b, t, kvh, hd).transpose(1, 2)
            v = lin(h, f"{p}.self_attn.v_proj.weight").view(b, t, kvh, hd).transpose(1, 2)
            q, k = rope(q), rope(k)
            k, v = k.repeat_interleave(heads // kvh, 1), v.repeat_interleave(heads // kvh, 1)
            att = torch.softmax(q @ k.transpose(-1, -2) / hd**0.5 + mask, -1) @ v
            x = x + lin(att.transpose(1, 2).reshape(b, t, dim), f"{p}.self_attn.o_proj.weight")
            h = norm(x, w[f"{p}.post_attention_layernorm.weight"])
            ff = torch.nn.functional.silu(lin(h, f"{p}.mlp.gate_proj.weight")) * lin(h, f"{p}.mlp.up_proj.weight")
            x = x + lin(ff, f"{p}.mlp.down_proj.weight")
        x = norm(x, w["model.norm.weight"])
        head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
        return x @ head.T


def sample(model: Llama, n: int = 96, length: int = 256, seed: int = 1234) -> torch.Tensor:
    """n sequences of ``length`` tokens sampled from the model at T=1 (BOS = token 1)."""
    g = torch.Generator().manual_seed(seed)
    model = model.as_float32()
    toks = torch.ones(n, 1, dtype=torch.long)
    for _ in range(length - 1):
        probs = torch.softmax(model.logits(toks)[:, -1], -1)
        toks = torch.cat([toks, torch.multinomial(probs, 1, generator=g)], 1)
    return toks


def calibration_moments(model: Llama, toks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Second moments of every linear layer's input over ``toks`` (mean of x xᵀ per token)."""
    model.record = {}
    try:
        model.logits(toks)
        return {k: v[0] / v[1] for k, v in model.record.items()}  # type: ignore[operator]
    finally:
        model.record = None


def compare(ref: Llama, other: Llama, toks: torch.Tensor) -> tuple[float, float]:
    """(perplexity ratio other/ref, mean KL(p_ref || p_other)) over next-token predictions."""
    lr = torch.log_softmax(ref.logits(toks[:, :-1]), -1)
    lo = torch.log_softmax(other.logits(toks[:, :-1]), -1)
    tgt = toks[:, 1:, None]
    nll_r = -lr.gather(-1, tgt).mean()
    nll_o = -lo.gather(-1, tgt).mean()
    kl = (lr.exp() * (lr - lo)).sum(-1).mean()
    return float(torch.exp(nll_o - nll_r)), float(kl)
