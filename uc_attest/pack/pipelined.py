"""A distributed pack's default calibration run as pipeline stages over its ranks (calibration/pipeline.py): each
rank holds and reads a contiguous run of the model's layers, so a model that no rank holds whole is calibrated, and
rank 0 writes the calibration file one process would write, byte for byte.

Used where one process would run the default calibration of a causal LM that the own forward implements; any other
calibration runs on rank 0 alone (pack/distributed.py). Every rank first builds its part; where one cannot, every
rank falls back to that path, which says what one process says. Then the stages exchange activations
point-to-point. A rank that fails there cannot wait to agree (its neighbours may be waiting for its tensors): it
leaves the process group and raises, and the ranks waiting on it fail at once with "a rank left the distributed
pack". Then the ranks agree, and rank 0 merges the stages' parts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OperationalError
from .api import Calibration, PackProgress, PackRequest, _calibration_text
from .world import Group, Link, abandon

if TYPE_CHECKING:
    from ..calibration.pipeline import Stage, StageMeasured
    from ..manifest import CalibrationRecord


@dataclass(frozen=True)
class Staged:
    """A job's calibration as pipeline stages: the stages, and the model's config.json they were planned from."""

    stages: list[Stage]
    config: dict[str, Any]


def stages_for(r: PackRequest, group: Group) -> Staged | None:
    """The stages of this job's calibration (the same on every rank: they depend on the request, the model and
    the world size), or None where it is not the default calibration of a model the pipeline runs."""
    if not group.world.distributed or not isinstance(r.calibration, Calibration) or not r.scheme.row_signs:
        return None
    if _calibration_text(r) is not None:
        return None
    from ..calibration.pipeline import plan
    from ..source import is_causal, read_json_object

    config = read_json_object(r.source / "config.json", "config.json")
    stages = plan(config, group.world.size) if is_causal(config) else None
    return Staged(stages, config) if stages is not None else None


def calibrate(
    r: PackRequest, group: Group, show: PackProgress, staged: Staged, scratch: Path
) -> tuple[Path | None, CalibrationRecord | None] | None:
    """Every rank's share of the calibration; rank 0's result is the calibration file and its record (the other
    ranks: (None, None)). None on every rank where a rank cannot build its part (then rank 0 calibrates alone)."""
    world, stages = group.world, staged.stages
    mine = stages[world.rank] if world.rank < len(stages) else None
    dtype = group.from_leader(group.step(lambda: _dtype(staged.config) if world.leader else None))
    loaded = group.step(lambda: _load(r, staged.config, mine, dtype))
    if not all(group.gather(loaded is not None)):
        return None
    assert loaded is not None
    names, shapes, model = loaded
    show.stage("calibration")
    t0 = time.perf_counter()
    got = _run_stage(r, group, show, mine, model, names, scratch) if mine is not None else None
    group.step(lambda: None)  # every stage done and its part written
    return group.step(lambda: _merged(scratch, stages, got, (names, shapes), t0) if world.leader else (None, None))


def _dtype(config: dict[str, Any]) -> str | None:
    """Rank 0's sampling dtype for every stage (None: the own forward does not build this model)."""
    from ..calibration.collect import CalibrationUnavailable
    from ..calibration.pipeline import stage_dtype

    try:
        return stage_dtype(config)
    except CalibrationUnavailable:
        return None


def _load(
    r: PackRequest, config: dict[str, Any], stage: Stage | None, dtype: str | None
) -> tuple[set[str], dict[str, tuple[int, ...]], Any] | None:
    """The weights measured, their moments' shapes, and this rank's part of the model in ``dtype``; None where it
    cannot be built or misses a layer one process measures (every rank then leaves the calibration to rank 0)."""
    from ..calibration.collect import CalibrationUnavailable
    from ..calibration.default import moment_shapes, targets
    from ..calibration.pipeline import covers, load_stage

    if dtype is None:
        return None
    try:
        names = targets(r.source, r.scheme)
        shapes = moment_shapes(r.source, r.scheme, names)
        if stage is None:
            return names, shapes, None
        model = load_stage(r.source, config, stage, dtype)
    except CalibrationUnavailable:
        return None
    return (names, shapes, model) if covers(model, stage, names, shapes) else None


def _run_stage(
    r: PackRequest, group: Group, show: PackProgress, stage: Stage, model: Any, names: set[str], scratch: Path
) -> StageMeasured:
    """This rank's stage, point-to-point with its neighbours; its part written for rank 0 (module docstring)."""
    from ..calibration.pipeline import measure_stage, span, write_part

    where = f"rank {stage.rank} (layers {span(stage.part.layers)})"

    def on_step(done: int, total: int) -> None:
        show.update(done, total, f"step {done} of {total}, {stage.stages} pipeline stages")

    link = Link(group.world)
    try:
        got = measure_stage(model, names, r.scheme, stage, link, on_step)
        if not stage.first:
            write_part(scratch, stage, got)
    except BaseException as exc:
        link.drop()
        abandon()  # no agreement is possible here: the ranks waiting on this one's tensors stop at once
        if isinstance(exc, MemoryError):
            raise OperationalError(f"{where}: out of memory in the calibration") from None
        if isinstance(exc, Exception) and not isinstance(exc, OperationalError):
            raise OperationalError(f"{where}: the calibration failed: {type(exc).__name__}: {exc}") from None
        raise
    return got


def _merged(
    scratch: Path,
    stages: list[Stage],
    got: StageMeasured | None,
    measured: tuple[set[str], dict[str, tuple[int, ...]]],
    t0: float,
) -> tuple[Path | None, CalibrationRecord | None]:
    """Rank 0: the stages' parts merged and written as the calibration file one process writes."""
    from ..calibration.file import write
    from ..calibration.pipeline import merge

    if got is None:
        raise AssertionError("rank 0 is the first stage")
    m = merge(scratch, stages, got, *measured, t0)
    path = scratch / "calibration.safetensors"
    write(path, m.moments, f"{m.record.method} {m.record.params}", m.sensitivity)
    return path, m.record
