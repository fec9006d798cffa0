"""Check a pack against a manifest: reconstruct every tensor, hash it, report every mismatch.

Tensors are decoded and hashed in parallel (torch and hashlib release the GIL),
so reconstruction of one tensor overlaps hashing of another; memory stays
bounded by a few tensors at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
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


def _file_check(pack_dir: Path, rel: str, want: Digest, known: dict[str, Digest] | None = None) -> Finding | None:
    p = pack_dir / rel
    if not p.is_file():
        return Finding(rel, "file missing from pack", str(want), None)
    got = (known or {}).get(rel) or sha256_file(p)
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
    pack_dir: Path,
    manifest_path: Path | None = None,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    known_files: dict[str, Digest] | None = None,
) -> PackCheck:
    """Compare a pack with its own manifest or with a separately kept (validated) one.

    Never stops at the first problem: every tensor and file is checked. ``known_files`` are
    digests the caller already computed from the files on disk in this run (not re-hashed).
    """
    pack_dir = Path(pack_dir)
    mpath = Path(manifest_path) if manifest_path else pack_dir / MANIFEST_NAME
    expected = load_manifest(mpath)
    with Pack(pack_dir) as pack, ThreadPoolExecutor(max_workers=workers or _default_workers()) as ex:
        findings = [Finding(shard, f"unreadable shard: {why}") for shard, why in sorted(pack.unreadable.items())]
        # File hashing and tensor reconstruction share one pool, so they overlap.
        file_jobs = [
            ex.submit(_file_check, pack_dir, rel, want, known_files) for rel, want in sorted(expected.files.items())
        ]
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
    """One rule of a verification and its outcome; failures say what was expected and found."""

    rule: str
    ok: bool
    detail: str = ""
    expected: str | None = None
    actual: str | None = None
    hint: str | None = None
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != ""}


@dataclass
class Verdict:
    """Outcome of verifying a pack (against a bundle, a policy, a rebuild). ``ok`` means allowed."""

    pack: Path
    checks: list[Check] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    root: str = ""
    log_index: int | None = None
    signer: str = ""
    policy: str = ""
    last_validated_root: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and not self.findings

    def add(
        self,
        rule: str,
        ok: bool,
        detail: str = "",
        *,
        expected: str | None = None,
        actual: str | None = None,
        hint: str | None = None,
        skipped: bool = False,
    ) -> bool:
        self.checks.append(Check(rule, ok, detail, expected, actual, hint, skipped))
        return ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "pack": str(self.pack),
            "root": self.root,
            "log_index": self.log_index,
            "signer": self.signer,
            "policy": self.policy,
            "last_validated_root": self.last_validated_root,
            "timings_s": self.timings,
            "checks": [c.to_dict() for c in self.checks],
            "findings": [f.to_dict() for f in self.findings],
        }


def _age_days(t: int, now: float) -> float:
    return (now - t) / 86400.0


def _check_tensors(
    v: Verdict,
    pack_dir: Path,
    workers: int | None,
    progress: Progress | None,
    signed_root: str | None,
    known_files: dict[str, Digest] | None = None,
) -> None:
    from .errors import InvalidInput

    try:
        pc = check_pack(pack_dir, None, workers=workers, progress=progress, known_files=known_files)
    except InvalidInput as exc:
        v.add("pack.tensors", False, exc.message, hint="the pack's manifest is unreadable")
        return
    if signed_root is not None and str(pc.root) != f"sha256:{signed_root}":
        v.findings.append(
            Finding(
                "manifest root", "differs from the signed reconstruction subject", f"sha256:{signed_root}", str(pc.root)
            )
        )
    seen = {f.subject for f in v.findings}
    v.findings += [f for f in pc.findings if f.subject not in seen]
    v.add(
        "pack.tensors",
        not pc.findings,
        f"{pc.tensors_checked} tensors reconstructed, root {pc.root}",
        hint=None if not pc.findings else "the deployed pack is not the attested one: see the findings",
    )
    v.root = v.root or pc.root.hex


def rebuild_findings(
    pack_dir: Path, source_dir: Path, expected: Manifest, device: str, resolved: dict[str, str] | None = None
) -> tuple[list[Finding], list[Finding], float]:
    """Re-quantize ``source_dir`` with the recorded scheme; compare with ``expected``.

    Returns (source findings, rebuild findings, seconds). Source files are checked against the
    manifest's (and the statement's) record before any work is spent on them.
    """
    import tempfile
    import time

    from .pack.writer import write_pack
    from .quant.scheme import Scheme

    source_dir = Path(source_dir)
    src_findings: list[Finding] = []
    want = {k: v.hex for k, v in expected.source_files.items()}
    for name, h in (resolved or {}).items():
        if want.get(name, h) != h:
            src_findings.append(Finding(name, "manifest and statement disagree on this source file", h, want[name]))
    for rel, h in sorted(want.items()):
        p = source_dir / rel
        got = sha256_file(p).hex if p.is_file() else None
        if got != h:
            src_findings.append(
                Finding(
                    f"source:{rel}",
                    "source file differs from the recorded one" if got else "source file missing",
                    f"sha256:{h}",
                    f"sha256:{got}" if got else None,
                )
            )
    t0 = time.perf_counter()
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="uc-rebuild-") as tmp:
        with Pack(pack_dir) as committed:  # calibration moments are committed in the pack, not re-derived

            def moments(name: str, _shape: tuple[int, ...]) -> Any:
                import torch

                m = committed.moments(name) if name in committed.tensors else None
                return None if m is None else torch.from_numpy(m)

            rebuilt = write_pack(
                source_dir, Path(tmp) / "rebuilt", Scheme.from_dict(expected.scheme), device, moments=moments
            )
        findings += [
            Finding(f.subject, f"rebuild: {f.problem}", f.expected, f.actual)
            for f in diff_tensors(expected, {e.name: e for e in rebuilt.manifest.tensors})
        ]
        for rel, hd in sorted(expected.files.items()):
            got_d = rebuilt.manifest.files.get(rel)
            if got_d != hd:
                findings.append(Finding(rel, "rebuilt pack file differs", str(hd), str(got_d) if got_d else None))
    return src_findings, findings, time.perf_counter() - t0


def _check_rebuild(v: Verdict, pack_dir: Path, source_dir: Path, device: str, resolved: dict[str, str] | None) -> None:
    from .errors import UcAttestError

    try:
        expected = load_manifest(pack_dir / MANIFEST_NAME)
        src, reb, secs = rebuild_findings(pack_dir, source_dir, expected, device, resolved)
    except UcAttestError as exc:
        v.add("rebuild", False, exc.message, hint="the rebuild source is not a usable model directory")
        return
    v.timings["rebuild"] = round(secs, 3)
    v.findings += src + reb
    v.add(
        "rebuild.source",
        not src,
        f"{len(expected.source_files)} source files",
        hint="the source is not the one recorded in the manifest/statement" if src else None,
    )
    v.add(
        "rebuild.match",
        not reb,
        f"re-quantized on {device} in {secs:.1f} s",
        hint="rebuilding from the source does not reproduce the pack" if reb else None,
    )


def check_rebuild(
    pack_dir: Path,
    source_dir: Path,
    device: str = "auto",
    *,
    workers: int | None = None,
    progress: Progress | None = None,
) -> Verdict:
    """The quick reproducibility check: the pack against its manifest, and a rebuild from source."""
    v = Verdict(Path(pack_dir))
    _check_tensors(v, Path(pack_dir), workers, progress, None)
    _check_rebuild(v, Path(pack_dir), Path(source_dir), device, None)
    return v


def _online_log_check(v: Verdict, trust_config: Any, vb: Any, required: bool) -> None:
    from .tlog.client import LogMisbehaved, LogUnreachable, fetch_verified_entry, log_keys

    logs = [lg for lg in log_keys(trust_config) if lg.log_id == vb.log_id]
    if not logs:
        v.add("log.online", False, "no log in the trust root has the bundle's log id")
        return
    try:
        body = fetch_verified_entry(logs[0], vb.log_index)
    except LogUnreachable as exc:
        v.add(
            "log.online",
            not required,
            f"log unreachable, entry not re-fetched ({exc})",
            skipped=not required,
            hint="policy requires the online check" if required else None,
        )
        return
    except LogMisbehaved as exc:
        v.add("log.online", False, str(exc), hint="the log does not prove the entry: possible split view")
        return
    v.add(
        "log.online",
        body == vb.canonical_body,
        f"entry {vb.log_index} re-fetched and proven in the log",
        expected="the bundle's entry body",
        actual="same" if body == vb.canonical_body else "a different body",
    )


def verify_release(
    pack_dir: Path,
    bundle: Path,
    trust_config: Any,
    signers: Sequence[Any],
    *,
    policy: Any = None,
    validations: Sequence[Path] = (),
    rebuild_from: Path | None = None,
    device: str = "auto",
    now: float | None = None,
    online: bool = True,
    check_tensors: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
) -> Verdict:
    """Every rule, all run and all reported: signer, log, statement, policy constraints, files,
    manifest, tensors, rebuild, validation. ``policy`` is a policy.Policy or None (defaults)."""
    import hashlib
    import time

    from .errors import InvalidInput
    from .policy.model import Release
    from .provenance import parse_statement
    from .signing import verify_bundle

    now = time.time() if now is None else now
    pack_dir = Path(pack_dir)
    if not Path(bundle).is_file():
        raise InvalidInput(f"{bundle}: bundle not found", path=str(bundle))
    v = Verdict(pack_dir, policy=getattr(policy, "name", ""))
    file_digests: dict[str, Digest] = {}  # hashed once here, reused by the tensor/file check
    release = policy.release if policy is not None else Release(require_online_log_check=False)
    statement = None
    try:
        vb = verify_bundle(Path(bundle), trust_config, signers)
        v.log_index, v.signer = vb.log_index, f"{vb.identity} via {vb.issuer}"
        v.add("release.signer", True, v.signer)
        v.add("release.log", True, f"SET, inclusion proof and signed checkpoint at log index {vb.log_index}")
        if online:
            _online_log_check(v, trust_config, vb, release.require_online_log_check)
        if release.max_age_days is not None:
            age = _age_days(vb.integrated_time, now)
            v.add(
                "release.max_age",
                age <= release.max_age_days,
                f"logged {age:.1f} days ago",
                expected=f"<= {release.max_age_days} days",
                actual=f"{age:.1f} days",
            )
        statement = parse_statement(vb.payload)
    except VerificationFailed as exc:
        v.add(
            "release.signer",
            False,
            exc.findings[0].problem,
            expected=" | ".join(
                f"{getattr(s, 'identity', None) or getattr(s, 'identity_regex', '')} via {s.issuer}" for s in signers
            ),
            hint="signed by someone the policy does not trust, or the bundle/trust root does not verify",
        )
    except InvalidInput as exc:
        v.add("release.statement", False, exc.message)
    if statement is not None:
        v.root = statement.root
        v.add(
            "release.predicate_type",
            statement.predicate_type in release.predicate_types,
            expected=" | ".join(release.predicate_types),
            actual=statement.predicate_type,
        )
        v.add(
            "release.build_type",
            statement.build_type in release.build_types,
            expected=" | ".join(release.build_types),
            actual=statement.build_type,
        )
        if release.builder_ids:
            v.add(
                "release.builder_id",
                statement.builder_id in release.builder_ids,
                expected=" | ".join(release.builder_ids),
                actual=statement.builder_id,
            )
        if policy is not None:
            _check_constraints(v, policy, statement)
        bad = []
        for name, want in sorted(statement.files.items()):
            p = pack_dir / name
            if p.is_file():
                file_digests[name] = sha256_file(p)
            got = file_digests[name].hex if name in file_digests else None
            if got != want:
                bad.append(
                    Finding(
                        name,
                        "pack file differs from the signed subject",
                        f"sha256:{want}",
                        f"sha256:{got}" if got else None,
                    )
                )
        v.findings += bad
        v.add(
            "pack.files",
            not bad,
            f"{len(statement.files)} signed files",
            hint="a pack file was changed, removed or replaced after signing" if bad else None,
        )
        mpath = pack_dir / MANIFEST_NAME
        m_ok = mpath.is_file() and hashlib.sha256(mpath.read_bytes()).hexdigest() == statement.manifest_sha256
        if statement.manifest_bytes is not None and mpath.is_file():
            m_ok = m_ok and statement.manifest_bytes == mpath.read_bytes()
        v.add(
            "pack.manifest",
            m_ok,
            expected=f"sha256:{statement.manifest_sha256}",
            hint=None if m_ok else "the pack's uc-manifest.json is not the signed one",
        )
    if check_tensors:
        _check_tensors(v, pack_dir, workers, progress, statement.root if statement else None, file_digests)
    if rebuild_from is not None:
        _check_rebuild(v, pack_dir, Path(rebuild_from), device, statement.resolved if statement else None)
    elif policy is not None and policy.rebuild.required:
        v.add("rebuild", False, "policy requires a rebuild from source", hint="pass --rebuild-from SOURCE_DIR")
    if policy is not None and policy.validation is not None:
        check_validation(v, policy, trust_config, validations, v.root, now)
    return v


def _check_constraints(v: Verdict, policy: Any, st: Any) -> None:
    q, scheme = policy.quantization, st.scheme
    for key, allowed in (("id", q.schemes), ("bits", q.bits), ("group_size", q.group_sizes)):
        if allowed:
            v.add(
                f"quantization.{'scheme' if key == 'id' else key}",
                scheme.get(key) in allowed,
                expected=" | ".join(map(str, allowed)),
                actual=str(scheme.get(key)),
            )
    if policy.source.allowed_digests:
        got = f"sha256:{st.source_digest}"
        v.add(
            "source.digest",
            got in policy.source.allowed_digests,
            expected=" | ".join(policy.source.allowed_digests),
            actual=got,
            hint="the pack was built from a source model the policy does not allow",
        )


def check_validation(
    v: Verdict, policy: Any, trust_config: Any, bundles: Sequence[Path], root: str, now: float
) -> None:
    """The validation rule: some validator-signed attestation of this exact root meets every threshold."""
    from .errors import InvalidInput
    from .provenance import parse_validation
    from .signing import verify_bundle

    val = policy.validation
    reasons: list[str] = []
    newest: tuple[int, str] | None = None
    for b in bundles:
        if not Path(b).is_file():
            reasons.append(f"{b}: not found")
            continue
        try:
            vb = verify_bundle(Path(b), trust_config, policy.signers.validator)
            st = parse_validation(vb.payload)
        except VerificationFailed as exc:
            reasons.append(f"{Path(b).name}: {exc.findings[0].problem}")
            continue
        except InvalidInput as exc:
            reasons.append(f"{Path(b).name}: {exc.message}")
            continue
        if newest is None or vb.integrated_time > newest[0]:
            newest = (vb.integrated_time, st.root)
        why = []
        if st.root != root:
            why.append(f"validates root sha256:{st.root[:16]}…, not this pack's sha256:{root[:16]}…")
        if val.evaluation_sets and st.evaluation_set not in val.evaluation_sets:
            why.append(f"evaluation set {st.evaluation_set!r} not accepted")
        for metric, th in sorted(val.thresholds.items()):
            x = st.metrics.get(metric)
            if x is None:
                why.append(f"metric {metric} missing")
            elif (th.min is not None and x < th.min) or (th.max is not None and x > th.max):
                why.append(f"{metric}={x:g} outside [{th.min}, {th.max}]")
        if vb.integrated_time > now:
            why.append("logged after the deployment check")
        if val.max_age_days is not None and _age_days(vb.integrated_time, now) > val.max_age_days:
            why.append(f"{_age_days(vb.integrated_time, now):.1f} days old (max {val.max_age_days})")
        if not why:
            v.last_validated_root = st.root
            v.add(
                "validation",
                True,
                f"{Path(b).name} by {vb.identity}: {st.evaluation_set}, "
                + ", ".join(f"{k}={x:g}" for k, x in sorted(st.metrics.items())),
            )
            return
        reasons.append(f"{Path(b).name}: " + "; ".join(why))
    if newest is not None:
        v.last_validated_root = newest[1]
    if not val.required:
        v.add("validation", True, "not required; " + ("; ".join(reasons) or "none given"), skipped=True)
        return
    v.add(
        "validation",
        False,
        "; ".join(reasons) or "no validation attestation given",
        expected=f"a validator-signed attestation of sha256:{root}",
        actual=f"last validated root sha256:{v.last_validated_root}" if v.last_validated_root else "none",
        hint="validate this exact pack (uc-attest validate) before deploying it",
    )


def _default_bundles(pack_dir: Path) -> tuple[Path, list[Path]]:
    p = Path(pack_dir).absolute()
    rel, val = p.with_name(p.name + ".sigstore.json"), p.with_name(p.name + ".validation.sigstore.json")
    return rel, [val] if val.is_file() else []


def verify(
    pack_dir: Path,
    *,
    policy: Path | None = None,
    bundle: Path | None = None,
    validations: Sequence[Path] | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    rebuild_from: Path | None = None,
    device: str = "auto",
    online: bool = True,
    now: float | None = None,
    check_tensors: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
) -> Verdict:
    """The verifier of the product: returns a Verdict (``.ok`` = allowed) with every check.

    * ``policy``: a policy file (trust root, signers per role, constraints, validation, rebuild);
    * else ``bundle`` + ``identity`` + ``issuer`` (+ trust): signature, log and pack checks;
    * else: the pack against its own manifest, and a rebuild when ``rebuild_from`` is given.
    """
    from .errors import UsageError
    from .policy.model import load_policy
    from .signing import SignerSpec
    from .trust import select_trust

    pack_dir = Path(pack_dir)
    default_bundle, default_vals = _default_bundles(pack_dir)
    if policy is not None:
        pol, base = load_policy(policy)
        if trust_config is None and instance is None:
            trust = select_trust(
                base / pol.trust.trust_config if pol.trust.trust_config else None,
                base / pol.trust.instance if pol.trust.instance else None,
            )
        else:
            trust = select_trust(trust_config, instance)
        return verify_release(
            pack_dir,
            Path(bundle or default_bundle),
            trust.load(),
            pol.signers.release,
            policy=pol,
            validations=default_vals if validations is None else validations,
            rebuild_from=rebuild_from,
            device=device if device != "auto" else pol.rebuild.device,
            now=now,
            online=online,
            check_tensors=check_tensors,
            workers=workers,
            progress=progress,
        )
    if bundle is not None:
        trust = select_trust(trust_config, instance)
        iss = issuer or trust.default_issuer()
        if not identity or not iss:
            raise UsageError("--bundle needs --identity and --issuer (or a --policy naming the signers)")
        return verify_release(
            pack_dir,
            Path(bundle),
            trust.load(),
            [SignerSpec(iss, identity)],
            rebuild_from=rebuild_from,
            device=device,
            now=now,
            online=online,
            check_tensors=check_tensors,
            workers=workers,
            progress=progress,
        )
    if rebuild_from is not None:
        return check_rebuild(pack_dir, Path(rebuild_from), device, workers=workers, progress=progress)
    v = Verdict(pack_dir)
    _check_tensors(v, pack_dir, workers, progress, None)
    return v


def gate(
    pack_dir: Path, policy: Path, validations: Sequence[Path] | None = None, *, now: float | None = None
) -> Verdict:
    """ "Did the deployed manifest change since the last validation?" — the validation rule alone,
    for the pack's current manifest root (no tensor decoding: pair with verify for integrity)."""
    import time

    from .errors import UsageError
    from .policy.model import load_policy
    from .trust import select_trust

    pol, base = load_policy(policy)
    if pol.validation is None:
        raise UsageError(f"{policy}: the policy has no validation section; the gate needs one")
    trust = select_trust(
        base / pol.trust.trust_config if pol.trust.trust_config else None,
        base / pol.trust.instance if pol.trust.instance else None,
    )
    m = load_manifest(Path(pack_dir) / MANIFEST_NAME)
    v = Verdict(Path(pack_dir), root=m.root.hex, policy=pol.name)
    _, default_vals = _default_bundles(Path(pack_dir))
    check_validation(
        v,
        pol.model_copy(update={"validation": pol.validation.model_copy(update={"required": True})}),
        trust.load(),
        default_vals if validations is None else validations,
        m.root.hex,
        time.time() if now is None else now,
    )
    return v


