"""Attacks on the Merkle proofs a verdict rests on (a log's inclusion and consistency proofs, the manifest's root):
each test is a way a one-line slip in ``core/merkle.py`` would accept a forged proof or a forked log. Exhaustive
over every small tree (sizes 1..17 cover every shape of split: powers of two and not, left- and right-heavy)."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from uc_attest.core import merkle
from uc_attest.core.merkle import MerkleTree, ProofError, RootMismatch

N = 17
LEAVES = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(N)]
OTHER = [merkle.leaf_hash(b"other" + i.to_bytes(2, "big")) for i in range(N)]
ERRORS = (ProofError, RootMismatch)


def _tree() -> MerkleTree:
    """Built inside each test (not at import), so that the tree's own code runs under the test."""
    return MerkleTree(LEAVES)


def _naive(leaves: list[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(_naive(leaves[:k]), _naive(leaves[k:]))


def _flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    """RFC 6962's 0x00/0x01 prefixes: without them an inner node could be passed off as a leaf (second preimage)."""
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.leaf_hash(b"a") == hashlib.sha256(b"\x00a").digest()
    assert merkle.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert merkle.node_hash(a, b) != merkle.node_hash(b, a)
    assert merkle.EMPTY_ROOT == hashlib.sha256(b"").digest() == merkle.root_from_leaf_hashes([])


def test_every_way_of_computing_a_root_is_the_rfc_6962_one() -> None:
    """The level-by-level root, the cached tree's root at every size and the recursive definition agree."""
    TREE = _tree()  # noqa: N806
    for n in range(N + 1):
        want = _naive(LEAVES[:n])
        assert merkle.root_from_leaf_hashes(LEAVES[:n]) == want, n
        assert TREE.root(n) == want and MerkleTree(LEAVES[:n]).root() == want, n
    assert len(TREE) == N and TREE.leaf(5) == LEAVES[5]


def test_a_cached_tree_serves_only_the_complete_subtrees_it_has() -> None:
    """Tiles are served from ``nodes``: asking for a subtree that is not complete yet (or before the first) is an
    error, never a made-up hash."""
    TREE = _tree()  # noqa: N806
    assert TREE.nodes(0, 0, N) == LEAVES
    assert TREE.nodes(1, 0, 8) == [merkle.node_hash(LEAVES[2 * i], LEAVES[2 * i + 1]) for i in range(8)]
    assert TREE.nodes(4, 0, 1) == [_naive(LEAVES[:16])]
    assert TREE.nodes(2, 3, 1) == [_naive(LEAVES[12:16])]
    for level, start, count in ((1, 0, 9), (0, -1, 1), (4, 1, 1), (5, 0, 1), (0, 10, 8)):
        with pytest.raises(ProofError):
            TREE.nodes(level, start, count)
    assert TREE.nodes(6, 0, 0) == []


@pytest.mark.parametrize("n", range(1, N + 1))
def test_an_inclusion_proof_is_exact_and_any_forgery_fails(n: int) -> None:
    """Every leaf of every tree size: the three ways of building the audit path agree and verify; a flipped hash,
    a path one too short or too long, another leaf, another index or another root never verifies."""
    TREE = _tree()  # noqa: N806
    root = _naive(LEAVES[:n])
    for i in range(n):
        proof = merkle.inclusion_proof(LEAVES[:n], i)
        assert TREE.inclusion_proof(i, n) == proof == merkle.inclusion_path(TREE._hash, i, n)
        merkle.verify_inclusion(i, n, LEAVES[i], proof, root)
        assert merkle.root_from_inclusion_proof(i, n, LEAVES[i], proof) == root
        forgeries = [(i, n, OTHER[i], proof, root), (i, n, LEAVES[i], proof, _flip(root))]
        forgeries += [(i, n, LEAVES[i], [*proof[:k], _flip(p), *proof[k + 1 :]], root) for k, p in enumerate(proof)]
        forgeries += [(i, n, LEAVES[i], [*proof, LEAVES[0]], root)]
        if proof:
            forgeries += [(i, n, LEAVES[i], proof[:-1], root)]
        forgeries += [(j, n, LEAVES[i], proof, root) for j in range(n) if j != i]
        for args in forgeries:
            with pytest.raises(ERRORS):
                merkle.verify_inclusion(*args)


def test_an_inclusion_proof_outside_the_tree_is_refused_not_computed() -> None:
    """An index at or past the size (or negative), or hashes of the wrong length, are a malformed proof."""
    TREE = _tree()  # noqa: N806
    for index, size in ((3, 3), (-1, 3), (0, 0), (5, 2)):
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, LEAVES[0], [], LEAVES[0])
        with pytest.raises(ProofError):
            merkle.root_from_inclusion_proof(index, size, LEAVES[0], [])
    for bad in (
        (LEAVES[0][:31], [], LEAVES[0]),
        (LEAVES[0], [], LEAVES[0] + b"\x00"),
        (LEAVES[0], [b"\x00" * 33], LEAVES[0]),
    ):
        with pytest.raises(ProofError, match="32 bytes"):
            merkle.verify_inclusion(0, 2, *bad)
    with pytest.raises(ProofError):
        merkle.inclusion_proof(LEAVES[:3], 3)
    with pytest.raises(ProofError):
        merkle.inclusion_proof(LEAVES[:3], -1)
    with pytest.raises(ProofError):
        TREE.inclusion_proof(0, N + 1)
    with pytest.raises(ProofError):
        TREE.inclusion_proof(4, 4)
    assert merkle.inclusion_proof(LEAVES[:1], 0) == []
    merkle.verify_inclusion(0, 1, LEAVES[0], [], LEAVES[0])


@pytest.mark.parametrize("new", range(1, N + 1))
def test_a_consistency_proof_is_exact_and_any_old_or_new_root_but_the_real_ones_fails(new: int) -> None:
    """Every (old, new) pair, powers of two and not: the proof verifies the real roots, and a wrong old root (a
    forked history), a wrong new root, a flipped, dropped or added hash never verifies."""
    TREE = _tree()  # noqa: N806
    new_root = _naive(LEAVES[:new])
    for old in range(1, new + 1):
        old_root = _naive(LEAVES[:old])
        proof = merkle.consistency_proof(LEAVES[:new], old)
        assert TREE.consistency_proof(old, new) == proof == merkle.consistency_path(TREE._hash, old, new)
        merkle.verify_consistency(old, new, old_root, new_root, proof)
        forked = _naive(OTHER[:1] + LEAVES[1:old])
        forgeries = [
            (old, new, forked, new_root, proof),
            (old, new, _flip(old_root), new_root, proof),
            (old, new, old_root, _flip(new_root), proof),
            (old, new, old_root, new_root, [*proof, LEAVES[0]]),
        ]
        forgeries += [
            (old, new, old_root, new_root, [*proof[:k], _flip(p), *proof[k + 1 :]]) for k, p in enumerate(proof)
        ]
        if proof:
            forgeries += [(old, new, old_root, new_root, proof[:-1]), (old, new, old_root, new_root, proof[1:])]
        if old < new:
            forgeries += [(old + 1, new, old_root, new_root, proof)]  # (the new size is bound by the checkpoint)
        for args in forgeries:
            with pytest.raises(ERRORS):
                merkle.verify_consistency(*args)


@pytest.mark.parametrize(("old", "new"), [(3, 7), (5, 8), (6, 13), (7, 17)])
def test_a_consistency_check_does_not_accept_any_old_root_when_the_old_size_is_not_a_power_of_two(
    old: int, new: int
) -> None:
    """The old root of a non-power-of-two tree is not on the proof's path: it is recomputed from the proof and
    compared. Skip that comparison and a log can prove any history it likes is a prefix of its tree."""
    proof = merkle.consistency_proof(LEAVES[:new], old)
    any_root = hashlib.sha256(b"a history the log never had").digest()
    with pytest.raises(RootMismatch):
        merkle.verify_consistency(old, new, any_root, _naive(LEAVES[:new]), proof)


def test_a_consistency_proof_between_impossible_sizes_is_refused() -> None:
    """Old size 0 (nothing to be consistent with), old beyond new (a rollback), an empty proof between different
    sizes, a proof for equal sizes or equal sizes with another root, and hashes of the wrong length."""
    TREE = _tree()  # noqa: N806
    r = {n: _naive(LEAVES[:n]) for n in range(N + 1)}
    for args in ((0, 4, r[0], r[4], []), (5, 4, r[5], r[4], []), (-1, 4, r[4], r[4], [])):
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)
    with pytest.raises(ProofError, match="empty"):
        merkle.verify_consistency(3, 4, r[3], r[4], [])
    with pytest.raises(ProofError, match="equal sizes"):
        merkle.verify_consistency(4, 4, r[4], r[4], [LEAVES[0]])
    with pytest.raises(RootMismatch):
        merkle.verify_consistency(4, 4, r[4], r[3], [])
    merkle.verify_consistency(4, 4, r[4], r[4], [])
    proof = merkle.consistency_proof(LEAVES[:7], 3)
    for bad in ((r[3][:31], r[7], proof), (r[3], r[7] + b"\x00", proof), (r[3], r[7], [*proof[:-1], b"\x00" * 31])):
        with pytest.raises(ProofError, match="32 bytes"):
            merkle.verify_consistency(3, 7, *bad)
    for old, n in ((-1, 4), (5, 4)):
        with pytest.raises(ProofError):
            merkle.consistency_proof(LEAVES[:n], old)
    assert merkle.consistency_proof(LEAVES[:4], 0) == merkle.consistency_proof(LEAVES[:4], 4) == []
    assert merkle.consistency_path(TREE._hash, 0, 4) == merkle.consistency_path(TREE._hash, 4, 4) == []
    for old, new in ((0, N + 1), (5, 4), (-1, 3)):
        with pytest.raises(ProofError):
            TREE.consistency_proof(old, new)
    assert TREE.consistency_proof(0, 0) == []


def test_two_trees_that_differ_in_one_leaf_are_never_consistent() -> None:
    """Whatever the sizes: a history with one leaf changed is not a prefix of the real tree."""
    for old, new in itertools.combinations(range(1, 12), 2):
        forked = list(LEAVES[:old])
        forked[old // 2] = OTHER[old // 2]
        proof = merkle.consistency_proof(LEAVES[:new], old)
        with pytest.raises(RootMismatch):
            merkle.verify_consistency(old, new, _naive(forked), _naive(LEAVES[:new]), proof)
