"""One verified tensor stream: each tensor a trusted manifest names, reconstructed from the pack, hashed and
matched before anyone uses it; every difference a typed finding (:class:`~uc_attest.errors.FindingKind`).

The check (and through it ``load_model``, naming the tensors of a shard whose digest changed), the export and
the state-dict loader read a pack through :func:`verified_tensors`. Each tensor is read once: with a ``sink``
its blocks go to the caller as they are hashed (a file written, a buffer filled: no copy kept here), and the
caller uses them only once the stream yields the tensor as :class:`Verified`; without one it is hashed only
(by the C decoder where it can, in parallel on a ``pool``). Never stops at the first problem: every finding
is yielded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass

from ..core.digest import Digest
from ..errors import Finding, FindingKind, MalformedPack, MalformedSafetensors
from ..manifest import Manifest, TensorEntry, digest_finding, shape_finding
from .reader import Pack

Block = bytes | memoryview
#: Where a tensor's blocks go as they are hashed: called once per tensor, returns the writer of its blocks.
Sink = Callable[[TensorEntry], Callable[[Block], object]]
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Verified:
    """A tensor whose reconstruction matched its trusted entry: the bytes its sink received are the entry's."""

    entry: TensorEntry


Outcome = Verified | Finding


def verified_tensors(
    pack: Pack,
    trusted: Manifest,
    sink: Sink | None = None,
    *,
    pool: Executor | None = None,
    moments: bool = False,
    progress: Progress | None = None,
    share: Share | None = None,
) -> Iterator[Outcome]:
    """Every tensor of ``trusted`` in ``pack``, shard by shard (by name within a shard), as :class:`Verified`
    once its digest matched, or findings: an unreadable shard (once, for every tensor in it), a tensor missing,
    of another dtype/shape, not reconstructible or with another digest, and every tensor the manifest does not
    name (hashed, to name its digest). ``moments``: the committed calibration moments are matched too.
    ``pool`` hashes tensors in parallel (largest first); a ``sink`` gets its blocks in order, so not with one.
    ``share``: one rank's part of a check split over ranks (``pack/check.py``): only the tensors it takes are
    hashed, and the pack-wide findings (unreadable shards, missing tensors) are rank 0's."""
    assert sink is None or pool is None, "a sink receives blocks in order: no pool"
    entries = {e.name: e for e in trusted.tensors}
    mine = share.takes if share is not None else (lambda _name: True)
    whole = share is None or share.leader
    if whole:
        yield from _unreadable_shards(pack, trusted)
    present = sorted((e for e in trusted.tensors if e.name in pack.tensors), key=lambda e: _place(pack, e.name))
    for e in sorted(trusted.tensors, key=lambda e: e.name):
        if whole and e.name not in pack.tensors and e.file not in pack.unreadable:  # those are the shard's finding
            yield FindingKind.MISSING_TENSOR.at(e.name, str(e.digest))
    names = [e.name for e in present if mine(e.name)] + sorted(n for n in set(pack.tensors) - set(entries) if mine(n))

    def one(name: str) -> list[Outcome]:
        return _verify(pack, name, entries.get(name), sink, moments, progress)

    for outcomes in _in_order(names, one, pool, lambda n: pack.tensors[n].nbytes):
        yield from outcomes


@dataclass(frozen=True)
class Share:
    """One rank's part of a pack check split over the ranks of a torchrun job: the tensors it ``takes``, and
    whether it is rank 0 (which also reports what concerns the whole pack)."""

    takes: Callable[[str], bool]
    leader: bool


def _place(pack: Pack, name: str) -> tuple[str, str]:
    return pack.tensors[name].shard, name


def _unreadable_shards(pack: Pack, trusted: Manifest) -> Iterator[Finding]:
    for shard, why in sorted(pack.unreadable.items()):
        held = sum(1 for e in trusted.tensors if e.file == shard)
        yield FindingKind.UNREADABLE_SHARD.at(shard, why=why + (f" ({held} tensors in it not checked)" if held else ""))


def _in_order(
    names: list[str], one: Callable[[str], list[Outcome]], pool: Executor | None, size: Callable[[str], int]
) -> Iterable[list[Outcome]]:
    """``one`` of every name, in the order of ``names``; on a pool the largest first (no big one left alone at
    the end), results still given in order."""
    if pool is None:
        return map(one, names)
    jobs = {n: pool.submit(one, n) for n in sorted(names, key=lambda n: -size(n))}
    return (jobs[n].result() for n in names)


def _verify(
    pack: Pack, name: str, want: TensorEntry | None, sink: Sink | None, moments: bool, progress: Progress | None
) -> list[Outcome]:
    """One tensor of the pack against its trusted entry (None: the manifest does not name it)."""
    pt = pack.tensors[name]
    bad = shape_finding(want, pt.dtype, pt.shape) if want is not None else None
    if bad is not None:
        return [bad]
    try:
        got = _digest(pack, name, sink(want) if sink is not None and want is not None else None)
        committed = pack.moments_bytes(name) if moments else None
    except (MalformedPack, MalformedSafetensors) as exc:
        return [FindingKind.CANNOT_RECONSTRUCT.at(name, why=exc.message)]
    if progress is not None:
        progress(name, pt.nbytes)
    if want is None:
        return [FindingKind.ADDED_TENSOR.at(name, None, str(got))]
    out: list[Outcome] = [digest_finding(want, got) or Verified(want)]
    if moments:
        out += _moments_finding(want, committed, pt.quant.moments_digest if pt.quant else None)
    return out


def _digest(pack: Pack, name: str, write: Callable[[Block], object] | None) -> Digest:
    """SHA-256 of the reconstructed tensor, each block handed to ``write`` as it is hashed (without one, by the C
    decoder where it can)."""
    if write is None:
        return pack.digest(name)
    h = hashlib.sha256()
    for block in pack.iter_bytes(name):
        h.update(block)
        write(block)
    return Digest(h.hexdigest())


def _moments_finding(want: TensorEntry, committed: bytes | None, recorded: Digest | None) -> list[Finding]:
    """Committed calibration moments (needed to rebuild, not to serve) against the entry's digest of them."""
    expected = want.quant.moments_digest if want.quant else None
    got = Digest.of_bytes(committed) if committed is not None else recorded
    if expected == got:
        return []
    return [FindingKind.MOMENTS_DIFFER.at(want.name, str(expected), str(got))]
