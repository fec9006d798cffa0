"""A pack split over the ranks of a torchrun job (issue 34, docs/distributed.md): the same bytes as one process.

Every rank checks the request and reads the source's headers (a shard missing on one node fails the pack
there, and so everywhere). Rank 0 verifies the source signature, measures the calibration moments and writes
them to a scratch directory beside the output, which every rank reads (so every rank quantizes with the same
committed moments). Each rank then quantizes the tensors :func:`world.assign` gives it — with the allocation:
at every width it may take, measured — and leaves each as a part file in the scratch directory
(``parts.py``). The ranks exchange the measured curves; rank 0 chooses the allocation over all of them and sends
it to every rank. Each rank then writes the pack's shards whose source shards it hashed (one-process writer, each
part checked as it is taken) into the scratch directory and sends rank 0 their records; rank 0 moves them into the
pack, checks each (its tensors, its digests), and writes the rest. The
quantization is exact and the rule depends on the model alone, so the pack's bytes and root are those of a
one-process pack whatever the world size.

All or nothing across ranks: after each step the ranks agree; when one failed (or left the job), every rank
raises and the scratch directory is removed; the pack itself appears only when rank 0's writer renames it
into place.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import threads
from ..core.digest import Digest
from ..errors import InvalidInput, OperationalError, UsageError
from ..manifest import Manifest
from ..quant.allocate import Curves, choose, measure_curves
from ..quant.scheme import Scheme
from ..source import ModelSource
from .api import (
    Allocation,
    PackProgress,
    PackRequest,
    SourceGate,
    _moments_for,
    _open_calibration,
    _Quiet,
    _tensors,
    check_request,
)
from .layout import MANIFEST_NAME
from .parts import PartStore
from .pipelined import calibrate, stages_for
from .world import Group, World, assign, joined

if TYPE_CHECKING:
    from ..calibration.file import Calibration as CalibrationFile
from .writer import (
    KeptSignature,
    MomentsSource,
    PackResult,
    ShardsWritten,
    SourceDigests,
    WriteOptions,
    WrittenShard,
    quantize_into,
    resolve_device,
    write_pack,
    write_shards,
)


def run_distributed(
    r: PackRequest,
    world: World,
    show: PackProgress,
    warn: Callable[[str], None] | None,
    source_gate: SourceGate | None,
) -> PackResult:
    """:func:`api.run_pack` as one rank of ``world`` (module docstring)."""
    if not world.leader:
        show, warn = _Quiet(), None
    with joined(world) as group:
        show.stage("checking")
        skip, read, _weights = group.step(lambda: check_request(r))
        if r.source_signature is not None and source_gate is None:
            raise UsageError(
                "verifying {0} needs uc_attest.write_pack or uc_attest.run_pack", option="source_signature"
            )
        verify = source_gate if world.leader and r.source_signature is not None else None
        gate = group.step(lambda: verify(r, read) if verify is not None else None)
        scratch = _scratch(group, r.out.absolute().parent, f".{r.out.name}.uc-parts-")
        try:
            result = _pack(r, group, show, warn, skip, gate, scratch)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        if world.leader:
            shutil.rmtree(scratch, ignore_errors=True)
    if result is not None:
        return result
    raw = (r.out / MANIFEST_NAME).read_bytes()  # rank 0's pack, on the filesystem every rank shares
    return PackResult(
        r.out,
        Manifest.from_json(raw, str(r.out / MANIFEST_NAME)),
        resolve_device(r.device).type,
        world.rank,
        world.size,
    )


def _scratch(group: Group, parent: Path, prefix: str) -> Path:
    """A directory the ranks share, made by rank 0 in ``parent`` (a directory every rank sees), private to the job."""

    def make() -> str | None:
        if not group.world.leader:
            return None
        if not parent.is_dir():
            raise InvalidInput(f"{parent}: the directory for the ranks' parts does not exist", path=str(parent))
        return tempfile.mkdtemp(prefix=prefix, dir=parent)

    return Path(group.from_leader(group.step(make)))


def _pack(
    r: PackRequest,
    group: Group,
    show: PackProgress,
    warn: Callable[[str], None] | None,
    skip: tuple[str, ...],
    gate: KeptSignature | None,
    scratch: Path,
) -> PackResult | None:
    """Calibrate (rank 0), quantize this rank's share, choose and write (rank 0); the result on rank 0."""
    world = group.world
    measured = _calibration(r, group, show, warn, scratch)
    shared = group.from_leader(str(measured[0]) if measured[0] is not None else None)
    cal = group.step(lambda: _open_calibration(Path(shared) if shared else None, r))
    try:
        sizes = tensor_sizes(r.source, r.scheme, skip)
        owner = assign(sizes, world.size)
        shard_owner = _shard_owner(r.source, skip, world.size)  # who hashes each source shard and writes its pack shard
        rank = world.rank
        weights = sum(n for name, n in sizes.items() if owner[name] == rank)
        store = PartStore(scratch / "parts", r.scheme)
        scheme = r.scheme
        if r.allocation is not None:
            show.stage("allocation")
            scheme = _allocate_share(
                r, r.allocation, group, cal, store, lambda n: owner[n] == rank, _tensors(show, weights)
            )
        else:
            show.stage("quantization")
            group.step(
                lambda: quantize_into(
                    store, r.source, scheme, r.device, cal, lambda n: owner[n] == rank, _tensors(show, weights)
                )
            )
        known = _merge_digests(group.gather(group.step(lambda: _hash_share(r, skip, owner, shard_owner, world))))
        show.stage("writing")
        chosen = _chosen(group, scheme)
        options = WriteOptions(
            force=r.force,
            moments=cal,
            signature=gate,
            skip_files=skip,
            calibration=measured[1],
            prepared=store,
            known=known,
        )
        written = _write_share(r, group, chosen, options, scratch / "shards", shard_owner)
        options = replace(options, written=written)
        result = group.step(lambda: write_pack(r.source, r.out, chosen, r.device, options) if world.leader else None)
        return PackResult(result.path, result.manifest, result.device, world.rank, world.size) if result else None
    finally:
        if cal is not None:
            cal.close()


