"""verify-bundle takes typed values (issue 33): whom it expects is exactly one of ``BundleIdentity`` (identity and
issuer, both required as the value is built) or ``ManagedKey``; the trust root is a value too (``TrustFile``,
``TrustInstance`` or a selected ``Trust``). The CLI builds them from its flags and refuses neither (exit 2). A
selected ``Trust`` keeps its trusted root's CAs, TSAs and CT logs as typed values, parsed once, with the
verifier's strictness and messages."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import uc_attest as uc
from tests.conftest import SHARED
from uc_attest.cli import app
from uc_attest.transparency.trusted import TrustedCa, TrustedCtLog, TrustedTsa

ASSETS = SHARED / "vectors" / "sigstore-conformance" / "test" / "assets" / "bundle-verify"
IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/"
    "workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"


@pytest.fixture
def assets() -> Path:
    if not ASSETS.exists():
        pytest.skip(f"{ASSETS} not found: ../shared is not beside this clone")
    return ASSETS


def digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("identity", "issuer"), [("", ISSUER), (IDENTITY, ""), ("", "")])
def test_a_bundle_identity_needs_an_identity_and_an_issuer(identity: str, issuer: str) -> None:
    with pytest.raises(uc.UsageError, match="needs an identity and an issuer"):
        uc.BundleIdentity(identity, issuer)


def test_the_signer_values_are_frozen() -> None:
    who, key = uc.BundleIdentity(IDENTITY, ISSUER), uc.ManagedKey(Path("k.pub"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        who.issuer = ""  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        key.path = Path("other.pub")  # type: ignore[misc]


def test_a_bundle_verifies_by_key_under_each_form_of_trust_root(assets: Path) -> None:
    art = digest(assets / "a.txt")
    key = assets / "managed-key-happy-path" / "key.pub"
    r = uc.verify_any_bundle(assets / "managed-key-happy-path" / "bundle.sigstore.json", art, uc.ManagedKey(key))
    assert r.signer == f"the key {key}" and r.verified_by == ("uc-attest",) and "bundle.tlog" in r.checks
    case = assets / "managed-key-and-trusted-root"
    for trust in (uc.TrustFile(case / "trusted_root.json"), uc.Trust.file(case / "trusted_root.json")):
        r = uc.verify_any_bundle(case / "bundle.sigstore.json", art, uc.ManagedKey(case / "key.pub"), trust=trust)
        assert r.signer == f"the key {case / 'key.pub'}"
    with pytest.raises(uc.VerificationFailed):  # a managed key's log entry is checked under the trust root
        uc.verify_any_bundle(
            assets / "managed-key-happy-path" / "bundle.sigstore.json",
            art,
            uc.ManagedKey(key),
            trust=uc.TrustFile(case / "trusted_root.json"),
        )


def test_a_bundle_verifies_by_identity_and_refuses_another(assets: Path) -> None:
    bundle, art = assets / "happy-path-v0.3" / "bundle.sigstore.json", str(assets / "a.txt")
    r = uc.verify_any_bundle(bundle, art, uc.BundleIdentity(IDENTITY, ISSUER))  # public-good, offline
    assert IDENTITY in r.signer and "uc-attest" in r.verified_by
    r = uc.verify_any_bundle(bundle, art, uc.BundleIdentity(IDENTITY, ISSUER), trust=uc.TrustFile(Path("public-good")))
    assert IDENTITY in r.signer
    with pytest.raises(uc.VerificationFailed):
        uc.verify_any_bundle(bundle, art, uc.BundleIdentity("someone@example.com", ISSUER))
    with pytest.raises(uc.VerificationFailed):  # staging's root did not issue it
        uc.verify_any_bundle(bundle, art, uc.BundleIdentity(IDENTITY, ISSUER), trust=uc.Trust.staging(offline=True))


def test_the_cli_refuses_neither_an_identity_nor_a_key(assets: Path) -> None:
    bundle, art = assets / "managed-key-happy-path" / "bundle.sigstore.json", assets / "a.txt"
    for flags in ([], ["--certificate-identity", IDENTITY], ["--certificate-oidc-issuer", ISSUER]):
        r = CliRunner().invoke(app, ["verify-bundle", "--bundle", str(bundle), *flags, str(art)])
        assert r.exit_code == uc.EXIT_USAGE, r.output
        assert "--certificate-identity" in r.output and "--certificate-oidc-issuer" in r.output and "--key" in r.output
    key = assets / "managed-key-happy-path" / "key.pub"
    r = CliRunner().invoke(app, ["verify-bundle", "--bundle", str(bundle), "--key", str(key), str(art)])
    assert r.exit_code == 0, r.output


def test_a_trust_keeps_its_sections_as_typed_values(assets: Path, tmp_path: Path) -> None:
    trust = uc.Trust.file(assets / "intoto-with-custom-trust-root" / "trusted_root.json")
    assert trust.cas and all(isinstance(ca, TrustedCa) for ca in trust.cas)
    assert trust.tsas and all(isinstance(ta, TrustedTsa) for ta in trust.tsas)
    assert all(isinstance(ct, TrustedCtLog) for ct in trust.ct_logs)
    assert trust.cas is trust.cas and trust.tsas is trust.tsas and trust.ct_logs is trust.ct_logs  # parsed once
    doc = json.loads((assets / "intoto-with-custom-trust-root" / "trusted_root.json").read_text())
    (tmp_path / "root.json").write_text(json.dumps({**doc, "certificateAuthorities": 5}))
    broken = uc.Trust.file(tmp_path / "root.json")
    for _ in range(2):  # a malformed section raises each time it is read, with the verifier's message
        with pytest.raises(uc.MalformedBundle, match="trusted root: certificateAuthorities is not a list"):
            _ = broken.cas
    assert broken.tsas  # the other sections are still read


def test_a_malformed_trusted_root_is_refused_with_the_same_message(assets: Path) -> None:
    case = assets / "trust-root-tlog-missing-validity-start_fail"
    with pytest.raises(uc.MalformedBundle, match=r"^trusted root: tlogs\[1\] is malformed"):
        uc.verify_any_bundle(
            case / "bundle.sigstore.json",
            str(assets / "a.txt"),
            uc.BundleIdentity(IDENTITY, ISSUER),
            trust=uc.TrustFile(case / "trusted_root.json"),
        )


def test_a_pinned_root_file_named_public_good_is_the_file(
    assets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify-bundle's --trusted-root is always a file (the conformance protocol): one named ``public-good`` (or
    ``./public-good``) is read, not taken for the deployment of that name."""
    case = assets / "managed-key-and-trusted-root"
    (tmp_path / "public-good").write_bytes((case / "trusted_root.json").read_bytes())
    monkeypatch.chdir(tmp_path)
    flags = ["verify-bundle", "--bundle", str(case / "bundle.sigstore.json"), "--key", str(case / "key.pub")]
    for root in ("public-good", "./public-good"):
        r = CliRunner().invoke(app, [*flags, "--trusted-root", root, digest(assets / "a.txt")])
        assert r.exit_code == 0, r.output  # public-good's own root would refuse this log entry
    (tmp_path / "public-good").write_text("{}")
    r = CliRunner().invoke(app, [*flags, "--trusted-root", "public-good", digest(assets / "a.txt")])
    assert r.exit_code == uc.EXIT_INVALID, r.output


def test_a_managed_key_that_does_not_exist_is_invalid_input_not_a_denial(assets: Path, tmp_path: Path) -> None:
    case = assets / "managed-key-happy-path"
    r = CliRunner().invoke(
        app, ["verify-bundle", "--bundle", str(case / "bundle.sigstore.json"), "--key", str(tmp_path / "absent.pub"),
              digest(assets / "a.txt")],
    )  # fmt: skip
    assert r.exit_code == uc.EXIT_INVALID and "public key not found" in r.output, r.output
