"""Differential: the own verifier and sigstore-python over every bundle vector of ../shared/vectors, as
given and mutated (wrong identity, issuer, key or digest; a flipped signature, payload, SET, integrated
time, inclusion-proof hash or timestamp). Where sigstore-python reads the shape both must agree: every valid
vector verified by both, every broken one and every mutation refused by both. Where it does not (managed
keys, intoto entries, v0.1 SET-only, a TSA validity end), the own path alone must do the same.
"""

from __future__ import annotations

import pytest

import uc_attest as uc
from tests.conftest import SHARED
from tests.integration.bundle_paths import MUTATIONS, NA, run_both, run_own, run_sigstore_python
from uc_attest.testing.vectors import all_vectors, artifact_digest

VECTORS = all_vectors(SHARED) if (SHARED / "vectors").exists() else []


def test_vectors_are_there() -> None:
    if not VECTORS:
        pytest.skip(f"{SHARED / 'vectors'} not found: ../shared is not beside this clone")
    assert len(VECTORS) == 70 + 17


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.name)
def test_both_verifiers_agree_on_every_vector_and_its_mutations(v) -> None:  # type: ignore[no-untyped-def]
    try:
        doc = v.doc()
    except ValueError:  # not JSON: refused before any verifier, exit 3
        assert not v.expect_ok
        with pytest.raises(uc.MalformedBundle):
            uc.verify_any_bundle(v.bundle, artifact_digest(v), identity="x", issuer="y", trusted_root=v.trusted_root)
        return
    own, stock = run_own(v, doc), run_sigstore_python(v, doc)
    if v.expect_ok:
        assert own is None, f"own path refuses a valid vector: {own}"
        assert stock in (None, NA), f"sigstore-python refuses a valid vector: {stock}"
    else:
        assert own is not None, "own path accepts a broken vector"
        assert stock is not None, "sigstore-python accepts a broken vector"
        return
    assert run_both(v, doc) is None
    tried = 0
    for name, mutate in MUTATIONS.items():
        case = mutate(v, doc)
        if case is None:
            continue
        mdoc, kw = case
        tried += 1
        own, stock = run_own(v, mdoc, **kw), run_sigstore_python(v, mdoc, **kw)
        assert own is not None, f"{name}: the own path accepts the mutated bundle"
        assert stock is not None, f"{name}: sigstore-python accepts the mutated bundle"
    assert tried >= 4
