"""Attacks on the pipelined calibration (calibration/pipeline.py, pack/pipelined.py, pack/world.py ``Link``), from
an outside review: each case must end as one process ends (the same calibration file, the same warning, or a
fallback to rank 0 alone), and another rank's bytes that are not what the receiver fixes must be refused as that
rank's error. Threads play the ranks (an in-memory group and link); the ``Link`` tests run processes over gloo."""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from tests.unit.test_pipeline_calibration import same, staged
from uc_attest.calibration import pipeline
from uc_attest.calibration.collect import bos_token, sample_length
from uc_attest.calibration.default import measure, moment_shapes, targets
from uc_attest.calibration.forward import llama_config
from uc_attest.core import threads
from uc_attest.errors import OperationalError
from uc_attest.pack import distributed, pipelined
from uc_attest.pack.api import PackRequest, _moments_for, _Quiet
from uc_attest.pack.world import Group, World
from uc_attest.quant.scheme import DEFAULT_SCHEME
from uc_attest.testing.synth import write_synth_model

# -- ranks as threads -------------------------------------------------------------------------------------------------


class _Hung(BaseException):
    """A rank would wait forever (gloo: until the 30-minute STEP_TIMEOUT)."""


class _Job:
    """What the thread-ranks share: the mailboxes, one barrier per collective, and whether a rank left (as gloo
    sees a rank's process exit: every later exchange with it fails)."""

    def __init__(self, size: int, seconds: float) -> None:
        self.size, self.deadline = size, time.monotonic() + seconds
        self.boxes: dict[tuple[int, int, int], queue.Queue[torch.Tensor]] = {}
        self.lock = threading.Lock()
        self.left = threading.Event()
        self.slots: list[Any] = [None] * size
        self.barrier = threading.Barrier(size)

    def remaining(self, what: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _Hung(what)
        return left

    def box(self, key: tuple[int, int, int]) -> queue.Queue[torch.Tensor]:
        with self.lock:
            return self.boxes.setdefault(key, queue.Queue())

    def leave(self) -> None:
        self.left.set()
        self.barrier.abort()


class _ThreadGroup(Group):
    """``world.Group`` whose gather is a barrier between threads (JSON in and out, as over gloo)."""

    def __init__(self, job: _Job, rank: int) -> None:
        super().__init__(World(rank, job.size))
        self.job = job

    def gather(self, value: Any) -> list[Any]:
        self.job.slots[self.world.rank] = json.loads(json.dumps(value, sort_keys=True))
        self._wait()
        out = list(self.job.slots)
        self._wait()
        return out

    def _wait(self) -> None:
        try:
            self.job.barrier.wait(timeout=self.job.remaining(f"rank {self.world.rank} at a step"))
        except threading.BrokenBarrierError:
            if self.job.left.is_set():
                raise OperationalError("a rank left the distributed pack") from None
            raise _Hung(f"rank {self.world.rank} waits forever at a step") from None


class _ThreadLink:
    """``world.Link`` between threads."""

    def __init__(self, job: _Job, rank: int) -> None:
        self.job, self.rank = job, rank

    def send(self, tensor: torch.Tensor, to: int, tag: int) -> None:
        self.job.box((self.rank, to, tag)).put(tensor.detach().clone())

    def recv(self, shape: tuple[int, ...], dtype: torch.dtype, frm: int, tag: int) -> torch.Tensor:
        box = self.job.box((frm, self.rank, tag))
        while True:
            try:
                got = box.get(timeout=0.05)
            except queue.Empty:
                if self.job.left.is_set():
                    raise OperationalError("a rank left the distributed pack") from None
                self.job.remaining(f"rank {self.rank} waits forever for rank {frm}'s tensor (tag {tag})")
                continue
            assert tuple(got.shape) == tuple(shape) and got.dtype == dtype, (got.shape, shape, got.dtype, dtype)
            return got.clone()

    def settle(self, keep: int = 0) -> None:
        return None


def _ranks(size: int, fn: Callable[[Group], Any], monkeypatch: pytest.MonkeyPatch, seconds: float = 10.0) -> list[Any]:
    """``fn`` on ``size`` thread-ranks; each rank's result or the exception it ended with."""
    job = _Job(size, seconds)
    monkeypatch.setattr(pipelined, "Link", lambda world: _ThreadLink(job, world.rank))

    def one(rank: int) -> Any:
        try:
            return fn(_ThreadGroup(job, rank))
        except BaseException as exc:  # noqa: BLE001 - the rank's outcome; its process would exit here
            job.leave()
            return exc

    with threads.torch_threads(1), ThreadPoolExecutor(size) as pool:
        return list(pool.map(one, range(size)))


def _model(tmp_path: Path, **config: Any) -> Path:
    src = write_synth_model(tmp_path / "src", hidden=128, inter=256, layers=2, vocab=256)
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**cfg, **config}))
    return src


