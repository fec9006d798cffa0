"""Rebuild: re-quantize the source model with the recorded scheme and compare every byte with the pack.

The source files are checked against the manifest's (and the statement's) record before any work is
spent on them, and only those files are read (a signature or anything else beside them is not the
model); the committed calibration moments, and a kept source signature, are taken from the pack.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.device import Device
from ..core.digest import Digest, sha256_stream
from ..core.fsutil import inside, is_safe_relative, open_regular
from ..errors import Finding, InvalidInput, UcAttestError
from ..manifest import Manifest, diff_tensors
from ..pack.layout import CONFIG_NAME
from ..pack.reader import Pack
from ..pack.world import World, joined
from ..policy.rules import RebuildOutcome
from ..source import INDEX_NAME

if TYPE_CHECKING:  # the writer imports torch: only when a rebuild runs
    from ..pack.writer import KeptSignature


def _source_findings(source_dir: Path, expected: Manifest, resolved: dict[str, Digest] | None) -> list[Finding]:
    out: list[Finding] = []
    want = dict(expected.source_files)
    for name, d in sorted((resolved or {}).items()):
        if want.get(name, d) != d:
            out.append(Finding(name, "manifest and statement disagree on this source file", str(d), str(want[name])))
    for rel, d in sorted(want.items()):
        got = _source_digest(source_dir, rel)
        if got != d:
            problem = "source file differs from the recorded one" if got else "source file missing"
            out.append(Finding(f"source:{rel}", problem, str(d), str(got) if got else None))
    return out


def _source_digest(source_dir: Path, rel: str) -> Digest | None:
    """A recorded source file's digest (None: missing or not a regular file). The name comes from the manifest:
    a canonical relative path (``core.fsutil.is_safe_relative``); symlinks are the source's own (a Hugging
    Face cache links its snapshots to blobs), the file they reach must be a regular one."""
    if not is_safe_relative(rel):
        return None
    try:
        with open_regular(source_dir / rel, follow=True) as f:
            return sha256_stream(f)
    except (FileNotFoundError, InvalidInput):
        return None


def _unrecorded(source_dir: Path, expected: Manifest) -> tuple[str, ...]:
    """Files under ``source_dir`` the pack was not made from (skipped by the rebuild)."""
    keep = {*expected.source_files, INDEX_NAME}
    found = (p.relative_to(source_dir).as_posix() for p in source_dir.rglob("*") if p.is_file())
    return tuple(sorted(rel for rel in found if rel not in keep))


def rebuild(
    pack_dir: Path,
    source_dir: Path,
    expected: Manifest,
    device: Device | str,
    resolved: dict[str, Digest] | None = None,
) -> RebuildOutcome:
    """Re-quantize ``source_dir`` as ``expected`` records it and compare; errors are an outcome, not raised."""
    import torch

    from ..pack.distributed import shared_quantization
    from ..pack.writer import WriteOptions, resolve_device, write_pack
    from ..quant.scheme import Scheme

    source_dir = Path(source_dir)
    world = World.from_env()
    try:
        dev = resolve_device(device).type
        src = _source_findings(source_dir, expected, resolved)
        t0 = time.perf_counter()
        findings: list[Finding] = []
        with (
            tempfile.TemporaryDirectory(prefix="uc-rebuild-") as tmp,
            Pack(pack_dir) as committed,
            joined(world) as group,
            ExitStack() as stack,
        ):

            def moments(name: str, _shape: tuple[int, ...]) -> torch.Tensor | None:
                m = committed.moments(name) if name in committed.tensors else None
                return None if m is None else torch.from_numpy(m)

            # a pack whose config.json is the source's, byte for byte, was written as format 1
            fmt = 1 if expected.files.get(CONFIG_NAME) == expected.source_files.get(CONFIG_NAME) else 2
            signature = _kept_signature(Path(pack_dir), expected)
            scheme, skip = Scheme.from_dict(expected.scheme), _unrecorded(source_dir, expected)
            prepared = None
            if world.distributed:  # torchrun: every rank quantizes its share, rank 0 writes and compares
                parts = shared_quantization(group, source_dir, scheme, dev, moments, skip, source_dir.absolute().parent)
                prepared = stack.enter_context(parts)

            def write_and_compare() -> list[dict[str, str]]:
                options = WriteOptions(
                    moments=moments,
                    pack_format=fmt,
                    signature=signature,
                    skip_files=skip,
                    calibration=expected.calibration,
                    prepared=prepared,
                )
                rebuilt = write_pack(source_dir, Path(tmp) / "rebuilt", scheme, dev, options)
                return [f.to_dict() for f in _differences(expected, rebuilt.manifest)]

            found = group.step(lambda: write_and_compare() if world.leader else None)
            findings += [Finding(**f) for f in group.from_leader(found)]  # one verdict: rank 0's, on every rank
    except UcAttestError as exc:
        return RebuildOutcome([], [], len(expected.source_files), 0.0, device, exc.message)
    return RebuildOutcome(src, findings, len(expected.source_files), time.perf_counter() - t0, dev)


def _kept_signature(pack_dir: Path, expected: Manifest) -> KeptSignature | None:
    """The source signature the pack keeps, to keep again in the rebuilt pack (None: the source was unsigned)."""
    from ..evidence.bundle import read_bundle
    from ..pack.writer import KeptSignature

    sig = expected.source_signature
    if sig is None:
        return None
    kept = inside(pack_dir, sig.file)
    if kept is None or not kept.is_file():
        raise UcAttestError(f"{sig.file}: the pack's kept source signature is missing")
    raw, _ = read_bundle(kept)  # read once, bounded; the rebuilt pack keeps these bytes (compared, not trusted)
    return KeptSignature(sig, raw)


def _differences(expected: Manifest, rebuilt: Manifest) -> list[Finding]:
    """Where the rebuilt pack differs from the expected manifest: its tensors, then its files."""
    out = [
        Finding(f.subject, f"rebuild: {f.problem}", f.expected, f.actual)
        for f in diff_tensors(expected, {e.name: e for e in rebuilt.tensors})
    ]
    for rel, want in sorted(expected.files.items()):
        got = rebuilt.files.get(rel)
        if got != want:
            out.append(Finding(rel, "rebuilt pack file differs", str(want), str(got) if got else None))
    return out
