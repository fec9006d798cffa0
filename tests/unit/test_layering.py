"""DESIGN.md section 1: data flows down; the CLI uses only the facade; the quant core stays light."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "uc_attest"

# Each module may import only modules listed before it (lower index = higher in the pipeline).
ORDER = ["errors", "digest", "merkle", "fsutil", "stfile", "source", "quant", "synth", "manifest", "pack",
         "export", "verify", "__init__", "cli"]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            mod = (node.module or "").split(".")[0]
            if node.level == 2 or mod:
                found.add(mod or "__init__")
            else:
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("uc_attest"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("uc_attest"):
            found.add(node.module or "")
    return found


def _module_of(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_modules_import_only_from_above() -> None:
    for path in PKG.rglob("*.py"):
        me = _module_of(path)
        if me not in ORDER:
            raise AssertionError(f"{path.name}: add the module to ORDER in this test")
        for imp in _imports(path):
            if imp in ("uc_attest", "__init__") and me == "cli":
                continue
            if me == "quant" and imp in ("quantize", "reconstruct", "scheme", "codec"):
                continue  # inside the quant package
            assert imp in ORDER, f"{path}: unknown import {imp}"
            assert ORDER.index(imp) < ORDER.index(me), f"{path}: imports {imp}, which is below it"


def test_cli_imports_only_the_facade() -> None:
    for imp in _imports(PKG / "cli.py"):
        assert imp == "uc_attest", imp


def test_quant_core_has_no_signing_or_network_imports() -> None:
    for path in (PKG / "quant").glob("*.py"):
        src = path.read_text()
        for bad in ("sigstore", "http", "requests", "socket", "cryptography"):
            assert f"import {bad}" not in src and f"from {bad}" not in src, (path, bad)
