"""The calibration's own forward passes for the two families most packs are of — Llama-family decoders
(``LlamaForCausalLM``: SmolLM2, TinyLlama, Llama 2/3 with default RoPE) and BERT encoders (``BertModel``:
MiniLM, BGE, E5) — built straight from the model's safetensors.

Why: importing transformers' model classes costs ~2.5 s (it pulls in torch.distributed, dynamo and scipy),
more than the calibration itself on small models, and its per-step generation machinery costs more than the
arithmetic. These modules are the same functions in plain torch (``nn.Linear`` layers named as in the
checkpoint, so ``MomentHooks`` finds them; a preallocated KV cache), checked against transformers' outputs in
tests/unit/test_own_forward.py. :func:`build` returns None for anything else — another architecture, a config
field these do not implement (RoPE scaling, another activation, biases), a tensor missing or of another shape —
and the caller uses transformers, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as nnf

from ..source import ModelSource


@dataclass
class Output:
    """What the calibration reads of a forward pass (the attribute names of transformers' outputs)."""

    logits: torch.Tensor | None = None
    past_key_values: KVCache | None = None
    last_hidden_state: torch.Tensor | None = None


class Config:
    """Attribute access to config.json's fields, with the defaults of transformers' config classes."""

    theta: float  # RoPE base
    kv: int  # key/value heads
    hd: int  # head dimension

    def __init__(self, raw: dict[str, Any], defaults: dict[str, Any]) -> None:
        self.__dict__.update(defaults)
        self.__dict__.update({k: v for k, v in raw.items() if v is not None or k not in defaults})

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(name)


LLAMA_DEFAULTS: dict[str, Any] = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": None,
    "head_dim": None,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "bos_token_id": 1,
    "tie_word_embeddings": False,
    "attention_bias": False,
    "mlp_bias": False,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "rope_parameters": None,
    "pretraining_tp": 1,
}

BERT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "position_embedding_type": "absolute",
    "is_decoder": False,
    "add_cross_attention": False,
}


class KVCache:
    """Each layer's keys and values [batch, kv heads, capacity, head dim], grown by doubling; ``length`` filled.
    Kept in float32 whatever the model's dtype (a decode step attends in float32: ``_attend_one``)."""

    def __init__(self, layers: int) -> None:
        self.k: list[torch.Tensor | None] = [None] * layers
        self.v: list[torch.Tensor | None] = [None] * layers
        self.length = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this step's ``k``/``v`` after the ``length`` kept; all keys and values so far."""
        k, v = k.to(torch.float32), v.to(torch.float32)
        start, end = self.length, self.length + k.shape[2]
        old_k, old_v = self.k[layer], self.v[layer]
        if old_k is None or old_v is None or old_k.shape[2] < end:
            cap = max(2 * (old_k.shape[2] if old_k is not None else 0), end, 16)
            new_k = k.new_empty((*k.shape[:2], cap, k.shape[3]))
            new_v = v.new_empty((*v.shape[:2], cap, v.shape[3]))
            if old_k is not None and old_v is not None:
                new_k[:, :, :start] = old_k[:, :, :start]
                new_v[:, :, :start] = old_v[:, :, :start]
            self.k[layer], self.v[layer] = old_k, old_v = new_k, new_v
        old_k[:, :, start:end] = k
        old_v[:, :, start:end] = v
        return old_k[:, :, :end], old_v[:, :, :end]


