"""`pack` calibrates by default, records how, and allocates bits by measurement — deterministically.

stories260K (../shared, converted to the transformers layout) is the causal LM: calibration sequences
are sampled from the model itself. The CLI runs as a subprocess, as a user runs it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import uc_attest as uc
from tests.conftest import REPO, make_model, shared_path
from tests.integration.conftest import Running
from uc_attest.claims.slsa import parse_release
from uc_attest.claims.statement import Statement
from uc_attest.manifest import moments_digest_of

RELEASE = "release-bot@bank.example"


def cli(*args: object, threads: int | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.run([sys.executable, "-m", "uc_attest.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=600, check=False, env=env)  # fmt: skip


@pytest.fixture(scope="module")
def stories_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers", reason="transformers is not installed (pip install 'uc-attest[bench]')")
    bin_path = shared_path("models", "stories260K", "stories260K.bin")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import stories

    return stories.convert(bin_path, tmp_path_factory.mktemp("stories") / "src", hf_layout=True)


@pytest.fixture(scope="module")
def default_pack(stories_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pack = tmp_path_factory.mktemp("packs") / "p1"
    r = cli("pack", stories_src, "-o", pack, "--device", "cpu", "--json", threads=1)
    assert r.returncode == 0, r.stderr
    return pack


def _files(pack: Path) -> dict[str, bytes]:
    return {p.relative_to(pack).as_posix(): p.read_bytes() for p in sorted(pack.rglob("*")) if p.is_file()}


def test_the_default_command_calibrates_allocates_and_records_it(default_pack: Path) -> None:
    m = uc.load_manifest(default_pack / uc.MANIFEST_NAME)
    assert m.calibration is not None and m.calibration.method == "self-sampled"
    assert m.calibration.params["sequences"] == 64 and m.calibration.params["seed"] == 4321
    assert "threads" not in m.calibration.params and m.calibration.params["pass"] == "sampling"
    assert m.calibration.tool.startswith("uc-attest ") and "torch" in m.calibration.tool
    assert m.calibration.moments == moments_digest_of(m.tensors)
    assert sum(1 for t in m.tensors if t.quant and t.quant.moments) >= 10
    alloc = m.scheme["allocation"]
    assert alloc["method"] == "uc-alloc/2" and float(alloc["bpw"]) <= 5.30
    assert {t.quant.bits for t in m.tensors if t.quant} == {5, 6}
    assert m.scheme["bits_overrides"], "the allocation is recorded as exact-name overrides"


def test_identical_twice_on_one_machine_and_rebuilt_without_calibrating(
    stories_src: Path, default_pack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The calibration uses the process's thread budget and records it: the same budget on the same machine gives
    the same bytes (the quantizer itself never depends on threads: test_quantize_native.py); a rebuild reads the
    committed moments and never calibrates."""
    r = cli("pack", stories_src, "-o", tmp_path / "p2", "--device", "cpu", threads=1)
    assert r.returncode == 0, r.stderr
    assert _files(tmp_path / "p2") == _files(default_pack)
    from uc_attest.calibration import default

    def never(*_a: object, **_k: object) -> None:
        raise AssertionError("a rebuild must not calibrate")

    monkeypatch.setattr(default, "measure", never)
    v = uc.check_rebuild(default_pack, stories_src, "cpu")
    assert v.ok, v.to_dict()


def test_the_packed_tensors_do_not_depend_on_the_thread_count(
    stories_src: Path, default_pack: Path, tmp_path: Path
) -> None:
    """Two threads against one: the same sampled tokens and moments (their products never split the token
    dimension across threads), so the same tensors; only the recorded budget differs."""
    r = cli("pack", stories_src, "-o", tmp_path / "p2", "--device", "cpu", threads=2)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p2" / "model.safetensors").read_bytes() == (default_pack / "model.safetensors").read_bytes()
    a, b = uc.load_manifest(default_pack / uc.MANIFEST_NAME), uc.load_manifest(tmp_path / "p2" / uc.MANIFEST_NAME)
    assert a.calibration is not None and b.calibration is not None
    assert a.calibration.moments == b.calibration.moments  # (the budget is 2 where the machine has 2 cores)
    assert (tmp_path / "p2" / uc.MANIFEST_NAME).read_bytes() == (default_pack / uc.MANIFEST_NAME).read_bytes()


