"""Real attestations as their publishers publish them (PyPI PEP 740, npm provenance and publish, GitHub
artifact attestations, OpenSSF Model Signing, sigstore-go's bundles): each verifies with sigstore-python
(where it reads the shape) and the own path, with the publisher's signer and trusted root, and every field
mutated is refused. The data is not in the repository: ``benchmarks/realworld.py collect`` puts it in
build/realworld/ (see its docstring); without it these tests skip. The fetch from the registries is `slow`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.integration.test_differential import dotted, gap, leaves, mutate, sample, unsigned

sys.path.insert(0, str(REPO))
from benchmarks import realworld as rw

CASES = rw.load_cases()
SKIP = f"{rw.DEST / 'cases.json'} not found: run `python benchmarks/realworld.py collect ...` (see its docstring)"
EMPTY_REASON = SKIP  # the parametrized tests below, when there is no case


def test_the_real_world_set_is_there() -> None:
    if not CASES:
        pytest.skip(SKIP)
    assert {c.publisher.split(" ")[0] for c in CASES} >= {"PyPI", "npm"}


def _runnable(case: rw.Case) -> None:
    why = rw.runnable(case)
    if why is not None:
        pytest.skip(f"{case.name}: {why}")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_real_bundle_verifies_with_its_signer_and_root(case: rw.Case) -> None:
    _runnable(case)
    doc = case.doc()
    assert rw.verify_own(case, doc) is None, rw.verify_own(case, doc)
    assert rw.verify_sigstore_python(case, doc) in (None, rw.NA), rw.verify_sigstore_python(case, doc)
    assert rw.verify_both(case, doc) is None
    if case.key is None:
        assert rw.verify_own(case, doc, identity="eve@example.com") is not None
        assert rw.verify_sigstore_python(case, doc, identity="eve@example.com") is not None


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_real_bundle_refuses_another_artifact(case: rw.Case) -> None:
    _runnable(case)
    other = dataclasses.replace(case, artifact=None, digests={"sha256": "00" * 32, "sha512": "00" * 64})
    doc = case.doc()
    assert rw.verify_own(other, doc) is not None
    assert rw.verify_both(other, doc) is not None


def check_mutations(case: rw.Case) -> int:
    doc, tried = case.doc(), 0
    for path in sample(list(leaves(doc)), case.name):
        mdoc = mutate(doc, path)
        own, stock, both = rw.verify_own(case, mdoc), rw.verify_sigstore_python(case, mdoc), rw.verify_both(case, mdoc)
        if unsigned(path, doc) is not None:
            continue
        tried += 1
        assert own is not None, f"{dotted(path)}: the own path accepts the mutated bundle"
        assert stock is not None or gap(path), f"{dotted(path)}: sigstore-python accepts the mutated bundle"
        assert both is not None, f"{dotted(path)}: verify-bundle accepts the mutated bundle"
    return tried


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_field_of_a_real_bundle_mutated_is_refused_sampled(case: rw.Case) -> None:
    _runnable(case)
    check_mutations(case)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_field_of_a_real_bundle_mutated_is_refused_all(case: rw.Case, monkeypatch: Any) -> None:
    _runnable(case)
    monkeypatch.setenv("UC_MUTATIONS", "all")
    assert check_mutations(case) > 10


@pytest.mark.slow
def test_fetch_from_the_registries(tmp_path: Path) -> None:
    """PyPI (the pypi-attestations sdist's test assets) and npm (the tarballs the attestations name)."""
    import argparse

    args = argparse.Namespace(pypi_attestations=None, pip=True, npm=True, cli_cli=None, sigstore_go=None,
                              model_transparency=None, github_root=None)  # fmt: skip
    cases = rw.collect(args, tmp_path)
    assert any(c.publisher == "PyPI (PEP 740)" for c in cases)
    for c in cases:
        if rw.runnable(c, tmp_path) is None:
            assert rw.verify_own(c, c.doc(tmp_path), tmp_path) is None, c.name
    assert (tmp_path / "cases.json").exists()