def _chosen(group: Group, scheme: Scheme) -> Scheme:
    """Rank 0's scheme (the allocation it chose) on every rank: the shard headers every rank writes name it."""
    if not group.world.distributed:
        return scheme
    raw = group.from_leader(scheme.to_dict())
    try:
        return Scheme.from_dict(raw)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, UsageError):
        raise OperationalError("rank 0 sent a scheme that is not well formed") from None


def _write_share(
    r: PackRequest, group: Group, scheme: Scheme, options: WriteOptions, directory: Path, owner: dict[str, int]
) -> ShardsWritten | None:
    """Every rank writes the pack's shards whose source shards it hashed (``owner``: :func:`_shard_owner`) into
    ``directory``, side by side; rank 0 gets every rank's records (None on the other ranks)."""
    world = group.world

    def write() -> list[dict[str, Any]]:
        directory.mkdir(exist_ok=True)
        mine = write_shards(r.source, directory, scheme, r.device, options, lambda s: owner[s] == world.rank)
        return [s.to_dict() for s in mine]

    sent = group.gather(group.step(write))
    if not world.leader:
        return None
    records: dict[str, WrittenShard] = {}
    for rank, shards in enumerate(sent):
        for d in shards if isinstance(shards, list) else [None]:
            rec = WrittenShard.from_dict(d, f"rank {rank}")
            if rec.name in records or owner.get(rec.name) != rank:
                raise OperationalError(f"rank {rank} sent the record of a shard it was not to write: {rec.name!r}")
            records[rec.name] = rec
    return ShardsWritten(directory, records)


def _shard_owner(source: Path, skip: tuple[str, ...], ranks: int) -> dict[str, int]:
    """Source shard -> the rank that hashes it whole and writes the pack's shard of that name: :func:`assign` over
    the shards' bytes (each shard at least 1, so an empty one still has a rank)."""
    src = ModelSource(source, skip)
    try:
        sizes = {shard: sum(t.info.end - t.info.begin for t in members) + 1 for shard, members in src.by_shard()}
    finally:
        src.close()
    return assign(sizes, ranks)


def _allocate_share(
    r: PackRequest,
    allocation: Allocation,
    group: Group,
    cal: CalibrationFile | None,
    store: PartStore,
    select: Callable[[str], bool],
    progress: Callable[[str, int], None],
) -> Scheme:
    """This rank's share measured at every width it may take (kept in ``store``); rank 0 chooses the allocation
    over every rank's curves and returns its scheme (the other ranks: the request's, unused)."""
    world = group.world
    device = resolve_device(r.device)
    curves, method = group.step(
        lambda: measure_curves(r.source, r.scheme, cal, device, store, progress=progress, select=select)
    )
    every = _merge(group.gather(_encode(curves, method)))

    def chosen() -> Scheme:
        return (
            choose(r.scheme, allocation.bits, allocation.strict, every[0], store, every[1])
            if world.leader
            else r.scheme
        )

    return group.step(chosen)


def _calibration(
    r: PackRequest, group: Group, show: PackProgress, warn: Callable[[str], None] | None, scratch: Path
) -> tuple[Path | None, Any]:
    """The calibration file (rank 0; None elsewhere, or none measured) and its record: as pipeline stages over the
    ranks where they can run it (pack/pipelined.py), else on rank 0 alone."""
    staged = group.step(lambda: stages_for(r, group))
    got = calibrate(r, group, show, staged, scratch) if staged is not None else None
    if got is not None:
        return got
    return group.step(lambda: _calibrate(r, show, warn, scratch) if group.world.leader else (None, None))


