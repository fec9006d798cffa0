"""The calibration ``pack`` runs when it is not told otherwise, and the record of what it did.

* causal LMs (``*ForCausalLM``): data-free — ``SEQUENCES`` sequences of ``LENGTH`` tokens sampled from the
  model itself from its BOS token (temperature ``TEMPERATURE``, no top-k/top-p, seed ``SEED``; in bfloat16 where
  the CPU multiplies it natively, :func:`sampling_dtype`); then each layer's output sensitivity over the first
  ``SENSITIVITY_SEQUENCES`` of them (the allocation's weights);
* other models with a tokenizer (encoders): ``TEXTS`` docstrings that ship with Python
  (``corpus.calibration_sentences``: none of the project's development set), or the user's text file
  (``--calibration-text``).

Only the g x g diagonal blocks the scheme uses are measured (``Scheme.moment_block``), for the tensors
the scheme quantizes (blocks as wide as the feedback's for ``uc-rht-ldlq/3``).
"""

from __future__ import annotations

import hashlib
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..core.threads import size_torch
from ..manifest import CalibrationRecord
from ..quant.scheme import Scheme
from ..source import is_causal
from .collect import (
    SAMPLE_CHUNK,
    CalibrationUnavailable,
    MomentHooks,
    Progress,
    collect_moments,
    load_model,
    load_tokenizer,
    output_sensitivity,
    runnable,
    sample_sequences,
    text_batches,
    token_batches,
)
from .corpus import TextFile, calibration_sentences
from .forward import OWN_MODELS

#: 64 sequences of 128 tokens: the same 8,192 tokens as 32 of 256 in half the decode steps, each a larger product
SEQUENCES, LENGTH, TEMPERATURE, SEED = 64, 128, 1.0, 4321
TEXTS, MAX_LENGTH = 512, 128
#: Sampled sequences the output sensitivity (one forward and backward pass) is measured over: 1,024 tokens.
SENSITIVITY_SEQUENCES = 8
#: ... in batches of this many (one forward and backward each, the batches side by side on the cores).
SENSITIVITY_BATCH = 4
#: Parameters from which a causal LM is sampled in bfloat16 (where the CPU multiplies it natively).
BF16_MIN_PARAMS = 50_000_000
#: Text batches (of 32) the encoders' output sensitivity is measured over.
SENSITIVITY_BATCHES = 2


@dataclass(frozen=True)
class Measured:
    """Moments keyed by weight name ([n/g, g, g] blocks or a full [w, w]), what produced them, and the time."""

    moments: dict[str, torch.Tensor]
    record: CalibrationRecord
    seconds: float
    #: Each layer's output sensitivity (``collect.output_sensitivity``), for causal LMs; empty otherwise.
    sensitivity: dict[str, float] = field(default_factory=dict)


