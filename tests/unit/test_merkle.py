"""RFC 6962 hashing and inclusion proofs: third-party vectors and a naive reference tree."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import SHARED, shared_path
from uc_attest.core import merkle


def _inclusion_cases() -> list[Path]:
    root = SHARED / "vectors" / "transparency-dev-merkle" / "testdata" / "inclusion"
    return sorted(root.rglob("*.json")) if root.exists() else []


@pytest.mark.parametrize("path", _inclusion_cases(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_transparency_dev_inclusion_vectors(path: Path) -> None:
    c = json.loads(path.read_text())
    b64 = lambda s: base64.b64decode(s) if s else b""
    proof = [b64(h) for h in (c["proof"] or [])]
    try:
        merkle.verify_inclusion(c["leafIdx"], c["treeSize"], b64(c["leafHash"]), proof, b64(c["root"]))
        failed = False
    except (merkle.ProofError, merkle.RootMismatch):
        failed = True
    assert failed == c["wantErr"], c["desc"]


def test_reference_tree_roots() -> None:
    ref = json.loads(shared_path("vectors", "transparency-dev-merkle", "reference_tree.json").read_text())
    leaves = [merkle.leaf_hash(bytes.fromhex(x)) for x in ref["leaf_inputs_hex"]]
    for n, want in enumerate(ref["root_hashes_hex"]):
        assert merkle.root_from_leaf_hashes(leaves[:n]).hex() == want
    for p in ref["inclusion_proofs"]:
        got = merkle.inclusion_proof(leaves[: p["tree_size"]], p["leaf_index"])
        assert [h.hex() for h in got] == p["proof_hex"]


def _naive_root(leaves: list[bytes]) -> bytes:
    """MTH by the RFC's recursive definition (reference only)."""
    if not leaves:
        return merkle.EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(_naive_root(leaves[:k]), _naive_root(leaves[k:]))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 70), data=st.data())
def test_proofs_agree_with_naive_tree(n: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    root = _naive_root(leaves)
    assert merkle.root_from_leaf_hashes(leaves) == root
    i = data.draw(st.integers(0, n - 1))
    proof = merkle.inclusion_proof(leaves, i)
    merkle.verify_inclusion(i, n, leaves[i], proof, root)
    if proof:
        bad = [*proof[:-1], bytes(32)]
        with pytest.raises(merkle.RootMismatch):
            merkle.verify_inclusion(i, n, leaves[i], bad, root)
        with pytest.raises((merkle.ProofError, merkle.RootMismatch)):
            merkle.verify_inclusion(i, n, leaves[i], proof[:-1], root)


def _consistency_cases() -> list[Path]:
    root = SHARED / "vectors" / "transparency-dev-merkle" / "testdata" / "consistency"
    return sorted(root.rglob("*.json")) if root.exists() else []


@pytest.mark.parametrize("path", _consistency_cases(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_transparency_dev_consistency_vectors(path: Path) -> None:
    c = json.loads(path.read_text())
    b64 = lambda s: base64.b64decode(s) if s else b""
    try:
        merkle.verify_consistency(
            c["size1"], c["size2"], b64(c["root1"]), b64(c["root2"]), [b64(h) for h in (c["proof"] or [])]
        )
        failed = False
    except (merkle.ProofError, merkle.RootMismatch):
        failed = True
    assert failed == c["wantErr"], c["desc"]


def test_reference_consistency_proofs() -> None:
    ref = json.loads(shared_path("vectors", "transparency-dev-merkle", "reference_tree.json").read_text())
    leaves = [merkle.leaf_hash(bytes.fromhex(x)) for x in ref["leaf_inputs_hex"]]
    for p in ref["consistency_proofs"]:
        got = merkle.consistency_proof(leaves[: p["size2"]], p["size1"])
        assert [h.hex() for h in got] == p["proof_hex"]


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 70), data=st.data())
def test_consistency_proofs_verify_against_naive_roots(n: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    m = data.draw(st.integers(1, n))
    proof = merkle.consistency_proof(leaves, m)
    old, new = _naive_root(leaves[:m]), _naive_root(leaves)
    merkle.verify_consistency(m, n, old, new, proof)
    if 0 < m < n:
        with pytest.raises(merkle.RootMismatch):
            merkle.verify_consistency(m, n, old, bytes(32), proof)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 130), data=st.data())
def test_cached_tree_equals_the_definitions(n: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    tree = merkle.MerkleTree(leaves)
    size = data.draw(st.integers(1, n))
    assert tree.root(size) == merkle.root_from_leaf_hashes(leaves[:size]) == _naive_root(leaves[:size])
    i = data.draw(st.integers(0, size - 1))
    assert tree.inclusion_proof(i, size) == merkle.inclusion_proof(leaves[:size], i)
    m = data.draw(st.integers(0, size))
    assert tree.consistency_proof(m, size) == merkle.consistency_proof(leaves[:size], m)