def _one_and_two(
    tmp_path: Path, src: Path, monkeypatch: pytest.MonkeyPatch, ranks: int = 2, seconds: float = 10.0
) -> tuple[Any, list[str], list[Any], list[list[str]]]:
    """The calibration as one process runs it (``api._moments_for``) and as ``ranks`` ranks run it
    (``distributed._calibration``), with the warnings each printed."""
    r = PackRequest(src, tmp_path / "out")
    one_warn: list[str] = []
    (tmp_path / "one").mkdir()
    one = _moments_for(r, _Quiet(), one_warn.append, tmp_path / "one")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    warns: list[list[str]] = [[] for _ in range(ranks)]
    got = _ranks(
        ranks,
        lambda g: distributed._calibration(r, g, _Quiet(), warns[g.world.rank].append, scratch),
        monkeypatch,
        seconds,
    )
    return one, one_warn, got, warns


@pytest.mark.parametrize("ranks", [2, 3])
def test_the_harness_runs_the_pipelined_calibration_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ranks: int
) -> None:
    """Control (passes): the thread-ranks run the whole orchestration (``distributed._calibration``) to rank 0's
    file, byte for byte one process's; 3 ranks on 2 layers: the third waits."""
    src = _model(tmp_path)
    one, one_warn, got, warns = _one_and_two(tmp_path, src, monkeypatch, ranks)
    assert got[1:] == [(None, None)] * (ranks - 1), got
    assert got[0][1] == one[1] and Path(got[0][0]).read_bytes() == Path(one[0]).read_bytes()
    assert warns == [[]] * ranks and one_warn == []


# -- 3. the same calibration as one process ---------------------------------------------------------------------------


