"""``uc-attest validate`` signs only what a threshold can judge: a metric that is not a finite number is refused
before anything is signed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import assert_clean_error
from tests.e2e.test_cli import cli


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_metrics_are_refused_at_validate(world: dict[str, Any], tmp_path: Path, value: str) -> None:
    report = tmp_path / "metrics.json"
    report.write_text('{"evaluation_set": "holdout-v1", "metrics": {"gap": ' + value + "}}")
    r = cli("validate", world["pack"], "--report", report, "--instance", world["inst"].dir, "--identity", "v@b.example",
            "--bundle", tmp_path / "v.json")  # fmt: skip
    assert_clean_error(r, 3, "gap")
    assert not (tmp_path / "v.json").exists()
