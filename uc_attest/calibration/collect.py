"""Measure calibration moments with transformers: the second moments ``E[x xᵀ]`` of every linear layer's
input, over text (encoders, or any model with a tokenizer) or over token sequences sampled from the
model itself (causal LMs: data-free).

The forward passes are float arithmetic, so the moments depend on the machine and the libraries; they
run each batch on one CPU thread so that they do not depend on the thread count, and a pack commits them, so a
rebuild never measures them again.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core import threads
from ..core.fsutil import open_regular
from ..errors import MalformedModel, MissingExtra, UsageError

#: ``progress(done, total)`` after each batch.
Progress = Callable[[int, int], None]


class CalibrationUnavailable(Exception):
    """This model cannot be run for calibration here (no transformers, unknown architecture, no tokenizer);
    ``missing``: the module whose absence is the reason (``errors.MissingExtra``), else None."""

    def __init__(self, message: str, missing: str | None = None) -> None:
        super().__init__(message)
        self.missing = missing


def _no_progress(_done: int, _total: int) -> None:
    return None


def _quiet_transformers() -> Any:
    try:
        import transformers
        from transformers.utils import logging as hf_logging
    except ImportError:
        raise CalibrationUnavailable(
            "transformers is not installed (pip install 'uc-attest[bench]')", missing="transformers"
        ) from None
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return transformers


def runnable(config: dict[str, Any]) -> None:
    """CalibrationUnavailable unless config.json names a transformers architecture (checked before importing it)."""
    archs = config.get("architectures")
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
        raise CalibrationUnavailable('config.json names no transformers architecture ("architectures")')


def load_model(model_dir: Path, causal: bool, config: dict[str, Any] | None = None) -> Any:
    """The fp32 model (eval mode) or CalibrationUnavailable saying why not: the own forward (``forward.py``) where it
    implements the architecture, else transformers'. ``config``: config.json's object, when the caller has it."""
    from ..source import read_json_object
    from .forward import build

    if config is None:
        config = read_json_object(model_dir / "config.json", "config.json")
    own = build(model_dir, config, causal)
    if own is not None:
        return own
    tf = _quiet_transformers()
    cls = tf.AutoModelForCausalLM if causal else tf.AutoModel
    try:
        return cls.from_pretrained(str(model_dir), dtype=torch.float32, use_safetensors=True).eval()
    except Exception as exc:  # noqa: BLE001 - anything transformers raises on a model it cannot build means "cannot calibrate"
        raise CalibrationUnavailable(f"transformers cannot load {model_dir}: {_first_line(exc)}") from None


#: Seed of the encoders' random projections (``output_sensitivity``).
SENSITIVITY_SEED = 1234


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def load_tokenizer(model_dir: Path) -> Any:
    """The model's tokenizer: its ``tokenizer.json`` through the tokenizers library where it has one (what
    transformers' fast tokenizers run, without importing transformers), else transformers' AutoTokenizer."""
    own = JsonTokenizer.load(model_dir)
    if own is not None:
        return own
    tf = _quiet_transformers()
    try:
        return tf.AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as exc:  # noqa: BLE001 - as in load_model
        raise CalibrationUnavailable(f"no usable tokenizer in {model_dir}: {_first_line(exc)}") from None


#: A tokenizer.json larger than this is left to transformers (the largest vocabularies' are ~30 MB).
MAX_TOKENIZER_BYTES = 256 << 20


class JsonTokenizer:
    """A ``tokenizer.json`` behind the part of transformers' tokenizer call that :func:`text_batches` uses
    (special tokens added, truncation to ``max_length``, padding on the right to the longest with the pad token
    of ``tokenizer_config.json``, ``return_tensors="pt"``)."""

    def __init__(self, backend: Any, pad_token_id: int | None) -> None:
        self.backend = backend
        self.pad_token_id = pad_token_id

    @classmethod
    def load(cls, model_dir: Path) -> JsonTokenizer | None:
        """None where there is no tokenizer.json, the tokenizers library is absent or does not read it."""
        from ..source import read_json_object

        try:
            from tokenizers import Tokenizer

            with open_regular(model_dir / "tokenizer.json") as f:
                raw = f.read(MAX_TOKENIZER_BYTES + 1)
            if len(raw) > MAX_TOKENIZER_BYTES:
                return None
            backend = Tokenizer.from_str(raw.decode("utf-8"))
        except Exception:  # noqa: BLE001 - none, or one it cannot read (too large included): transformers is asked
            return None
        backend.no_padding()
        backend.no_truncation()
        try:
            token = read_json_object(model_dir / "tokenizer_config.json", "tokenizer_config.json").get("pad_token")
        except MalformedModel:  # none (or not one): no pad token
            token = None
        token = token.get("content") if isinstance(token, dict) else token
        return cls(backend, backend.token_to_id(token) if isinstance(token, str) else None)

    def __call__(
        self,
        texts: list[str],
        truncation: bool = False,
        max_length: int | None = None,
        padding: bool = False,
        return_tensors: str | None = None,
    ) -> dict[str, Any]:
        if truncation and max_length is not None:  # the special tokens count within max_length, as in transformers
            self.backend.enable_truncation(max_length)
        try:
            encs = self.backend.encode_batch(texts, add_special_tokens=True)
        finally:
            self.backend.no_truncation()
        ids = [list(e.ids) for e in encs]
        types = [list(e.type_ids) for e in encs]
        if not padding:
            return {"input_ids": ids, "token_type_ids": types, "attention_mask": [[1] * len(x) for x in ids]}
        if self.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token")
        width = max((len(x) for x in ids), default=0)
        out = {
            "input_ids": [x + [self.pad_token_id] * (width - len(x)) for x in ids],
            "token_type_ids": [x + [0] * (width - len(x)) for x in types],
            "attention_mask": [[1] * len(x) + [0] * (width - len(x)) for x in ids],
        }
        return {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()} if return_tensors == "pt" else out


def _counter(progress: Progress, total: int) -> Callable[[], None]:
    """A callable that reports one more of ``total`` done to ``progress``, from any thread, in order."""
    done = 0
    lock = threading.Lock()

    def one() -> None:
        nonlocal done
        with lock:
            done += 1
            progress(done, total)

    return one


#: Sequences sampled together, on one intra-op thread: the chunks run side by side on the thread budget and each
#: draws from its own seeded generator, so the tokens (and the moments gathered while sampling) do not depend on the
#: thread count. A multi-threaded BLAS may split a product's reduction dimension, and where it does depends on the
#: CPU and its library (seen on AMD EPYC with torch 2.13: other tokens with two threads than with one).
SAMPLE_CHUNK = 32


def sample_sequences(
    model: Any,
    count: int,
    length: int,
    temperature: float,
    seed: int,
    progress: Progress = _no_progress,
    hooks: MomentHooks | None = None,
) -> torch.Tensor:
    """``count`` sequences of ``length`` tokens sampled from a causal LM (from its BOS token, plain sampling at
    ``temperature``, no top-k/top-p), with a fixed seed: [count, length] token ids; ``progress(step, steps)``.

    Chunks of ``SAMPLE_CHUNK`` sequences, chunk ``k`` drawing from a generator seeded ``seed + k``, each on one
    intra-op thread, side by side on the thread budget: the same tokens for any thread count. One forward per step
    with the KV cache (each token's input is seen once: with ``hooks``, the moments are gathered while sampling,
    per chunk, and added in chunk order), and inverse-CDF sampling: one uniform number per sequence and step
    against the cumulative softmax (the exponential draws of ``torch.multinomial`` over the whole vocabulary cost
    a quarter of the pass)."""
    cfg = model.config
    bos = bos_token(cfg)
    length = sample_length(cfg, length)
    chunks = list(enumerate(chunk_sizes(count)))
    step_done = _counter(progress, (length - 1) * len(chunks))

    def chunk(job: tuple[int, int]) -> tuple[torch.Tensor, MomentSums | None]:
        k, n = job
        with torch.inference_mode(), hooks.scope() if hooks is not None else nullcontext() as sums:
            tokens = _sample_chunk(model, int(bos), n, length, temperature, seed + k, step_done)
        return tokens, sums

    workers = max(1, min(threads.budget(), len(chunks)))
    with warnings.catch_warnings(), threads.torch_threads(1), ThreadPoolExecutor(workers) as pool:
        # transformers 5 renames past_key_values (a FutureWarning per step); older releases know only that name
        warnings.simplefilter("ignore", FutureWarning)
        got = list(pool.map(chunk, chunks))
    if hooks is not None:
        hooks.adopt([sums for _, sums in got if sums is not None])
    return torch.cat([tokens for tokens, _ in got]) if got else torch.zeros((0, length), dtype=torch.long)


def bos_token(cfg: Any) -> Any:
    """The token sampling starts from: the config's BOS (0 where it names none)."""
    return cfg.bos_token_id if cfg.bos_token_id is not None else 0


