"""No library function over 60 lines (issue 33): a function that long does several things, and the next engineer
has to read all of them to change one. The argument count is ruff's (PLR0913, max 8, pyproject.toml)."""

from __future__ import annotations

import ast
from pathlib import Path

import uc_attest

LIBRARY = Path(uc_attest.__file__).parent
LONGEST = 60


def test_no_library_function_is_longer_than_60_lines() -> None:
    too_long = []
    for path in sorted(LIBRARY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > LONGEST:
                    too_long.append(f"{path.relative_to(LIBRARY)}:{node.lineno} {node.name} ({lines} lines)")
    assert not too_long, "split these: " + "; ".join(too_long)
