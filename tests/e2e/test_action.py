"""The composite action as it ships: lint (actionlint, zizmor, JSON schema) and a local run of its steps.

The runner below reads action.yml, substitutes the `${{ ... }}` expressions the action uses,
and runs each step's `run:` with bash and the step's `env:`, exactly as a runner would — so the
YAML that ships is the YAML that ran (with UC_ATTEST_USE_PATH=1 instead of installing).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import make_model
from tests.integration.conftest import Running, start_instance

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} not installed (pip install -e '.[dev]')")
    return str(path)


def test_action_and_workflows_pass_actionlint_zizmor_and_schema() -> None:
    workflows = sorted(str(p) for p in (REPO / ".github" / "workflows").glob("*.yml"))
    r = subprocess.run([tool("actionlint"), *workflows], capture_output=True, text=True, cwd=REPO, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(
        [tool("zizmor"), "--offline", "action.yml", ".github/workflows"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert r.returncode == 0 and "No findings" in r.stdout + r.stderr, r.stdout + r.stderr
    for schema, files in (("vendor.github-actions", ["action.yml"]), ("vendor.github-workflows", workflows)):
        r = subprocess.run(
            [tool("check-jsonschema"), "--builtin-schema", schema, *files],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        assert r.returncode == 0, r.stdout + r.stderr


def run_action(inputs: dict[str, str], tmp: Path) -> tuple[int, dict[str, str], str, str]:
    """Run action.yml's steps; returns (exit code, action outputs, job summary, stderr)."""
    spec = yaml.safe_load((REPO / "action.yml").read_text())
    values = {k: str(v.get("default", "")) for k, v in spec["inputs"].items()} | inputs
    runner_temp = tmp / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    summary = tmp / "summary.md"
    summary.write_text("")
    step_outputs: dict[str, dict[str, str]] = {}

    def expr(m: re.Match[str]) -> str:
        e = m.group(1)
        if e.startswith("inputs."):
            return values[e[7:]]
        if e == "runner.temp":
            return str(runner_temp)
        if e == "github.action_path":
            return str(REPO)
        sm = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", e)
        if sm:
            return step_outputs.get(sm.group(1), {}).get(sm.group(2), "")
        raise AssertionError(f"expression not supported by the local runner: {e}")

    stderr = ""
    for i, step in enumerate(spec["runs"]["steps"]):
        out_file = tmp / f"output-{i}"
        out_file.write_text("")
        env = {
            **os.environ,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "UC_ATTEST_USE_PATH": "1",
            "GITHUB_ACTION_PATH": str(REPO),
            "GITHUB_OUTPUT": str(out_file),
            "GITHUB_STEP_SUMMARY": str(summary),
            "RUNNER_TEMP": str(runner_temp),
        }
        env |= {k: EXPR.sub(expr, str(v)) for k, v in step.get("env", {}).items()}
        assert step["shell"] == "bash"
        r = subprocess.run(
            ["bash", "-e", "-c", step["run"]],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp,
            timeout=600,
            check=False,
        )
        stderr += r.stdout + r.stderr
        if "id" in step:
            step_outputs[step["id"]] = dict(line.split("=", 1) for line in out_file.read_text().splitlines() if line)
        if r.returncode:
            return r.returncode, {}, summary.read_text(), stderr
    outputs = {k: EXPR.sub(expr, v["value"]) for k, v in spec["outputs"].items()}
    return 0, outputs, summary.read_text(), stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("action")
    inst = start_instance(root / "inst")
    yield root, inst
    inst.server.stop()