def test_the_statement_carries_it_and_the_policy_reads_it(
    instance: Running, default_pack: Path, tmp_path: Path
) -> None:
    res = uc.attest_pack(
        default_pack, uc.select_trust(None, instance.dir), sign_as=uc.SignAs(dev_identity=RELEASE), oms=False
    )
    payload = base64.b64decode(json.loads(res.bundle.read_text())["dsseEnvelope"]["payload"])
    claim = parse_release(Statement.parse(payload))
    assert claim.calibration is not None and claim.calibration.method == "self-sampled"

    def policy(rule: str) -> Path:
        p = tmp_path / "policy.yaml"
        p.write_text(
            f"version: 1\nname: cal\ntrust: {{instance: {instance.dir}}}\nsigners:\n  release:\n"
            f"    - issuer: {instance.issuer}\n      identity: {RELEASE}\nquantization:\n  calibration:\n{rule}"
        )
        return p

    ok = uc.verify(default_pack, uc.Anchor.policy(policy("    methods: [self-sampled]\n")))
    assert ok.ok and next(c for c in ok.checks if c.rule == "quantization.calibration").ok
    no = uc.verify(default_pack, uc.Anchor.policy(policy("    methods: [text-file]\n")))
    bad = next(c for c in no.checks if c.rule == "quantization.calibration")
    assert not no.ok and bad.actual == "self-sampled"
    audit = uc.audit(default_pack, uc.TrustRoot.instance(instance.dir))
    release = next(e for e in audit.events if e.kind == "release")
    assert release.details["calibration"]["method"] == "self-sampled"


def test_a_pack_without_calibration_is_denied_when_the_policy_requires_one(
    instance: Running, stories_src: Path, tmp_path: Path
) -> None:
    r = cli("pack", stories_src, "-o", tmp_path / "p", "--device", "cpu", "--no-calibration")
    assert r.returncode == 0 and "without calibration" in r.stderr
    assert uc.load_manifest(tmp_path / "p" / uc.MANIFEST_NAME).calibration is None
    uc.attest_pack(
        tmp_path / "p", uc.select_trust(None, instance.dir), sign_as=uc.SignAs(dev_identity=RELEASE), oms=False
    )
    p = tmp_path / "policy.yaml"
    p.write_text(
        f"version: 1\nname: cal\ntrust: {{instance: {instance.dir}}}\nsigners:\n  release:\n"
        f"    - issuer: {instance.issuer}\n      identity: {RELEASE}\n"
        "quantization:\n  calibration:\n    required: true\n"
    )
    v = uc.verify(tmp_path / "p", uc.Anchor.policy(p))
    assert not v.ok and next(c for c in v.checks if c.rule == "quantization.calibration").actual == "none"


def test_a_model_that_cannot_be_run_warns_or_is_refused(tmp_path: Path) -> None:
    src = make_model(tmp_path / "synthetic")  # no "architectures": transformers cannot build it
    r = cli("pack", src, "-o", tmp_path / "p", "--device", "cpu")
    assert r.returncode == 0 and "calibration skipped" in r.stderr and "architectures" in r.stderr
    refused = cli("pack", src, "-o", tmp_path / "p2", "--device", "cpu", "--calibration-required")
    assert refused.returncode == 3 and "cannot calibrate" in refused.stderr and not (tmp_path / "p2").exists()
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize(("content", "why"), [(b"", "empty"), (b"\n \n", "empty"), (b"abc\x00def\n", "binary"),
                                              (b"caf\xe9\n", "not UTF-8")])  # fmt: skip
def test_a_bad_calibration_text_is_exit_3_naming_the_file(tmp_path: Path, content: bytes, why: str) -> None:
    src = make_model(tmp_path / "m")
    text = tmp_path / "cal.txt"
    text.write_bytes(content)
    r = cli("pack", src, "-o", tmp_path / "p", "--device", "cpu", "--calibration-text", text)
    assert r.returncode == 3 and str(text) in r.stderr and why in r.stderr, r.stderr
    assert not (tmp_path / "p").exists()


def test_in_memory_json_of_the_record_round_trips(default_pack: Path) -> None:
    raw = (default_pack / uc.MANIFEST_NAME).read_bytes()
    m = uc.load_manifest(default_pack / uc.MANIFEST_NAME)
    assert m.to_json() == raw
    assert json.loads(raw)["calibration"]["method"] == "self-sampled"
