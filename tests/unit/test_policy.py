"""Policy files: strict model, errors naming file, line and field; shipped policies are valid. A key given twice,
nesting too deep and a threshold that is not a finite number are invalid input, and NaN passes no threshold."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import uc_attest as uc
from tests.conftest import assert_clean_error
from tests.e2e.test_cli import cli
from uc_attest.policy.model import read_policy

REPO = Path(__file__).resolve().parents[2]
GOOD = """version: 1
name: t
trust:
  instance: ./inst
signers:
  release:
    - issuer: https://issuer.example
      identity: a@example.com
"""


def _write(tmp: Path, text: str) -> Path:
    p = tmp / "p.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", ["default.yaml", "model-risk.yaml", "github-release.yaml"])
def test_shipped_policies_are_valid(name: str) -> None:
    pol, base = read_policy(REPO / "policies" / name)
    assert pol.signers.release and base == REPO / "policies"


def test_good_policy_and_schema(tmp_path: Path) -> None:
    pol = uc.load_policy(_write(tmp_path, GOOD))
    assert pol.signers.release[0].matches("a@example.com", "https://issuer.example")
    assert not pol.signers.release[0].matches("a@example.com", "https://other")
    schema = uc.policy_schema()
    assert schema["additionalProperties"] is False and "signers" in schema["required"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (GOOD + "extra: 1\n", "p.yaml:9: extra: unknown key"),
        (
            GOOD.replace("identity: a@example.com", "identity: a@example.com\n      idenity: x"),
            "p.yaml:9: signers.release.0.idenity: unknown key",
        ),
        (GOOD.replace("identity: a@example.com", "identity_regex: 'a@.*'"), "must be anchored"),
        (GOOD.replace("identity: a@example.com", "identity_regex: '^a@[$'"), "does not compile"),
        (GOOD.replace("version: 1", "version: '1'"), "p.yaml:1: version"),
        (
            GOOD.replace("    - issuer: https://issuer.example\n      identity: a@example.com\n", "    []\n"),
            "signers.release",
        ),
        ("version: 1\nname: t\ntrust: {instance: x}\nsigners: {}\n", "signers.release"),
        (GOOD + "validation: {required: true}\n", "needs at least one signers.validator"),
        (GOOD + "validation:\n  thresholds:\n    x: {}\n", "needs min or max"),
        (GOOD + "source: {allowed_digests: [abc]}\n", "is not sha256"),
        ("version: 1\nname: [unclosed\n", "invalid YAML"),
        ("- a\n- b\n", "must be a YAML mapping"),
        (GOOD.replace("instance: ./inst", "instance: ./inst\n  trust_config: x.json"), "exactly one of"),
    ],
)
def test_invalid_policies_name_file_line_and_field(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(uc.InvalidInput) as info:
        read_policy(_write(tmp_path, text))
    assert needle in info.value.message, info.value.message


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(uc.InvalidInput, match="not found"):
        read_policy(tmp_path / "nope.yaml")


def test_cli_policy_check_and_schema(tmp_path: Path) -> None:
    from tests.e2e.test_cli import assert_clean_error, cli

    assert cli("policy", "check", REPO / "policies" / "model-risk.yaml").returncode == 0
    assert_clean_error(cli("policy", "check", _write(tmp_path, GOOD + "extra: 1\n")), 3, "unknown key")
    r = cli("policy", "schema")
    assert r.returncode == 0 and json.loads(r.stdout)["title"] == "Policy"


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_thresholds_are_refused_at_policy_load(tmp_path: Path, value: str) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("version: 1\nname: t\nsigners:\n  release:\n    - issuer: https://i\n      identity: a@b\n"
                 f"validation:\n  thresholds:\n    gap:\n      max: {value}\n")  # fmt: skip
    assert_clean_error(cli("policy", "check", p), 3, "thresholds.gap.max")


def test_threshold_comparisons_fail_closed_on_nan() -> None:
    from uc_attest.policy.model import Threshold

    th = Threshold(max=0.02)
    assert th.admits(0.01) and not th.admits(0.5)
    assert not th.admits(math.nan) and not th.admits(math.inf) and not Threshold(min=0.0).admits(math.nan)


def test_a_duplicate_policy_key_names_both_lines(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("version: 1\nname: t\nsigners:\n  release:\n    - issuer: https://good\n      identity: a@b\n"
                 "      identity: '^.*$'\n")  # fmt: skip
    r = cli("policy", "check", p)
    assert_clean_error(r, 3, "'identity' given twice", "lines 6 and 7")


def test_a_deeply_nested_policy_is_invalid_input(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
    assert_clean_error(cli("policy", "check", p), 3, "nested")
