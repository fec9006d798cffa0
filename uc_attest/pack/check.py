"""Compare a pack with a manifest: every tensor reconstructed and hashed, every file, nothing extra.

Tensors come from the one verified stream (``pack/verified.py``), decoded and hashed in parallel (the C/NumPy
decoder and hashlib release the GIL), and file hashing shares the pool, so they overlap; with the C decoder each
quantized tensor is decoded and hashed chunk by chunk (``Pack.digest``), so memory stays bounded by a few chunks
and the stored tensors' blocks. Never stops at the first problem: every finding is reported.
"""

from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.digest import Digest
from ..errors import Finding, FindingKind, OperationalError
from ..manifest import Manifest
from .facts import PackFacts
from .layout import MANIFEST_NAME
from .reader import Pack
from .verified import Progress, Share, Verified, verified_tensors
from .world import Group, World, assign

__all__ = ["INTEGRITY_ONLY", "PackCheck", "Progress", "check_files", "check_pack", "default_workers", "is_shard"]

INTEGRITY_ONLY = "integrity only: checked against the pack's own manifest, no signer checked"


@dataclass
class PackCheck:
    """Outcome of checking a pack: what was expected and every finding."""

    pack: Path
    manifest_source: str
    root: Digest
    tensors_checked: int
    files_checked: int
    findings: list[Finding] = field(default_factory=list)
    integrity_only: bool = False  # held to the pack's own manifest: whoever can write the pack can rewrite it
    shards_hashed: bool = True  # False: each shard proven by its tensors (docs/security.md), not by its file digest

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def note(self) -> str | None:
        return INTEGRITY_ONLY if self.integrity_only else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "pack": str(self.pack),
            "manifest": self.manifest_source,
            "root": str(self.root),
            "tensors_checked": self.tensors_checked,
            "files_checked": self.files_checked,
            "findings": [f.to_dict() for f in self.findings],
            "integrity_only": self.integrity_only,
            "shards_hashed": self.shards_hashed,
            **({"note": INTEGRITY_ONLY} if self.integrity_only else {}),
        }


def default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _file_finding(facts: PackFacts, rel: str, want: Digest) -> Finding | None:
    got = facts.file_digest(rel)
    if got is None:
        return FindingKind.MISSING_FILE.at(rel, str(want))
    return None if got == want else FindingKind.FILE_DIFFERS.at(rel, str(want), str(got))


def _added_files(facts: PackFacts, expected: Manifest) -> list[Finding]:
    extra = facts.present_files() - set(expected.files) - {MANIFEST_NAME}
    return [FindingKind.ADDED_FILE.at(rel) for rel in sorted(extra)]


def check_files(facts: PackFacts, expected: Manifest) -> list[Finding]:
    """Every file the manifest lists against its digest, and every file it does not list."""
    found = [_file_finding(facts, rel, want) for rel, want in sorted(expected.files.items())]
    return [f for f in found if f is not None] + _added_files(facts, expected)


#: Findings about a tensor that was reconstructed and hashed (it counts as checked).
_HASHED = {FindingKind.DIGEST_DIFFERS, FindingKind.ADDED_TENSOR, FindingKind.MOMENTS_DIFFER}


def check_pack(
    facts: PackFacts,
    expected: Manifest,
    source: str,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    shard_digests: bool = False,
    group: Group | None = None,
) -> PackCheck:
    """Compare the pack with ``expected`` (its own manifest, a separately kept one, or the signed one);
    ``source`` says which, for the report. Every tensor is reconstructed and matched (with its committed
    moments) and every other file hashed; a shard's own file digest only with ``shard_digests`` — its tensors
    already prove every byte that is served (the argument: docs/security.md, "Pack files"). ``group``: the ranks
    of a torchrun job split the manifest's tensors (:func:`~uc_attest.pack.world.assign`, by elements) and files,
    and every rank returns the one check (:func:`_merged`)."""
    world = group.world if group is not None else World()
    files = [rel for rel in sorted(expected.files) if shard_digests or not is_shard(rel)]

    def part() -> _Part:
        findings, hashed = _checked(facts, expected, files, world, workers, progress)
        check = PackCheck(
            facts.dir, source, expected.root, len(hashed), len(files), findings, shards_hashed=shard_digests
        )
        return _Part(check, hashed, _view(facts) if world.distributed else "")

    if group is None or not world.distributed:
        return part().check
    return _merged(group, group.step(part), expected)


