"""Write the reconstruction of a pack as a standard safetensors model directory — only what matches.

Every tensor is reconstructed, hashed as it is written and matched against the trusted manifest; every
other file is read once, hashed, matched and written from those same bytes. Any finding (a tensor or a
file that differs, is missing or was added) and nothing is left behind: the output directory appears
only when everything matched. Each tensor's bytes in the output are the bytes whose SHA-256 is in the
manifest, so any tool can check a tensor's slice of the file. Tensors stream block by block.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from ..core.fsutil import atomic_output_dir, inside, is_safe_relative
from ..core.stfile import encode_header
from ..errors import Finding, MalformedPack, MalformedSafetensors, VerificationFailed
from ..manifest import Manifest, TensorEntry
from ..source import INDEX_NAME
from .check import check_files
from .facts import PackFacts
from .layout import CONFIG_NAME, QUANT_METHOD, QUANTIZATION_CONFIG
from .reader import Pack

Finally = Callable[[], list[Finding]]


def export_reconstruction(
    facts: PackFacts, expected: Manifest, out_dir: Path, *, force: bool = False, finally_: Finally | None = None
) -> list[str]:
    """Reconstruct every tensor of ``expected`` into ``out_dir``; returns the written shard names.

    ``finally_`` runs once every byte was read (the caller's remaining checks, e.g. the policy's rules over
    the file digests this run recorded); its findings, like any other, leave nothing written.
    Raises :class:`VerificationFailed` listing every finding."""
    findings: list[Finding] = []
    with Pack(facts.dir) as pack:
        findings += [Finding(shard, f"unreadable shard: {why}") for shard, why in sorted(pack.unreadable.items())]
        entries = {e.name: e for e in expected.tensors}
        findings += [Finding(n, "not in manifest (added tensor)") for n in sorted(set(pack.tensors) - set(entries))]
        by_shard: dict[str, list[TensorEntry]] = {}
        for e in sorted(expected.tensors, key=lambda e: e.name):
            if e.name not in pack.tensors:
                findings.append(Finding(e.name, "missing from pack", str(e.digest)))
            else:
                by_shard.setdefault(pack.tensors[e.name].shard, []).append(e)
        with atomic_output_dir(Path(out_dir), overwrite=force) as tmp:
            for shard, shard_entries in sorted(by_shard.items()):
                findings += _write_shard(pack, shard_entries, tmp / shard)
            if len(by_shard) > 1:
                wm = {e.name: s for s, es in by_shard.items() for e in es}
                index = {"metadata": {}, "weight_map": dict(sorted(wm.items()))}
                (tmp / INDEX_NAME).write_text(json.dumps(index, indent=2))
            findings += _copy_files(facts, expected, tmp)
            findings += check_files(facts, expected)  # shards by digest too; copied files were recorded above
            if finally_ is not None:
                findings += finally_()
            if findings:
                raise VerificationFailed(_dedup(findings))
    return sorted(by_shard)


def _write_shard(pack: Pack, entries: list[TensorEntry], path: Path) -> list[Finding]:
    """One output shard: each tensor's reconstruction hashed while written and matched with its entry."""
    findings = []
    specs = []
    for e in entries:
        pt = pack.tensors[e.name]
        if (pt.dtype, tuple(pt.shape)) != (e.dtype, tuple(e.shape)):
            findings.append(
                Finding(e.name, "dtype or shape differs", f"{e.dtype}{list(e.shape)}", f"{pt.dtype}{list(pt.shape)}")
            )
        specs.append((e.name, e.dtype, e.shape))
    if findings:
        return findings
    with open(path, "wb") as fh:
        fh.write(encode_header(specs, {"format": "pt"}))
        for e in entries:
            h = hashlib.sha256()
            try:
                for block in pack.iter_bytes(e.name):
                    h.update(block)
                    fh.write(block)
            except (MalformedPack, MalformedSafetensors) as exc:
                findings.append(Finding(e.name, f"cannot reconstruct: {exc.message}"))
                continue
            if h.hexdigest() != e.digest.hex:
                findings.append(
                    Finding(e.name, "reconstructed digest differs", str(e.digest), f"sha256:{h.hexdigest()}")
                )
    return findings


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
            findings.append(Finding(rel, "file missing from pack", str(want)))
            continue
        got = facts.file_digest(rel)
        if got != want:
            findings.append(Finding(rel, "file digest differs", str(want), str(got)))
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