def sample_length(cfg: Any, length: int) -> int:
    """The sampled sequences' length: ``length``, at most the model's positions (where the config gives them as a
    positive integer)."""
    limit = getattr(cfg, "max_position_embeddings", None)
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        return min(length, limit)
    return length


def chunk_sizes(count: int, size: int = SAMPLE_CHUNK) -> list[int]:
    """``count`` sequences in runs of ``size`` (the chunks sampled together; the batches of a pass), the last the
    rest."""
    return [min(size, count - a) for a in range(0, count, size)]


def _sample_chunk(
    model: Any, bos: int, count: int, length: int, temperature: float, seed: int, step_done: Callable[[], None]
) -> torch.Tensor:
    """One chunk of :func:`sample_sequences`: [count, length] tokens from a generator seeded ``seed``."""
    ids = torch.full((count, 1), bos, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    out, past = [ids], None
    for _ in range(length - 1):
        try:
            res = model(input_ids=ids, past_key_values=past, use_cache=True)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise CalibrationUnavailable(f"the model's forward pass failed: {_first_line(exc)}") from None
        past = res.past_key_values
        ids = draw(res.logits, temperature, gen)
        out.append(ids)
        step_done()
    return torch.cat(out, dim=1)


def draw(logits: torch.Tensor, temperature: float, gen: torch.Generator) -> torch.Tensor:
    """The next token of each sequence from its last position's ``logits`` [n, t, vocab]: [n, 1] ids, by
    inverse CDF (one uniform number per sequence from ``gen``, against the cumulative softmax)."""
    last = logits[:, -1, :].float()
    cdf = torch.cumsum(torch.softmax(last if temperature == 1.0 else last / temperature, dim=-1), dim=-1)
    u = torch.rand((last.shape[0], 1), generator=gen) * cdf[:, -1:]
    return torch.searchsorted(cdf, u).clamp_(max=cdf.shape[-1] - 1)


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


@dataclass
class MomentSums:
    """What :class:`MomentHooks` gathers in one scope (a pass over batches, or one chunk of sampled sequences):
    binary64 sums of the input products and row counts per weight, the weights that share another's input, and
    the rows not yet multiplied."""

    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    shares: dict[str, str] = field(default_factory=dict)  # weight -> the weight whose input it shares
    pending: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    last: tuple[Any, str] | None = None  # the last input seen (held, so it is not freed) and its weight
    mask: torch.Tensor | None = None  # the batch's attention mask: padding is dropped


class MomentHooks:
    """Second moments of every linear layer's input, gathered by forward hooks for as long as they are installed
    (a forward pass over batches, or a generation with its KV cache: each token's input is seen once), keyed by
    weight name: [n, n], or with ``block(n) = w`` its w x w diagonal blocks [n/w, w, w] (w = n: the full matrix;
    0: none). Layers fed the same input (q/k/v, gate/up) share one computation. A scope's ``mask`` (set per
    batch) drops padding. Rows are buffered and their moments computed ``FLUSH_ROWS`` at a time: one-token decode steps would
    otherwise make thousands of tiny float64 products. A thread inside :meth:`scope` gathers into its own
    :class:`MomentSums` (forward passes side by side), which :meth:`adopt` adds in a fixed order."""

    FLUSH_ROWS = 2048

    def __init__(
        self, model: Any, names: set[str], block: Callable[[int], int] | None = None, empty_ok: bool = False
    ) -> None:
        self.block = block
        self.main = MomentSums()
        self._local = threading.local()
        self._owner = threading.get_ident()  # the thread whose passes gather into ``main``
        targets = _targets(model, names)
        if not targets and not empty_ok:  # (a pipeline stage's part may hold none)
            raise CalibrationUnavailable("no linear layer of the model matches a weight tensor name")
        self._handles = [mod.register_forward_hook(self._hook(w)) for mod, w in targets]

    def _sums(self) -> MomentSums:
        """This thread's scope, else ``main`` on the thread that installed the hooks; on any other thread a pass
        outside a scope would race on ``main`` (a programming error, not input)."""
        scoped: MomentSums | None = getattr(self._local, "sums", None)
        if scoped is not None:
            return scoped
        if threading.get_ident() != self._owner:
            raise AssertionError("MomentHooks: a forward pass on another thread gathers only inside scope()")
        return self.main

    @contextmanager
    def scope(self) -> Iterator[MomentSums]:
        """This thread's forward passes gather into a new :class:`MomentSums` (flushed on leaving)."""
        sums = MomentSums()
        try:
            with self.within(sums):
                yield sums
        finally:
            self.finish(sums)

    @contextmanager
    def within(self, sums: MomentSums) -> Iterator[MomentSums]:
        """This thread's forward passes gather into ``sums`` for this block (a pipeline stage interleaves its
        chunks' steps, each chunk keeping its own sums, as its own thread would)."""
        self._local.sums = sums
        try:
            yield sums
        finally:
            self._local.sums = None
            sums.last = None

    def finish(self, sums: MomentSums) -> None:
        """Multiply the rows ``sums`` still holds (after its last pass)."""
        sums.last = None
        for weight in list(sums.pending):
            self._flush(sums, weight)

    def adopt(self, scopes: Sequence[MomentSums]) -> None:
        """Add the sums of ``scopes`` to this pass's, in the order given (the same binary64 sums every run)."""
        for got in scopes:
            for weight, v in got.sums.items():
                self.main.sums[weight] = self.main.sums[weight] + v if weight in self.main.sums else v
                self.main.counts[weight] = self.main.counts.get(weight, 0) + got.counts[weight]
            self.main.shares.update(got.shares)

    def _hook(self, weight: str) -> Any:
        def run(_mod: torch.nn.Module, inp: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            x = inp[0]
            sums = self._sums()
            if sums.last is not None and sums.last[0] is x:  # q/k/v (gate/up): one input, one computation
                sums.shares[weight] = sums.last[1]
                return
            sums.last = (x, weight)
            m = sums.mask
            rows = x[m] if m is not None and x.shape[:-1] == m.shape else x.reshape(-1, x.shape[-1])
            n = rows.shape[-1]
            if (self.block(n) if self.block is not None else n) == 0:
                return
            pending = sums.pending.setdefault(weight, [])
            pending.append(rows.detach().to(torch.float32, copy=True))
            if sum(r.shape[0] for r in pending) >= self.FLUSH_ROWS:
                self._flush(sums, weight)

        return run

    def _flush(self, sums: MomentSums, weight: str) -> None:
        pending = sums.pending.pop(weight, [])
        if not pending:
            return
        rows = torch.cat(pending)
        n = rows.shape[-1]
        w = self.block(n) if self.block is not None else n
        # one thread: a multi-threaded BLAS may split the token (reduction) dimension, and then the sums would
        # depend on the thread count (DESIGN section 10: the pack's bytes must not)
        with threads.torch_threads(1):
            if w == n:
                got = rows.T @ rows
            else:
                if n % w:  # blocks of the input zero-padded to whole blocks (a row in two parts: calibration/file.py)
                    rows = torch.nn.functional.pad(rows, (0, w - n % w))
                b = rows.reshape(rows.shape[0], -1, w).transpose(0, 1)  # [ceil(n/w), tokens, w]
                got = b.transpose(1, 2) @ b
        # binary32 products over at most FLUSH_ROWS rows (relative error ~1e-5, below the int16 the pack commits),
        # summed in binary64 across flushes
        got = got.to(torch.float64)
        sums.sums[weight] = sums.sums[weight] + got if weight in sums.sums else got
        sums.counts[weight] = sums.counts.get(weight, 0) + rows.shape[0]

    def close(self) -> dict[str, torch.Tensor]:
        """Remove the hooks; the mean moments gathered (each sharing weight gets its input's)."""
        main = self.main
        main.last = None
        for h in self._handles:
            h.remove()
        for weight in list(main.pending):
            self._flush(main, weight)
        out = {k: v / main.counts[k] for k, v in main.sums.items()}
        out.update({k: out[src] for k, src in main.shares.items() if src in out})
        return dict(sorted(out.items()))


def collect_moments(
    model: Any,
    names: set[str],
    batches: Sequence[dict[str, torch.Tensor]],
    block: Callable[[int], int] | None = None,
    progress: Progress = _no_progress,
) -> dict[str, torch.Tensor]:
    """:class:`MomentHooks` over a forward pass of ``batches`` (model inputs; an ``attention_mask`` drops
    padding): each batch on one intra-op thread in its own scope, the batches side by side on the thread budget,
    their sums added in batch order, so the moments do not depend on the thread count."""
    hooks = MomentHooks(model, names, block)
    batch_done = _counter(progress, len(batches))

    def run(batch: dict[str, torch.Tensor]) -> MomentSums:
        with torch.inference_mode(), hooks.scope() as sums:
            sums.mask = batch["attention_mask"].bool() if "attention_mask" in batch else None
            try:
                model(**batch)
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                raise CalibrationUnavailable(f"the model's forward pass failed: {_first_line(exc)}") from None
        batch_done()
        return sums

    workers = max(1, min(threads.budget(), len(batches)))
    try:
        with threads.torch_threads(1), ThreadPoolExecutor(workers) as pool:
            hooks.adopt(list(pool.map(run, batches)))
    finally:
        moments = hooks.close()
    return moments


def text_batches(tokenizer: Any, texts: Sequence[str], max_length: int, batch: int = 32) -> list[dict[str, Any]]:
    """Tokenized batches with an attention mask. A tokenizer without a pad token (Llama, GPT-2: most causal
    LMs) is padded here, on the right: padding never reaches the moments (the mask drops it) and a causal
    model's real tokens never attend to it. Texts are batched in order of their token count (ties: text order),
    so a batch is padded to a similar length, not to its longest outlier: the same moments, a fraction of the
    padded compute."""
    lengths = [len(x) for x in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    texts = [texts[i] for i in sorted(range(len(texts)), key=lambda i: (lengths[i], i))]
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
        if exc.missing is not None:  # the environment, not the input: exit 4 naming the extra
            raise MissingExtra(f"calibrating {model_dir}", exc.missing) from None
        raise UsageError(f"{model_dir}: {exc}") from None


@dataclass
class _Sums:
    """One batch's sums in :func:`output_sensitivity`."""

    mask: torch.Tensor | None
    x: dict[str, float] = field(default_factory=dict)
    y: dict[str, float] = field(default_factory=dict)
    g: dict[str, float] = field(default_factory=dict)
    units: int = 0


def output_sensitivity(model: Any, names: set[str], batches: list[dict[str, Any]], causal: bool) -> dict[str, float]:
    """How much each linear layer matters to the model's output, per unit of relative output error D (the damage of
    quant/allocate.py): a weight error E whose output error energy is D times the layer's output energy adds about
    ``s · D`` to the output's error, with

        s = c · (E_n ‖∇_W L_n‖²) · Σ_t ‖W x_t‖² / (rows · Σ_t ‖x_t‖²)

    (second order: ``½ ⟨E, F E⟩`` with F the Fisher of the objective, ``E[‖∇_W L_n‖²] = tr F`` per unit, and an
    error spread evenly over the weights turning D into its Frobenius energy). The objective L_n per unit n:

    * causal LMs: the log-likelihood of each token of ``batches``, sampled from the model itself at temperature 1
      (F is then the Fisher information of its own distribution); c = ½, so ``s · D`` estimates the mean KL per
      token;
    * encoders: ``rᵀ e`` per text, ``e`` the unit-norm mean-pooled last hidden state and ``r`` a seeded standard
      normal vector (Hutchinson: ``E[∇∇ᵀ] = JᵀJ``); c = 1, so ``s · D`` estimates ``E‖δe‖² = 2 (1 - cos)``.

    Per batch: one forward, one backward of the summed objective (cross terms between units have zero mean),
    ``‖∇_W‖²`` read; each batch on one intra-op thread (its sums do not depend on the thread count) and the batches
    side by side on the thread budget, summed in batch order; only the targets' weights taking gradients, every
    ``requires_grad`` flag restored. tests/unit/test_output_sensitivity.py checks
    the prediction against measured KL and cosine losses."""
    targets = _targets(model, names)
    done = _SensitivityPass(model, targets, batches, causal).run()
    return _sensitivities(done, targets, 0.5 if causal else 1.0)


def log_likelihood(logits: torch.Tensor, ids: torch.Tensor, attn: torch.Tensor | None, sums: _Sums) -> torch.Tensor:
    """The causal objective of :func:`output_sensitivity`: the summed log-likelihood of each next token of ``ids``
    under ``logits`` [n, t, vocab] (padding left out; the tokens counted in ``sums.units``)."""
    logits = logits[:, :-1].float()
    target = ids[:, 1:].masked_fill(attn[:, 1:] == 0, -100) if attn is not None else ids[:, 1:]
    objective = -torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum", ignore_index=-100
    )
    sums.units = int((target != -100).sum())
    return objective


def _energy(t: torch.Tensor, mask: torch.Tensor | None) -> float:
    """``Σ ‖t_i‖²`` over the rows ``mask`` keeps, in binary64."""
    flat = t[mask] if mask is not None and t.shape[:-1] == mask.shape else t.reshape(-1, t.shape[-1])
    flat = flat.detach().to(torch.float64)
    return float((flat * flat).sum())


def _projections(model: Any, batches: list[dict[str, Any]]) -> list[torch.Tensor]:
    """The encoders' random projections: a seeded standard normal vector per text of each batch, in batch order."""
    gen = torch.Generator().manual_seed(SENSITIVITY_SEED)
    return [torch.randn((b["input_ids"].shape[0], int(model.config.hidden_size)), generator=gen) for b in batches]


class _SensitivityPass:
    """The forward and backward passes of :func:`output_sensitivity`: one per batch, its :class:`_Sums` read by
    forward hooks (on the thread running that batch) and from the targets' weight gradients."""

    def __init__(
        self, model: Any, targets: list[tuple[torch.nn.Linear, str]], batches: list[dict[str, Any]], causal: bool
    ) -> None:
        self.model, self.targets, self.batches, self.causal = model, targets, batches, causal
        self.local = threading.local()  # the sums of the batch this thread is running
        # drawn before any batch runs, in batch order: the same numbers whichever thread runs it
        self.projections = [] if causal else _projections(model, batches)
        self.weights = [mod.weight for mod, _w in targets]

    def _hook(self, weight: str) -> Any:
        def run(_mod: torch.nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            sums: _Sums = self.local.sums
            sums.x[weight] = sums.x.get(weight, 0.0) + _energy(inp[0], sums.mask)
            sums.y[weight] = sums.y.get(weight, 0.0) + _energy(out, sums.mask)

        return run

    def _objective(self, i: int, sums: _Sums) -> torch.Tensor:
        """Batch ``i``'s summed objective (its units counted in ``sums``)."""
        batch = self.batches[i]
        ids, attn = batch["input_ids"], batch.get("attention_mask")
        if self.causal:
            return log_likelihood(
                self.model(input_ids=ids, attention_mask=attn, use_cache=False).logits, ids, attn, sums
            )
        hidden = self.model(input_ids=ids, attention_mask=attn).last_hidden_state.float()
        mask = attn[..., None].float() if attn is not None else torch.ones_like(hidden[..., :1])
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        unit = torch.nn.functional.normalize(pooled, dim=-1)
        sums.units = int(unit.shape[0])
        return (unit * self.projections[i]).sum()

    def _batch(self, i: int) -> _Sums:
        sums = self._open(i)
        self._record(sums, self._grads(i, sums))
        return sums

    def _open(self, i: int) -> _Sums:
        """Batch ``i``'s sums, which this thread's forward hooks add to from now on."""
        attn = self.batches[i].get("attention_mask")
        self.local.sums = sums = _Sums(mask=attn.bool() if attn is not None else None)
        return sums

    def _record(self, sums: _Sums, grads: Sequence[torch.Tensor | None]) -> None:
        """Each target weight's squared gradient norm, in binary64."""
        for (_mod, w), grad in zip(self.targets, grads, strict=True):
            if grad is not None:
                g64 = grad.to(torch.float64)
                sums.g[w] = float((g64 * g64).sum())

    def _grads(self, i: int, sums: _Sums) -> Sequence[torch.Tensor | None]:
        """The gradient of batch ``i``'s objective for each target's weight."""
        return torch.autograd.grad(self._objective(i, sums), self.weights, allow_unused=True)

    def _each(self) -> list[_Sums]:
        """Every batch's sums, in batch order, the batches side by side on the thread budget."""
        workers = max(1, min(threads.budget(), len(self.batches)))
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(self._batch, range(len(self.batches))))

    def run(self) -> list[_Sums]:
        """Every batch's sums, in batch order: only the targets' weights taking gradients (every ``requires_grad``
        flag restored after), each batch on one intra-op thread (its sums do not depend on the thread count)."""
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in flags:
            p.requires_grad_(False)
        for weight in self.weights:
            weight.requires_grad_(True)
        handles = [mod.register_forward_hook(self._hook(w)) for mod, w in self.targets]
        try:
            with threads.torch_threads(1), torch.enable_grad():
                return self._each()
        except (RuntimeError, ValueError, TypeError, IndexError, AttributeError) as exc:
            raise CalibrationUnavailable(f"the model's backward pass failed: {_first_line(exc)}") from None
        finally:
            for h in handles:
                h.remove()
            for p, flag in flags:
                p.requires_grad_(flag)


def _sensitivities(done: list[_Sums], targets: list[tuple[torch.nn.Linear, str]], c: float) -> dict[str, float]:
    """The batches' sums added in batch order (the same float sums every run), then each layer's sensitivity."""
    x_sq: dict[str, float] = {}
    y_sq: dict[str, float] = {}
    g_sq: dict[str, float] = {}
    for sums in done:
        for acc, part in ((x_sq, sums.x), (y_sq, sums.y), (g_sq, sums.g)):
            for name, v in part.items():
                acc[name] = acc.get(name, 0.0) + v
    units = sum(s.units for s in done)
    # a layer the forward ran through but whose output the objective never reads (a pooler beside mean pooling)
    # has no gradient: sensitivity 0; one the forward never reached is left out (the allocation then falls back)
    return {
        w: c * g_sq.get(w, 0.0) / max(units, 1) * y_sq[w] / (int(mod.weight.shape[0]) * x_sq[w])
        for mod, w in sorted(targets, key=lambda t: t[1])
        if x_sq.get(w)
    }
