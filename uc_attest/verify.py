"""Check a pack against a manifest: reconstruct every tensor, hash it, report every mismatch.

Tensors are decoded and hashed in parallel (torch and hashlib release the GIL),
so reconstruction of one tensor overlaps hashing of another; memory stays
bounded by a few tensors at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .digest import Digest, sha256_file
from .errors import Finding, MalformedPack, MalformedSafetensors, VerificationFailed
from .manifest import Manifest, TensorEntry, diff_tensors
from .pack import MANIFEST_NAME, Pack, load_manifest

Progress = Callable[[str, int], None]


@dataclass
class PackCheck:
    """Outcome of checking a pack: what was expected and every finding."""

    pack: Path
    manifest_source: str
    root: Digest
    tensors_checked: int
    files_checked: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "pack": str(self.pack),
            "manifest": self.manifest_source,
            "root": str(self.root),
            "tensors_checked": self.tensors_checked,
            "files_checked": self.files_checked,
            "findings": [f.to_dict() for f in self.findings],
        }


def _default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _tensor_check(pack: Pack, name: str, progress: Progress | None) -> TensorEntry | Finding:
    pt = pack.tensors[name]
    try:
        d = pack.digest(name)
    except (MalformedPack, MalformedSafetensors, ValueError) as exc:
        return Finding(name, f"cannot reconstruct: {getattr(exc, 'message', exc)}")
    if progress:
        progress(name, pt.nbytes)
    return TensorEntry(name, pt.dtype, pt.shape, d, d, pt.shard)


def _file_check(pack_dir: Path, rel: str, want: Digest) -> Finding | None:
    p = pack_dir / rel
    if not p.is_file():
        return Finding(rel, "file missing from pack", str(want), None)
    got = sha256_file(p)
    return None if got == want else Finding(rel, "file digest differs", str(want), str(got))


def check_files(pack_dir: Path, expected: Manifest) -> list[Finding]:
    """Every pack file's digest against the manifest, and files the manifest does not list."""
    found = [_file_check(pack_dir, rel, want) for rel, want in sorted(expected.files.items())]
    return [f for f in found if f is not None] + _added_files(pack_dir, expected)


def _added_files(pack_dir: Path, expected: Manifest) -> list[Finding]:
    present = {
        str(p.relative_to(pack_dir).as_posix())
        for p in pack_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(pack_dir).parts)
    }
    return [
        Finding(rel, "file not in manifest (added file)")
        for rel in sorted(present - set(expected.files) - {MANIFEST_NAME})
    ]


def check_pack(
    pack_dir: Path, manifest_path: Path | None = None, *, workers: int | None = None, progress: Progress | None = None
) -> PackCheck:
    """Compare a pack with its own manifest or with a separately kept (validated) one.

    Never stops at the first problem: every tensor and file is checked.
    """
    pack_dir = Path(pack_dir)
    mpath = Path(manifest_path) if manifest_path else pack_dir / MANIFEST_NAME
    expected = load_manifest(mpath)
    with Pack(pack_dir) as pack, ThreadPoolExecutor(max_workers=workers or _default_workers()) as ex:
        findings = [Finding(shard, f"unreadable shard: {why}") for shard, why in sorted(pack.unreadable.items())]
        # File hashing and tensor reconstruction share one pool, so they overlap.
        file_jobs = [ex.submit(_file_check, pack_dir, rel, want) for rel, want in sorted(expected.files.items())]
        names = list(pack.iter_names())
        results = list(ex.map(lambda n: _tensor_check(pack, n, progress), names))
        file_findings = [f for f in (j.result() for j in file_jobs) if f is not None]
    decode_findings = [r for r in results if isinstance(r, Finding)]
    actual = {r.name: r for r in results if isinstance(r, TensorEntry)}
    decoded_bad = {f.subject for f in decode_findings}
    findings += decode_findings
    findings += [f for f in diff_tensors(expected, actual) if f.subject not in decoded_bad]
    findings += file_findings + _added_files(pack_dir, expected)
    return PackCheck(pack_dir, str(mpath), expected.root, len(actual), len(expected.files), findings)


