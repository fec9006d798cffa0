"""A pack split over torchrun ranks (gloo on CPU) is the one-process pack, byte for byte; a rank that fails or
is killed fails the whole pack and leaves nothing (issue 34, docs/distributed.md).

Real torchrun subprocesses, as a release pipeline runs them. The calibration record names the thread budget its
forward passes ran on: rank 0 calibrates on its node's cores (min(cores, ranks): torchrun gives each rank one
thread), so the one-process packs compared run with that budget.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import uc_attest as uc
from tests.conftest import REPO, make_model, shared_path
from uc_attest.core.stfile import SafetensorsFile
from uc_attest.core.threads import available_cores
from uc_attest.pack.reader import Pack
from uc_attest.pack.world import World, assign
from uc_attest.testing.synth import write_synth_model

TORCHRUN = Path(sys.executable).parent / "torchrun"
CLI = Path(sys.executable).parent / "uc-attest"
pytestmark = pytest.mark.skipif(not TORCHRUN.is_file(), reason="torchrun is not installed beside this Python")


def one_process(src: Path, out: Path, *args: str, ranks: int = 1) -> subprocess.CompletedProcess[str]:
    """The one-process pack with the thread budget a job of ``ranks`` ranks on this machine calibrates with
    (rank 0 takes its node's cores: ``min(cores, ranks)``; each rank has one thread)."""
    env = {**os.environ, "UC_ATTEST_THREADS": str(min(available_cores(), ranks))}
    return subprocess.run([str(CLI), "pack", str(src), "-o", str(out), "--device", "cpu", "--json", *args],
                          capture_output=True, text=True, timeout=600, check=False, env=env)  # fmt: skip


def torchrun(ranks: int, src: Path, out: Path, *args: str, **kw: object) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("UC_ATTEST_THREADS", "RANK", "WORLD_SIZE")}
    cmd = [str(TORCHRUN), "--standalone", "--nproc-per-node", str(ranks), "--no-python", str(CLI), "pack",
           str(src), "-o", str(out), "--device", "cpu", "--json", *args]  # fmt: skip
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)  # type: ignore[call-overload, no-any-return]


def run(ranks: int, src: Path, out: Path, *args: str) -> tuple[int, str, str]:
    p = torchrun(ranks, src, out, *args)
    stdout, stderr = p.communicate(timeout=600)
    return p.returncode, stdout, stderr


def same_files(a: Path, b: Path) -> None:
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob("*"))
    assert names == sorted(p.relative_to(b).as_posix() for p in b.rglob("*"))
    for name in names:
        if (a / name).is_file():
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def leftovers(parent: Path, name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if name in p.name)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synth_model(tmp_path_factory.mktemp("dist") / "src")


def test_assignment_depends_on_the_model_only() -> None:
    sizes = {"a": 10, "b": 10, "c": 30, "d": 5, "e": 1}
    assert assign(sizes, 1) == dict.fromkeys(sizes, 0)
    two = assign(sizes, 2)
    assert two == assign(dict(reversed(sizes.items())), 2)  # any order of the names: the same split
    assert two == {"c": 0, "a": 1, "b": 1, "d": 1, "e": 1}  # largest first, each to the rank with fewest weights
    three = assign(sizes, 3)
    assert sorted(set(three.values())) == [0, 1, 2]


@pytest.mark.parametrize(
    ("env", "want"),
    [({}, World()), ({"RANK": "1", "WORLD_SIZE": "3"}, World(1, 3)), ({"RANK": "0", "WORLD_SIZE": "1"}, World())],
)
def test_world_from_torchrun_environment(env: dict[str, str], want: World) -> None:
    assert World.from_env(env) == want


@pytest.mark.parametrize(
    "env",
    [{"RANK": "2", "WORLD_SIZE": "2"}, {"RANK": "x", "WORLD_SIZE": "2"}, {"RANK": "0"},
     {"RANK": "0", "WORLD_SIZE": "²"}, {"RANK": "\u0661", "WORLD_SIZE": "\u0662"}, {"RANK": "0", "WORLD_SIZE": "0" * 5000 + "2"}],
)  # fmt: skip
def test_a_malformed_torchrun_environment_is_refused(env: dict[str, str]) -> None:
    from uc_attest.errors import UsageError

    with pytest.raises(UsageError, match="torchrun environment"):
        World.from_env(env)


