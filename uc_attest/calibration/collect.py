"""Measure calibration moments with transformers: the second moments ``E[x xᵀ]`` of every linear layer's
input, over text (encoders, or any model with a tokenizer) or over token sequences sampled from the
model itself (causal LMs: data-free).

The forward passes are float arithmetic, so the moments depend on the machine and the libraries; they
run on one CPU thread so that they do not depend on the thread count, and a pack commits them, so a
rebuild never measures them again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import UsageError

#: ``progress(done, total)`` after each batch.
Progress = Callable[[int, int], None]


class CalibrationUnavailable(Exception):
    """This model cannot be run for calibration here (no transformers, unknown architecture, no tokenizer)."""


def _no_progress(_done: int, _total: int) -> None:
    return None


def _quiet_transformers() -> Any:
    try:
        import transformers
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise CalibrationUnavailable("transformers is not installed (pip install 'uc-attest[bench]')") from None
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return transformers


def is_causal(config: dict[str, Any]) -> bool:
    archs = config.get("architectures") or []
    return any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in archs)


def runnable(config: dict[str, Any]) -> None:
    """CalibrationUnavailable unless config.json names a transformers architecture (checked before importing it)."""
    archs = config.get("architectures")
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
        raise CalibrationUnavailable('config.json names no transformers architecture ("architectures")')


def load_model(model_dir: Path, causal: bool) -> Any:
    """The fp32 model (eval mode) or CalibrationUnavailable saying why not."""
    tf = _quiet_transformers()
    cls = tf.AutoModelForCausalLM if causal else tf.AutoModel
    try:
        return cls.from_pretrained(str(model_dir), dtype=torch.float32, use_safetensors=True).eval()
    except Exception as exc:  # noqa: BLE001 - anything transformers raises on a model it cannot build means "cannot calibrate"
        raise CalibrationUnavailable(f"transformers cannot load {model_dir}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def load_tokenizer(model_dir: Path) -> Any:
    tf = _quiet_transformers()
    try:
        return tf.AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as exc:  # noqa: BLE001 - as in load_model
        raise CalibrationUnavailable(f"no usable tokenizer in {model_dir}: {_first_line(exc)}") from None


def sample_sequences(
    model: Any, count: int, length: int, temperature: float, seed: int, progress: Progress = _no_progress
) -> torch.Tensor:
    """``count`` sequences of ``length`` tokens sampled from a causal LM (from its BOS token, plain sampling at
    ``temperature``, no top-k/top-p), with a fixed seed: [count, length] token ids; ``progress(step, steps)``.
    Run with :class:`MomentHooks` installed, it gathers the moments while sampling (the KV cache feeds each
    token once): one pass, not two."""
    cfg = model.config
    bos = cfg.bos_token_id if cfg.bos_token_id is not None else 0
    limit = getattr(cfg, "max_position_embeddings", None) or length
    length = min(length, int(limit))
    start = torch.full((count, 1), int(bos), dtype=torch.long)
    with torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        try:
            out = model.generate(
                start,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                max_length=length,
                min_length=length,
                pad_token_id=int(bos),
                eos_token_id=None,
                streamer=_Steps(length - 1, progress),
            )
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise CalibrationUnavailable(f"the model's generation failed: {_first_line(exc)}") from None
    return torch.as_tensor(out[:, :length])


class _Steps:
    """A transformers streamer that reports each generated step (the prompt's put() is not a step)."""

    def __init__(self, steps: int, progress: Progress) -> None:
        self.steps, self.progress, self.done, self.prompt = steps, progress, 0, True

    def put(self, _value: Any) -> None:
        if self.prompt:
            self.prompt = False
            return
        self.done += 1
        self.progress(self.done, self.steps)

    def end(self) -> None:
        return None


def _targets(model: Any, names: set[str]) -> list[tuple[torch.nn.Linear, str]]:
    """Each ``nn.Linear`` of the model with the weight tensor name it has in the model directory."""
    out = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            weight = mod_name + ".weight"
            hits = [weight] if weight in names else [n for n in names if n.endswith("." + weight)]
            if len(hits) == 1:
                out.append((mod, hits[0]))
    return out


class MomentHooks:
    """Second moments of every linear layer's input, gathered by forward hooks for as long as they are installed
    (a forward pass over batches, or a generation with its KV cache: each token's input is seen once), keyed by
    weight name: [n, n], or with ``block(n) = w`` its w x w diagonal blocks [n/w, w, w] (w = n: the full matrix;
    0: none). Layers fed the same input (q/k/v, gate/up) share one computation. ``mask`` (set per batch) drops
    padding."""

    def __init__(self, model: Any, names: set[str], block: Callable[[int], int] | None = None) -> None:
        self.block = block
        self.mask: torch.Tensor | None = None
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self._last: list[Any] = [None, None]  # the last input seen (held, so it is not freed) and its moments
        targets = _targets(model, names)
        if not targets:
            raise CalibrationUnavailable("no linear layer of the model matches a weight tensor name")
        self._handles = [mod.register_forward_hook(self._hook(w)) for mod, w in targets]

    def _moments_of(self, x: torch.Tensor) -> tuple[torch.Tensor, int] | None:
        if self._last[0] is x:  # q/k/v (gate/up) are called one after another on the same tensor
            return self._last[1]  # type: ignore[no-any-return]
        m = self.mask
        rows = x[m] if m is not None and x.shape[:-1] == m.shape else x.reshape(-1, x.shape[-1])
        rows = rows.to(torch.float64)
        n = rows.shape[-1]
        w = self.block(n) if self.block is not None else n
        out: tuple[torch.Tensor, int] | None = None
        if w == n:
            out = (rows.T @ rows, rows.shape[0])
        elif w:
            b = rows.reshape(rows.shape[0], n // w, w).transpose(0, 1)  # [n/w, tokens, w]
            out = (b.transpose(1, 2) @ b, rows.shape[0])
        self._last[:] = [x, out]
        return out

    def _hook(self, weight: str) -> Any:
        def run(_mod: torch.nn.Module, inp: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            got = self._moments_of(inp[0])
            if got is not None:
                self.sums[weight] = self.sums[weight] + got[0] if weight in self.sums else got[0].clone()
                self.counts[weight] = self.counts.get(weight, 0) + got[1]

        return run

    def close(self) -> dict[str, torch.Tensor]:
        """Remove the hooks; the mean moments gathered."""
        self._last[:] = [None, None]
        for h in self._handles:
            h.remove()
        return {k: v / self.counts[k] for k, v in sorted(self.sums.items())}


def collect_moments(
    model: Any,
    names: set[str],
    batches: Sequence[dict[str, torch.Tensor]],
    block: Callable[[int], int] | None = None,
    progress: Progress = _no_progress,
) -> dict[str, torch.Tensor]:
    """:class:`MomentHooks` over a forward pass of ``batches`` (model inputs; an ``attention_mask`` drops
    padding)."""
    hooks = MomentHooks(model, names, block)
    try:
        with torch.inference_mode():
            for i, batch in enumerate(batches):
                hooks.mask = batch["attention_mask"].bool() if "attention_mask" in batch else None
                try:
                    model(**batch)
                except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                    raise CalibrationUnavailable(f"the model's forward pass failed: {exc}") from None
                progress(i + 1, len(batches))
    finally:
        moments = hooks.close()
    return moments


def text_batches(tokenizer: Any, texts: Sequence[str], max_length: int, batch: int = 32) -> list[dict[str, Any]]:
    """Tokenized batches with an attention mask. A tokenizer without a pad token (Llama, GPT-2: most causal
    LMs) is padded here, on the right: padding never reaches the moments (the mask drops it) and a causal
    model's real tokens never attend to it."""
    out = []
    for i in range(0, len(texts), batch):
        chunk = list(texts[i : i + batch])
        if getattr(tokenizer, "pad_token_id", None) is not None:
            enc = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            out.append(dict(enc))
            continue
        ids = [list(x)[:max_length] for x in tokenizer(chunk, truncation=True, max_length=max_length)["input_ids"]]
        width = max((len(x) for x in ids), default=0)
        out.append(
            {
                "input_ids": torch.tensor([x + [0] * (width - len(x)) for x in ids], dtype=torch.long),
                "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], dtype=torch.long),
            }
        )
    return out


def token_batches(tokens: torch.Tensor, batch: int = 8) -> list[dict[str, torch.Tensor]]:
    return [{"input_ids": tokens[i : i + batch]} for i in range(0, tokens.shape[0], batch)]


def collect(model_dir: Path, texts: Sequence[str], max_length: int = 128, batch: int = 32) -> dict[str, torch.Tensor]:
    """Full [n, n] moments of every ``nn.Linear`` input of a transformers model over ``texts`` (``calibrate``)."""
    from ..source import ModelSource

    texts = [t for t in texts if t.strip()]
    if not texts:
        raise UsageError("calibrate: the calibration text is empty")
    src = ModelSource(Path(model_dir))
    names = {t.name for t in src.tensors}
    src.close()
    try:
        model = load_model(Path(model_dir), causal=False)
        tok = load_tokenizer(Path(model_dir))
        return collect_moments(model, names, text_batches(tok, texts, max_length, batch))
    except CalibrationUnavailable as exc:
        raise UsageError(f"{model_dir}: {exc}") from None
