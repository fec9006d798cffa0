"""The written map stays true (issue 33): the facade's names, its type stub, docs/api.md and docs/architecture.md
name the same things, and every module of the package has its line in docs/architecture.md."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import uc_attest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "uc_attest"


def stub_names() -> dict[str, tuple[str, str]]:
    """public name -> (module, attribute) as ``__init__.pyi`` imports them (the error tree's star import aside)."""
    out: dict[str, tuple[str, str]] = {}
    for node in ast.parse((PKG / "__init__.pyi").read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module != "errors":
            for alias in node.names:
                out[alias.asname or alias.name] = (node.module, alias.name)
    return out


def test_every_lazy_name_resolves_to_what_it_says() -> None:
    for name, (module, attr) in uc_attest._LAZY.items():
        mod = importlib.import_module(f"uc_attest.{module}")
        assert hasattr(mod, attr), f"_LAZY[{name!r}] -> {module}.{attr} does not exist"
        assert getattr(uc_attest, name) is getattr(mod, attr)


def test_the_type_stub_names_exactly_the_lazy_names() -> None:
    stub = stub_names()
    assert set(stub) == set(uc_attest._LAZY), (
        f"only in _LAZY: {sorted(set(uc_attest._LAZY) - set(stub))}; only in the stub: {sorted(set(stub) - set(uc_attest._LAZY))}"
    )
    for name, where in stub.items():
        assert where == uc_attest._LAZY[name], f"{name}: the stub imports {where}, _LAZY says {uc_attest._LAZY[name]}"


def test_docs_api_names_every_public_name() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    quoted = set(re.findall(r"`(?:uc\.)?([A-Za-z_][A-Za-z0-9_]*)", text))
    missing = sorted(set(uc_attest._LAZY) - quoted)
    assert not missing, f"docs/api.md does not name: {missing}"


def test_docs_architecture_has_a_line_for_every_module() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    missing = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if path.name == "__init__.py":
            continue
        if f"`{path.name}`" not in text and f"`{rel.as_posix()}`" not in text and path.name not in text:
            missing.append(rel.as_posix())
    assert not missing, f"docs/architecture.md has no line for: {missing}"
