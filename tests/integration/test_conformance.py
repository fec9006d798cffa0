"""Every sigstore-conformance bundle-verify case through `verify-bundle`, with the file and with its digest.

sigstore-python 4.5.1 itself conforms on 132 of the 140 invocations (its misses are listed in
../shared/vectors/sigstore-conformance/README.md). `verify-bundle` runs both verifiers (sigstore-python
where it reads the shape, the own path always) and conforms on all 140.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import uc_attest as uc
from tests.conftest import SHARED

ASSETS = SHARED / "vectors" / "sigstore-conformance" / "test" / "assets"
DEFAULT_IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/"
    "workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
DEFAULT_ISSUER = "https://token.actions.githubusercontent.com"


def run_case(case: Path, by_digest: bool) -> bool:
    """True if verification succeeded."""
    artifact = case / "artifact" if (case / "artifact").exists() else ASSETS / "bundle-verify" / "a.txt"
    read = lambda name, default: (case / name).read_text().strip() if (case / name).exists() else default
    target = "sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest() if by_digest else str(artifact)
    try:
        uc.verify_any_bundle(
            case / "bundle.sigstore.json",
            target,
            uc.ManagedKey(case / "key.pub")
            if (case / "key.pub").exists()
            else uc.BundleIdentity(read("identity", DEFAULT_IDENTITY), read("issuer", DEFAULT_ISSUER)),
            trust=uc.TrustFile(case / "trusted_root.json") if (case / "trusted_root.json").exists() else None,
        )
    except (uc.VerificationFailed, uc.InvalidInput):
        return False
    return True


def test_conformance_suite_at_least_matches_sigstore_python() -> None:
    if not ASSETS.exists():
        pytest.skip(f"{ASSETS} not found: ../shared is not beside this clone")
    cases = sorted(p for p in (ASSETS / "bundle-verify").iterdir() if (p / "bundle.sigstore.json").exists())
    assert len(cases) == 70
    conform, misses = 0, []
    for case in cases:
        expect_ok = not case.name.endswith("_fail")
        for by_digest in (False, True):
            if run_case(case, by_digest) == expect_ok:
                conform += 1
            else:
                misses.append(f"{case.name}{' (digest)' if by_digest else ''}")
    print(f"sigstore-conformance: {conform}/140 conform; misses: {misses}")
    assert conform == 140, misses


@pytest.mark.parametrize(("case", "code"), [("happy-path-v0.3", 0), ("checkpoint-wrong-roothash_fail", 1)])
def test_cli_protocol_entrypoint(case: str, code: int) -> None:
    from tests.e2e.test_cli import cli

    if not ASSETS.exists():
        pytest.skip(f"{ASSETS} not found: ../shared is not beside this clone")
    c = ASSETS / "bundle-verify" / case
    r = cli(
        "verify-bundle",
        "--bundle",
        c / "bundle.sigstore.json",
        "--certificate-identity",
        DEFAULT_IDENTITY,
        "--certificate-oidc-issuer",
        DEFAULT_ISSUER,
        ASSETS / "bundle-verify" / "a.txt",
    )
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("tamper", ["signature", "set", "key"])
def test_managed_key_verifier_refuses_tampering(tmp_path: Path, tamper: str) -> None:
    import base64
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    case = ASSETS / "bundle-verify" / "managed-key-happy-path"
    if not case.exists():
        pytest.skip(f"{case} not found: ../shared is not beside this clone")
    b = json.loads((case / "bundle.sigstore.json").read_text())
    key = case / "key.pub"

    def flip(v: str) -> str:
        raw = bytearray(base64.b64decode(v))
        raw[-3] ^= 1
        return base64.b64encode(bytes(raw)).decode()

    if tamper == "signature":
        b["messageSignature"]["signature"] = flip(b["messageSignature"]["signature"])
    elif tamper == "set":
        e = b["verificationMaterial"]["tlogEntries"][0]
        e["inclusionPromise"]["signedEntryTimestamp"] = flip(e["inclusionPromise"]["signedEntryTimestamp"])
    else:
        key = tmp_path / "other.pub"
        key.write_bytes(
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    (tmp_path / "b.json").write_text(json.dumps(b))
    with pytest.raises(uc.VerificationFailed):
        uc.verify_any_bundle(tmp_path / "b.json", str(ASSETS / "bundle-verify" / "a.txt"), uc.ManagedKey(key))
