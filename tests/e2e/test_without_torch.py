"""``pip install uc-attest`` has no PyTorch (issue 33): the deploy side runs without it, never importing it even
lazily, and a command that needs it says which extra in one line (exit 4, ``MissingExtra``).

Each command runs in a subprocess whose ``sitecustomize`` makes torch, transformers, safetensors and tokenizers
uninstalled (``No module named 'torch'``) and writes down every import of them that was tried."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import uc_attest as uc
from tests.conftest import RELEASE

VALIDATOR = "validator@bank.example"
#: The packages of the extras that the library touches: none of them is a dependency of ``pip install uc-attest``.
ABSENT = ("torch", "transformers", "safetensors", "tokenizers")
BLOCKER = """
import os, sys

class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {absent!r}:
            with open(os.environ["UC_TEST_ABSENT_LOG"], "a") as log:
                log.write(name + "\\n")
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _Absent())
"""


class NoTorch:
    """Runs the CLI as if ``pip install uc-attest`` alone had been run (or without the ``absent`` packages only);
    ``tried`` lists the imports it refused."""

    def __init__(self, root: Path, absent: tuple[str, ...] = ABSENT) -> None:
        site = root / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(BLOCKER.format(absent=absent))
        self.log = root / "absent.log"
        path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
        self.env = {**os.environ, "PYTHONPATH": path, "UC_TEST_ABSENT_LOG": str(self.log), "COLUMNS": "200"}

    def __call__(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "uc_attest.cli", *map(str, args)], capture_output=True,
                              text=True, env=self.env, timeout=300, check=False)  # fmt: skip

    def tried(self) -> list[str]:
        return self.log.read_text().split() if self.log.exists() else []


@pytest.fixture
def no_torch(tmp_path: Path) -> NoTorch:
    return NoTorch(tmp_path)


def test_the_blocker_makes_torch_absent(no_torch: NoTorch) -> None:
    r = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=no_torch.env,
                       timeout=120, check=False)  # fmt: skip
    assert r.returncode == 1 and "No module named 'torch'" in r.stderr
    assert no_torch.tried() == ["torch"]


def _policy(path: Path, instance: Any) -> Path:
    """Release and validator signers on the world's instance, a validation required."""
    signer = f"    - issuer: {instance.issuer}\n      identity: "
    path.write_text(
        f"version: 1\nname: no torch\ntrust: {{instance: {instance.dir}}}\nsigners:\n  release:\n{signer}{RELEASE}\n"
        f"  validator:\n{signer}{VALIDATOR}\nvalidation:\n  required: true\n"
    )
    return path


def test_the_deploy_side_runs_without_torch(world: dict[str, Any], no_torch: NoTorch, tmp_path: Path) -> None:
    """validate, verify (policy, signer, kept manifest, integrity, --runtime fast), gate, reconstruct, audit:
    each allowed, and not one import of torch tried."""
    pack = tmp_path / "pack"
    shutil.copytree(world["pack"], pack)
    shutil.copy(world["bundle"], tmp_path / "pack.sigstore.json")
    inst = world["inst"].dir
    policy = _policy(tmp_path / "policy.yaml", world["inst"])
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"evaluation_set": "synthetic", "metrics": {"one_minus_mean_cosine": 0.01}}))
    runs = [
        ("validate", pack, "--report", metrics, "--instance", inst, "--identity", VALIDATOR),
        ("verify", pack, "--policy", policy, "--runtime", "fast", "--json"),
        ("verify", pack, "--identity", RELEASE, "--instance", inst),
        ("verify", pack, "--manifest", world["kept"]),
        ("verify", pack, "--integrity-only"),
        ("gate", pack, "--policy", policy, "--runtime", "exact"),
        ("reconstruct", pack, "-o", tmp_path / "recon", "--policy", policy),
        ("audit", pack, "--instance", inst),
    ]
    for args in runs:
        r = no_torch(*args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
    verdict = json.loads(no_torch("verify", pack, "--policy", policy, "--json").stdout)
    assert verdict["ok"] and {"release.signer", "validation"} <= {c["rule"] for c in verdict["checks"]}
    assert (tmp_path / "recon" / "model.safetensors").is_file()
    assert no_torch.tried() == [], "imported on the no-torch path"


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("pack", "{src}", "-o", "{out}"), "uc-attest pack"),
        (("calibrate", "{src}", "--text", "{text}", "-o", "{out}"), "uc-attest calibrate"),
        (("verify", "{pack}", "--integrity-only", "--rebuild-from", "{src}"), "uc-attest verify --rebuild-from"),
        (("embed", "{pack}", "--manifest", "{kept}", "--text", "a"), "uc-attest embed"),
        (("gate", "{pack}", "--policy", "{policy}", "--runtime", "reference"), "uc-attest gate --runtime reference"),
    ],
)
def test_a_command_that_needs_torch_names_the_extra(
    world: dict[str, Any],
    no_torch: NoTorch,
    tmp_path: Path,
    args: tuple[str, ...],
    command: str,
) -> None:
    text = tmp_path / "text.txt"
    text.write_text("one sample\n")
    where = {"src": world["root"] / "src", "out": tmp_path / "out", "pack": world["pack"], "text": text,
             "kept": world["kept"], "policy": _policy(tmp_path / "policy.yaml", world["inst"])}  # fmt: skip
    r = no_torch(*(a.format(**{k: str(v) for k, v in where.items()}) for a in args))
    assert r.returncode == uc.EXIT_OPERATIONAL == 4, r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"error: {command} needs PyTorch: pip install 'uc-attest[torch]'"
    assert "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "out").exists()
    assert "torch" in no_torch.tried()


