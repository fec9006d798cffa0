"""What verify and the verified loader refuse, as a user meets it: a key pin accepts that key only (never a
certificate), an extra FIFO beside OMS-signed files is named, a loader without a trust anchor is a usage error, and
public-good trust offline is the shipped trusted root (no TUF), denying what it did not sign."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import uc_attest as uc
from tests.conftest import RELEASE, assert_clean_error
from tests.e2e.test_cli import cli


def test_a_key_pin_refuses_a_certificate_signed_model(world: dict[str, Any], tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pub = tmp_path / "vendor.pub"
    pub.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    oms = world["root"] / "pack.model.sig"  # signed by attest with a (dev) Sigstore certificate
    r = cli("verify-model", "key", world["pack"], "--signature", oms, "--key", pub)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "certificate" in r.stderr and "Traceback" not in r.stderr
    src = tmp_path / "src"
    shutil.copytree(world["pack"], src)
    shutil.copy(oms, src / "model.sig")
    r = cli("pack", src, "-o", tmp_path / "p", "--no-calibration", "--source-signature", src / "model.sig",
            "--source-key", pub)  # fmt: skip
    assert r.returncode == 1 and not (tmp_path / "p").exists(), r.stderr


def test_a_fifo_in_an_oms_signed_model_is_named_not_skipped(world: dict[str, Any], tmp_path: Path) -> None:
    """Low finding: an extra FIFO beside the signed files was silently left out of the directory scan."""
    model = tmp_path / "model"
    shutil.copytree(world["pack"], model)
    oms = world["root"] / "pack.model.sig"
    os.mkfifo(model / "extra.bin")
    r = cli(
        "verify-model", "sigstore", model, "--signature", oms, "--identity", RELEASE, "--instance", world["inst"].dir
    )
    assert_clean_error(r, 3, "extra.bin", "FIFO")


def test_verify_model_verifies_the_attested_signature_and_denies_another_signer(world: dict[str, Any]) -> None:
    """``verify-model sigstore`` on the pack's OMS signature (a plain directory to it): its signer verifies (exit
    0, no manifest root printed: not a pack), anyone else is denied (exit 1) naming whom it expected."""
    oms = world["root"] / "pack.model.sig"
    base = ("verify-model", "sigstore", world["pack"], "--signature", oms, "--instance", world["inst"].dir)
    r = cli(*base, "--identity", RELEASE)
    assert r.returncode == 0 and "manifest root" not in r.stdout, r.stdout + r.stderr
    r = cli(*base, "--identity", "eve@uc-attest.dev")
    assert_clean_error(r, 1, "eve@uc-attest.dev")


def test_verify_model_without_a_signature_or_a_trust_root_is_one_line_exit_2(world: dict[str, Any]) -> None:
    """What the commands leave refusable is refused before anything is read: no --signature (click names the
    option), no trust root for the sigstore method (one line naming both choices), exit 2, no traceback."""
    oms = world["root"] / "pack.model.sig"
    r = cli("verify-model", "sigstore", world["pack"], "--identity", RELEASE, "--instance", world["inst"].dir)
    assert_clean_error(r, 2, "Missing option '--signature'")
    r = cli("verify-model", "sigstore", world["pack"], "--signature", oms, "--identity", RELEASE)
    assert_clean_error(r, 2, "give exactly one of --trust-config FILE or --instance DIR")
    assert r.stderr.strip().count("\n") == 0 and r.stdout == "", r.stderr


def test_load_verified_refuses_without_a_trust_anchor(world: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(uc.UsageError, match="trust anchor"):
        uc.load_verified(world["pack"])
    # a separately kept (validated) manifest is an anchor; so is a bundle with identity and issuer
    kept = tmp_path / "validated-manifest.json"
    kept.write_bytes((world["pack"] / uc.MANIFEST_NAME).read_bytes())
    assert len(uc.load_verified(world["pack"], uc.Anchor.kept_manifest(kept))) == 9
    state = uc.load_verified(
        world["pack"],
        uc.Anchor.signed_by(RELEASE, bundle=world["bundle"], trust=uc.TrustRoot.instance(world["inst"].dir)),
    )
    assert len(state) == 9
    with pytest.raises(uc.UsageError, match=r"only under a trust anchor: Anchor\.pack_itself\(\)"):
        uc.load_verified(world["pack"], uc.Anchor.pack_itself())  # type: ignore[arg-type]  # vouches for nothing


def test_public_good_offline_uses_the_shipped_trusted_root(world: dict[str, Any]) -> None:
    r = cli(
        "verify",
        world["pack"],
        "--bundle",
        world["bundle"],
        "--trust-config",
        "public-good",
        "--offline",
        "--identity",
        RELEASE,
        "--issuer",
        "https://token.actions.githubusercontent.com",
        "--json",
    )
    assert r.returncode == 1, r.stderr  # verified offline against public-good: not signed by it -> denied
    assert "TUF" not in r.stderr + r.stdout
    first = json.loads(r.stdout)["checks"][0]  # a v2 bundle: its TSA is not public-good's, so no verified time
    assert first["rule"] in ("release.signer", "release.timestamps") and not first["ok"], first


def test_verify_bundle_refuses_an_artifact_that_is_a_fifo_or_device_without_waiting(tmp_path: Path) -> None:
    """``verify-bundle ARTIFACT --bundle B --key K`` hashed the artifact with a plain open: a FIFO hung it forever
    and /dev/zero was hashed without end (outside review). Now: exit 3 naming the artifact, within the deadline."""
    import subprocess
    import sys

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = tmp_path / "key.pub"
    key.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    bundle = tmp_path / "b.sigstore.json"
    bundle.write_text("{}")
    fifo = tmp_path / "artifact.bin"
    os.mkfifo(fifo)
    (tmp_path / "link").symlink_to(fifo)
    for artifact in (fifo, tmp_path / "link", Path("/dev/zero")):
        r = subprocess.run(
            [sys.executable, "-m", "uc_attest.cli", "verify-bundle", str(artifact), "--bundle", str(bundle),
             "--key", str(key)],
            capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "COLUMNS": "200"},
        )  # fmt: skip
        assert_clean_error(r, 3, str(artifact), "not a regular file", "artifact")
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_verify_model_names_a_signature_that_is_not_a_regular_file(tmp_path: Path) -> None:
    """A FIFO as --signature was reported as "not found"; it is refused as what it is, without waiting on it."""
    model = tmp_path / "m"
    model.mkdir()
    (model / "w.bin").write_bytes(b"x")
    fifo = tmp_path / "sig.fifo"
    os.mkfifo(fifo)
    key = tmp_path / "key.pub"
    key.write_text("not a key")
    r = cli("verify-model", "key", model, "--signature", fifo, "--key", key)
    assert_clean_error(r, 3, str(fifo), "not a regular file")
    r = cli("verify-model", "key", model, "--signature", tmp_path / "absent.sig", "--key", key)
    assert_clean_error(r, 3, "absent.sig", "not found")


def test_a_certificate_method_bundle_missing_a_field_names_the_field(tmp_path: Path) -> None:
    from uc_attest.errors import InvalidInput
    from uc_attest.evidence.oms import _certificate_method

    ca = tmp_path / "ca.pem"
    ca.write_text("")
    for doc, field in (({}, "verificationMaterial"), ({"verificationMaterial": {}}, "x509CertificateChain")):
        with pytest.raises(InvalidInput, match=f"no '{field}' field") as exc:
            _certificate_method(doc, "sig.json", ca)
        assert "KeyError" not in exc.value.message


def test_a_certificate_method_bundle_whose_payload_type_is_not_a_string_is_refused(tmp_path: Path) -> None:
    from uc_attest.errors import InvalidInput
    from uc_attest.evidence.oms import _certificate_method

    ca = tmp_path / "ca.pem"
    ca.write_text("")
    doc = {
        "verificationMaterial": {"x509CertificateChain": {"certificates": []}},
        "dsseEnvelope": {"payload": "", "payloadType": {"a": 1}, "signatures": [{"sig": ""}]},
    }
    with pytest.raises(InvalidInput, match="payloadType is dict"):
        _certificate_method(doc, "sig.json", ca)