def test_pack_and_attest_then_verify_through_the_action(served: tuple[Path, Running], tmp_path: Path) -> None:
    _, inst = served
    src = make_model(tmp_path / "model")
    rc, out, summary, log = run_action(
        {
            "mode": "pack-and-attest",
            "source": str(src),
            "output": str(tmp_path / "p"),
            "device": "cpu",
            "instance": str(inst.dir),
        },
        tmp_path,
    )
    assert rc == 0, log
    assert Path(out["bundle-path"]).is_file() and out["manifest-root"].startswith("sha256:")
    assert Path(out["oms-signature-path"]).is_file()  # the OpenSSF Model Signing signature of the pack
    assert out["log-index"].isdigit() and "manifest root" in summary
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\nname: action test\ntrust: {{instance: {inst.dir}}}\nsigners:\n  release:\n"
        f"    - issuer: {inst.issuer}\n      identity: release-bot@uc-attest.dev\n"
    )
    rc, out, summary, log = run_action(
        {"mode": "verify", "pack": str(tmp_path / "p"), "policy": str(policy), "instance": str(inst.dir)}, tmp_path
    )
    assert rc == 0, log
    assert out["verified"] == "true" and json.loads(Path(out["report-path"]).read_text())["ok"]
    assert "ALLOWED" in summary and "| release.signer | pass |" in summary
    # A tampered pack: the step fails with the CLI's exit code and the failing checks in the summary.
    shutil.copytree(tmp_path / "p", tmp_path / "t")
    shutil.copy(out_bundle := Path(tmp_path / "p.sigstore.json"), tmp_path / "t.sigstore.json")
    data = bytearray((tmp_path / "t" / "model.safetensors").read_bytes())
    data[-40] ^= 1
    (tmp_path / "t" / "model.safetensors").write_bytes(bytes(data))
    rc, out, summary, log = run_action(
        {"mode": "verify", "pack": str(tmp_path / "t"), "policy": str(policy), "instance": str(inst.dir)}, tmp_path
    )
    assert rc == 1 and "DENIED" in summary and "**FAIL**" in summary and out_bundle.exists()


@pytest.mark.parametrize(
    ("inputs", "needle"),
    [
        ({"mode": "pack-and-attest", "output": "x"}, "input 'source' is required"),
        ({"mode": "verify", "pack": "p"}, "input 'policy' is required"),
        ({"mode": "verify", "pack": "p", "policy": "x", "source": "s"}, "input 'source' belongs to mode"),
        ({"mode": "sign"}, "input 'mode' must be"),
    ],
)
def test_bad_inputs_fail_early_naming_the_input(tmp_path: Path, inputs: dict[str, str], needle: str) -> None:
    rc, _, _, log = run_action(inputs, tmp_path)
    assert rc == 2 and needle in log


def test_push_to_a_registry_and_verify_from_it(
    served: tuple[Path, Running], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.integration.test_oci import REGISTRY, start_registry

    if REGISTRY is None:
        pytest.skip("Debian docker-registry is not installed")
    _, inst = served
    (tmp_path / "registry").mkdir()
    proc, host = start_registry(tmp_path / "registry")
    monkeypatch.setenv("UC_ATTEST_PLAIN_HTTP", "1")  # the registry is on loopback
    try:
        rc, out, summary, log = run_action({"mode": "pack-and-attest", "source": str(make_model(tmp_path / "m")),
                                            "output": str(tmp_path / "p"), "device": "cpu", "instance": str(inst.dir),
                                            "push-to": f"oci://{host}/models/m:v1"}, tmp_path)  # fmt: skip
        assert rc == 0, log
        assert out["pushed-digest"].startswith("sha256:") and "| pushed |" in summary
        policy = tmp_path / "policy.yaml"
        policy.write_text(
            f"version: 1\nname: oci\ntrust: {{instance: {inst.dir}}}\nsigners:\n  release:\n"
            f"    - issuer: {inst.issuer}\n      identity: release-bot@uc-attest.dev\n"
        )
        rc, out, summary, log = run_action({"mode": "verify", "pack": f"oci://{host}/models/m@{out['pushed-digest']}",
                                            "policy": str(policy), "instance": str(inst.dir)}, tmp_path)  # fmt: skip
        assert rc == 0, log
        assert out["verified"] == "true" and "| oci.pull | pass |" in summary
    finally:
        proc.terminate()
        proc.wait(10)