def test_two_ranks_write_the_one_process_pack(small: Path, tmp_path: Path) -> None:
    ref = one_process(small, tmp_path / "one", ranks=2)
    assert ref.returncode == 0, ref.stderr
    rc, out, err = run(2, small, tmp_path / "two")
    assert rc == 0, err
    same_files(tmp_path / "one", tmp_path / "two")
    report = json.loads(out)  # one document: rank 0 reports for the job, the other ranks print nothing
    assert report["ranks"] == 2 and report["root"] == json.loads(ref.stdout)["root"]
    assert leftovers(tmp_path, ".uc-parts-") == []


@pytest.mark.parametrize("ranks", [2, 3])
def test_the_ranks_write_the_shards_of_a_sharded_model(ranks: int, tmp_path: Path) -> None:
    """Each rank writes the pack's shards whose source shards it hashed, rank 0 moves them in: the one-process
    pack's bytes, with 3 shards over 2 ranks (uneven) and over 3."""
    src = make_model(tmp_path / "src", shards=3)
    ref = one_process(src, tmp_path / "one", ranks=ranks)
    assert ref.returncode == 0, ref.stderr
    rc, out, err = run(ranks, src, tmp_path / "many")
    assert rc == 0, err
    same_files(tmp_path / "one", tmp_path / "many")
    assert json.loads(out)["root"] == json.loads(ref.stdout)["root"]
    assert leftovers(tmp_path, ".uc-parts-") == []


def test_a_missing_shard_fails_every_rank_with_nothing_written(small: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_bytes((small / "config.json").read_bytes())
    index = {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors"}}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    rc, _out, err = run(2, src, tmp_path / "out", "--no-calibration")
    assert rc != 0, err
    assert "exitcode  : 3" in err  # the ranks exit 3 (invalid input); torchrun itself exits 1
    assert "model-00001-of-00002.safetensors" in err
    assert "uc_attest/" not in err  # one line per rank, no traceback of ours (torchrun prints its own)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path, ".uc-parts-") == []


@pytest.mark.slow
@pytest.mark.parametrize("ranks", [2, 3])
def test_default_pack_of_stories260k_is_the_one_process_pack(ranks: int, tmp_path: Path) -> None:
    bin_path = shared_path("models", "stories260K", "stories260K.bin")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import stories

    src = stories.convert(bin_path, tmp_path / "src", hf_layout=True)
    ref = one_process(src, tmp_path / "one", ranks=ranks)
    assert ref.returncode == 0, ref.stderr
    rc, _out, err = run(ranks, src, tmp_path / "many")
    assert rc == 0, err
    same_files(tmp_path / "one", tmp_path / "many")


@pytest.mark.slow
def test_three_ranks_uneven_split_default_pack(tmp_path: Path) -> None:
    src = write_synth_model(tmp_path / "src", hidden=256, inter=688, layers=3)
    ref = one_process(src, tmp_path / "one", ranks=3)
    assert ref.returncode == 0, ref.stderr
    rc, _out, err = run(3, src, tmp_path / "three")
    assert rc == 0, err
    same_files(tmp_path / "one", tmp_path / "three")


def _rank_pid(rank: int, parent: int) -> int | None:
    """The pid of torchrun's worker ``rank`` (a child of its agent ``parent``)."""
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text().rsplit(")", 1)[1].split()
            env = (p / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == parent and f"RANK={rank}".encode() in env:
            return int(p.name)
    return None


@pytest.mark.slow
def test_a_killed_rank_leaves_nothing(tmp_path: Path) -> None:
    src = write_synth_model(tmp_path / "src", hidden=512, inter=1376, layers=6)
    p = torchrun(2, src, tmp_path / "out", "--no-calibration", "--no-allocation")
    deadline = time.monotonic() + 120
    killed = False
    while time.monotonic() < deadline and p.poll() is None:
        if list(tmp_path.glob(".out.uc-parts-*/parts/*.safetensors")):  # the ranks are quantizing
            pid = _rank_pid(1, p.pid)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.005)
    _out, err = p.communicate(timeout=300)
    if not killed:
        pytest.skip("the pack finished before a rank could be killed (a faster machine: use a larger model)")
    assert p.returncode != 0
    assert "a rank left the distributed pack" in err or "terminated" in err
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path, "out") == []


@pytest.mark.slow
def test_a_rank_killed_in_the_pipelined_calibration_stops_every_rank(tmp_path: Path) -> None:
    """The stages exchange activations point-to-point (no agreement step): the ranks waiting on a killed one stop
    at once, and nothing is left."""
    src = write_synth_model(tmp_path / "src", hidden=512, inter=1376, layers=4, vocab=4096)
    p = torchrun(2, src, tmp_path / "out")
    deadline, killed = time.monotonic() + 120, False
    while time.monotonic() < deadline and p.poll() is None:
        scratch = list(tmp_path.glob(".out.uc-parts-*"))
        if scratch and not (scratch[0] / "parts").exists():  # rank 0's scratch directory made: calibrating
            time.sleep(1.0)  # the stages built, exchanging
            pid = _rank_pid(1, p.pid)
            if pid is not None and not (scratch[0] / "parts").exists():
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.005)
    _out, err = p.communicate(timeout=120)  # bounded: no rank waits out the 30-minute step timeout
    if not killed:
        pytest.skip("the calibration finished before a rank could be killed (a faster machine: use a larger model)")
    assert p.returncode != 0
    assert "a rank left the distributed pack" in err or "terminated" in err
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path, "out") == []


