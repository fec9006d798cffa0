"""The default calibration of a causal LM split over the ranks of a torchrun job as pipeline stages (issue 34):
a model that no single process holds is calibrated by ranks that each hold a contiguous run of its layers, and
the moments are those one process measures, bit for bit.

Each stage builds only its part of the model (``forward.Part``: the first also the embedding, the last also the
final norm and the head), reading only those tensors. Sampling: each step of each chunk of sequences goes
through the stages in order, the hidden states sent from rank to rank; the last stage draws the next tokens
with the chunk's seeded generator and sends them to the first. Each stage gathers the moments of its layers'
inputs, each chunk into its own sums (as one process's thread per chunk does), added in chunk order. The output
sensitivity: each batch forward through the stages, then the gradient back through them (each stage sends the
gradient of its input to the stage before). Every stage runs the operations one process runs, on the same
values, on one intra-op thread, so the moments and the sensitivities do not depend on the number of stages
(tests/unit/test_pipeline_calibration.py; tests/integration/test_distributed_pack.py packs with torchrun).

What crosses between ranks are tensors of a shape and dtype the receiver fixes (``world.Link``): data, never
parsed. A stage's results reach rank 0 as a calibration file in the job's scratch directory
(:func:`write_part`, :func:`merge`), checked there like any calibration file, and its names against the stage's.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from ..core import threads
from ..core.stfile import SafetensorsFile
from ..errors import OperationalError, UcAttestError
from ..quant.scheme import Scheme
from .collect import (
    CalibrationUnavailable,
    MomentHooks,
    MomentSums,
    Progress,
    _sensitivities,
    _SensitivityPass,
    _Sums,
    _targets,
    bos_token,
    chunk_sizes,
    draw,
    log_likelihood,
    sample_length,
    token_batches,
)
from .default import (
    LENGTH,
    SEED,
    SENSITIVITY_BATCH,
    SENSITIVITY_SEQUENCES,
    SEQUENCES,
    TEMPERATURE,
    Measured,
    moment_block,
    own_sampling_dtype,
    sampled_record,
    tool,
)
from .file import META_SENSITIVITY, _sensitivity, write
from .forward import KVCache, LlamaForCausalLM, Part, build, llama_config, parameter_count

#: Message tags: a sampling step's messages carry their chunk's number; the sensitivity's, their batch's plus these.
FORWARD_TAG, BACKWARD_TAG = 1 << 16, 1 << 17
_LAYER = re.compile(r"model\.layers\.([0-9]+)\.")


class Link(Protocol):
    """Tensors between the ranks (``pack.world.Link`` on torch.distributed; tests: in memory)."""

    def send(self, tensor: torch.Tensor, to: int, tag: int) -> None: ...

    def recv(self, shape: tuple[int, ...], dtype: torch.dtype, frm: int, tag: int) -> torch.Tensor: ...

    def settle(self, keep: int = 0) -> None: ...


@dataclass(frozen=True)
class Stage:
    """One rank's stage: its number among ``stages`` and the part of the model it holds."""

    rank: int
    stages: int
    part: Part

    @property
    def first(self) -> bool:
        return self.rank == 0

    @property
    def last(self) -> bool:
        return self.rank == self.stages - 1

    def holds(self, name: str) -> bool:
        """Whether ``name`` (a weight of the checkpoint) is in this stage's part: a layer's in its run, the
        embedding in the first, anything else outside the layers (the head) in the last."""
        m = _LAYER.match(name)
        if m is not None:
            return int(m.group(1)) in self.part.layers
        return self.last or (self.first and name.startswith("model.embed_tokens."))


def split(layers: int, stages: int, layer_cost: int = 1, head_cost: int = 0) -> list[range]:
    """Contiguous runs of layers, one per stage (each at least one), balancing each stage's work: ``layer_cost`` per
    layer (every layer of these models is alike) and ``head_cost`` more for the last. Depends on the counts only."""
    total = layers * layer_cost + head_cost
    bounds = [0]
    for k in range(1, stages):
        want = (2 * k * total + stages * layer_cost) // (2 * stages * layer_cost)  # the boundary nearest k/stages
        bounds.append(min(max(want, bounds[-1] + 1), layers - (stages - k)))
    bounds.append(layers)
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


