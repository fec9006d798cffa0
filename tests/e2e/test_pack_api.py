"""One pack pipeline whichever door: ``uc_attest.write_pack(src, out)`` and ``uc-attest pack src -o out`` write
the same bytes; the CLI shows the stages of the real work, and its help names each flag once with its default."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import uc_attest as uc
from tests.conftest import REPO, make_model, shared_path


def cli(*args: str | Path, threads: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.run([sys.executable, "-m", "uc_attest.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300, check=False)  # fmt: skip


def _files(pack: Path) -> dict[str, bytes]:
    return {p.relative_to(pack).as_posix(): p.read_bytes() for p in sorted(pack.rglob("*")) if p.is_file()}


def test_library_and_cli_defaults_give_the_same_pack(tmp_path: Path) -> None:
    """A model transformers cannot run: both skip calibration (with the same warning) and allocate the same."""
    src = make_model(tmp_path / "src")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        res = uc.write_pack(src, tmp_path / "lib")
    assert any("calibration skipped" in str(w.message) for w in seen)
    r = cli("pack", src, "-o", tmp_path / "cli")
    assert r.returncode == 0, r.stderr
    assert "calibration skipped" in r.stderr
    assert _files(tmp_path / "lib") == _files(tmp_path / "cli")
    assert "allocation" in res.manifest.scheme
    # the plain pack is another pack, asked for explicitly on both doors
    plain = uc.write_pack(src, tmp_path / "plain", uc.PACK_SCHEME, calibration=None, allocation=None)
    r = cli("pack", src, "-o", tmp_path / "cli-plain", "--no-calibration", "--no-allocation")
    assert r.returncode == 0, r.stderr
    assert _files(tmp_path / "plain") == _files(tmp_path / "cli-plain") != _files(tmp_path / "lib")
    assert "allocation" not in plain.manifest.scheme


def test_library_and_cli_defaults_give_the_same_calibrated_pack(tmp_path: Path) -> None:
    """stories260K (a causal LM transformers runs): calibration and allocation really happen, byte for byte."""
    pytest.importorskip("transformers", reason="transformers is not installed (pip install 'uc-attest[bench]')")
    bin_path = shared_path("models", "stories260K", "stories260K.bin")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import stories

    src = stories.convert(bin_path, tmp_path / "src", hf_layout=True)
    res = uc.write_pack(src, tmp_path / "lib", device="cpu")
    assert res.manifest.calibration is not None and res.manifest.calibration.method == "self-sampled"
    assert res.manifest.scheme["allocation"]["method"] == "uc-alloc/2"
    # the same thread budget: the calibration records it (its forward passes run on torch's pool; its moment
    # products do not depend on it, test_default_calibration.py)
    r = cli("pack", src, "-o", tmp_path / "cli")
    assert r.returncode == 0, r.stderr
    assert _files(tmp_path / "lib") == _files(tmp_path / "cli")
    # not a terminal: one plain line per stage, then each stage's time; no tensor is named
    lines = r.stderr.splitlines()
    assert [ln for ln in lines if ln.startswith("packing: ")] == [
        "packing: checking", "packing: calibration", "packing: allocation", "packing: quantization"]  # fmt: skip
    stages = next(ln for ln in lines if ln.startswith("stages: "))
    assert all(f"{s} " in stages for s in ("checking", "calibration", "allocation", "quantization")), stages
    assert ".weight" not in r.stderr and ".bias" not in r.stderr


def test_the_progress_bar_runs_over_the_real_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal: one bar whose stages each have a total (it reaches 100 %), tensors shown with their size."""
    from rich.console import Console

    from uc_attest.cli import render

    buf = io.StringIO()
    monkeypatch.setattr(render, "err", Console(file=buf, force_terminal=True, width=200, markup=False))
    with render.progress("packing") as bar:
        bar.stage("calibration")
        for i in range(1, 5):
            bar.update(i, 4, f"batch {i} of 4")
        bar.stage("quantization")
        bar.update(600, 1000, "a.weight (600 weights)")
        bar.update(1000, 1000, "[/x].weight (400 weights)")  # a name with markup is data
    out = buf.getvalue()
    assert "packing: quantization [/x].weight (400 weights)" in out and "100%" in out
    assert [name for name, _ in bar.timings()] == ["calibration", "quantization"]
    assert all(seconds >= 0 for _, seconds in bar.timings())


def test_help_names_each_flag_once_with_its_default() -> None:
    r = cli("pack", "--help")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    for flag in ("--no-calibration", "--no-allocation", "--no-overrides", "--calibration-required"):
        assert flag in text
    assert "--no-no-" not in text and "--calibration-required /" not in text
    assert "[default: 5.3]" in text and f"[default: {uc.PACK_SCHEME.id}]" in text