_AGREE = """
import json, os, sys
from uc_attest.errors import InvalidInput, UcAttestError
from uc_attest.pack.world import World, joined
world = World.from_env()
with joined(world) as group:
    assert group.gather({"rank": world.rank}) == [{"rank": r} for r in range(world.size)]
    assert group.from_leader("from-0" if world.leader else "other") == "from-0"
    def fail_on_one():
        if world.rank == 1:
            raise InvalidInput("tensor 'w' is bad on rank 1", tensor="w")
        return "ok"
    try:
        group.step(fail_on_one)
        row = {"rank": world.rank, "raised": None}
    except UcAttestError as exc:
        row = {"rank": world.rank, "raised": type(exc).__name__, "code": exc.exit_code, "msg": str(exc)}
    os.write(1, (json.dumps(row) + "\\n").encode())  # one write: the ranks' lines never interleave
"""


def test_one_failing_rank_fails_every_rank_with_its_exit_code(tmp_path: Path) -> None:
    script = tmp_path / "agree.py"
    script.write_text(_AGREE)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    r = subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", "3", str(script)], capture_output=True,
                       text=True, timeout=300, check=False, env=env, cwd=REPO)  # fmt: skip
    assert r.returncode == 0, r.stderr
    got: dict[int, dict[str, object]] = {}
    for line in r.stdout.splitlines():
        d = json.loads(line)
        got[d["rank"]] = d
    assert got[1] == {"rank": 1, "raised": "InvalidInput", "code": 3, "msg": "tensor 'w' is bad on rank 1"}
    for rank in (0, 2):  # the others name the rank that failed, and exit as it does
        assert got[rank]["raised"] == "RankFailed" and got[rank]["code"] == 3
        assert got[rank]["msg"] == "rank 1 failed: tensor 'w' is bad on rank 1"


_REBUILD = """
import json, os, sys
from pathlib import Path
import uc_attest as uc
v = uc.check_rebuild(Path(sys.argv[1]), Path(sys.argv[2]), "cpu")
checks = {c["rule"]: c for c in v.to_dict()["checks"] if c["rule"].startswith("rebuild.")}
row = {"rank": int(os.environ["RANK"]), "ok": v.ok, "match": checks["rebuild.match"], "findings": v.to_dict()["findings"]}
os.write(1, (json.dumps(row) + "\\n").encode())
"""