def verify_pack(
    pack_dir: Path, manifest_path: Path | None = None, *, workers: int | None = None, progress: Progress | None = None
) -> PackCheck:
    """Like :func:`check_pack` but raises :class:`VerificationFailed` listing every finding."""
    result = check_pack(pack_dir, manifest_path, workers=workers, progress=progress)
    if not result.ok:
        raise VerificationFailed(result.findings)
    return result


@dataclass
class Check:
    """One named check of a release verification and its outcome."""

    name: str
    ok: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class ReleaseCheck:
    """Outcome of verifying a pack against its signed, logged provenance."""

    pack: Path
    bundle: Path
    checks: list[Check]
    findings: list[Finding]
    root: str = ""
    log_index: int | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "pack": str(self.pack),
            "bundle": str(self.bundle),
            "root": self.root,
            "log_index": self.log_index,
            "checks": [c.to_dict() for c in self.checks],
            "findings": [f.to_dict() for f in self.findings],
        }


def check_release(
    pack_dir: Path,
    bundle: Path,
    trust_config: Any,
    identity: str,
    issuer: str,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
) -> ReleaseCheck:
    """Signature + identity + log proof (offline), statement ↔ pack files and manifest, every tensor.

    Every step runs and is reported; nothing stops at the first failure.
    """
    import hashlib

    from .errors import InvalidInput
    from .provenance import parse_statement
    from .signing import verify_bundle

    pack_dir = Path(pack_dir)
    if not Path(bundle).is_file():
        raise InvalidInput(f"{bundle}: bundle not found", path=str(bundle))
    rc = ReleaseCheck(pack_dir, Path(bundle), [], [])
    statement = None
    try:
        vb = verify_bundle(Path(bundle), trust_config, identity, issuer)
        rc.log_index = vb.log_index
        rc.checks.append(Check("signature, certificate, identity and issuer", True, f"{identity} via {issuer}"))
        rc.checks.append(
            Check("transparency log: SET, inclusion proof, signed checkpoint", True, f"log index {vb.log_index}")
        )
        statement = parse_statement(vb.payload)
        rc.checks.append(Check("provenance statement", True, statement.builder_id))
    except VerificationFailed as exc:
        rc.checks.append(Check("signature, identity and log proof", False, exc.findings[0].problem))
    except InvalidInput as exc:
        rc.checks.append(Check("provenance statement", False, exc.message))
    mpath = pack_dir / MANIFEST_NAME
    if statement is not None:
        rc.root = statement.root
        bad = []
        for name, want in sorted(statement.files.items()):
            p = pack_dir / name
            got = sha256_file(p).hex if p.is_file() else None
            if got != want:
                bad.append(
                    Finding(
                        name,
                        "pack file differs from the signed subject",
                        f"sha256:{want}",
                        f"sha256:{got}" if got else None,
                    )
                )
        rc.findings += bad
        rc.checks.append(Check("statement subjects = pack files", not bad, f"{len(statement.files)} files"))
        m_ok = mpath.is_file() and hashlib.sha256(mpath.read_bytes()).hexdigest() == statement.manifest_sha256
        if statement.manifest_bytes is not None and mpath.is_file():
            m_ok = m_ok and statement.manifest_bytes == mpath.read_bytes()
        rc.checks.append(Check("manifest is the signed one", m_ok, f"sha256:{statement.manifest_sha256}"))
        if not m_ok:
            rc.findings.append(
                Finding(MANIFEST_NAME, "manifest differs from the signed one", f"sha256:{statement.manifest_sha256}")
            )
    try:
        pc = check_pack(pack_dir, None, workers=workers, progress=progress)
        if statement is not None and str(pc.root) != f"sha256:{statement.root}":
            rc.findings.append(
                Finding(
                    "manifest root",
                    "differs from the signed reconstruction subject",
                    f"sha256:{statement.root}",
                    str(pc.root),
                )
            )
        rc.findings += [f for f in pc.findings if f.subject not in {x.subject for x in rc.findings}]
        rc.checks.append(
            Check(
                "every tensor reconstructed and matched",
                not pc.findings,
                f"{pc.tensors_checked} tensors, root {pc.root}",
            )
        )
    except InvalidInput as exc:
        rc.checks.append(Check("every tensor reconstructed and matched", False, exc.message))
    return rc
