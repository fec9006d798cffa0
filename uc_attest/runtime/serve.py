"""Run a loaded (verified, packed) model: generate tokens with a causal LM, embed sentences with an encoder."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.fsutil import inside, is_safe_relative, open_regular
from ..errors import InvalidInput, UcAttestError, UsageError
from ..source import is_causal
from ..verify.anchor import ServingAnchor
from .serving import Serving  # torch-free (uc_attest.Serving): re-exported here, where it was first


def rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc; 0 where it cannot be read)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (VmHWM)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return 0
    return 0


@dataclass
class RunResult:
    """What a run produced and what it cost: for generation the time to the first new token (the prompt's
    forward) and the decode rate after it (tokens/s over the tokens that followed), as llama-bench splits them."""

    kind: str  # generate | embed
    output: Any
    seconds: float
    tokens: int
    memory: dict[str, int] = field(default_factory=dict)
    runtime: str = ""  # the model's runtime id (mode, kernel, ISA): what a validation names
    threads: int = 0
    first_token_s: float | None = None
    decode_tokens_per_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """What ``generate --json`` / ``embed --json`` print."""
        return {"ok": True, **self.__dict__}


class _Clock:
    """A transformers streamer that timestamps each new token and hands finished text (or ids) to ``on_text``."""

    def __init__(self, tok: Any, on_text: Callable[[str], None] | None) -> None:
        self.times: list[float] = []
        self.on_text = on_text
        self.tok = tok
        self._prompt_seen = False
        self._ids: list[int] = []
        self._shown = 0

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() hands over the prompt first
            self._prompt_seen = True
            return
        self.times.append(time.perf_counter())
        self._ids += value.reshape(-1).tolist()
        self._emit(final=False)

    def end(self) -> None:
        self._emit(final=True)

    def _emit(self, final: bool) -> None:
        if self.on_text is None:
            return
        if self.tok is None:
            self.on_text(" ".join(map(str, self._ids[self._shown :])) + ("\n" if final else " "))
            self._shown = len(self._ids)
            return
        text = self.tok.decode(self._ids, skip_special_tokens=True)
        stable = len(text) if final else text.rfind(" ") + 1  # a partial word waits for the token that ends it
        if stable > self._shown:
            self.on_text(text[self._shown : stable])
            self._shown = stable
        if final:
            self.on_text("\n")


def _tokenizer(model: torch.nn.Module, pack_dir: Path) -> Any:
    """The tokenizer made from the files' bytes that were hashed and matched at load (never re-read from the
    pack, which may have changed since): written to a private directory and loaded from there."""
    from transformers import AutoTokenizer

    files: dict[str, bytes] = getattr(getattr(model, "uc_attest", None), "files", None) or {}
    if not files:
        raise InvalidInput(f"{pack_dir}: the model was not loaded by uc-attest (no verified files); use load_model")
    with tempfile.TemporaryDirectory(prefix="uc-tokenizer-") as tmp:
        for rel, data in files.items():
            if not is_safe_relative(rel):
                continue
            out = inside(Path(tmp), rel)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
        try:
            return AutoTokenizer.from_pretrained(tmp)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(
                f"{pack_dir}: the pack has no usable tokenizer ({_first_line(exc)}); give token ids instead"
            ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def memory(model: torch.nn.Module) -> dict[str, int]:
    report = getattr(model, "uc_attest", None)
    return {
        "packed_linear_bytes": int(getattr(report, "packed_bytes", 0)),
        "dense_linear_bytes": int(getattr(report, "dense_bytes", 0)),
        "packed_weights": int(getattr(report, "packed_weights", 0)),
        "rss_bytes": rss_bytes(),
        "peak_rss_bytes": peak_rss_bytes(),
    }


def generate_with(
    model: torch.nn.Module,
    pack_dir: Path,
    *,
    prompt: str | None = None,
    prompt_ids: list[int] | None = None,
    max_new_tokens: int = 16,
    on_text: Callable[[str], None] | None = None,
) -> RunResult:
    """Greedy generation from a causal LM (text with the pack's tokenizer, or token ids); ``on_text`` receives
    the new text as it is generated (whole words; ids separated by spaces without a tokenizer)."""
    causal = type(model).__name__.endswith("ForCausalLM") or getattr(model.config, "is_decoder", False)
    if not causal or not hasattr(model, "generate"):
        raise UsageError(f"{pack_dir}: {type(model).__name__} is not a causal language model (use embed)")
    if (prompt is None) == (prompt_ids is None):
        raise UsageError("give exactly one of {0:TEXT} or {1:1,2,3}", option=["prompt", "prompt_ids"])
    tok = _tokenizer(model, pack_dir) if prompt is not None else None
    ids = torch.tensor([tok(prompt)["input_ids"] if tok is not None else prompt_ids])
    device = next((b.device for b in model.buffers()), torch.device("cpu"))
    clock = _Clock(tok, on_text)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(  # type: ignore[operator]
            ids.to(device),
            attention_mask=torch.ones_like(ids).to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            streamer=clock,
        )
    secs = time.perf_counter() - t0
    new = out[0, ids.shape[1] :].tolist()
    output: dict[str, Any] = {"prompt_ids": ids[0].tolist(), "new_ids": new}
    if tok is not None:
        output["text"] = tok.decode(out[0], skip_special_tokens=True)
    res = RunResult("generate", output, secs, len(new), memory(model), *_runtime_of(model))
    if clock.times:
        res.first_token_s = clock.times[0] - t0
        if len(clock.times) > 1:
            res.decode_tokens_per_s = (len(clock.times) - 1) / max(clock.times[-1] - clock.times[0], 1e-9)
    return res


def _runtime_of(model: torch.nn.Module) -> tuple[str, int]:
    from ..core import threads

    rt = getattr(getattr(model, "uc_attest", None), "runtime", None)
    return (rt.id if rt is not None else ""), threads.budget()


def embed_with(model: torch.nn.Module, pack_dir: Path, texts: list[str]) -> RunResult:
    """Mean-pooled sentence embeddings (attention mask respected) from an encoder, with the pack's tokenizer."""
    if not texts:
        raise UsageError("give at least one text ({0})", option="texts")
    tok = _tokenizer(model, pack_dir)
    enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
    device = next((b.device for b in model.buffers()), torch.device("cpu"))
    enc = {k: v.to(device) for k, v in enc.items()}
    t0 = time.perf_counter()
    with torch.inference_mode():
        hidden = model(**enc).last_hidden_state
    secs = time.perf_counter() - t0
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    vectors = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()
    return RunResult(
        "embed",
        {"dim": int(vectors.shape[1]), "embeddings": vectors.tolist()},
        secs,
        int(enc["attention_mask"].sum()),
        memory(model),
        *_runtime_of(model),
    )


def _load(pack_dir: Path, anchor: ServingAnchor | None, online: bool, serving: Serving | None) -> torch.nn.Module:
    from .model import load_model

    serving = Serving() if serving is None else serving
    return load_model(pack_dir, anchor, online=online, device=serving.device, cache=serving.cache, mode=serving.mode)


def generate(
    pack_dir: Path,
    anchor: ServingAnchor | None = None,
    *,
    prompt: str | None = None,
    prompt_ids: list[int] | None = None,
    max_new_tokens: int = 16,
    online: bool = True,
    serving: Serving | None = None,
    on_text: Callable[[str], None] | None = None,
) -> RunResult:
    """Verify and load a causal LM pack (packed, as ``serving`` says, None: ``Serving()``; see ``load_model``), then
    generate greedily from a prompt (text or token ids), handing new text to ``on_text`` as it comes. A pack whose
    config names no causal LM, or a prompt given twice or not at all, is refused before anything is verified or
    loaded."""
    if (prompt is None) == (prompt_ids is None):
        raise UsageError("give exactly one of {0:TEXT} or {1:1,2,3}", option=["prompt", "prompt_ids"])
    _refuse_early_if_not_causal(Path(pack_dir))
    model = _load(Path(pack_dir), anchor, online, serving)
    return generate_with(
        model, Path(pack_dir), prompt=prompt, prompt_ids=prompt_ids, max_new_tokens=max_new_tokens, on_text=on_text
    )


def _refuse_early_if_not_causal(pack_dir: Path) -> None:
    """UsageError when the pack's config.json names only architectures that are not causal LMs: saves verifying
    and loading a whole encoder to refuse it. Only a refusal is decided here (the file is not verified yet): a
    config that claims a causal LM still goes through the verified load, which checks it."""
    try:
        with open_regular(pack_dir / "config.json") as f:
            config = json.loads(f.read(1 << 20))
    except (OSError, ValueError, UcAttestError):
        return  # unreadable here: the verified load says what is wrong
    archs = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(archs, list) or not archs or config.get("is_decoder") is True or is_causal(config):
        return
    names = ", ".join(str(a) for a in archs)
    raise UsageError(f"{pack_dir}: its config names {names}, not a causal language model (use embed)")


def embed(
    pack_dir: Path,
    texts: list[str],
    anchor: ServingAnchor | None = None,
    *,
    online: bool = True,
    serving: Serving | None = None,
) -> RunResult:
    """Verify and load an encoder pack (packed, as ``serving`` says, None: ``Serving()``), then embed ``texts``
    (mean pooling, normalised)."""
    return embed_with(_load(Path(pack_dir), anchor, online, serving), Path(pack_dir), texts)