@dataclass(frozen=True)
class _Part:
    """One rank's part of a split check: its findings and count, the tensors it hashed, what it saw (``_view``)."""

    check: PackCheck
    hashed: set[str]
    view: str


def _checked(
    facts: PackFacts, expected: Manifest, files: list[str], world: World, workers: int | None, progress: Progress | None
) -> tuple[list[Finding], set[str]]:
    """This rank's findings and the tensors it hashed: in a world of several, the manifest's tensors ``assign`` gives
    it by elements (rank 0 also every tensor the manifest does not name, and what concerns the whole pack)."""
    mine = _mine(dict.fromkeys(files, 1), world)
    owner = assign({e.name: math.prod(e.shape) for e in expected.tensors}, world.size)
    share = None
    if world.distributed:
        share = Share(lambda n: owner[n] == world.rank if n in owner else world.leader, world.leader)
    with Pack(facts.dir) as pack, ThreadPoolExecutor(max_workers=workers or default_workers()) as ex:
        jobs = [ex.submit(_file_finding, facts, rel, expected.files[rel]) for rel in files if rel in mine]
        outcomes = list(verified_tensors(pack, expected, pool=ex, moments=True, progress=progress, share=share))
        file_findings = [f for f in (j.result() for j in jobs) if f is not None]
    findings = [o for o in outcomes if isinstance(o, Finding)]
    hashed = {o.entry.name for o in outcomes if isinstance(o, Verified)}
    hashed |= {f.subject for f in findings if f.kind in _HASHED}
    return findings + file_findings + (_added_files(facts, expected) if world.leader else []), hashed


def _mine(sizes: dict[str, int], world: World) -> set[str]:
    """The names :func:`assign` gives this rank (all of them in a world of one)."""
    return {n for n, rank in assign(sizes, world.size).items() if rank == world.rank}


def _view(facts: PackFacts) -> str:
    """What this rank sees of the pack: every file's name, size and modification time, as one digest (the ranks
    of a split check must read the same files)."""
    h = hashlib.sha256()
    for rel in sorted(facts.present_files()):
        st = (facts.dir / rel).stat()
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _merged(group: Group, mine: _Part, expected: Manifest) -> PackCheck:
    """Every rank's part of the check in one, on every rank: the tensors hashed, the findings in rank order. The
    ranks must have checked the same manifest on the same files, and every tensor of the manifest must have been
    hashed by one rank or named by a finding; anything else (or a part that is not names and string findings:
    what another rank sends is data) stops the check, exit 4."""
    part, hashed, view = mine.check, mine.hashed, mine.view
    sent = [{**f.to_dict(), "kind": f.kind.name if f.kind else None} for f in part.findings]
    msg = {"root": str(expected.root), "view": view, "hashed": sorted(hashed), "findings": sent}
    names: set[str] = set()
    findings: list[Finding] = []
    try:
        for rank, got in enumerate(group.gather(msg)):
            if got["root"] != msg["root"] or got["view"] != view:
                raise OperationalError(f"rank {rank} checked another manifest or other files than this rank")
            theirs = got["hashed"]
            if not isinstance(theirs, list) or not all(isinstance(n, str) for n in theirs) or names & set(theirs):
                raise TypeError(theirs)
            names |= set(theirs)
            findings += [_finding(d) for d in got["findings"]]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise OperationalError("a rank sent a part of the pack check that is not well formed") from None
    named = {f.subject for f in findings}
    named |= {e.name for e in expected.tensors if e.file in named}  # an unreadable shard's tensors: its finding
    unchecked = sorted(e.name for e in expected.tensors if e.name not in names and e.name not in named)
    if unchecked:
        raise OperationalError(f"no rank checked tensor {unchecked[0]!r} ({len(unchecked)} in all)")
    return replace(part, tensors_checked=len(names), findings=findings)


def _finding(d: Any) -> Finding:
    """A finding another rank sent (strings only; ``kind`` a FindingKind's name or null)."""
    fields = {k: d.get(k) for k in ("subject", "problem", "expected", "actual")}
    if not isinstance(fields["subject"], str) or not isinstance(fields["problem"], str):
        raise TypeError(d)
    if any(v is not None and not isinstance(v, str) for v in fields.values()) or set(d) - {*fields, "kind"}:
        raise TypeError(d)
    kind = d.get("kind")
    return Finding(**fields, kind=FindingKind[kind] if kind is not None else None)


def is_shard(rel: str) -> bool:
    """A pack shard (a top-level ``*.safetensors``: every one is read as a shard, its tensors reconstructed)."""
    return "/" not in rel and rel.endswith(".safetensors")
