"""Write the reconstruction of a pack as a standard safetensors model directory — only what matches.

Every tensor is reconstructed by the verified stream (``pack/verified.py``), hashed as it is written and
matched against the trusted manifest; every other file is read once, hashed, matched and written from those
same bytes. Any finding (a tensor or a file that differs, is missing or was added) and nothing is left
behind: the output directory appears only when everything matched. Each tensor's bytes in the output are the
bytes whose SHA-256 is in the manifest, so any tool can check a tensor's slice of the file. Tensors stream
block by block.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

from ..core.fsutil import atomic_output_dir, inside, is_safe_relative
from ..core.stfile import encode_header
from ..errors import Finding, FindingKind, MalformedPack, VerificationFailed
from ..manifest import Manifest, TensorEntry
from ..source import INDEX_NAME
from .check import check_files
from .facts import PackFacts
from .layout import CONFIG_NAME, QUANT_METHOD, QUANTIZATION_CONFIG
from .reader import Pack
from .verified import verified_tensors

Finally = Callable[[], list[Finding]]


def export_reconstruction(
    facts: PackFacts, expected: Manifest, out_dir: Path, *, force: bool = False, finally_: Finally | None = None
) -> list[str]:
    """Reconstruct every tensor of ``expected`` into ``out_dir``; returns the written shard names.

    ``finally_`` runs once every byte was read (the caller's remaining checks, e.g. the policy's rules over
    the file digests this run recorded); its findings, like any other, leave nothing written.
    Raises :class:`VerificationFailed` listing every finding."""
    with Pack(facts.dir) as pack:
        shard_of = {e.name: pack.tensors[e.name].shard for e in expected.tensors if e.name in pack.tensors}
        with atomic_output_dir(Path(out_dir), overwrite=force) as tmp:
            findings = _write_shards(pack, expected, shard_of, tmp)
            if len(set(shard_of.values())) > 1:
                index = {"metadata": {}, "weight_map": dict(sorted(shard_of.items()))}
                (tmp / INDEX_NAME).write_text(json.dumps(index, indent=2))
            findings += _copy_files(facts, expected, tmp)
            findings += check_files(facts, expected)  # shards by digest too; copied files were recorded above
            if finally_ is not None:
                findings += finally_()
            if findings:
                raise VerificationFailed(_dedup(findings))
    return sorted(set(shard_of.values()))


def _write_shards(pack: Pack, expected: Manifest, shard_of: dict[str, str], tmp: Path) -> list[Finding]:
    """Each output shard (named as in the pack): its header, then every tensor's reconstruction written as the
    verified stream hashes it (in the header's order: by name); returns the stream's findings."""
    by_shard: dict[str, list[TensorEntry]] = {}
    for e in sorted(expected.tensors, key=lambda e: e.name):
        if e.name in shard_of:
            by_shard.setdefault(shard_of[e.name], []).append(e)
    with ExitStack() as stack:
        out: dict[str, BinaryIO] = {}
        for shard, entries in sorted(by_shard.items()):
            out[shard] = stack.enter_context(open(tmp / shard, "wb"))
            out[shard].write(encode_header([(e.name, e.dtype, e.shape) for e in entries], {"format": "pt"}))
        stream = verified_tensors(pack, expected, lambda e: out[shard_of[e.name]].write)
        return [o for o in stream if isinstance(o, Finding)]


def _copy_files(facts: PackFacts, expected: Manifest, tmp: Path) -> list[Finding]:
    """Every non-tensor file the manifest lists, written from the bytes that were hashed (and matched)."""
    findings = []
    for rel, want in sorted(expected.files.items()):
        if rel.endswith(".safetensors"):
            continue
        if not is_safe_relative(rel):
            findings.append(Finding(rel, "unsafe file name in the manifest (leaves the directory)"))
            continue
        try:
            data = facts.read_file(rel)
        except MalformedPack:
            findings.append(FindingKind.MISSING_FILE.at(rel, str(want)))
            continue
        got = facts.file_digest(rel)
        if got != want:
            findings.append(FindingKind.FILE_DIFFERS.at(rel, str(want), str(got)))
            continue
        out = inside(tmp, rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(_plain_config(data) if rel == CONFIG_NAME else data)
    return findings


def _dedup(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    out = []
    for f in findings:
        if (f.subject, f.problem) not in seen:
            seen.add((f.subject, f.problem))
            out.append(f)
    return out


def _plain_config(raw: bytes) -> bytes:
    """config.json without uc-attest's quantization_config: the reconstruction is a plain model for any tool."""
    try:
        cfg = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return raw
    if not isinstance(cfg, dict):
        return raw
    qc = cfg.get(QUANTIZATION_CONFIG)
    if not isinstance(qc, dict) or qc.get("quant_method") != QUANT_METHOD:
        return raw
    del cfg[QUANTIZATION_CONFIG]
    return (json.dumps(cfg, indent=2, sort_keys=True) + "\n").encode()
