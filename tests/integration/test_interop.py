"""Interoperability with stock tools: the sigstore CLI verifies our bundles; model-signing signs and
verifies a model directory against the embedded instance. All over real HTTP on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import uc_attest as uc
from tests.integration.conftest import Running

IDENTITY = "interop@example.com"


def test_stock_sigstore_cli_verifies_our_bundle(instance: Running, packed: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "b.sigstore.json"
    uc.attest_pack(
        packed, uc.select_trust(None, instance.dir), sign_as=uc.SignAs(dev_identity=IDENTITY), bundle_out=bundle
    )
    # The CLI checks that a statement subject's sha256 equals the file's: use a pack shard as the artifact.
    artifact = tmp_path / "model.safetensors"
    shutil.copy(packed / "model.safetensors", artifact)
    cmd = [
        sys.executable,
        "-m",
        "sigstore",
        "--trust-config",
        str(instance.trust_config_path),
        "verify",
        "identity",
        "--bundle",
        str(bundle),
        "--cert-identity",
        IDENTITY,
        "--cert-oidc-issuer",
        instance.issuer,
        "--offline",
        str(artifact),
    ]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stderr + ok.stdout
    wrong = subprocess.run(
        [*cmd[:-6], "--cert-identity", "eve@example.com", *cmd[-4:]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert wrong.returncode != 0


def test_stock_sigstore_cli_signs_and_verifies_on_rekor_v2_with_a_tsa(instance: Running, tmp_path: Path) -> None:
    """`sigstore sign` as shipped, against the instance: it picks Rekor v2 and the TSA from the signing config."""
    import json

    artifact = tmp_path / "release-notes.txt"
    artifact.write_text("uc-attest 2026.12\n")
    bundle = tmp_path / "release-notes.txt.sigstore.json"
    base = [sys.executable, "-m", "sigstore", "--trust-config", str(instance.trust_config_path)]
    signed = subprocess.run(
        [*base, "sign", "--identity-token", instance.token(IDENTITY), "--bundle", str(bundle), str(artifact)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert signed.returncode == 0, signed.stderr
    doc = json.loads(bundle.read_text())
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    assert doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    verify = [
        *base,
        "verify",
        "identity",
        "--bundle",
        str(bundle),
        "--cert-identity",
        IDENTITY,
        "--cert-oidc-issuer",
        instance.issuer,
        "--offline",
        str(artifact),
    ]
    ok = subprocess.run(verify, capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    artifact.write_text("uc-attest 2026.12 (edited)\n")
    assert subprocess.run(verify, capture_output=True, text=True, timeout=120, check=False).returncode != 0
    # and our own verify-bundle agrees, offline, with the instance's trusted root
    tr = tmp_path / "trusted_root.json"
    tr.write_text(json.dumps(json.loads(instance.trust_config_path.read_text())["trustedRoot"]))
    artifact.write_text("uc-attest 2026.12\n")
    from tests.e2e.test_cli import cli

    r = cli(
        "verify-bundle",
        "--bundle",
        bundle,
        "--certificate-identity",
        IDENTITY,
        "--certificate-oidc-issuer",
        instance.issuer,
        "--trusted-root",
        tr,
        artifact,
    )
    assert r.returncode == 0, r.stderr


def test_model_signing_signs_and_verifies_against_instance(instance: Running, tmp_path: Path) -> None:
    ms = pytest.importorskip("model_signing")
    try:
        import OpenSSL  # noqa: F401  (model-signing imports it without declaring it)
    except ImportError:
        pytest.skip("pyopenssl not installed (model-signing needs it)")
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"\x00" * 4096)
    (model / "config.json").write_text("{}")
    sig = tmp_path / "model.sig"
    tok = instance.token(IDENTITY)
    ms.signing.Config().use_sigstore_signer(trust_config=instance.trust_config_path, identity_token=tok).sign(
        model, sig
    )
    ms.verifying.Config().use_sigstore_verifier(
        identity=IDENTITY, oidc_issuer=instance.issuer, trust_config=instance.trust_config_path
    ).verify(model, sig)
    (model / "weights.bin").write_bytes(b"\x01" * 4096)
    with pytest.raises(Exception, match="(?i)hash|digest|mismatch|verif"):
        ms.verifying.Config().use_sigstore_verifier(
            identity=IDENTITY, oidc_issuer=instance.issuer, trust_config=instance.trust_config_path
        ).verify(model, sig)
