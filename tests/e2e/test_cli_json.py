"""Every result a command prints speaks for itself: its ``to_dict()`` is exactly the command's ``--json``.

Each test runs the command in-process (the facade call replaced by a fixed result where the real one needs a
registry, a signer or a model run) and checks two things: stdout is byte for byte the JSON the CLI printed
before the result types had ``to_dict()`` (the dict literal below is the one the CLI used to build by hand),
and it is ``to_dict()``'s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import uc_attest as uc
from tests.conftest import make_model
from uc_attest.cli import app
from uc_attest.core.digest import Digest

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def _run(*args: str | Path) -> str:
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    return r.stdout


@pytest.fixture(scope="module")
def pack_json(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("cli-json")
    src = make_model(root / "src")
    out = json.loads(_run("pack", src, "-o", root / "pack", "--device", "cpu", "--no-calibration", "--json"))
    return root / "pack", out


def test_pack(pack_json: tuple[Path, dict[str, Any]]) -> None:
    pack, out = pack_json
    m = uc.load_manifest(pack / uc.MANIFEST_NAME)
    res = uc.PackResult(pack, m, "cpu")
    clock = {k: out.pop(k) for k in ("seconds", "stages")}  # the CLI's own clock, not the result's
    assert isinstance(clock["seconds"], float) and isinstance(clock["stages"], dict)
    before = {
        "ok": True,
        "pack": str(res.path),
        "root": str(m.root),
        "tensors": len(m.tensors),
        "quantized": sum(1 for t in m.tensors if t.quant),
        "calibrated": sum(1 for t in m.tensors if t.quant and t.quant.moments),
        "scheme": m.scheme,
        "source_signature": m.source_signature.to_dict() if m.source_signature else None,
        "calibration": m.calibration.to_dict() if m.calibration else None,
        "ranks": res.world_size,
    }
    assert out == before == res.to_dict()


def test_manifest(pack_json: tuple[Path, dict[str, Any]]) -> None:
    pack, _ = pack_json
    m = uc.load_manifest(pack / uc.MANIFEST_NAME)
    assert _run("manifest", pack, "--json") == _json(m.to_dict())


def test_push_and_pull(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pushed = uc.PushResult("oci://h/r:v1", DIGEST, 3, 4, 1234, [{"file": "p.sigstore.json", "role": "release",
                           "digest": DIGEST}], True)  # fmt: skip
    monkeypatch.setattr(uc, "push", lambda *a, **k: pushed)
    before = {
        "ok": True,
        "reference": pushed.reference,
        "digest": pushed.digest,
        "layers": pushed.layers,
        "uploaded_blobs": pushed.uploaded_blobs,
        "uploaded_bytes": pushed.uploaded_bytes,
        "referrers": pushed.referrers,
        "referrers_api": pushed.referrers_api,
    }
    assert _run("push", tmp_path, "oci://h/r:v1", "--json") == _json(before) == _json(pushed.to_dict())
    pulled = uc.PullResult("oci://h/r@" + DIGEST, DIGEST, tmp_path / "out", 5, 999, ["p.sigstore.json"])
    monkeypatch.setattr(uc, "pull", lambda *a, **k: pulled)
    before = {
        "ok": True,
        "reference": pulled.reference,
        "digest": pulled.digest,
        "output": str(pulled.out),
        "files": pulled.files,
        "bytes": pulled.bytes,
        "bundles": pulled.bundles,
    }
    out = _run("pull", "oci://h/r@" + DIGEST, "-o", tmp_path / "out", "--json")
    assert out == _json(before) == _json(pulled.to_dict())


def _attested(dev: bool, tmp_path: Path) -> uc.AttestResult:
    return uc.AttestResult(
        tmp_path / "p.sigstore.json", Digest.parse(DIGEST), 7, 2048, True, "me@example.com",
        tmp_path / "p.model.sig", 8, 512, dev_instance=dev,
    )  # fmt: skip


@pytest.mark.parametrize("dev", [False, True])
def test_attest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dev: bool) -> None:
    res = _attested(dev, tmp_path)
    monkeypatch.setattr(uc, "select_trust", lambda *a, **k: None)
    monkeypatch.setattr(uc, "attest_pack", lambda *a, **k: res)
    before: dict[str, Any] = {
        "ok": True,
        "bundle": str(res.bundle),
        "root": str(res.root),
        "log_index": res.log_index,
        "identity": res.identity,
        "statement_bytes": res.statement_bytes,
        "manifest_inline": res.manifest_inline,
        "oms_signature": str(res.oms_bundle) if res.oms_bundle else None,
        "oms_log_index": res.oms_log_index,
        "oms_statement_bytes": res.oms_statement_bytes,
    }
    if dev:  # the CLI added it when --instance was given
        before["warning"] = "signed by a DEV instance: its OIDC issuer can mint any identity"
    out = _run("attest", tmp_path, "--trust-config", "public-good", "--json")
    assert out == _json(before) == _json(res.to_dict())


def test_attest_through_an_instance_says_so(tmp_path: Path) -> None:
    """The flag comes from the trust root the signature was made under, not from the command line."""
    from uc_attest.signing.trust import Trust

    assert Trust("x", tmp_path).instance_dir is not None and Trust("public-good").instance_dir is None


def test_validate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    res = uc.ValidateResult(tmp_path / "v.sigstore.json", Digest.parse(DIGEST), 9, "val@example.com",
                            {"accuracy": 0.91})  # fmt: skip
    monkeypatch.setattr(uc, "select_trust", lambda *a, **k: None)
    monkeypatch.setattr(uc, "validate_pack", lambda *a, **k: res)
    before = {
        "ok": True,
        "bundle": str(res.bundle),
        "root": str(res.root),
        "log_index": res.log_index,
        "identity": res.identity,
        "metrics": res.metrics,
    }
    out = _run("validate", tmp_path, "--report", tmp_path / "m.json", "--trust-config", "public-good", "--json")
    assert out == _json(before) == _json(res.to_dict())


def test_verify_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    r = uc.BundleVerified("me@example.com", ("sigstore-python", "uc-attest"), None, ("signature", "tlog"))
    monkeypatch.setattr(uc, "verify_any_bundle", lambda *a, **k: r)
    before = {
        "ok": True,
        "signer": r.signer,
        "verified_by": list(r.verified_by),
        "gap": r.gap,
        "checks": list(r.checks),
    }
    who = ["--certificate-identity", "me@example.com", "--certificate-oidc-issuer", "https://issuer.example"]
    out = _run("verify-bundle", DIGEST, "--bundle", tmp_path / "b.json", *who, "--json")
    assert out == _json(before) == _json(r.to_dict())


def test_reconstruct(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    res = uc.Reconstruction(tmp_path / "recon", ["model.safetensors"], Digest.parse(DIGEST), False, None)
    monkeypatch.setattr(uc, "reconstruct", lambda *a, **k: res)
    before = {
        "ok": True,
        "output": str(tmp_path / "recon"),
        "shards": res.shards,
        "root": str(res.root),
        "anchored": res.anchored,
        "note": res.note,
    }
    out = _run("reconstruct", tmp_path, "-o", tmp_path / "recon", "--integrity-only", "--json")
    assert out == _json(before) == _json(res.to_dict())


@pytest.mark.parametrize("command", ["generate", "embed"])
def test_generate_and_embed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: str) -> None:
    res = uc.RunResult(command, {"embeddings": [[0.5, -0.5]]}, 1.25, 3, {"rss_bytes": 1}, "fast/x86", 2, 0.1, 9.5)
    monkeypatch.setattr(uc, command, lambda *a, **k: res)
    monkeypatch.setattr(uc, "set_thread_budget", lambda n: None)
    before = {"ok": True, **dict(res.__dict__)}
    args = ["--prompt-ids", "1,2"] if command == "generate" else ["--text", "hello"]
    out = _run(command, tmp_path, *args, "--manifest", tmp_path / "m.json", "--json")
    assert out == _json(before) == _json(res.to_dict())


def test_instance_init(tmp_path: Path) -> None:
    out = _run("instance", "init", tmp_path / "inst", "--json")
    state = uc.load_instance(tmp_path / "inst")
    tc = state.root / "trust_config.json"
    before = {
        "ok": True,
        "directory": str(state.root),
        "url": state.url,
        "issuer": state.issuer,
        "trust_config": str(tc),
        "rekor_version": state.rekor_version,
        "warning": "DEV instance: its OIDC issuer can mint any identity",
    }
    assert out == _json(before) == _json(state.to_dict())


def test_policy_check() -> None:
    path = ROOT / "policies" / "default.yaml"
    pol = uc.load_policy(path)
    assert _run("policy", "check", path, "--json") == _json({"ok": True, "policy": pol.model_dump(mode="json")})
