"""DESIGN.md section 1: data flows down; the CLI uses only the facade; the quant core stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "uc_attest"

# Each top-level module or package may import only those listed before it (higher in the pipeline).
ORDER = ["errors", "digest", "merkle", "fsutil", "stfile", "source", "quant", "calibration", "synth", "manifest", "pack",
         "export", "provenance", "tlog", "signing", "instance", "trust", "policy", "verifier", "auditor", "report", "attest", "__init__", "cli"]


def _unit(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_units(path: Path) -> set[str]:
    """Top-level uc_attest units imported by ``path`` (imports inside its own package excluded)."""
    in_package = len(path.relative_to(PKG).parts) > 1
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                mod = node.module or ""
                if mod == "uc_attest":
                    found.add("__init__")
                elif mod.startswith("uc_attest."):
                    found.add(mod.split(".")[1])
                continue
            depth = node.level - (1 if in_package else 0)
            if depth <= 0:
                continue  # sibling inside the same package
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "uc_attest":
                    found.add("__init__")
                elif a.name.startswith("uc_attest."):
                    found.add(a.name.split(".")[1])
    return found


def test_modules_import_only_from_above() -> None:
    for path in PKG.rglob("*.py"):
        me = _unit(path)
        assert me in ORDER, f"{path}: add its unit to ORDER in this test"
        for imp in _imported_units(path):
            assert imp in ORDER, f"{path}: unknown import {imp}"
            assert ORDER.index(imp) < ORDER.index(me), f"{path}: imports {imp}, which is below it"


def test_cli_imports_only_the_facade() -> None:
    assert _imported_units(PKG / "cli.py") == {"__init__"}


def test_quant_core_has_no_signing_or_network_imports() -> None:
    for path in (PKG / "quant").glob("*.py"):
        src = path.read_text()
        for bad in ("sigstore", "http", "requests", "socket", "cryptography"):
            assert f"import {bad}" not in src and f"from {bad}" not in src, (path, bad)


def test_verify_path_does_not_import_torch() -> None:
    code = "import sys, uc_attest.cli, uc_attest.verifier, uc_attest.export; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