def test_a_distributed_rebuild_gives_one_verdict_on_every_rank(small: Path, tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    assert one_process(small, pack, "--no-calibration").returncode == 0
    script = tmp_path / "rebuild.py"
    script.write_text(_REBUILD)

    def rebuild(source: Path) -> dict[int, dict[str, object]]:
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
        r = subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", "2", str(script), str(pack),
                            str(source)], capture_output=True, text=True, timeout=300, check=False, env=env)  # fmt: skip
        assert r.returncode == 0, r.stderr
        rows = [json.loads(line) for line in r.stdout.splitlines()]
        return {row["rank"]: row for row in rows}

    good = rebuild(small)
    assert good[0]["ok"] and good[1]["ok"]
    src = tmp_path / "changed"  # a source with one tensor changed: the rebuild must name it, on every rank
    shutil.copytree(small, src)
    with SafetensorsFile(src / "model.safetensors") as f:
        name = next(n for n in f.infos if n.endswith("layers.1.mlp.down_proj.weight"))
        at = f.data_start + f.infos[name].begin
    raw = bytearray((src / "model.safetensors").read_bytes())
    raw[at : at + 64] = bytes(64)
    (src / "model.safetensors").write_bytes(bytes(raw))
    bad = rebuild(src)
    assert not bad[0]["ok"] and not bad[0]["match"]["ok"]
    assert bad[0]["findings"] == bad[1]["findings"]  # rank 0's verdict, on both ranks
    assert "rebuild: " in json.dumps(bad[0]["findings"]) and name in json.dumps(bad[0]["findings"])


_VERIFY = """
import json, os, sys
from pathlib import Path
import uc_attest as uc
v = uc.verify(Path(sys.argv[1]), uc.Anchor.pack_itself(), tensors=uc.TensorCheck(split=True))
row = {"rank": int(os.environ["RANK"]), "ok": v.ok, "tensors": v.tensors_checked, "findings": v.to_dict()["findings"]}
os.write(1, (json.dumps(row) + "\\n").encode())
"""


def test_a_verify_split_over_ranks_gives_every_finding_on_every_rank(tmp_path: Path) -> None:
    """Under torchrun each rank reconstructs and hashes its share of the tensors (largest first, by bytes) and
    every rank returns the one check of them all: tampered tensors on two ranks are both named, on both."""
    src = make_model(tmp_path / "src", shards=3)
    pack = tmp_path / "pack"
    assert one_process(src, pack, "--no-calibration").returncode == 0
    script = tmp_path / "verify.py"
    script.write_text(_VERIFY)

    def verify() -> dict[int, dict[str, Any]]:
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
        r = subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", "2", str(script), str(pack)],
                           capture_output=True, text=True, timeout=300, check=False, env=env)  # fmt: skip
        assert r.returncode == 0, r.stderr
        return {row["rank"]: row for row in map(json.loads, r.stdout.splitlines())}

    alone = uc.verify(pack, uc.Anchor.pack_itself())
    good = verify()
    assert good[0]["ok"] and good[1]["ok"] and good[0]["tensors"] == good[1]["tensors"] == alone.tensors_checked
    with Pack(pack) as opened:  # the rule check_pack splits by: the reconstructed tensors' bytes
        owner = assign({n: t.nbytes for n, t in opened.tensors.items()}, 2)
        stored = {n: t.shard for n, t in opened.tensors.items() if t.quant is not None}
    flipped = [next(n for n in sorted(stored) if owner[n] == rank) for rank in (0, 1)]
    for name in flipped:  # a code byte of one quantized tensor of each rank's share
        shard = pack / stored[name]
        with SafetensorsFile(shard) as f:
            at = f.data_start + f.infos[name + ".uc_codes"].begin
        raw = bytearray(shard.read_bytes())
        raw[at] ^= 0xFF
        shard.write_bytes(bytes(raw))
    bad = verify()
    assert not bad[0]["ok"] and bad[0]["findings"] == bad[1]["findings"]
    named = json.dumps(bad[0]["findings"])
    assert all(name in named for name in flipped)
    assert sorted(json.dumps(f) for f in bad[0]["findings"]) == sorted(
        json.dumps(f) for f in uc.verify(pack, uc.Anchor.pack_itself()).to_dict()["findings"]
    )  # the findings of one process, every one


def test_a_verify_in_a_torchrun_environment_checks_alone_unless_told_to_split(small: Path, tmp_path: Path) -> None:
    """A process whose environment names it one rank of two (a subprocess of a torchrun job, a job where one rank
    verifies) checks alone: it waited for the other rank (30 minutes, SIGTERM ignored) before ``--split-over-ranks``
    made the split opt-in (found by review)."""
    pack = tmp_path / "pack"
    assert one_process(small, pack, "--no-calibration").returncode == 0
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517"}
    r = subprocess.run([str(CLI), "verify", str(pack), "--integrity-only"], capture_output=True, text=True,
                       timeout=120, check=False, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
