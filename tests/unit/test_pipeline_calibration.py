"""The default calibration split into pipeline stages (uc_attest/calibration/pipeline.py) measures what one process
measures, bit for bit, for any number of stages; a stage's part that names another stage's tensor, or is not a
calibration file, is refused. Threads play the ranks here over an in-memory link; torchrun runs the split in
tests/integration/test_distributed_pack.py."""

from __future__ import annotations

import json
import os
import queue
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, shared_path
from uc_attest.calibration import pipeline
from uc_attest.calibration.default import measure, moment_shapes, targets
from uc_attest.calibration.forward import Part
from uc_attest.calibration.pipeline import Stage, merge, plan, split
from uc_attest.core import threads
from uc_attest.errors import OperationalError
from uc_attest.quant.scheme import DEFAULT_SCHEME, Scheme
from uc_attest.testing.synth import write_synth_model


class MemoryLink:
    """Point-to-point tensors between threads: one FIFO per (sender, receiver, tag), shapes checked on receipt."""

    def __init__(self, rank: int, boxes: dict[tuple[int, int, int], queue.Queue[torch.Tensor]]) -> None:
        self.rank, self.boxes = rank, boxes

    def _box(self, frm: int, to: int, tag: int) -> queue.Queue[torch.Tensor]:
        return self.boxes.setdefault((frm, to, tag), queue.Queue())

    def send(self, tensor: torch.Tensor, to: int, tag: int) -> None:
        self._box(self.rank, to, tag).put(tensor.detach().clone())

    def recv(self, shape: tuple[int, ...], dtype: torch.dtype, frm: int, tag: int) -> torch.Tensor:
        got = self._box(frm, self.rank, tag).get(timeout=120)
        assert tuple(got.shape) == tuple(shape) and got.dtype == dtype, (got.shape, shape, got.dtype, dtype)
        return got.clone()

    def settle(self, keep: int = 0) -> None:
        return None


def staged(src: Path, scheme: Scheme, ranks: int, tmp: Path) -> Any:
    """The calibration measured by ``ranks`` threads as pipeline stages, merged as rank 0 merges it."""
    config = json.loads((src / "config.json").read_text())
    stages = plan(config, ranks)
    assert stages is not None
    names = targets(src, scheme)
    boxes: dict[tuple[int, int, int], queue.Queue[torch.Tensor]] = {}
    t0 = time.perf_counter()

    def run(stage: Stage) -> pipeline.StageMeasured:
        model = pipeline.load_stage(src, config, stage, pipeline.stage_dtype(config))
        got = pipeline.measure_stage(model, names, scheme, stage, MemoryLink(stage.rank, boxes), lambda d, t: None)
        if not stage.first:
            pipeline.write_part(tmp, stage, got)
        return got

    # one intra-op thread throughout, as each rank's process has: the stages' threads setting and restoring torch's
    # process-wide thread count around their passes would otherwise race
    with threads.torch_threads(1), ThreadPoolExecutor(len(stages)) as pool:
        parts = list(pool.map(run, stages))
    return merge(tmp, stages, parts[0], names, moment_shapes(src, scheme, names), t0)


def same(a: Any, b: Any) -> None:
    assert a.record == b.record
    assert list(a.moments) == list(b.moments)
    for name in a.moments:  # as the calibration file holds them (float32)
        assert torch.equal(a.moments[name].to(torch.float32), b.moments[name].to(torch.float32)), name
    assert a.sensitivity == b.sensitivity