def test_a_tied_head_stored_in_the_file_samples_as_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tie_word_embeddings with an lm_head.weight in the checkpoint too: one process ties the head to the embedding
    (as transformers does), and so does the last stage (it reads the embedding's tensor for its head, not the
    file's lm_head.weight). Where the head is also measured, one process's gradient of that one tensor sums the
    head's and the embedding's: the job then calibrates on rank 0 alone, and writes one process's file."""
    src = _model(tmp_path, tie_word_embeddings=True)
    config = json.loads((src / "config.json").read_text())
    headless = replace(DEFAULT_SCHEME, exclude=(*DEFAULT_SCHEME.exclude, "lm_head*"))
    same(staged(src, headless, 2, tmp_path / "a"), measure(src, config, headless))
    one, one_warn, got, warns = _one_and_two(tmp_path, src, monkeypatch)
    assert got[0][1] == one[1] and Path(got[0][0]).read_bytes() == Path(one[0]).read_bytes()
    assert got[1:] == [(None, None)] and one_warn == [] and warns == [[], []]


def test_a_first_stage_without_quantized_layers_calibrates_as_one_process(tmp_path: Path) -> None:
    """A scheme that quantizes none of the first stage's layers (exclude=model.layers.0.*): one process calibrates;
    the first stage's ``_StagedSensitivity`` asks autograd for the gradient of no tensor (``_wanted(None)`` == [])
    and fails: the distributed pack exits 4 where one process packs."""
    src = _model(tmp_path)
    config = json.loads((src / "config.json").read_text())
    scheme = replace(DEFAULT_SCHEME, exclude=(*DEFAULT_SCHEME.exclude, "model.layers.0.*"))
    one = measure(src, config, scheme)
    same(staged(src, scheme, 2, tmp_path), one)


def test_a_model_of_one_position_does_not_hang_the_stages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """max_position_embeddings 1: one process samples no step, measures nothing and packs without calibration
    (a warning). The stages: the last sends no token (no step) while the first waits for one final token per chunk
    after the loop; the last waits for the first's forward batch: both wait on each other (gloo: 30 minutes)."""
    src = _model(tmp_path, max_position_embeddings=1)
    one, one_warn, got, warns = _one_and_two(tmp_path, src, monkeypatch, seconds=5.0)
    assert one == (None, None) and one_warn
    assert not any(isinstance(g, _Hung) for g in got), got
    assert got[0] == (None, None) and warns[0] == one_warn, got


def test_a_model_the_forward_cannot_run_falls_back_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bos_token_id outside the vocabulary: one process's forward fails, CalibrationUnavailable, and an auto
    calibration packs without it (a warning). The first stage's IndexError becomes `_run_stage`'s OperationalError:
    the distributed pack exits 4 on every rank."""
    src = _model(tmp_path, bos_token_id=256)
    one, one_warn, got, warns = _one_and_two(tmp_path, src, monkeypatch)
    assert one == (None, None) and one_warn
    assert got[0] == (None, None) and warns[0] == one_warn, got


# -- 1. a stage's part file -------------------------------------------------------------------------------------------


def _merge_one_part(tmp_path: Path, moments: dict[str, torch.Tensor] | None) -> Any:
    """Stage 1's part, well formed but for ``moments`` (None: an empty part), merged by rank 0."""
    src = tmp_path / "src"
    if not src.exists():
        write_synth_model(src, hidden=128, inter=256, layers=2, vocab=256)
    config = json.loads((src / "config.json").read_text())
    stages = plan_of(config)
    names = targets(src, DEFAULT_SCHEME)
    shapes = moment_shapes(src, DEFAULT_SCHEME, names)
    good = {
        n: torch.eye(s[-1], dtype=torch.float64).expand(*s).clone() for n, s in shapes.items() if stages[1].holds(n)
    }
    part = {} if moments is None else {**good, **moments}
    sens = dict.fromkeys(part, 0.5)
    pipeline.write_part(tmp_path, stages[1], pipeline.StageMeasured(part, sens, None, torch.float32, "t"))
    first = pipeline.StageMeasured({}, {}, torch.zeros((1, 2), dtype=torch.long), torch.float32, "t")
    return pipeline.merge(tmp_path, stages, first, names, shapes, 0.0)


def plan_of(config: dict[str, Any]) -> list[pipeline.Stage]:
    stages = pipeline.plan(config, 2)
    assert stages is not None
    return stages


THEIRS = "model.layers.1.mlp.down_proj.weight"  # rows of 256: moments [2, 128, 128] (DEFAULT_SCHEME's blocks)


@pytest.mark.parametrize(
    "kind",
    ["nan", "inf", "negative diagonal", "narrower than the weight", "wider than the weight", "blocks of 64"],
)
def test_a_part_with_moments_no_stage_measures_is_refused(tmp_path: Path, kind: str) -> None:
    """Rank 0 takes another rank's part with only the header's form checked (F32, square or [k, w, w]): moments that
    are not finite, not second moments, or not of the weight's width are merged into the job's calibration file
    (then refused, at best, as the file's InvalidInput, exit 3, when a rank quantizes that tensor), where the part
    should be refused as that rank's error (OperationalError, exit 4)."""
    good = torch.eye(128, dtype=torch.float64).expand(2, 128, 128).clone()
    bad = {
        "nan": good.clone().fill_(float("nan")),
        "inf": good * float("inf"),
        "negative diagonal": -good,
        "narrower than the weight": good[:1],
        "wider than the weight": torch.eye(128, dtype=torch.float64).expand(7, 128, 128).clone(),
        "blocks of 64": torch.eye(64, dtype=torch.float64).expand(4, 64, 64).clone(),
    }[kind]
    with pytest.raises(OperationalError, match="rank 1"):
        _merge_one_part(tmp_path, {THEIRS: bad})


def test_a_part_missing_its_stages_tensors_is_refused(tmp_path: Path) -> None:
    """An empty (or partial) part is merged: the calibration file then has no moments for the last stage's layers,
    and the pack quantizes them without calibration, silently (one process measures every one)."""
    with pytest.raises(OperationalError, match="rank 1"):
        _merge_one_part(tmp_path, None)


# -- 2. the point-to-point link over gloo ----------------------------------------------------------------------------

_GLOO = r"""
import os, sys, torch
from uc_attest.pack.world import Link, World, joined
rank, port, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
world = World(rank, 2)
with joined(world):
    link = Link(world)
    if rank == 0:
        link.send(torch.ones(count, dtype=torch.bfloat16), 1, 7)
        try:
            link.settle()
        except Exception:
            pass
    else:
        try:
            got = link.recv((4,), torch.float32, 0, 7)  # 16 bytes
            print("RECEIVED", got.tolist(), flush=True)
        except Exception as exc:
            print("REFUSED", type(exc).__name__, exc, flush=True)
"""


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _two_ranks(script: str, arg: str) -> list[subprocess.Popen[str]]:
    """``script`` as ranks 0 and 1 of a gloo group on a free port (argv: rank, port, ``arg``)."""
    port = _free_port()
    return [
        subprocess.Popen(
            [sys.executable, "-c", script, str(rank), port, arg],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]


def _link_pair(count: int) -> subprocess.CompletedProcess[str]:
    """Rank 0 sends ``count`` bfloat16 values; rank 1 receives 4 float32 (16 bytes). Rank 1's result."""
    procs = _two_ranks(_GLOO, str(count))
    outs = [p.communicate(timeout=120)[0] for p in procs]
    return subprocess.CompletedProcess(procs[1].args, procs[1].returncode, outs[1], "")


def test_a_shorter_message_than_the_receiver_fixes_is_refused() -> None:
    """gloo's recv takes a message of at most the buffer's bytes: 8 bytes from a rank sampling in bfloat16 into
    the 16-byte buffer of a rank sampling in float32 (stages decide the sampling dtype each on its own node:
    ``load_stage``/``sampling_dtype``, never agreed) are received, the rest of the ``torch.empty`` buffer being
    whatever the memory held. ``Link.recv`` should refuse it (OperationalError)."""
    got = _link_pair(4)
    assert "RECEIVED" not in got.stdout, got.stdout
    assert "REFUSED OperationalError" in got.stdout, got.stdout


def test_a_longer_message_than_the_receiver_fixes_is_an_operational_error() -> None:
    """A longer message (a float32 stage sending to a bfloat16 one): gloo's enforce fails on its I/O thread and
    the receiving process aborts (SIGABRT, "terminate called after throwing an instance of 'gloo::EnforceNotMet'"),
    no one-line error, nothing of it cleaned up."""
    got = _link_pair(16)
    assert got.returncode == 0, (got.returncode, got.stdout[-500:])
    assert "REFUSED OperationalError" in got.stdout, got.stdout


_FAILING_STAGE = r"""
import os, sys, time, torch
from pathlib import Path
import uc_attest.calibration.pipeline as cp
from uc_attest.pack import pipelined
from uc_attest.pack.api import PackRequest, _Quiet
from uc_attest.pack.world import World, joined
from uc_attest.calibration.forward import Part

rank, port, scratch = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)

def measure(model, names, scheme, stage, link, progress):  # rank 1 sends, then fails; rank 0 waits on it
    if stage.rank == 1:
        link.send(torch.ones(4), 0, 1)
        raise ValueError("the forward failed here")
    link.recv((4,), torch.float32, 1, 1)
    link.recv((4,), torch.float32, 1, 2)  # never sent
    raise AssertionError("received what was never sent")

cp.measure_stage = measure
world = World(rank, 2)
stage = cp.Stage(rank, 2, Part(range(rank, rank + 1), embed=rank == 0, head=rank == 1))
with joined(world) as group:
    group.gather(None)
    t0 = time.monotonic()
    try:
        pipelined._run_stage(PackRequest(scratch, scratch / "out"), group, _Quiet(), stage, None, set(), scratch)
    except Exception as exc:
        print(f"rank {rank}: {type(exc).__name__}: {exc} after {time.monotonic() - t0:.1f} s", flush=True)
    if rank == 1:
        time.sleep(20)  # a long-lived caller of the API: its process does not exit
"""


def test_a_stage_that_fails_releases_the_ranks_waiting_on_it(tmp_path: Path) -> None:
    """A rank failing while the stages exchange cannot agree first: it drops its sends and leaves the process
    group, so a rank waiting for its tensors stops at once, even where the failed rank's process lives on."""
    procs = _two_ranks(_FAILING_STAGE, str(tmp_path))
    t0 = time.monotonic()
    out0 = procs[0].communicate(timeout=60)[0]
    waited = time.monotonic() - t0
    procs[1].kill()
    out1 = procs[1].communicate(timeout=60)[0]
    assert "rank 1: OperationalError: rank 1 (layers 1-1): the calibration failed: ValueError" in out1, out1
    assert "rank 0: OperationalError: a rank left the distributed pack" in out0, out0
    assert waited < 15, (waited, out0)  # not the 20 s rank 1's process lives on


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2),
    max_leaves=3,
)


@settings(max_examples=200, deadline=None)
@given(positions=_JSON, bos=_JSON)
def test_config_sampling_fields_of_any_json_value_never_crash_the_plan(positions: Any, bos: Any) -> None:
    """max_position_embeddings and bos_token_id are config.json's text: any JSON value plans (or declines to) and
    gives a sampling length, never an exception (a string length was an internal error, exit 70, in one process
    and on every rank)."""
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 4,
              "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "vocab_size": 32,
              "max_position_embeddings": positions, "bos_token_id": bos}  # fmt: skip
    stages = pipeline.plan(config, 2)
    cfg = llama_config(config)
    if cfg is not None:
        assert 1 <= sample_length(cfg, 128) <= 128
    if stages is not None:  # planned only where one process's own forward samples at least one step
        assert cfg is not None and isinstance(bos_token(cfg), int) and sample_length(cfg, 128) >= 2


def test_a_string_position_count_packs_with_a_warning_not_an_internal_error(tmp_path: Path) -> None:
    src = _model(tmp_path, max_position_embeddings="abc")
    warned: list[str] = []
    got = _moments_for(PackRequest(src, tmp_path / "out"), _Quiet(), warned.append, tmp_path)
    assert got == (None, None) and warned and "calibration skipped" in warned[0]