# -- Llama ----------------------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, n: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.to(torch.float32)
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def _valid_rows(mask: torch.Tensor) -> torch.Tensor:
    """A boolean attention mask in which a query that may attend to nothing (padding) attends to everything
    instead: its output is padding, never read, and a row of -inf would make it NaN."""
    return mask | ~mask.any(-1, keepdim=True)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _attend_one(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Attention of one query per sequence ([b, heads, 1, d]) over the kept keys and values ([b, kv heads, L, d];
    float32 when cached, else cast here), in float32 by plain products: torch's CPU flash kernel for a single
    bfloat16 query cost 40 % of a sampling pass for 2 % of its arithmetic. Query head j reads key/value head
    j // (heads / kv heads)."""
    b, heads, _, d = q.shape
    kv = k.shape[1]
    qg = q.to(torch.float32).reshape(b, kv, heads // kv, d) * (1.0 / math.sqrt(d))
    k, v = k.to(torch.float32), v.to(torch.float32)  # no copy for a cache's (a one-token pass without one: bf16)
    p = torch.softmax(qg @ k.transpose(-1, -2), dim=-1)  # [b, kv, heads / kv, L]
    return (p @ v).reshape(b, heads, 1, d)


class LlamaAttention(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        h, self.heads, self.kv_heads, self.head_dim = cfg.hidden_size, cfg.num_attention_heads, cfg.kv, cfg.hd
        self.q_proj = nn.Linear(h, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(h, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(h, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, h, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if cache is not None:
            k, v = cache.append(layer, k, v)
        gqa = self.heads != self.kv_heads  # query head j reads key/value head j // (heads / kv heads)
        if t == 1 and mask is None:  # one new token per sequence (a decode step): every kept key, in float32
            out = _attend_one(q, k, v).to(x.dtype)
        elif mask is None:
            out = nnf.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), is_causal=t > 1, enable_gqa=gqa)
        else:
            out = nnf.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask, enable_gqa=gqa)
        y: torch.Tensor = self.o_proj(out.transpose(1, 2).reshape(b, t, -1))
        return y


class LlamaMLP(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        h, n = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = nn.Linear(h, n, bias=False)
        self.up_proj = nn.Linear(h, n, bias=False)
        self.down_proj = nn.Linear(n, h, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.down_proj(nnf.silu(self.gate_proj(x)) * self.up_proj(x))
        return y


class LlamaLayer(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = LlamaAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = LlamaMLP(cfg)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, layer)
        out: torch.Tensor = x + self.mlp(self.post_attention_layernorm(x))
        return out


@dataclass(frozen=True)
class Part:
    """Which modules of a decoder a process holds: the token embedding (the first stage of a pipeline), a run of
    layers, the final norm and the head (the last stage). The whole model holds every one."""

    layers: range
    embed: bool = True
    head: bool = True


class LlamaBody(nn.Module):
    def __init__(self, cfg: Config, part: Part) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size) if part.embed else None
        # keyed by the layer's number: a pipeline stage's layers keep the names they have in the checkpoint
        self.layers = nn.ModuleDict({str(i): LlamaLayer(cfg) for i in part.layers})
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps) if part.head else None


class LlamaForCausalLM(nn.Module):
    """``LlamaForCausalLM`` with default RoPE, no biases, SiLU MLP, grouped-query attention; or the
    :class:`Part` of it that one stage of a pipeline holds (``calibration/pipeline.py``)."""

    def __init__(self, cfg: Config, part: Part | None = None) -> None:
        super().__init__()
        self.config = cfg
        self.part = part if part is not None else Part(range(cfg.num_hidden_layers))
        self.model = LlamaBody(cfg, self.part)
        self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False) if self.part.head else None
        dim = cfg.hd
        exps = torch.arange(0, dim, 2, dtype=torch.int64, device="cpu").float() / dim
        self.inv_freq = 1.0 / (cfg.theta**exps)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        past_key_values: KVCache | None = None,
        use_cache: bool = False,
    ) -> Output:
        cache = (
            past_key_values
            if past_key_values is not None
            else KVCache(self.config.num_hidden_layers)
            if use_cache
            else None
        )
        x = self.run_layers(self.embed(input_ids), attention_mask, cache)
        return Output(logits=self.head(x), past_key_values=cache)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The first stage's part: the tokens' embeddings."""
        if self.model.embed_tokens is None:
            raise AssertionError("this part of the model holds no embedding")
        x: torch.Tensor = self.model.embed_tokens(input_ids)
        return x

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's part: the logits of the last layer's output ``x``."""
        if self.model.norm is None or self.lm_head is None:
            raise AssertionError("this part of the model holds no head")
        logits: torch.Tensor = self.lm_head(self.model.norm(x))
        return logits

    def run_layers(self, x: torch.Tensor, attention_mask: torch.Tensor | None, cache: KVCache | None) -> torch.Tensor:
        """The layers this part holds, in order, over ``x`` [batch, tokens, hidden]: the tokens follow the
        ``cache.length`` kept (none: from the start), and the cache then holds them too."""
        t = x.shape[1]
        start = cache.length if cache is not None else 0
        pos = torch.arange(start, start + t, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        dt = x.dtype  # the model's dtype (as transformers casts them)
        cos, sin = emb.cos()[None, None].to(dt), emb.sin()[None, None].to(dt)
        mask = None  # a new token attends to every kept one; a sequence from the start is causal (is_causal)
        if (attention_mask is not None and not bool(attention_mask.all())) or (t > 1 and start > 0):
            mask = torch.ones(t, start + t, dtype=torch.bool).tril(start)[None, None]
            if attention_mask is not None:
                mask = _valid_rows(mask & attention_mask.bool()[:, None, None, :])
        for key, layer in self.model.layers.items():
            x = layer(x, cos, sin, mask, cache, int(key))
        if cache is not None:
            cache.length = start + t
        return x


#: Fields each config must give as positive integers (the shapes); anything else is left to transformers.
LLAMA_SIZES = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
BERT_SIZES = (*LLAMA_SIZES, "max_position_embeddings", "type_vocab_size")
MAX_SIZE, MAX_LAYERS = 1 << 31, 4096


def _sizes_ok(cfg: Config, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> bool:
    """Every size a positive int (not a bool, a float or a string), the optional ones too where given."""

    def ok(v: object) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIZE

    if not (isinstance(cfg.num_hidden_layers, int) and cfg.num_hidden_layers <= MAX_LAYERS):
        return False  # modules are built before the shapes are compared: their number is bounded first
    return all(ok(getattr(cfg, n)) for n in names) and all(
        getattr(cfg, n) is None or ok(getattr(cfg, n)) for n in optional
    )


def _eps_ok(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1


def _llama_config(raw: dict[str, Any]) -> Config | None:
    cfg = Config(raw, LLAMA_DEFAULTS)
    optional = ("num_key_value_heads", "head_dim", "max_position_embeddings")
    if not _sizes_ok(cfg, LLAMA_SIZES, optional) or not _eps_ok(cfg.rms_norm_eps):
        return None
    bos = cfg.bos_token_id  # the token sampling starts from: a token id, or none (0)
    if bos is not None and (not isinstance(bos, int) or isinstance(bos, bool) or bos < 0):
        return None
    rope = cfg.rope_parameters if isinstance(cfg.rope_parameters, dict) else {}
    if (
        cfg.rope_scaling
        or rope.get("rope_type", "default") != "default"
        or rope.get("partial_rotary_factor", 1.0) != 1.0
    ):
        return None
    if cfg.hidden_act != "silu" or cfg.attention_bias or cfg.mlp_bias or cfg.pretraining_tp != 1:
        return None
    theta = rope.get("rope_theta", cfg.rope_theta)
    if not isinstance(theta, (int, float)) or isinstance(theta, bool) or not 1.0 < theta < 1e12:
        return None
    cfg.theta = float(theta)
    cfg.kv = int(cfg.num_key_value_heads or cfg.num_attention_heads)
    cfg.hd = int(cfg.head_dim or cfg.hidden_size // cfg.num_attention_heads)
    if cfg.num_attention_heads % cfg.kv or cfg.hd % 2:
        return None
    return cfg


# -- BERT -----------------------------------------------------------------------------------------------------------


class BertEmbeddings(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, ids: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1])[None]
        x = self.word_embeddings(ids) + self.token_type_embeddings(types)
        y: torch.Tensor = self.LayerNorm(x + self.position_embeddings(pos))
        return y


class BertSelfAttention(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        h = cfg.hidden_size
        self.heads = cfg.num_attention_heads
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, h = x.shape

        def heads(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, h // self.heads).transpose(1, 2)

        q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
        out = nnf.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return out.transpose(1, 2).reshape(b, t, h)


class BertDenseNorm(nn.Module):
    """``dense`` then dropout (none in eval), the residual and ``LayerNorm`` (BertSelfOutput, BertOutput)."""

    def __init__(self, n_in: int, cfg: Config) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.LayerNorm(self.dense(x) + residual)
        return y


class BertAttention(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.self = BertSelfAttention(cfg)
        self.output = BertDenseNorm(cfg.hidden_size, cfg)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)


class BertLayer(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.attention = BertAttention(cfg)
        self.intermediate = BertIntermediate(cfg)
        self.output = BertDenseNorm(cfg.intermediate_size, cfg)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention.output(self.attention.self(x, mask), x)
        y: torch.Tensor = self.output(nnf.gelu(self.intermediate.dense(x)), x)
        return y


class BertEncoder(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))


class BertPooler(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)


class BertModel(nn.Module):
    """``BertModel`` with absolute positions and erf GELU; runs its pooler, as transformers' does."""

    def __init__(self, cfg: Config, pooler: bool) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg)
        self.pooler = BertPooler(cfg) if pooler else None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> Output:
        types = token_type_ids if token_type_ids is not None else torch.zeros_like(input_ids)
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = _valid_rows(attention_mask.bool()[:, None, None, :].expand(-1, 1, input_ids.shape[1], -1))
        x = self.embeddings(input_ids, types)
        for layer in self.encoder.layer:
            x = layer(x, mask)
        if self.pooler is not None:
            torch.tanh(self.pooler.dense(x[:, 0]))
        return Output(last_hidden_state=x)


def _bert_config(raw: dict[str, Any]) -> Config | None:
    cfg = Config(raw, BERT_DEFAULTS)
    if not _sizes_ok(cfg, BERT_SIZES) or not _eps_ok(cfg.layer_norm_eps):
        return None
    if cfg.hidden_act != "gelu" or cfg.position_embedding_type != "absolute" or cfg.is_decoder:
        return None
    if cfg.add_cross_attention or cfg.hidden_size % cfg.num_attention_heads:
        return None
    return cfg


#: The models :func:`build` makes.
OWN_MODELS = (LlamaForCausalLM, BertModel)


# -- loading --------------------------------------------------------------------------------------------------------


def _tied(model: nn.Module) -> dict[str, str]:
    """A tied head's parameter -> the tensor it is stored as (none in the file under its own name)."""
    return (
        {"lm_head.weight": "model.embed_tokens.weight"} if getattr(model.config, "tie_word_embeddings", False) else {}
    )


def _shapes_match(model: nn.Module, src: ModelSource) -> bool:
    """Every parameter has a tensor of its name and shape in the model directory (a tied head: its embedding's)."""
    shapes = {t.name: tuple(t.info.shape) for t in src.tensors}
    tied = _tied(model)
    return all(shapes.get(tied.get(n, n)) == tuple(p.shape) for n, p in model.named_parameters())


def _fill(model: nn.Module, src: ModelSource) -> bool:
    """Copy each parameter from the model directory's tensor of that name (a tied head: its embedding's, as one
    process ties them, even where the file also holds an ``lm_head.weight``), as float32, through the strict reader the pack uses, reading that tensor's bytes only (a tied parameter held
    twice: once, under its first name); False when one is missing or of another shape."""
    where = {t.name: t for t in src.tensors}
    tied = _tied(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            t = where.get(tied.get(name, name))  # a tied head is its embedding, whatever else the file holds
            if t is None or tuple(t.info.shape) != tuple(p.shape):
                return False
            p.copy_(src.file(t.shard).tensor(t.name))
    return True


def parameter_count(cfg: Config) -> int:
    """The whole Llama's parameters (a tied head once), counted on the meta device: no memory."""
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    if cfg.tie_word_embeddings and model.lm_head is not None and model.model.embed_tokens is not None:
        model.lm_head.weight = model.model.embed_tokens.weight
    return sum(p.numel() for p in model.parameters())


def llama_config(config: dict[str, Any]) -> Config | None:
    """config.json's fields for the own Llama forward, or None when it is not one it implements exactly."""
    archs = config.get("architectures") or []
    if archs == ["LlamaForCausalLM"] and config.get("model_type") == "llama":
        return _llama_config(config)
    return None


def build(model_dir: Path, config: dict[str, Any], causal: bool, part: Part | None = None) -> nn.Module | None:
    """The model in eval mode, float32, or None when it is not one these modules implement exactly; ``part``: only
    that part of a causal LM (a pipeline stage: only its tensors are read), once the whole model's shapes match."""
    archs = config.get("architectures") or []
    cfg = llama_config(config) if causal else None
    if not causal and archs == ["BertModel"] and config.get("model_type") == "bert":
        cfg = _bert_config(config)
    if cfg is None:
        return None
    src = ModelSource(model_dir)  # one strict read of the headers: which tensors there are, then their values
    try:
        model: nn.Module
        with torch.device("meta"):  # no random initialisation of weights about to be overwritten
            if causal:
                model = LlamaForCausalLM(cfg)
            else:
                model = BertModel(cfg, pooler=any(t.name == "pooler.dense.weight" for t in src.tensors))
        if not _shapes_match(model, src):  # checked on the meta model: a config's sizes never allocate memory
            return None
        if part is not None:
            with torch.device("meta"):
                model = LlamaForCausalLM(cfg, part)
        model = model.to_empty(device="cpu")
        if isinstance(model, LlamaForCausalLM) and cfg.tie_word_embeddings:
            head, emb = model.lm_head, model.model.embed_tokens
            if head is not None and emb is not None:  # one tensor, as in transformers (none in the file)
                head.weight = emb.weight
        return model.eval() if _fill(model, src) else None
    finally:
        src.close()
