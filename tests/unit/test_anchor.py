"""Trust anchors: illegal states are unwritable, and no entry point runs without one (issue 28)."""

from __future__ import annotations

from pathlib import Path

import pytest

import uc_attest as uc
from tests.conftest import make_model
from uc_attest.core.fsutil import atomic_output_dir


def test_every_constructor_makes_one_frozen_variant_carrying_its_trust() -> None:
    """Trust as a closed set of frozen variants (issue 33): each constructor returns exactly one, the trust root
    travels with the variant that needs it, and a variant cannot be changed after it is built."""
    import dataclasses

    trust = uc.TrustInstance(Path("inst"))
    built = {
        uc.PolicyAnchor: uc.Anchor.policy("p"),
        uc.SignedBy: uc.Anchor.signed_by("a", "i", bundle="b", trust=trust),
        uc.KeptManifest: uc.Anchor.kept_manifest("m"),
        uc.PackItself: uc.Anchor.pack_itself(),
        uc.OmsAnchor: uc.Anchor.oms_signed_by("s", "i", trust=trust),
    }
    for kind, a in built.items():
        assert type(a) is kind and isinstance(a, uc.Anchor)
        with pytest.raises(dataclasses.FrozenInstanceError):
            a.x = 1  # type: ignore[union-attr]
    assert built[uc.SignedBy].trust == trust  # type: ignore[union-attr]
    assert isinstance(uc.Anchor.oms_key("s", "k").signature.method, uc.PublicKey)
    assert uc.Anchor.oms_certificate("s", "c", "i", "j").signature.method == uc.CaChain(
        Path("c"), uc.CaSigner("i", "j")
    )
    assert (
        not uc.PackItself().anchored and not uc.KeptManifest(Path("m")).signed and uc.SignedBy("a", None, trust).signed
    )
    with pytest.raises(uc.UsageError, match="identity"):
        uc.SignedBy("", None, trust)
    with pytest.raises(uc.UsageError, match="both"):
        uc.Anchor.oms_certificate("s", "c", "i")


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("anchor")
    uc.write_pack(make_model(root / "src"), root / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    return root / "pack"


def test_no_entry_point_runs_without_an_anchor(pack: Path, tmp_path: Path) -> None:
    for call in (
        lambda: uc.verify(pack, None),
        lambda: uc.reconstruct(pack, tmp_path / "o", None),  # type: ignore[arg-type]
        lambda: uc.load_model(pack),
        lambda: uc.verify(pack, "policy.yaml"),
    ):  # type: ignore[arg-type]
        with pytest.raises(uc.UsageError, match="trust anchor"):
            call()
    assert not (tmp_path / "o").exists()


def test_a_pack_checked_against_its_own_manifest_says_integrity_only(pack: Path) -> None:
    own = uc.check_pack(pack)
    assert own.ok and own.integrity_only and "integrity only" in (own.note or "")
    assert own.to_dict()["integrity_only"] is True and "no signer" in own.to_dict()["note"]
    kept = uc.check_pack(pack, pack / uc.MANIFEST_NAME)
    assert kept.ok and not kept.integrity_only and kept.note is None
    assert uc.verify_pack(pack).integrity_only


def test_an_output_path_that_is_a_symlink_is_refused_saying_so(tmp_path: Path) -> None:
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(uc.UsageError, match="is a symbolic link"), atomic_output_dir(tmp_path / "dangling"):
        pass
    assert not (tmp_path / "nowhere").exists()


def test_the_integrity_only_variant_stays_integrity_only(pack: Path, tmp_path: Path) -> None:
    """``PackItself()`` is never anchored: the integrity-only marker never disappears (review of issue 28)."""
    res = uc.reconstruct(pack, tmp_path / "o", uc.PackItself())
    assert res.note and "integrity only" in res.note


def test_an_oms_anchor_on_a_pack_entry_point_is_refused_in_library_terms(pack: Path) -> None:
    oms = uc.Anchor.oms_key(pack / "model.sig", pack / "k.pub")
    with pytest.raises(uc.UsageError, match="plain model directory"):
        uc.load_verified(pack, oms)
    with pytest.raises(uc.UsageError, match="plain model directory"):
        uc.reconstruct(pack, pack.parent / "never", oms)  # type: ignore[arg-type]
    assert not (pack.parent / "never").exists()


def test_no_loader_serves_a_model_on_the_pack_itself(pack: Path) -> None:
    """Issue 33: ``PackItself`` vouches for nothing, so a loader's parameter type (``ServingAnchor``) excludes it
    and ``serving_anchor`` refuses it, in one place, before anything is read; verify and reconstruct take it."""
    from uc_attest.runtime.hf import UcAttestConfig, UcAttestQuantizer

    itself = uc.Anchor.pack_itself()
    for call in (
        lambda: uc.load_model(pack, itself),  # type: ignore[arg-type]
        lambda: uc.load_verified(pack, itself),  # type: ignore[arg-type]
        lambda: uc.embed(pack, ["a"], itself),  # type: ignore[arg-type]
        lambda: UcAttestQuantizer(UcAttestConfig(anchor=itself)).validate_environment(),  # type: ignore[arg-type]
    ):
        with pytest.raises(uc.UsageError, match=r"only under a trust anchor: Anchor\.pack_itself\(\)"):
            call()
    assert uc.verify(pack, itself).ok
    kept = uc.load_verified(pack, uc.Anchor.kept_manifest(pack / uc.MANIFEST_NAME))  # the same bytes, vouched for
    assert kept and set(uc.ServingAnchor.__args__) == {uc.PolicyAnchor, uc.SignedBy, uc.KeptManifest}  # type: ignore[attr-defined]
    assert set(uc.PackAnchor.__args__) == {uc.PolicyAnchor, uc.SignedBy, uc.KeptManifest, uc.PackItself}  # type: ignore[attr-defined]


def test_a_signer_without_an_issuer_is_built_only_under_an_instance(tmp_path: Path) -> None:
    """Issue 33: the issuer rule (an instance's trust root alone has a default issuer) is applied as the value is
    built, never by a verification after it has opened the pack; with an issuer, any trust root will do."""
    file, inst = uc.TrustFile(tmp_path / "trust.json"), uc.TrustInstance(tmp_path)
    for build in (
        lambda: uc.Anchor.signed_by("a@b", trust=file),
        lambda: uc.SignedBy("a@b", None, uc.TrustRoot.public_good(offline=True)),
        lambda: uc.Anchor.oms_signed_by("s", "a@b", trust=file),
        lambda: uc.SigstoreIdentity("a@b", None, file),
        lambda: uc.SigstoreIdentity("", "https://i", file),
    ):
        with pytest.raises(uc.UsageError, match="only an instance's trust root has a default issuer"):
            build()
    assert uc.Anchor.signed_by("a@b", trust=inst).issuer is None
    assert uc.SignedBy("a@b", None, uc.Trust(str(tmp_path / "t.json"), tmp_path)).issuer is None  # a selected one
    assert uc.Anchor.signed_by("a@b", "https://i", trust=file).trust == file
    assert uc.SigstoreIdentity("a@b", "https://i", file).issuer == "https://i"


def test_cli_anchor_flags_are_refused_at_parse_time_in_their_own_words(tmp_path: Path) -> None:
    """``verify --policy P --identity x``: the message names the real conflict (the policy names the signers),
    not an exclusivity that --policy with --bundle does not have (issue 32); the CLI builds the variant."""
    from uc_attest.cli.options import anchor_flags, oms_sigstore_options

    policy = tmp_path / "p.yaml"
    none = dict.fromkeys(
        ("policy", "manifest", "bundle", "validation", "identity", "issuer", "trust_config", "instance")
    )
    for extra in ({"identity": "x"}, {"issuer": "https://i"}, {"identity": "x", "bundle": tmp_path / "b.json"}):
        with pytest.raises(uc.UsageError, match="identities come from the policy's signers"):
            anchor_flags(**{**none, "policy": policy, **extra})  # type: ignore[arg-type]
    assert anchor_flags(**{**none, "policy": policy, "bundle": tmp_path / "b.json"}) == uc.PolicyAnchor(
        policy, None, tmp_path / "b.json"
    )
    with pytest.raises(uc.UsageError, match="--policy and --manifest are exclusive"):
        anchor_flags(**{**none, "policy": policy, "manifest": tmp_path / "m.json"})  # type: ignore[arg-type]
    with pytest.raises(uc.UsageError, match="need a signer"):
        anchor_flags(**{**none, "manifest": tmp_path / "m.json", "instance": tmp_path})  # type: ignore[arg-type]
    with pytest.raises(uc.UsageError, match="under a trust root"):
        anchor_flags(**{**none, "identity": "x"})  # type: ignore[arg-type]
    with pytest.raises(uc.UsageError, match="exactly one of --trust-config FILE or --instance DIR"):
        oms_sigstore_options(tmp_path / "s", "x", None, tmp_path / "t.json", tmp_path)
    signed = anchor_flags(**{**none, "identity": "x", "instance": tmp_path})  # type: ignore[arg-type]
    assert signed == uc.SignedBy("x", None, uc.TrustInstance(tmp_path))


@pytest.mark.parametrize("kept", [False, True])
def test_an_unsigned_anchor_without_the_tensor_check_is_refused(tmp_path: Path, kept: bool) -> None:
    """Anchor.pack_itself() and a kept manifest prove the pack only by its tensors: without reading them the check
    would pass an empty or tampered directory (an outside review showed it), so ``tensors=None`` is refused before
    anything is read."""
    anchor = uc.Anchor.kept_manifest(tmp_path / "kept.json") if kept else uc.Anchor.pack_itself()
    with pytest.raises(uc.UsageError, match="tensors=None leaves nothing to check"):
        uc.verify(tmp_path / "absent", anchor, tensors=None)


@pytest.mark.parametrize("budget", [float("nan"), float("inf"), -float("inf"), 1e308, 0.0, -1.0, 65.0])
def test_a_budget_that_is_not_a_finite_number_of_bits_is_refused(budget: float) -> None:
    with pytest.raises(uc.UsageError, match=r"budget must be a number of bits per weight in \(0, 64\]"):
        uc.Allocation(budget)