def plan(config: dict[str, Any], ranks: int) -> list[Stage] | None:
    """The stages of a job of ``ranks`` ranks (one per rank, at most one per layer; the other ranks wait), or
    None where the calibration cannot be split: a model the own forward does not implement, one it cannot sample
    (fewer than 2 positions, a BOS token outside the vocabulary: one process's calibration says why), or one stage.
    A stage's
    work is counted in weights, the head's at half: its one wide product runs at about twice the rate per weight
    of a layer's narrow ones (SmolLM2 on two ranks: 17 layers and 13 with the head wait alike, 1.8 s each)."""
    cfg = llama_config(config)
    if cfg is None or not _samples(cfg):
        return None
    n = int(cfg.num_hidden_layers)
    count = min(ranks, n)
    if count < 2:
        return None
    h, heads, kv, hd = int(cfg.hidden_size), int(cfg.num_attention_heads), int(cfg.kv), int(cfg.hd)
    layer = h * hd * (2 * heads + 2 * kv) + 3 * h * int(cfg.intermediate_size)
    runs = split(n, count, layer, h * int(cfg.vocab_size) // 2)
    return [Stage(k, count, Part(run, embed=k == 0, head=k == count - 1)) for k, run in enumerate(runs)]


def _samples(cfg: Any) -> bool:
    """Whether a sampling pass runs: at least one step, from a BOS token of the vocabulary."""
    bos = bos_token(cfg)
    bos_ok = isinstance(bos, int) and not isinstance(bos, bool) and 0 <= bos < int(cfg.vocab_size)
    return bos_ok and sample_length(cfg, LENGTH) >= 2


#: The dtypes a stage may sample in, by the name rank 0 sends (``stage_dtype``).
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def stage_dtype(config: dict[str, Any]) -> str:
    """Rank 0's choice of the dtype every stage samples in (one process's ``sampling_dtype`` of the whole model):
    decided once, so ranks on machines that differ (bfloat16 native or not, another environment) never mix dtypes."""
    cfg = llama_config(config)
    if cfg is None:
        raise CalibrationUnavailable("config.json is not a model the own forward implements")
    return str(own_sampling_dtype(parameter_count(cfg))).removeprefix("torch.")


@dataclass
class StageMeasured:
    """What one stage measured: its layers' moments and sensitivities, the sampled tokens (first and last stage)."""

    moments: dict[str, torch.Tensor]
    sensitivity: dict[str, float]
    tokens: torch.Tensor | None
    dtype: torch.dtype
    tool: str


def load_stage(model_dir: Path, config: dict[str, Any], stage: Stage, dtype: str) -> LlamaForCausalLM:
    """This stage's part of the model, in ``dtype`` (:func:`stage_dtype`, rank 0's)."""
    model = build(model_dir, config, causal=True, part=stage.part)
    if not isinstance(model, LlamaForCausalLM) or dtype not in DTYPES:
        raise CalibrationUnavailable(f"the own forward cannot build layers {span(stage.part.layers)} of {model_dir}")
    return model.to(DTYPES[dtype])


def covers(model: LlamaForCausalLM, stage: Stage, names: set[str], shapes: dict[str, tuple[int, ...]]) -> bool:
    """Whether the stages measure what one process measures: this stage's part holds a linear layer for every
    weight of its stage that one process measures, and the head is not both measured and tied to the embedding
    (one process's gradient of that one tensor sums the head's and the embedding's, which two stages hold).
    Otherwise the job calibrates on rank 0 alone, as one process."""
    if getattr(model.config, "tie_word_embeddings", False) and "lm_head.weight" in names:
        return False
    found = {w for _mod, w in _targets(model, names)}
    return {n for n in shapes if stage.holds(n)} <= found


def measure_stage(
    model: LlamaForCausalLM, names: set[str], scheme: Scheme, stage: Stage, link: Link, progress: Progress
) -> StageMeasured:
    """This stage's share of the default calibration (module docstring), with its neighbours over ``link``."""
    hooks = MomentHooks(model, names, moment_block(scheme), empty_ok=True)
    try:
        tokens = _sample(model, stage, link, hooks, progress)
    finally:
        moments = hooks.close()
    # the batches one process measures (``default._measure_sampled``); a middle stage holds no tokens, only sizes
    length = sample_length(model.config, LENGTH)
    sizes = chunk_sizes(min(SENSITIVITY_SEQUENCES, SEQUENCES), SENSITIVITY_BATCH)
    held = token_batches(tokens[:SENSITIVITY_SEQUENCES], SENSITIVITY_BATCH) if tokens is not None else [{}] * len(sizes)
    targets = _targets(model, names)
    done = _StagedSensitivity(model, targets, held, [(n, length) for n in sizes], stage, link).run()
    dtype = next(model.parameters()).dtype
    return StageMeasured(moments, _sensitivities(done, targets, 0.5), tokens, dtype, tool(model))


def _sample(
    model: LlamaForCausalLM, stage: Stage, link: Link, hooks: MomentHooks, progress: Progress
) -> torch.Tensor | None:
    """Every step of every chunk through this stage: the [SEQUENCES, length] tokens on the first and last stage
    (None on the others); this stage's moments gathered in ``hooks``, per chunk."""
    cfg = model.config
    bos = int(bos_token(cfg))
    length, chunks = sample_length(cfg, LENGTH), chunk_sizes(SEQUENCES)
    ids = [torch.full((n, 1), bos, dtype=torch.long) for n in chunks]
    out = [[x] for x in ids]
    gens = [torch.Generator().manual_seed(SEED + k) for k in range(len(chunks))]
    caches = [KVCache(int(cfg.num_hidden_layers)) for _ in chunks]
    sums = [MomentSums() for _ in chunks]
    dtype, width = next(model.parameters()).dtype, int(cfg.hidden_size)
    with torch.inference_mode(), threads.torch_threads(1):
        for step in range(length - 1):
            for k, n in enumerate(chunks):
                if step and stage.first and not stage.last:  # the chunk's last tokens, drawn by the last stage
                    ids[k] = link.recv((n, 1), torch.long, stage.stages - 1, k)
                    out[k].append(ids[k])
                with hooks.within(sums[k]):
                    x = model.embed(ids[k]) if stage.first else link.recv((n, 1, width), dtype, stage.rank - 1, k)
                    x = model.run_layers(x, None, caches[k])
                    logits = model.head(x) if stage.last else None
                if logits is None:
                    link.send(x, stage.rank + 1, k)
                    continue
                ids[k] = draw(logits, TEMPERATURE, gens[k])
                out[k].append(ids[k])
                if not stage.first:
                    link.send(ids[k], 0, k)
            link.settle(keep=len(chunks))  # this step's sends may wait for the next step's receives
            progress(step + 1, length - 1)
        if stage.first and not stage.last and length > 1:
            for k, n in enumerate(chunks):
                out[k].append(link.recv((n, 1), torch.long, stage.stages - 1, k))
        link.settle()
    for s in sums:
        hooks.finish(s)
    hooks.adopt(sums)
    return torch.cat([torch.cat(o, dim=1) for o in out]) if stage.first or stage.last else None


class _StagedSensitivity(_SensitivityPass):
    """``collect.output_sensitivity``'s passes for one stage: each batch forward from the stage before (or from
    the tokens) to the stage after (or to the objective), then the gradient back the same way. A stage sends every
    batch forward before it waits for the first batch's gradient, so the stages after it work meanwhile."""

    def __init__(
        self,
        model: LlamaForCausalLM,
        targets: list[tuple[torch.nn.Linear, str]],
        batches: list[dict[str, Any]],
        shapes: list[tuple[int, int]],
        stage: Stage,
        link: Link,
    ) -> None:
        super().__init__(model, targets, batches, causal=True)
        self.shapes, self.stage, self.link = shapes, stage, link
        self.dtype, self.width = next(model.parameters()).dtype, int(model.config.hidden_size)

    def _each(self) -> list[_Sums]:
        stage, link, model = self.stage, self.link, self.model
        done: list[_Sums] = []
        waiting: list[tuple[_Sums, torch.Tensor | None, torch.Tensor, int]] = []
        for i, (n, t) in enumerate(self.shapes):
            sums = self._open(i)
            sums.units = n * (t - 1)  # the tokens whose likelihood the last stage sums (no padding in sampled text)
            x = None if stage.first else link.recv((n, t, self.width), self.dtype, stage.rank - 1, FORWARD_TAG + i)
            y = model.run_layers(
                model.embed(self.batches[i]["input_ids"]) if x is None else x.requires_grad_(True), None, None
            )
            if stage.last:
                objective = log_likelihood(model.head(y), self.batches[i]["input_ids"], None, sums)
                self._back(sums, x, self._grad(objective, x, None), i)
            else:
                link.send(y, stage.rank + 1, FORWARD_TAG + i)
                waiting.append((sums, x, y, i))
            done.append(sums)
        for sums, x, y, i in waiting:
            back = link.recv(tuple(y.shape), self.dtype, stage.rank + 1, BACKWARD_TAG + i)
            self._back(sums, x, self._grad(y, x, back), i)
        link.settle()
        return done

    def _grad(self, out: torch.Tensor, x: torch.Tensor | None, back: torch.Tensor | None) -> list[torch.Tensor | None]:
        """The gradient of ``out`` (given ``back`` for it) for the stage's weights and its input ``x`` (none on the
        first stage; a first stage measuring no weight takes no gradient)."""
        wanted = [*self.weights, *([x] if x is not None else [])]
        if not wanted:
            return []
        return list(torch.autograd.grad(out, wanted, grad_outputs=back, allow_unused=True))

    def _back(self, sums: _Sums, x: torch.Tensor | None, grads: Sequence[torch.Tensor | None], i: int) -> None:
        """Send the gradient of the stage's input to the stage before; record the weights'."""
        if x is not None:
            gx = grads[-1]
            self.link.send(gx if gx is not None else torch.zeros_like(x), self.stage.rank - 1, BACKWARD_TAG + i)
            grads = grads[:-1]
        self._record(sums, grads)


def part_path(directory: Path, rank: int) -> Path:
    return directory / f"calibration.stage{rank}.safetensors"


def write_part(directory: Path, stage: Stage, got: StageMeasured) -> None:
    """This stage's moments and sensitivities as a calibration file where rank 0 reads it (:func:`merge`)."""
    write(part_path(directory, stage.rank), got.moments, f"stage {stage.rank} of {stage.stages}", got.sensitivity)


def merge(
    directory: Path,
    stages: list[Stage],
    first: StageMeasured,
    names: set[str],
    shapes: dict[str, tuple[int, ...]],
    t0: float,
) -> Measured:
    """Rank 0: every stage's part (its own in memory, the others' files) in one :class:`Measured`, as one process
    measures it. ``names``: the weights measured; ``shapes``: the moments one process takes of them
    (``default.moment_shapes``). Another stage's part must be a calibration file holding exactly its stage's
    moments, each of its shape, finite, with a non-negative diagonal, and a sensitivity for each of them and none
    outside its stage; anything else is that rank's error (OperationalError)."""
    moments, sensitivity = dict(first.moments), dict(first.sensitivity)
    for stage in stages[1:]:
        want = {n: shape for n, shape in shapes.items() if stage.holds(n)}
        got_m, got_s = _read_part(part_path(directory, stage.rank), stage, want)
        if not set(got_m) <= set(got_s):
            raise OperationalError(f"rank {stage.rank}'s calibration part lacks sensitivities of its moments' weights")
        _adopt(moments, got_m, stage, names)
        _adopt(sensitivity, got_s, stage, names)
    if first.tokens is None:
        raise AssertionError("the first stage holds the sampled tokens")
    record = sampled_record(first.tokens, first.dtype, first.tool)
    return Measured(dict(sorted(moments.items())), record, time.perf_counter() - t0, dict(sorted(sensitivity.items())))


def _adopt(into: dict[str, Any], got: dict[str, Any], stage: Stage, allowed: set[str]) -> None:
    for name in got:
        if name not in allowed or not stage.holds(name) or name in into:
            raise OperationalError(
                f"rank {stage.rank}'s calibration part names {name!r}: not a tensor only its stage measures"
            )
    into.update(got)


def _read_part(
    path: Path, stage: Stage, want: dict[str, tuple[int, ...]]
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """A stage's part, by the strict reader: exactly the moments ``want`` names, each of its shape (checked in the
    header, before any tensor is read), float32, finite, its diagonals non-negative; and its sensitivities."""
    where = f"rank {stage.rank}'s calibration part"
    try:
        with SafetensorsFile(path) as f:
            if set(f.infos) != set(want):
                odd = sorted(set(f.infos) ^ set(want))[:3]
                raise OperationalError(f"{where} does not hold its stage's moments (differs in {odd})")
            for name, info in f.infos.items():
                if info.dtype != "F32" or tuple(info.shape) != want[name]:
                    raise OperationalError(
                        f"{where}: tensor {name!r} is {info.dtype}{list(info.shape)}, not F32{list(want[name])}"
                    )
            out = {name: f.tensor(name).clone() for name in f.infos}
            sens = _sensitivity(path, f.metadata.get(META_SENSITIVITY))
    except OperationalError:
        raise
    except UcAttestError as exc:  # not a safetensors file, or its metadata not the sensitivities: the job's error
        raise OperationalError(f"{where}: {exc}") from None
    for name, t in out.items():
        diag = t.diagonal(dim1=-2, dim2=-1)
        if not bool(torch.isfinite(t).all()) or bool((diag < 0).any()):
            raise OperationalError(
                f"{where}: tensor {name!r} is not second moments (not finite, or a negative diagonal)"
            )
    return out, sens


def span(layers: range) -> str:
    """A run of layers as text: '0-14'."""
    return f"{layers.start}-{layers.stop - 1}" if len(layers) else "none"