def _calibrate(
    r: PackRequest, show: PackProgress, warn: Callable[[str], None] | None, scratch: Path
) -> tuple[Path | None, Any]:
    """Rank 0's calibration on the cores of its node: the other ranks there wait for it, so its forward passes
    take their threads too (torchrun gives each rank ``OMP_NUM_THREADS=1``), up to the cores this process may
    use — the budget a one-process pack on the node has, which the calibration record names."""
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    before = threads.budget()
    node = min(threads.available_cores(), before * (int(local) if re.fullmatch(r"[1-9][0-9]{0,4}", local) else 1))
    threads.set_budget(node)
    try:
        return _moments_for(r, show, warn, scratch)
    finally:
        threads.set_budget(before)


def _hash_share(
    r: PackRequest, skip: tuple[str, ...], owner: dict[str, int], shard_owner: dict[str, int], world: World
) -> dict[str, Any]:
    """This rank's share of the source digests the manifest records: the source files (shards) ``shard_owner``
    gives it, whole, and the source bytes of the tensors it quantized (still in the page cache), taken as the writer
    takes them (a shard's header, then its tensors in file order): rank 0 then reads and hashes only what it
    copies."""
    mine = {shard for shard, rank in shard_owner.items() if rank == world.rank}
    src = ModelSource(r.source, skip)
    try:
        shards = dict(src.by_shard())
        files, tensors = {}, {}
        for shard, members in shards.items():
            f = src.file(shard)
            whole = hashlib.sha256(f.header_bytes()) if shard in mine else None
            for st in members:
                mine_too = owner.get(st.name) == world.rank
                if whole is None and not mine_too:
                    continue
                raw = f.raw(st.name)
                if whole is not None:
                    whole.update(raw)
                if mine_too:
                    tensors[st.name] = Digest.of_bytes(raw).hex
            if whole is not None:
                files[shard] = whole.hexdigest()
        return {"files": files, "tensors": tensors}
    finally:
        src.close()


def _merge_digests(messages: list[Any]) -> SourceDigests:
    """Every rank's digests in one value (a name given twice is a rank's error)."""
    files: dict[str, Digest] = {}
    tensors: dict[str, Digest] = {}
    try:
        for m in messages:
            for into, part in ((files, m["files"]), (tensors, m["tensors"])):
                for name, hexdigest in part.items():
                    if name in into:
                        raise OperationalError(f"{name!r} was hashed by two ranks")
                    into[str(name)] = Digest(str(hexdigest))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise OperationalError("a rank sent source digests that are not well formed") from None
    return SourceDigests(files, tensors)


def tensor_sizes(source: Path, scheme: Scheme, skip: tuple[str, ...] = ()) -> dict[str, int]:
    """Weights of each tensor the scheme quantizes (what the ranks share out)."""
    src = ModelSource(source, skip)
    try:
        return {t.name: t.info.numel for t in src.tensors if scheme.applies_to(t.name, t.info.dtype, t.info.shape)}
    finally:
        src.close()


@contextmanager
def shared_quantization(
    group: Group, source: Path, scheme: Scheme, device: str, moments: MomentsSource | None, skip: tuple[str, ...],
    scratch_parent: Path,
) -> Iterator[PartStore]:  # fmt: skip
    """Every rank quantizes its share of ``source`` at ``scheme`` into a scratch directory made by rank 0 in
    ``scratch_parent`` (a directory every rank sees): the store rank 0's writer takes them from. The directory
    is removed when the block ends, on every rank's way out."""
    world = group.world
    scratch = _scratch(group, scratch_parent, ".uc-parts-")
    try:
        owner = assign(tensor_sizes(source, scheme, skip), world.size)
        store = PartStore(scratch, scheme)
        group.step(lambda: quantize_into(store, source, scheme, device, moments, lambda n: owner[n] == world.rank,
                                         skip_files=skip))  # fmt: skip
        yield store
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _encode(curves: Curves, method: str) -> dict[str, Any]:
    """A rank's measured curves as JSON (damages as exact fractions)."""
    return {
        "method": method,
        "curves": {
            name: [n, [[bits, d.numerator, d.denominator] for bits, d in pts]] for name, (n, pts) in curves.items()
        },
    }


def _merge(messages: list[Any]) -> tuple[Curves, str]:
    """Every rank's curves in one map; the ranks must have measured for the same method."""
    curves: Curves = {}
    try:
        methods = {str(m["method"]) for m in messages}
        for m in messages:
            for name, (n, pts) in m["curves"].items():
                if name in curves:
                    raise OperationalError(f"tensor {name!r} was measured by two ranks", tensor=name)
                widths = [_whole(b) for b, _p, _q in pts]
                if _whole(n) < 1 or not widths or widths != sorted(set(widths)):
                    raise ValueError(name)  # choose() needs weights and strictly increasing widths
                curves[str(name)] = (n, [(b, Fraction(_whole(p), _whole(q))) for b, p, q in pts])
    except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError, OverflowError):
        raise OperationalError("a rank sent measured curves that are not well formed") from None
    if len(methods) != 1:
        raise OperationalError(f"the ranks measured for different allocation methods: {sorted(methods)}")
    return curves, methods.pop()


def _whole(value: Any) -> int:
    """A JSON integer from another rank (not a bool, float or string)."""
    if type(value) is not int:
        raise ValueError(value)
    return value