def tool(model: object) -> str:
    """What ran the forward passes, and on which kind of device: uc-attest's own (``forward.py``) or transformers,
    torch's version, the device type (``cpu``: every calibration today, one process or pipeline stages)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("uc-attest")
    except PackageNotFoundError:
        ours = "unknown"
    params = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
    device = next((p.device.type for p in params), "cpu")
    if isinstance(model, OWN_MODELS):
        return f"uc-attest {ours} (own forward, torch {torch.__version__}, {device})"
    import transformers

    return f"uc-attest {ours} (transformers {transformers.__version__}, torch {torch.__version__}, {device})"


def sampling_dtype(model: object) -> torch.dtype:
    """bfloat16 for uc-attest's own causal forward of a model of ``BF16_MIN_PARAMS`` or more where this CPU
    multiplies bfloat16 natively (AMX, AVX-512 BF16: 4-5x the fp32 rate, SmolLM2's sampling then costs half),
    else float32: a smaller model samples fast in fp32 and keeps its precision (stories260K's KL: 0.609 from an
    fp32 sampler, 0.621 from a bf16 one). The moments are taken from the layers' inputs either way and committed
    (a rebuild never re-measures them); the record names the dtype. UC_ATTEST_CALIBRATION_DTYPE=float32 keeps
    float32 for any model."""
    if not isinstance(model, OWN_MODELS):
        return torch.float32
    return own_sampling_dtype(sum(p.numel() for p in model.parameters()))


def own_sampling_dtype(params: int) -> torch.dtype:
    """:func:`sampling_dtype` of the own forward of a model of ``params`` parameters (decided by rank 0 alone for
    a pipeline's stages: every stage samples in one dtype)."""
    import os

    if os.environ.get("UC_ATTEST_CALIBRATION_DTYPE") == "float32" or params < BF16_MIN_PARAMS:
        return torch.float32
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return torch.bfloat16 if native else torch.float32


def targets(model_dir: Path, scheme: Scheme) -> set[str]:
    """The weights whose inputs' moments are measured: those the scheme quantizes with moments; none is
    CalibrationUnavailable."""
    from ..source import ModelSource

    src = ModelSource(model_dir)
    try:
        names = {
            t.name
            for t in src.tensors
            if scheme.applies_to(t.name, t.info.dtype, t.info.shape) and scheme.moment_block(t.info.shape)
        }
    finally:
        src.close()
    if not names:
        raise CalibrationUnavailable("no quantized tensor of this model can take calibration moments")
    return names


def measure(
    model_dir: Path,
    config: dict[str, object],
    scheme: Scheme,
    text: TextFile | None = None,
    progress: Progress | None = None,
) -> Measured:
    """Run the default calibration (module docstring); CalibrationUnavailable says why it cannot run."""
    t0 = time.perf_counter()
    runnable(config)
    names = targets(model_dir, scheme)
    causal = is_causal(config) and text is None
    size_torch()  # every core the process may use (the moments do not depend on it: one thread per batch/chunk)
    model = load_model(model_dir, causal=causal, config=config)
    if causal:
        return _measure_sampled(model, names, moment_block(scheme), progress or _none, t0)
    return _measure_text(model, load_tokenizer(model_dir), names, moment_block(scheme), text, progress or _none, t0)


def moment_shapes(model_dir: Path, scheme: Scheme, names: set[str]) -> dict[str, tuple[int, ...]]:
    """The shape of the moments measured for each of ``names`` (:class:`collect.MomentHooks`: [n, n] for a block as
    wide as the input, else [ceil(n/w), w, w]; none where the block is 0)."""
    from ..source import ModelSource

    block = moment_block(scheme)
    src = ModelSource(model_dir)
    try:
        widths = {t.name: int(t.info.shape[-1]) for t in src.tensors if t.name in names}
    finally:
        src.close()
    out: dict[str, tuple[int, ...]] = {}
    for name, n in sorted(widths.items()):
        w = block(n)
        if w:
            out[name] = (n, n) if w == n else (-(-n // w), w, w)
    return out


def moment_block(scheme: Scheme) -> Callable[[int], int]:
    """The width of the moment blocks measured for an input of ``n`` columns (``MomentHooks``' ``block``)."""
    g = scheme.group_size

    def block(n: int) -> int:  # blocks of the input zero-padded to whole groups when a row splits in two parts
        wide = scheme.parts((1, n))[0].block
        if wide > g:  # feedback over several groups: blocks of that width (the last one zero-padded when rows split)
            return wide
        return g if n % g == 0 or scheme.split_column((1, n)) else n if g % n == 0 else 0

    return block


def _measure_sampled(
    model: Any, names: set[str], block: Callable[[int], int], progress: Progress, t0: float
) -> Measured:
    """A causal LM's calibration: the moments gathered while it samples its own text (one pass), then the output
    sensitivity over the first sequences."""
    dtype = sampling_dtype(model)
    model = model.to(dtype)
    hooks = MomentHooks(model, names, block)
    try:
        tokens = sample_sequences(model, SEQUENCES, LENGTH, TEMPERATURE, SEED, progress, hooks)
    finally:
        moments = hooks.close()
    if not moments:
        raise CalibrationUnavailable("the forward pass reached none of the quantized layers")
    sample = token_batches(tokens[:SENSITIVITY_SEQUENCES], SENSITIVITY_BATCH)
    sensitivity = output_sensitivity(model, names, sample, causal=True)
    return Measured(moments, sampled_record(tokens, dtype, tool(model)), time.perf_counter() - t0, sensitivity)


def sampled_record(tokens: torch.Tensor, dtype: torch.dtype, tool: str) -> CalibrationRecord:
    """The record of a causal LM's calibration that sampled ``tokens`` in ``dtype`` (one process or a pipeline:
    the same numbers, so the same record)."""
    n = min(SENSITIVITY_SEQUENCES, int(tokens.shape[0]))
    params: dict[str, object] = {
        "sequences": int(tokens.shape[0]),
        "length": int(tokens.shape[1]),
        "temperature": str(TEMPERATURE),
        "seed": SEED,
        "start": "bos",
        "sampler": "inverse-cdf",
        "chunk": SAMPLE_CHUNK,
        "pass": "sampling",
        "dtype": str(dtype).removeprefix("torch."),
        "tokens_sha256": hashlib.sha256(tokens.numpy().astype("<i8").tobytes()).hexdigest(),
        "sensitivity": f"fisher {n} sequences in batches of {SENSITIVITY_BATCH}, 1 thread each",
    }
    return CalibrationRecord("self-sampled", params, tool)


def _measure_text(
    model: Any,
    tok: Any,
    names: set[str],
    block: Callable[[int], int],
    text: TextFile | None,
    progress: Progress,
    t0: float,
) -> Measured:
    """The calibration over text (the user's file, or else Python's docstrings): the moments, then the output
    sensitivity over the first batches."""
    lines, method, params = _texts(text)
    batches = text_batches(tok, lines, MAX_LENGTH)
    moments = collect_moments(model, names, batches, block, progress)
    if not moments:
        raise CalibrationUnavailable("the forward pass reached none of the quantized layers")
    sensitivity = output_sensitivity(model, names, batches[:SENSITIVITY_BATCHES], causal=False)
    params["sensitivity"] = f"pooled-embedding projections, {SENSITIVITY_BATCHES} batches, 1 thread each"
    return Measured(moments, CalibrationRecord(method, params, tool(model)), time.perf_counter() - t0, sensitivity)


def _texts(text: TextFile | None) -> tuple[list[str], str, dict[str, object]]:
    """The calibration texts (``text``'s lines, or else ``TEXTS`` docstrings), the method's name and its record."""
    params: dict[str, object]
    if text is not None:
        params = {"file": text.path.name, "sha256": text.sha256, "lines": len(text.lines), "max_length": MAX_LENGTH}
        return text.lines, "text-file", params
    lines = calibration_sentences(TEXTS)
    params = {
        "texts": len(lines),
        "sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
        "python": platform.python_version(),
        "max_length": MAX_LENGTH,
    }
    return lines, "python-docstrings", params


def _none(_d: int, _t: int) -> None:
    return None
