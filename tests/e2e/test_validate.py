"""``uc-attest validate`` signs only what a threshold can judge: a metric that is not a finite number is refused
before anything is signed. The library's signing calls take ``sign_as=None`` as the default signer."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import uc_attest as uc
from tests.conftest import assert_clean_error
from tests.e2e.test_cli import cli
from uc_attest.signing import attest
from uc_attest.signing.sign import DEV_RELEASE_IDENTITY, DEV_VALIDATOR_IDENTITY


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_metrics_are_refused_at_validate(world: dict[str, Any], tmp_path: Path, value: str) -> None:
    report = tmp_path / "metrics.json"
    report.write_text('{"evaluation_set": "holdout-v1", "metrics": {"gap": ' + value + "}}")
    r = cli("validate", world["pack"], "--report", report, "--instance", world["inst"].dir, "--identity", "v@b.example",
            "--bundle", tmp_path / "v.json")  # fmt: skip
    assert_clean_error(r, 3, "gap")
    assert not (tmp_path / "v.json").exists()


def test_sign_as_none_signs_as_the_default(
    world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sign_as=None`` is ``SignAs()`` (the role's own dev identity on an embedded instance), never an
    AttributeError: attest_pack, and validate_pack through the facade and the signing module alike."""
    monkeypatch.delenv("SIGSTORE_IDENTITY_TOKEN", raising=False)
    pack = tmp_path / "pack"
    shutil.copytree(world["pack"], pack)
    trust = uc.select_trust(None, world["inst"].dir)
    released = uc.attest_pack(pack, trust, sign_as=None, bundle_out=tmp_path / "r.json", oms=False)
    assert released.identity == DEV_RELEASE_IDENTITY
    report = tmp_path / "metrics.json"
    report.write_text('{"evaluation_set": "holdout-v1", "metrics": {"gap": 0.01}}')
    for validate, out in ((uc.validate_pack, "v1.json"), (attest.validate_pack, "v2.json")):
        done = validate(pack, report, trust, sign_as=None, bundle_out=tmp_path / out)
        assert done.identity == DEV_VALIDATOR_IDENTITY and (tmp_path / out).is_file()