def test_the_split_rule() -> None:
    assert split(5, 2) == [range(3), range(3, 5)]
    assert split(30, 4) == [range(8), range(8, 15), range(15, 23), range(23, 30)]
    assert [len(r) for r in split(7, 7)] == [1] * 7
    # SmolLM2-135M: 30 layers of 3,538,944 weights, a 576 x 49,152 head counted at half on the last stage
    assert split(30, 2, 3_538_944, 28_311_552 // 2) == [range(17), range(17, 30)]
    # the nearest boundary, not the next: the serving benchmark's 4-layer Llama (head 2048 x 32,000) splits 2 + 2
    assert split(4, 2, 51_380_224, 65_536_000 // 2) == [range(2), range(2, 4)]
    assert [len(r) for r in split(4, 3, 1, 100)] == [2, 1, 1]  # a head heavier than the layers: the last, one
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 3,
           "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "vocab_size": 32}  # fmt: skip
    stages = plan(cfg, 8)
    assert stages is not None and len(stages) == 3  # one layer at least per stage; the other ranks wait
    assert stages[0].part == Part(range(1), embed=True, head=False)
    assert stages[2].part == Part(range(2, 3), embed=False, head=True)
    assert plan(cfg, 1) is None
    assert plan({**cfg, "architectures": ["MistralForCausalLM"]}, 2) is None


@pytest.mark.parametrize("ranks", [2, 3])
def test_stages_measure_what_one_process_measures(ranks: int, tmp_path: Path) -> None:
    src = write_synth_model(tmp_path / "src", hidden=128, inter=256, layers=3, vocab=256)
    scheme = DEFAULT_SCHEME
    config = json.loads((src / "config.json").read_text())
    one = measure(src, config, scheme)
    same(staged(src, scheme, ranks, tmp_path), one)


def test_stories260k_in_two_stages_is_one_process(tmp_path: Path) -> None:
    import sys

    bin_path = shared_path("models", "stories260K", "stories260K.bin")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import stories

    src = stories.convert(bin_path, tmp_path / "src", hf_layout=True)
    scheme = DEFAULT_SCHEME
    config = json.loads((src / "config.json").read_text())
    same(staged(src, scheme, 2, tmp_path), measure(src, config, scheme))


def _part_case(tmp_path: Path) -> tuple[list[Stage], set[str], dict[str, tuple[int, ...]], dict[str, torch.Tensor]]:
    """A generated 2-layer model in two stages: the stages, the weights measured, their moments' shapes, and a
    well-formed part for stage 1 (identity moments of the right shapes)."""
    src = tmp_path / "src"
    if not src.exists():
        write_synth_model(src, hidden=128, inter=256, layers=2, vocab=256)
    stages = plan(json.loads((src / "config.json").read_text()), 2)
    assert stages is not None
    names = targets(src, DEFAULT_SCHEME)
    shapes = moment_shapes(src, DEFAULT_SCHEME, names)
    theirs = {
        n: torch.eye(s[-1], dtype=torch.float64).expand(*s).clone() for n, s in shapes.items() if stages[1].holds(n)
    }
    return stages, names, shapes, theirs


FIRST = pipeline.StageMeasured({}, {}, torch.zeros((1, 2), dtype=torch.long), torch.float32, "t")


def test_a_well_formed_part_is_merged(tmp_path: Path) -> None:
    stages, names, shapes, theirs = _part_case(tmp_path)
    sens = dict.fromkeys(theirs, 0.5)
    pipeline.write_part(tmp_path, stages[1], pipeline.StageMeasured(theirs, sens, None, torch.float32, "t"))
    got = merge(tmp_path, stages, FIRST, names, shapes, 0.0)
    assert set(got.moments) == set(theirs) and got.sensitivity == sens


def test_a_part_naming_another_stages_tensor_is_refused(tmp_path: Path) -> None:
    stages, names, shapes, theirs = _part_case(tmp_path)
    ours = next(n for n in shapes if stages[0].holds(n))
    moments = {**theirs, ours: torch.eye(128, dtype=torch.float64).expand(*shapes[ours]).clone()}
    sens = dict.fromkeys(moments, 0.5)
    pipeline.write_part(tmp_path, stages[1], pipeline.StageMeasured(moments, sens, None, torch.float32, "t"))
    with pytest.raises(OperationalError, match="rank 1's calibration part does not hold its stage's moments"):
        merge(tmp_path, stages, FIRST, names, shapes, 0.0)
    sens = {**dict.fromkeys(theirs, 0.5), ours: 0.5}  # the moments right, a sensitivity of another stage's weight
    pipeline.write_part(tmp_path, stages[1], pipeline.StageMeasured(theirs, sens, None, torch.float32, "t"))
    with pytest.raises(OperationalError, match="rank 1's calibration part names 'model.layers.0"):
        merge(tmp_path, stages, FIRST, names, shapes, 0.0)
    pipeline.part_path(tmp_path, 1).write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(OperationalError, match="calibration part"):
        merge(tmp_path, stages, FIRST, names, shapes, 0.0)


@settings(max_examples=int(os.environ.get("UC_FUZZ_EXAMPLES", "100")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(data=st.data())
def test_a_damaged_part_is_merged_whole_or_refused(tmp_path: Path, data: st.DataObject) -> None:
    """Flipped bytes or a truncation of a stage's part: the merge takes it whole or stops with one OperationalError."""
    stages, names, shapes, theirs = _part_case(tmp_path)
    sens = dict.fromkeys(theirs, 0.5)
    pipeline.write_part(tmp_path, stages[1], pipeline.StageMeasured(theirs, sens, None, torch.float32, "t"))
    path = pipeline.part_path(tmp_path, 1)
    raw = bytearray(path.read_bytes())
    if data.draw(st.booleans(), label="truncate"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    path.write_bytes(bytes(raw))
    try:
        got = merge(tmp_path, stages, FIRST, names, shapes, 0.0)
    except OperationalError:
        return
    assert set(got.moments) == set(theirs) and set(got.sensitivity) <= set(theirs)
    for name, t in got.moments.items():
        assert tuple(t.shape) == shapes[name] and bool(torch.isfinite(t).all())
