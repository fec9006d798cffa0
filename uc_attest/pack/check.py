"""Compare a pack with a manifest: every tensor reconstructed and hashed, every file, nothing extra.

Tensors are decoded and hashed in parallel (the C/NumPy decoder and hashlib release the GIL), and file
hashing shares the pool, so they overlap; with the C decoder each quantized tensor is decoded and hashed chunk
by chunk (``Pack.digest``), so memory stays bounded by a few chunks and the stored tensors' blocks. Never stops
at the first problem: every finding is reported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.digest import Digest
from ..errors import Finding, MalformedPack, MalformedSafetensors
from ..manifest import Manifest, TensorEntry, diff_tensors
from .facts import PackFacts
from .layout import MANIFEST_NAME
from .reader import Pack

Progress = Callable[[str, int], None]
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
        return Finding(rel, "file missing from pack", str(want), None)
    return None if got == want else Finding(rel, "file digest differs", str(want), str(got))


def _added_files(facts: PackFacts, expected: Manifest) -> list[Finding]:
    extra = facts.present_files() - set(expected.files) - {MANIFEST_NAME}
    return [Finding(rel, "file not in manifest (added file)") for rel in sorted(extra)]


def check_files(facts: PackFacts, expected: Manifest) -> list[Finding]:
    """Every file the manifest lists against its digest, and every file it does not list."""
    found = [_file_finding(facts, rel, want) for rel, want in sorted(expected.files.items())]
    return [f for f in found if f is not None] + _added_files(facts, expected)


def _tensor_entry(pack: Pack, name: str, progress: Progress | None) -> TensorEntry | Finding:
    pt = pack.tensors[name]
    try:
        d = pack.digest(name)
        moments = pack.moments_bytes(name)
    except (MalformedPack, MalformedSafetensors) as exc:
        return Finding(name, f"cannot reconstruct: {exc.message}")
    if progress:
        progress(name, pt.nbytes)
    quant = pt.quant
    if quant is not None and moments is not None:  # the committed moments' digest, as the manifest records it
        quant = replace(quant, moments_digest=Digest.of_bytes(moments))
    return TensorEntry(name, pt.dtype, pt.shape, d, d, pt.shard, quant)


def _moments_findings(expected: Manifest, actual: dict[str, TensorEntry]) -> list[Finding]:
    """Committed calibration moments (needed to rebuild, not to serve) against their manifest digests."""
    out = []
    for e in expected.tensors:
        a = actual.get(e.name)
        want = e.quant.moments_digest if e.quant else None
        got = a.quant.moments_digest if a is not None and a.quant else None
        if a is not None and want != got:
            out.append(Finding(e.name, "committed calibration moments differ", str(want), str(got)))
    return out


def check_pack(
    facts: PackFacts,
    expected: Manifest,
    source: str,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    shard_digests: bool = False,
) -> PackCheck:
    """Compare the pack with ``expected`` (its own manifest, a separately kept one, or the signed one);
    ``source`` says which, for the report. Every tensor is reconstructed and matched and every other file
    hashed; a shard's own file digest only with ``shard_digests`` — its tensors already prove every byte that
    is served (the argument: docs/security.md, "Pack files")."""
    with Pack(facts.dir) as pack, ThreadPoolExecutor(max_workers=workers or default_workers()) as ex:
        unreadable = dict(pack.unreadable)
        file_jobs = [
            ex.submit(_file_finding, facts, rel, want)
            for rel, want in sorted(expected.files.items())
            if shard_digests or not is_shard(rel)
        ]
        names = list(pack.iter_names())
        # largest tensors first (longest-processing-time order), so no big tensor is left alone at the end
        jobs = {
            n: ex.submit(_tensor_entry, pack, n, progress) for n in sorted(names, key=lambda n: -pack.tensors[n].nbytes)
        }
        results = [jobs[n].result() for n in names]
        file_findings = [f for f in (j.result() for j in file_jobs) if f is not None]
    decode_findings = [r for r in results if isinstance(r, Finding)]
    actual = {r.name: r for r in results if isinstance(r, TensorEntry)}
    # an unreadable shard is one finding (its cause), not one "missing" row per tensor it holds
    in_bad_shard = {e.name for e in expected.tensors if e.file in unreadable and e.name not in actual}
    findings = [
        Finding(
            shard,
            f"unreadable shard: {why}"
            + (
                f" ({n} tensors in it not checked)"
                if (n := sum(1 for e in expected.tensors if e.file == shard))
                else ""
            ),
        )
        for shard, why in sorted(unreadable.items())
    ]
    decoded_bad = {f.subject for f in decode_findings} | in_bad_shard
    findings += decode_findings
    findings += [f for f in diff_tensors(expected, actual) if f.subject not in decoded_bad]
    findings += [f for f in _moments_findings(expected, actual) if f.subject not in decoded_bad]
    findings += file_findings + _added_files(facts, expected)
    checked = len(expected.files) if shard_digests else sum(1 for rel in expected.files if not is_shard(rel))
    return PackCheck(facts.dir, source, expected.root, len(actual), checked, findings, shards_hashed=shard_digests)


def is_shard(rel: str) -> bool:
    """A pack shard (a top-level ``*.safetensors``: every one is read as a shard, its tensors reconstructed)."""
    return "/" not in rel and rel.endswith(".safetensors")
