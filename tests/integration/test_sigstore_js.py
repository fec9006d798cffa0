"""A second, independent verifier: sigstore-js (npm @sigstore/verify) over bundles signed against the instance.

sigstore-js checks what sigstore-python does not: the checkpoint's signature line must name the log the way
Rekor does (a name found in the log's base URL). The package is installed from npm in the test's setup
(into build/, git-ignored); the tests skip with the reason when node, npm or the registry are not there.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

import uc_attest as uc
from tests.integration.conftest import Running

REPO = Path(__file__).resolve().parents[2]
JS = Path(__file__).parent / "js"
IDENTITY = "release-bot@example.com"


@pytest.fixture(scope="session")
def sigstore_js() -> Path:
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed to run sigstore-js")
    where = REPO / "build" / "sigstore-js"
    where.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "verify_bundle.js"):
        shutil.copy(JS / name, where / name)
    if not (where / "node_modules" / "@sigstore" / "verify").is_dir():
        r = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if r.returncode:
            pytest.skip(f"npm could not install sigstore-js: {r.stderr.strip()[-300:]}")
    return where


def js_verify(js: Path, root: Path, bundle: Path, identity: str, issuer: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(js / "verify_bundle.js"), str(root), str(bundle), identity, issuer],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("version", [2, 1])
def test_sigstore_js_verifies_our_bundles(
    sigstore_js: Path, instance: Running, instance_v1: Running, packed: Path, tmp_path: Path, version: int
) -> None:
    """Rekor v2 (hashedrekord over the PAE, RFC 3161 time) and Rekor v1 (dsse entry, SET)."""
    instance = instance if version == 2 else instance_v1
    bundle = tmp_path / "pack.sigstore.json"
    uc.attest_pack(
        packed, uc.select_trust(None, instance.dir), sign_as=uc.SignAs(dev_identity=IDENTITY), bundle_out=bundle
    )
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(json.loads(instance.trust_config_path.read_text())["trustedRoot"]))
    ok = js_verify(sigstore_js, root, bundle, IDENTITY, instance.issuer)
    assert ok.returncode == 0 and ok.stdout.strip() == "OK", ok.stdout + ok.stderr
    # the same verifier refuses what it must: another identity, a tampered payload
    assert js_verify(sigstore_js, root, bundle, "eve@example.com", instance.issuer).returncode == 1
    data = json.loads(bundle.read_text())
    payload = bytearray(base64.b64decode(data["dsseEnvelope"]["payload"]))
    payload[10] ^= 1
    data["dsseEnvelope"]["payload"] = base64.b64encode(bytes(payload)).decode()
    tampered = tmp_path / "tampered.sigstore.json"
    tampered.write_text(json.dumps(data))
    bad = js_verify(sigstore_js, root, tampered, IDENTITY, instance.issuer)
    assert bad.returncode == 1 and bad.stdout.split(":")[0] in ("TLOG_BODY_ERROR", "SIGNATURE_ERROR"), bad.stdout
