"""DESIGN.md section 1: data flows down; the CLI uses only the facade; the quant core stays light.

ORDER is the pipeline of DESIGN.md §1 as packages: each unit may import only units before it. An import
of a unit further down the pipeline (e.g. the signing stage importing the verifier) fails the test.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "uc_attest"

ORDER = [
    "errors",  # the one error tree (and exit codes): everything may raise them
    "core",  # utilities: digests, RFC 8785, Merkle, strict safetensors, atomic output, DSSE PAE
    "anchors",  # trust as values: the OMS signature methods, trust root choices (no I/O)
    "source",  # model directories
    "quant",  # the only tensor math
    "testing",  # synthetic models for tests and benchmarks (not used by the product)
    "manifest",  # per-tensor digests and the Merkle root (a value the pack writes)
    "calibration",  # second moments measured, read, committed (quant's block form); its record is a manifest value
    "pack",  # the on-disk pack: reader, writer, facts, check, export
    "oci",  # packs and bundles in an OCI registry (distribution API client, artifact layout)
    "claims",  # statements and their predicates, parsed from the exact signed bytes
    "transparency",  # checkpoints, the verifying log client, the witness
    "instance",  # the embedded DEV Sigstore (server side; its trust config and dev tokens serve the clients)
    "signing",  # trust selection, DSSE signing, the attest stages
    "evidence",  # bundle -> payload, signer, times, log proof
    "policy",  # policy model, rules over facts and claims
    "verify",  # gather facts -> rules -> Verdict
    "runtime",  # loading verified packs
    "hf",  # `import uc_attest.hf`: registers the transformers quantizer
    "audit",  # chain of custody, inventory, report
    "__init__",  # the facade
    "cli",  # thin commands over the facade
]


def _unit(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_units(path: Path) -> set[str]:
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


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(PKG.rglob("*.py")):
        me = _unit(path)
        if me not in ORDER:
            problems.append(f"{path}: add its unit to ORDER in this test")
            continue
        for imp in imported_units(path):
            if imp not in ORDER:
                problems.append(f"{path}: unknown import {imp}")
            elif ORDER.index(imp) >= ORDER.index(me) and imp != me:
                problems.append(f"{path.relative_to(PKG)}: imports {imp}, which is below it in the pipeline")
    return problems


def test_modules_import_only_from_above() -> None:
    assert upward_imports() == []


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    """The test itself can fail: a scratch copy where the signing stage imports the verifier."""
    import shutil

    import pytest

    scratch = tmp_path / "uc_attest"
    shutil.copytree(PKG, scratch, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    attest = scratch / "signing" / "attest.py"
    attest.write_text(attest.read_text() + "\nfrom ..verify.api import verify  # an upward import\n")
    mp = pytest.MonkeyPatch()
    mp.setattr(sys.modules[__name__], "PKG", scratch)
    try:
        assert upward_imports() == ["signing/attest.py: imports verify, which is below it in the pipeline"]
    finally:
        mp.undo()


def test_cli_imports_only_the_facade() -> None:
    for path in (PKG / "cli").glob("*.py"):
        assert imported_units(path) <= {"__init__"}, path


def test_quant_core_has_no_signing_or_network_imports() -> None:
    for path in (PKG / "quant").glob("*.py"):
        src = path.read_text()
        for bad in ("sigstore", "http", "requests", "socket", "cryptography"):
            assert f"import {bad}" not in src and f"from {bad}" not in src, (path, bad)


def test_verify_path_does_not_import_torch_or_sigstore() -> None:
    code = (
        "import sys, uc_attest.cli, uc_attest.verify, uc_attest.pack.export; "
        "print('torch' in sys.modules, 'sigstore' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
