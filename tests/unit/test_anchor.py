"""Trust anchors: illegal states are unwritable, and no entry point runs without one (issue 28)."""

from __future__ import annotations

from pathlib import Path

import pytest

import uc_attest as uc
from tests.conftest import make_model
from uc_attest.core.fsutil import atomic_output_dir
from uc_attest.verify.anchor import OmsMethod


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": uc.AnchorKind.MANIFEST},  # would fall back to the pack's own manifest while anchored=True
        {"kind": uc.AnchorKind.BUNDLE},
        {"kind": uc.AnchorKind.POLICY},
        {"kind": uc.AnchorKind.POLICY, "policy_file": Path("p.yaml"), "identity": "x"},
        {"kind": uc.AnchorKind.PACK_ITSELF, "manifest": Path("m.json")},
        {"kind": uc.AnchorKind.OMS, "bundle": Path("s"), "identity": "x"},  # no method
        {"kind": uc.AnchorKind.OMS, "bundle": Path("s"), "oms_method": OmsMethod.KEY},  # no key
        {"kind": uc.AnchorKind.BUNDLE, "identity": "x", "oms_method": OmsMethod.SIGSTORE},
    ],
)
def test_an_anchor_built_field_by_field_must_be_a_legal_one(fields: dict[str, object]) -> None:
    with pytest.raises(uc.UsageError, match="anchor of kind"):
        uc.Anchor(**fields)  # type: ignore[arg-type]


def test_every_constructor_makes_a_legal_anchor() -> None:
    for a in (
        uc.Anchor.policy("p"),
        uc.Anchor.signed_by("a", "i", bundle="b"),
        uc.Anchor.kept_manifest("m"),
        uc.Anchor.pack_itself(),
        uc.Anchor.oms_signed_by("s", "i"),
        uc.Anchor.oms_key("s", "k"),
        uc.Anchor.oms_certificate("s", "c", "i", "j"),
    ):
        assert uc.Anchor(**{f: getattr(a, f) for f in a.__dataclass_fields__}) == a


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


def test_a_kind_given_as_its_string_is_the_enum_member(pack: Path, tmp_path: Path) -> None:
    """Anchor("pack-itself") built field by field is AnchorKind.PACK_ITSELF (compared with `is`): the
    integrity-only marker never disappears (review of issue 28)."""
    a = uc.Anchor("pack-itself")  # type: ignore[arg-type]
    assert a.kind is uc.AnchorKind.PACK_ITSELF and not a.anchored
    res = uc.reconstruct(pack, tmp_path / "o", a)
    assert res.note and "integrity only" in res.note
    with pytest.raises(uc.UsageError, match="unknown anchor kind"):
        uc.Anchor("nonsense")  # type: ignore[arg-type]


def test_an_identity_beside_a_policy_is_refused_saying_where_identities_come_from(tmp_path: Path) -> None:
    """``verify --policy P --identity x``: the message names the real conflict (the policy names the signers),
    not an exclusivity that --policy with --bundle does not have (issue 32)."""
    from uc_attest.errors import UsageError
    from uc_attest.verify.anchor import anchor_from_options

    policy = tmp_path / "p.yaml"
    for extra in ({"identity": "x"}, {"issuer": "https://i"}, {"identity": "x", "bundle": tmp_path / "b.json"}):
        with pytest.raises(UsageError, match="identities come from the policy's signers"):
            anchor_from_options(policy=policy, **extra)  # type: ignore[arg-type]
    assert anchor_from_options(policy=policy, bundle=tmp_path / "b.json") is not None
    with pytest.raises(UsageError, match="--policy and --manifest are exclusive"):
        anchor_from_options(policy=policy, manifest=tmp_path / "m.json")