def load_verified(pack_dir: Path, **verify_kw: Any) -> dict[str, Any]:
    """Verify (signature, log, policy, files) then reconstruct every tensor into a torch state dict,
    hashing exactly the bytes the tensors are made of. Any failure raises VerificationFailed and
    returns nothing: there is no gap between the check and the use."""
    import hashlib

    import torch

    from .stfile import torch_dtype

    pack_dir = Path(pack_dir)
    verdict = verify(pack_dir, check_tensors=False, **verify_kw)
    findings = list(verdict.findings) + [
        Finding(c.rule, c.detail or "check failed", c.expected, c.actual) for c in verdict.checks if not c.ok
    ]
    if findings:
        raise VerificationFailed(findings)
    expected = load_manifest(pack_dir / MANIFEST_NAME)
    if verdict.root and expected.root.hex != verdict.root:
        raise VerificationFailed(
            [Finding("manifest root", "differs from the verified one", verdict.root, expected.root.hex)]
        )
    state: dict[str, Any] = {}
    with Pack(pack_dir) as pack:
        for e in sorted(expected.tensors, key=lambda e: e.name):
            if e.name not in pack.tensors:
                findings.append(Finding(e.name, "missing from pack", str(e.digest)))
                continue
            buf = bytearray()
            h = hashlib.sha256()
            try:
                for block in pack.iter_bytes(e.name):
                    h.update(block)
                    buf += block
            except (MalformedPack, MalformedSafetensors) as exc:
                findings.append(Finding(e.name, f"cannot reconstruct: {exc.message}"))
                continue
            if h.hexdigest() != e.digest.hex:
                findings.append(
                    Finding(e.name, "reconstructed digest differs", str(e.digest), f"sha256:{h.hexdigest()}")
                )
                continue
            dt = torch_dtype(e.dtype)
            if dt is None:
                findings.append(Finding(e.name, f"dtype {e.dtype} cannot be loaded into torch"))
                continue
            state[e.name] = torch.frombuffer(buf, dtype=dt).reshape(e.shape) if buf else torch.empty(e.shape, dtype=dt)
        extra = sorted(set(pack.tensors) - {e.name for e in expected.tensors})
        findings += [Finding(n, "not in manifest (added tensor)") for n in extra]
    if findings:
        raise VerificationFailed(findings)
    return state
