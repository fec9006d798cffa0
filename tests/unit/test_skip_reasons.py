"""Every skip says why (issue 32): a test whose parameters come from files that are not here names them, never
pytest's bare "got empty parameter set" (tests/conftest.py's collection hook)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_an_empty_parameter_set_is_skipped_with_the_modules_reason(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text("from tests.conftest import pytest_collection_modifyitems  # noqa: F401\n")
    (tmp_path / "test_empty.py").write_text(
        "import pytest\n"
        "EMPTY_REASON = 'cases.json not found: run the collector first'\n"
        "@pytest.mark.parametrize('case', [])\n"
        "def test_each(case):\n"
        "    pass\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:randomly",
                        str(tmp_path)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120, check=False)  # fmt: skip
    assert "cases.json not found: run the collector first" in r.stdout, r.stdout
    assert "got empty parameter set" not in r.stdout
