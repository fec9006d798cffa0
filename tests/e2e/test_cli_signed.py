"""The signed flow through the CLI as subprocesses, with the instance served by `uc-attest instance serve`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_model
from tests.e2e.test_cli import assert_clean_error, cli
from tests.integration.conftest import free_port, serve_in_subprocess

ID = "ci@example.com"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("signed")
    port = free_port()
    r = cli("instance", "init", root / "inst", "--port", str(port), "--json")
    assert r.returncode == 0, r.stderr
    assert "DEV" in json.loads(r.stdout)["warning"]
    proc = serve_in_subprocess(root / "inst")
    assert cli("pack", make_model(root / "src"), "-o", root / "pack", "--device", "cpu").returncode == 0
    yield root
    proc.terminate()
    proc.wait()


def test_attest_then_verify_offline(served: Path) -> None:
    r = cli("attest", served / "pack", "--instance", served / "inst", "--identity", ID, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["identity"] == ID and Path(out["bundle"]) == served / "pack.sigstore.json"
    v = cli(
        "verify",
        served / "pack",
        "--bundle",
        served / "pack.sigstore.json",
        "--instance",
        served / "inst",
        "--identity",
        ID,
        "--json",
    )
    assert v.returncode == 0, v.stderr
    res = json.loads(v.stdout)
    assert res["ok"] and all(c["ok"] for c in res["checks"]) and res["root"] == out["root"]
    wrong = cli(
        "verify",
        served / "pack",
        "--bundle",
        served / "pack.sigstore.json",
        "--instance",
        served / "inst",
        "--identity",
        "eve@example.com",
        "--json",
    )
    assert wrong.returncode == 1
    signer = next(c for c in json.loads(wrong.stdout)["checks"] if c["rule"] == "release.signer")
    assert not signer["ok"] and "SANs do not match" in signer["detail"]
    human = cli(
        "verify",
        served / "pack",
        "--bundle",
        served / "pack.sigstore.json",
        "--instance",
        served / "inst",
        "--identity",
        "eve@example.com",
    )
    assert human.returncode == 1 and "DENIED" in human.stderr and "release.signer" in human.stderr
    tok = cli("instance", "token", served / "inst", "--identity", ID)
    assert tok.returncode == 0 and tok.stdout.count(".") == 2


def test_signed_flow_bad_input(served: Path, tmp_path: Path) -> None:
    assert_clean_error(cli("attest", served / "pack"), 2, "exactly one of")
    assert_clean_error(
        cli(
            "verify",
            served / "pack",
            "--bundle",
            tmp_path / "none.json",
            "--instance",
            served / "inst",
            "--identity",
            ID,
        ),
        3,
        "bundle not found",
    )
    assert_clean_error(
        cli("verify", served / "pack", "--bundle", served / "pack.sigstore.json"), 2, "--bundle needs --identity"
    )
    assert_clean_error(
        cli(
            "verify",
            served / "pack",
            "--bundle",
            served / "pack.sigstore.json",
            "--trust-config",
            served / "inst" / "trust_config.json",
        ),
        2,
        "--identity",
    )
    assert_clean_error(cli("attest", served / "pack", "--instance", tmp_path), 3, "not an instance directory")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert_clean_error(
        cli(
            "verify",
            served / "pack",
            "--bundle",
            served / "pack.sigstore.json",
            "--trust-config",
            bad,
            "--identity",
            ID,
            "--issuer",
            "https://x",
        ),
        3,
        "ClientTrustConfig",
    )


def test_each_role_signs_as_its_own_default_identity(served: Path, tmp_path: Path) -> None:
    """Following the README without --identity: the release and the validation are signed by two different
    dev identities (separation of duties), each printed; signing a validation as the release's signer is
    refused unless asked for explicitly."""
    import shutil

    pack = tmp_path / "pack"
    shutil.copytree(served / "pack", pack)
    a = cli("attest", pack, "--instance", served / "inst", "--json")
    assert a.returncode == 0, a.stderr
    assert json.loads(a.stdout)["identity"] == "release-bot@uc-attest.dev"
    report = tmp_path / "m.json"
    report.write_text(json.dumps({"evaluation_set": "s", "metrics": {"kl": 0.01}}))
    v = cli("validate", pack, "--report", report, "--instance", served / "inst", "--json")
    assert v.returncode == 0, v.stderr
    assert json.loads(v.stdout)["identity"] == "validator@uc-attest.dev"
    same = cli("validate", pack, "--report", report, "--instance", served / "inst", "--identity",
               "release-bot@uc-attest.dev", "--bundle", tmp_path / "same.json")  # fmt: skip
    assert_clean_error(same, 2, "signed the release of this pack", "--allow-release-signer")
    assert not (tmp_path / "same.json").exists()
    allowed = cli("validate", pack, "--report", report, "--instance", served / "inst", "--identity",
                  "release-bot@uc-attest.dev", "--bundle", tmp_path / "same.json", "--allow-release-signer")  # fmt: skip
    assert allowed.returncode == 0 and (tmp_path / "same.json").exists(), allowed.stderr
