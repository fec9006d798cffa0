"""RFC 6962 / RFC 9162 Merkle tree hashing and proofs.

Computing a root and checking a proof are separate functions; a checker never
rebuilds the tree. Used by the manifest (per-tensor proofs) and by the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from ..errors import ProofError, RootMismatch

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over already-hashed leaves, computed level by level."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) for leaf ``index`` over already-hashed leaves, bottom-up."""
    if not 0 <= index < len(leaves):
        raise ProofError(f"index {index} out of range for size {len(leaves)}")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(leaves[:k], index), root_from_leaf_hashes(leaves[k:])]
    return [*inclusion_proof(leaves[k:], index - k), root_from_leaf_hashes(leaves[:k])]


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Recompute the root from a leaf hash and its audit path (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} out of range for size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError("proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise RootMismatch or ProofError unless ``proof`` proves ``leaf`` under ``root``."""
    if len(leaf) != 32 or len(root) != 32 or any(len(p) != 32 for p in proof):
        raise ProofError("leaf, root and proof hashes must be 32 bytes")
    computed = root_from_inclusion_proof(index, size, leaf, proof)
    if computed != root:
        raise RootMismatch(root, computed)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 6962 section 2.1.2."""
    n = len(leaves)
    if m == n:
        return [] if complete else [root_from_leaf_hashes(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root_from_leaf_hashes(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root_from_leaf_hashes(leaves[:k])]


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]): proves the tree of the first ``old_size`` leaves is a prefix of ``leaves``."""
    if not 0 <= old_size <= len(leaves):
        raise ProofError(f"old size {old_size} outside [0, {len(leaves)}]")
    if old_size in (0, len(leaves)):
        return []
    return _subproof(old_size, leaves, True)


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise unless ``proof`` shows the tree (old_size, old_root) is a prefix of (new_size, new_root).

    RFC 9162 section 2.1.4.2.
    """
    if not 0 < old_size <= new_size:
        raise ProofError(f"sizes {old_size} -> {new_size}: need 0 < old size <= new size")
    if old_size == new_size:
        if proof:
            raise ProofError("proof must be empty for equal sizes")
        if old_root != new_root:
            raise RootMismatch(new_root, old_root)
        return
    if not proof:
        raise ProofError("empty consistency proof")
    if len(old_root) != 32 or len(new_root) != 32 or any(len(p) != 32 for p in proof):
        raise ProofError("roots and proof hashes must be 32 bytes")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # old size is a power of two: its root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof too short")
    if fr != old_root:
        raise RootMismatch(old_root, fr)
    if sr != new_root:
        raise RootMismatch(new_root, sr)


class MerkleTree:
    """Append-only RFC 6962 tree that caches every complete, aligned subtree.

    Roots and proofs for any size n <= len(tree) touch O(log^2 n) cached nodes instead of
    rehashing all leaves; results equal the recursive definitions above (tested).
    """

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append(leaf)

    def __len__(self) -> int:
        return len(self._levels[0])

    def append(self, leaf_hash_: bytes) -> None:
        self._levels[0].append(leaf_hash_)
        i = 0
        while len(self._levels[i]) % 2 == 0:
            if len(self._levels) == i + 1:
                self._levels.append([])
            self._levels[i + 1].append(node_hash(self._levels[i][-2], self._levels[i][-1]))
            i += 1

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def nodes(self, level: int, start: int, count: int) -> list[bytes]:
        """Hashes of the complete subtrees of 2^level leaves number ``start .. start + count`` (tiles serve them)."""
        row = self._levels[level] if level < len(self._levels) else []
        if start < 0 or start + count > len(row):
            raise ProofError(f"level {level} has {len(row)} complete subtrees, not {start + count}")
        return row[start : start + count]

    def _hash(self, lo: int, n: int) -> bytes:
        k = n.bit_length() - 1
        if n == 1 << k and lo % n == 0 and k < len(self._levels) and (lo >> k) < len(self._levels[k]):
            return self._levels[k][lo >> k]
        split = _split(n)
        return node_hash(self._hash(lo, split), self._hash(lo + split, n - split))

    def root(self, size: int | None = None) -> bytes:
        n = len(self) if size is None else size
        return EMPTY_ROOT if n == 0 else self._hash(0, n)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        if not 0 <= index < size <= len(self):
            raise ProofError(f"index {index} out of range for size {size}")
        return inclusion_path(self._hash, index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        if not 0 <= old_size <= new_size <= len(self):
            raise ProofError(f"sizes {old_size} -> {new_size} outside the tree")
        return consistency_path(self._hash, old_size, new_size)


RangeHash = Callable[[int, int], bytes]  # hash of leaves [lo, lo + n) as RFC 6962 defines it


def inclusion_path(hash_range: RangeHash, index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in a tree of ``size`` leaves, from any source of subtree hashes
    (the cached tree of a log, or tiles fetched from one)."""

    def path(m: int, lo: int, n: int) -> list[bytes]:
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*path(m, lo, k), hash_range(lo + k, n - k)]
        return [*path(m - k, lo + k, n - k), hash_range(lo, k)]

    return path(index, 0, size)


def consistency_path(hash_range: RangeHash, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]) (RFC 9162 2.1.4), from any source of subtree hashes."""
    if old_size in (0, new_size):
        return []

    def sub(m: int, lo: int, n: int, complete: bool) -> list[bytes]:
        if m == n:
            return [] if complete else [hash_range(lo, n)]
        k = _split(n)
        if m <= k:
            return [*sub(m, lo, k, complete), hash_range(lo + k, n - k)]
        return [*sub(m - k, lo + k, n - k, False), hash_range(lo, k)]

    return sub(old_size, 0, new_size, True)