def test_a_rebuild_without_torch_is_refused_before_anything_is_checked(
    world: dict[str, Any], no_torch: NoTorch, tmp_path: Path
) -> None:
    """verify --rebuild-from checked the signatures, the log and every tensor, then failed on torch's import:
    now it reads nothing first (a release bundle that is not there is never looked for: exit 4, not 3)."""
    policy = _policy(tmp_path / "policy.yaml", world["inst"])
    src = world["root"] / "src"
    r = no_torch("verify", world["pack"], "--policy", policy, "--bundle", tmp_path / "missing.sigstore.json",
                 "--rebuild-from", src, "--json")  # fmt: skip
    assert r.returncode == 4 and "Traceback" not in r.stderr, r.stderr
    assert json.loads(r.stdout) == {"ok": False, "error": "MissingExtra", "module": "torch", "extra": "torch",
                                    "message": "uc-attest verify --rebuild-from needs PyTorch: pip install "
                                    "'uc-attest[torch]'"}  # fmt: skip
    r = no_torch("verify", world["pack"], "--integrity-only", "--rebuild-from", src, "--json")
    assert r.returncode == 4 and json.loads(r.stdout)["error"] == "MissingExtra", r.stdout  # no tensor verdict
    code = (
        "import uc_attest as uc\n"
        "try:\n"
        f"    uc.check_rebuild({str(world['pack'])!r}, {str(src)!r})\n"
        "except uc.MissingExtra as exc:\n"
        "    print(exc.message)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=no_torch.env, timeout=120,
                       check=False)  # fmt: skip
    assert r.stdout.strip() == "a rebuild needs PyTorch: pip install 'uc-attest[torch]'", r.stdout + r.stderr


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("generate", "{pack}", "--manifest", "{missing}", "--prompt-ids", "1"), "uc-attest generate"),
        (("embed", "{pack}", "--manifest", "{missing}", "--text", "a"), "uc-attest embed"),
    ],
)
def test_serving_without_transformers_names_what_to_install(
    world: dict[str, Any], tmp_path: Path, args: tuple[str, ...], command: str
) -> None:
    """With PyTorch but not transformers, generate/embed refuse in one line (exit 4, not a usage error after the
    signature checks): before any work, so a kept manifest that is not there is never read (exit 3 otherwise)."""
    no_transformers = NoTorch(tmp_path, absent=("transformers",))
    where = {"pack": world["pack"], "missing": tmp_path / "missing.json"}
    r = no_transformers(*(a.format(**{k: str(v) for k, v in where.items()}) for a in args))
    assert r.returncode == uc.EXIT_OPERATIONAL, r.stderr
    assert r.stderr.strip().splitlines() == [f"error: {command} needs transformers: pip install 'uc-attest[bench]'"]
    assert "Traceback" not in r.stderr + r.stdout
    assert set(no_transformers.tried()) == {"transformers"}


def test_a_serving_value_is_built_without_torch(no_torch: NoTorch) -> None:
    """uc.Serving (what generate/embed take) is made where only ``pip install uc-attest`` is: its device and mode
    parsed into members, anything else refused in the words load_model refuses it in."""
    code = (
        "import uc_attest as uc\n"
        "s = uc.Serving('cuda', 'exact', cache=True)\n"
        "print(s.device is uc.Device.CUDA, s.mode is uc.Mode.EXACT, s.cache, uc.Serving().device is uc.Device.CPU)\n"
        "for bad in ({'device': 'gpu'}, {'mode': 'turbo'}):\n"
        "    try:\n"
        "        uc.Serving(**bad)\n"
        "    except uc.UsageError as exc:\n"
        "        print(exc.message)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=no_torch.env, timeout=120,
                       check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "True True True True",
        "device must be auto, cpu or cuda, got 'gpu'",
        "mode must be one of reference, exact, fast; got 'turbo'",
    ]
    assert no_torch.tried() == []


def test_json_names_the_error_and_the_extra(world: dict[str, Any], no_torch: NoTorch, tmp_path: Path) -> None:
    r = no_torch("pack", world["root"] / "src", "-o", tmp_path / "out", "--json")
    assert r.returncode == 4 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    out = json.loads(r.stdout)
    assert out == {"ok": False, "error": "MissingExtra", "module": "torch", "extra": "torch",
                   "message": "uc-attest pack needs PyTorch: pip install 'uc-attest[torch]'"}  # fmt: skip


def test_missing_extra_is_only_a_missing_extras_module() -> None:
    assert uc.MissingExtra.of(ModuleNotFoundError("No module named 'torch'", name="torch"), "x") is not None
    assert uc.MissingExtra.of(ModuleNotFoundError("x", name="torch.distributed"), "x") is not None
    assert uc.MissingExtra.of(ModuleNotFoundError("No module named 'gguf'", name="gguf"), "x") is None
    assert uc.MissingExtra.of(ImportError("cannot import name 'x' from 'torch'", name="torch"), "x") is None
    assert uc.MissingExtra.of(ValueError("torch"), "x") is None
    err = uc.MissingExtra.of(ModuleNotFoundError(name="torch"), "write_pack")
    assert err is not None and err.message == "write_pack needs PyTorch: pip install 'uc-attest[torch]'"
    assert isinstance(err, uc.OperationalError) and err.exit_code == uc.EXIT_OPERATIONAL
    err = uc.MissingExtra.of(ModuleNotFoundError(name="transformers.models"), "uc-attest embed")
    assert err is not None and err.message == "uc-attest embed needs transformers: pip install 'uc-attest[bench]'"
    told = uc.MissingExtra.of(uc.MissingExtra("a rebuild", "torch"), "uc-attest verify")  # the library's, retold
    assert told is not None and told.message == "uc-attest verify needs PyTorch: pip install 'uc-attest[torch]'"
