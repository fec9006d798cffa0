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
    uc.attest_pack(packed, uc.select_trust(None, instance.dir), dev_identity=IDENTITY, bundle_out=bundle)
    # The CLI checks that a statement subject's sha256 equals the file's: use a pack shard as the artifact.
    artifact = tmp_path / "model.safetensors"
    shutil.copy(packed / "model.safetensors", artifact)
    cmd = [sys.executable, "-m", "sigstore", "--trust-config", str(instance.trust_config_path), "verify",
           "identity", "--bundle", str(bundle), "--cert-identity", IDENTITY, "--cert-oidc-issuer",
           instance.issuer, "--offline", str(artifact)]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stderr + ok.stdout
    wrong = subprocess.run([*cmd[:-6], "--cert-identity", "eve@example.com", *cmd[-4:]], capture_output=True,
                           text=True, timeout=120, check=False)
    assert wrong.returncode != 0


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
        model, sig)
    ms.verifying.Config().use_sigstore_verifier(identity=IDENTITY, oidc_issuer=instance.issuer,
                                                trust_config=instance.trust_config_path).verify(model, sig)
    (model / "weights.bin").write_bytes(b"\x01" * 4096)
    with pytest.raises(Exception, match="(?i)hash|digest|mismatch|verif"):
        ms.verifying.Config().use_sigstore_verifier(identity=IDENTITY, oidc_issuer=instance.issuer,
                                                    trust_config=instance.trust_config_path).verify(model, sig)
