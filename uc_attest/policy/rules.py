"""Rules: pure functions from facts and claims to :class:`Check` outcomes; a policy compiles to a list of them.

Facts are gathered elsewhere (``verify/``: bundles verified into evidence, claims parsed, the pack checked,
the log asked, the source rebuilt); rules only read them, so every rule can be tested without I/O. A
verdict is the conjunction of its checks and fails closed: no check at all is a denial.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..claims.oms import OMS_PREDICATE, OmsClaim
from ..claims.slsa import ReleaseClaim
from ..claims.statement import Statement
from ..claims.validation import ValidationClaim
from ..core.ruleid import RuleId
from ..errors import Finding, MalformedPack
from ..evidence.bundle import Evidence
from ..manifest import moments_digest_of
from ..pack.check import PackCheck
from ..pack.facts import PackFacts
from .model import CalibrationPolicy, Policy, Release, Source

Status = Literal["pass", "fail", "skipped", "unreachable"]


@dataclass
class Check:
    """One rule's outcome. ``skipped`` passes (and says so); ``unreachable`` fails as an operational problem."""

    rule: RuleId
    status: Status
    detail: str = ""
    expected: str | None = None
    actual: str | None = None
    hint: str | None = None
    findings: list[Finding] = field(default_factory=list)

    @classmethod
    def of(cls, rule: RuleId, ok: bool, detail: str = "", **kw: Any) -> Check:
        return cls(rule, "pass" if ok else "fail", detail, **kw)

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "skipped")

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": str(self.rule), "ok": self.ok, "status": self.status, "skipped": self.skipped}
        for k in ("detail", "expected", "actual", "hint"):
            v = getattr(self, k)
            if v:
                out[k] = v
        return out


def all_of(checks: Sequence[Check]) -> bool:
    """Every check passes; an empty set of checks denies (fail closed)."""
    return bool(checks) and all(c.ok for c in checks)


# -- facts ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OnlineLog:
    """The release entry asked for again from its log: ``proven`` (same body, proven against a fresh signed
    checkpoint consistent with the bundle's), ``differs``, ``unreachable``, ``misbehaved`` or ``no-log``."""

    status: Literal["proven", "differs", "unreachable", "misbehaved", "no-log"]
    detail: str


@dataclass(frozen=True)
class RebuildOutcome:
    source_findings: list[Finding]
    rebuild_findings: list[Finding]
    source_files: int
    seconds: float
    device: str
    error: str | None = None


@dataclass(frozen=True)
class ValidationFact:
    """One validation bundle: verified (evidence + claim) or why not."""

    bundle: Path
    evidence: Evidence | None = None
    claim: ValidationClaim | None = None
    error: str | None = None


@dataclass
class Facts:
    """Everything the rules read. ``None`` means "not gathered" (no bundle given, offline, no rebuild asked)."""

    now: float
    pack: PackFacts
    expected_signers: str = ""
    evidence: Evidence | None = None
    evidence_error: str | None = None
    # the rule a bundle that does not verify fails (release.timestamps for a TimestampInvalid)
    evidence_rule: RuleId = RuleId.RELEASE_SIGNER
    statement: Statement | None = None
    claim: ReleaseClaim | None = None
    claim_error: str | None = None
    online: OnlineLog | None = None
    expected_source: str | None = None  # where the manifest the pack must match comes from
    pack_check: PackCheck | None = None
    pack_error: str | None = None
    rebuild: RebuildOutcome | None = None
    validations: list[ValidationFact] | None = None
    oms: OmsClaim | None = None  # the bundle is an OpenSSF Model Signing signature of the pack directory
    oms_findings: list[Finding] | None = None  # the pack's files against it (missing, extra, changed)


Rule = Callable[[Facts], list[Check]]


# -- release evidence -------------------------------------------------------------------------------------------


def signer(f: Facts) -> list[Check]:
    if f.evidence is not None:
        return [Check.of(RuleId.RELEASE_SIGNER, True, str(f.evidence.signer))]
    timestamps = f.evidence_rule == RuleId.RELEASE_TIMESTAMPS
    return [
        Check.of(
            f.evidence_rule,
            False,
            f.evidence_error or "no release bundle",
            expected=None if timestamps else f.expected_signers or None,
            hint="a timestamp of the bundle does not verify or breaks the limits"
            if timestamps
            else "signed by someone the policy does not trust, or the bundle/trust root does not verify",
        )
    ]


def log_entry(require_tlog: bool) -> Rule:
    """The bundle's transparency-log entry (verified with the bundle); a TSA-only bundle only if the policy
    admits it (``require_tlog: false``), and the verdict says so."""

    def rule(f: Facts) -> list[Check]:
        if f.evidence is None:
            return []
        if f.evidence.log is None:
            if require_tlog:
                return [
                    Check.of(
                        RuleId.RELEASE_LOG,
                        False,
                        "the bundle has no transparency-log entry",
                        hint="a TSA-only bundle (e.g. GitHub's private-repository instance) needs require_tlog: false",
                    )
                ]
            return [Check(RuleId.RELEASE_LOG, "skipped", "no log entry: TSA-only bundle admitted by the policy")]
        log = f.evidence.log
        proofs = "SET, inclusion proof" if any(t.kind == "set" for t in f.evidence.times) else "inclusion proof"
        return [Check.of(RuleId.RELEASE_LOG, True, f"{proofs} and signed checkpoint at log index {log.index}")]

    return rule


def timestamps(required: int) -> Rule:
    """At least ``required`` verified RFC 3161 timestamps from distinct timestamp authorities."""

    def rule(f: Facts) -> list[Check]:
        if f.evidence is None:
            return []
        tsas = sorted({t.source for t in f.evidence.times if t.kind == "rfc3161"})
        ignored = len(f.evidence.ignored_timestamps)
        return [
            Check.of(
                RuleId.RELEASE_TIMESTAMPS,
                len(tsas) >= required,
                f"{len(tsas)} verified RFC 3161 timestamp authorities"
                + (f": {', '.join(tsas)}" if tsas else "")
                + (f" ({ignored} timestamps by authorities not trusted, not counted)" if ignored else ""),
                expected=f">= {required} distinct TSAs",
                actual=str(len(tsas)),
            )
        ]

    return rule


def online_log(required: bool) -> Rule:
    def rule(f: Facts) -> list[Check]:
        if f.evidence is None or f.online is None:
            return []
        o, name = f.online, RuleId.LOG_ONLINE
        if o.status == "proven":
            return [Check.of(name, True, o.detail)]
        if o.status == "unreachable":
            if required:
                return [Check(name, "unreachable", o.detail, hint="the policy requires the online check")]
            return [Check(name, "skipped", o.detail)]
        if o.status == "differs":
            return [Check.of(name, False, o.detail, expected="the bundle's entry body", actual="a different body")]
        hint = "the log does not prove the entry: possible split view" if o.status == "misbehaved" else None
        return [Check.of(name, False, o.detail, hint=hint)]

    return rule


def max_age(days: float) -> Rule:
    def rule(f: Facts) -> list[Check]:
        if f.evidence is None:
            return []
        t = f.evidence.signed_at
        if t is None:
            return [Check.of(RuleId.RELEASE_MAX_AGE, False, "no verified time for the signature")]
        age = (f.now - t) / 86400.0
        return [
            Check.of(
                RuleId.RELEASE_MAX_AGE,
                age <= days,
                f"signed {age:.1f} days ago",
                expected=f"<= {days} days",
                actual=f"{age:.1f} days",
            )
        ]

    return rule


# -- release claims ---------------------------------------------------------------------------------------------


def statement_claims(release: Release) -> Rule:
    def rule(f: Facts) -> list[Check]:
        if f.evidence is None:
            return []
        out: list[Check] = []
        if f.statement is not None:
            out.append(
                Check.of(
                    RuleId.RELEASE_PREDICATE_TYPE,
                    f.statement.predicate_type in release.predicate_types,
                    expected=" | ".join(release.predicate_types),
                    actual=f.statement.predicate_type,
                )
            )
        if f.claim is None:
            return [*out, Check.of(RuleId.RELEASE_STATEMENT, False, f.claim_error or "no release claim")]
        c = f.claim
        out.append(
            Check.of(
                RuleId.RELEASE_BUILD_TYPE,
                c.build_type in release.build_types,
                expected=" | ".join(release.build_types),
                actual=c.build_type,
            )
        )
        if release.builder_ids:
            out.append(
                Check.of(
                    RuleId.RELEASE_BUILDER_ID,
                    c.builder_id in release.builder_ids,
                    expected=" | ".join(release.builder_ids),
                    actual=c.builder_id,
                )
            )
        return out

    return rule


def constraints(policy: Policy) -> Rule:
    def rule(f: Facts) -> list[Check]:
        if f.claim is None:
            return []
        q, scheme, out = policy.quantization, f.claim.scheme, []
        for key, rule_id, allowed in (
            ("id", RuleId.QUANTIZATION_SCHEME, q.schemes),
            ("bits", RuleId.QUANTIZATION_BITS, q.bits),
            ("group_size", RuleId.QUANTIZATION_GROUP_SIZE, q.group_sizes),
        ):
            if allowed:
                out.append(
                    Check.of(
                        rule_id,
                        scheme.get(key) in allowed,
                        expected=" | ".join(map(str, allowed)),
                        actual=str(scheme.get(key)),
                    )
                )
        if policy.source.allowed_digests:
            got = str(f.claim.source_tree) if f.claim.source_tree else "none"
            out.append(
                Check.of(
                    RuleId.SOURCE_DIGEST,
                    got in policy.source.allowed_digests,
                    expected=" | ".join(policy.source.allowed_digests),
                    actual=got,
                    hint="the pack was built from a source model the policy does not allow",
                )
            )
        return out

    return rule


def calibration(cal: CalibrationPolicy) -> Rule:
    """The release provenance records how the calibration moments were obtained, by an allowed method,
    and its moments digest is that of the moments the manifest commits."""

    def rule(f: Facts) -> list[Check]:
        if f.claim is None:
            return []
        rec = f.claim.calibration
        allowed = " | ".join(cal.methods) if cal.methods else "any method"
        if rec is None:
            return [
                Check.of(
                    RuleId.QUANTIZATION_CALIBRATION,
                    False,
                    "the provenance records no calibration",
                    expected=allowed,
                    actual="none",
                    hint="pack without --no-calibration (or with --calibration/--calibration-text)",
                )
            ]
        committed = moments_digest_of(f.pack.manifest.tensors)
        if rec.moments != committed:
            return [
                Check.of(
                    RuleId.QUANTIZATION_CALIBRATION,
                    False,
                    "the recorded moments digest is not the pack's",
                    expected=str(rec.moments),
                    actual=str(committed),
                )
            ]
        ok = not cal.methods or rec.method in cal.methods
        return [
            Check.of(
                RuleId.QUANTIZATION_CALIBRATION, ok, f"{rec.method} ({rec.tool})", expected=allowed, actual=rec.method
            )
        ]

    return rule


def source_signers(source: Source) -> Rule:
    """The release provenance records a verified OMS signature of the source model by an allowed signer."""

    def rule(f: Facts) -> list[Check]:
        if f.claim is None:
            return []
        sig = f.claim.source_signature
        allowed = [s.describe() for s in source.signers] + [f"key {k}" for k in source.keys]
        if sig is None:
            return [
                Check.of(
                    RuleId.SOURCE_SIGNERS,
                    False,
                    "the provenance records no verified source signature",
                    expected=" | ".join(allowed),
                    actual="none",
                    hint="pack with --source-signature (the vendor's model.sig)",
                )
            ]
        if sig.method == "key":
            ok, who = sig.identity in source.keys, f"key {sig.identity}"
        else:
            ok, who = (
                any(s.matches(sig.identity, sig.issuer) for s in source.signers),
                f"{sig.identity} via {sig.issuer}",
            )
        return [
            Check.of(
                RuleId.SOURCE_SIGNERS,
                ok,
                f"{sig.model} signed by {who} ({sig.method})",
                expected=None if ok else " | ".join(allowed),
                actual=None if ok else who,
                hint=None if ok else "the source model was signed by someone the policy does not allow",
            )
        ]

    return rule


def pack_files(f: Facts) -> list[Check]:
    """Every signed pack file (statement subjects) is on disk with the signed digest."""
    if f.claim is None:
        return []
    bad = []
    for name, want in sorted(f.claim.files.items()):
        got = f.pack.file_digest(name)
        if got != want:
            bad.append(Finding(name, "pack file differs from the signed subject", str(want), str(got) if got else None))
    return [
        Check.of(
            RuleId.PACK_FILES,
            not bad,
            f"{len(f.claim.files)} signed files",
            hint="a pack file was changed, removed or replaced after signing" if bad else None,
            findings=bad,
        )
    ]


def pack_manifest(f: Facts) -> list[Check]:
    """The pack's uc-manifest.json is the signed one (digest, and the inline bytes when signed inline)."""
    if f.claim is None:
        return []
    try:
        ok = f.pack.manifest_digest == f.claim.manifest_digest
        if f.claim.manifest_bytes is not None:
            ok = ok and f.pack.manifest_bytes == f.claim.manifest_bytes
        actual = str(f.pack.manifest_digest)
    except MalformedPack:
        ok, actual = False, "missing or unreadable"
    return [
        Check.of(
            RuleId.PACK_MANIFEST,
            ok,
            expected=str(f.claim.manifest_digest),
            actual=None if ok else actual,
            hint=None if ok else "the pack's uc-manifest.json is not the signed one",
        )
    ]


def pack_tensors(f: Facts) -> list[Check]:
    """Every tensor reconstructed and matched against the expected (signed or validated) manifest."""
    if f.pack_check is None:
        if f.pack_error is None:
            return []
        return [Check.of(RuleId.PACK_TENSORS, False, f.pack_error, hint="the pack's manifest is unreadable")]
    pc = f.pack_check
    findings = list(pc.findings)
    if f.claim is not None and f.claim.root != pc.root:
        findings.insert(
            0,
            Finding("manifest root", "differs from the signed reconstruction subject", str(f.claim.root), str(pc.root)),
        )
    return [
        Check.of(
            RuleId.PACK_TENSORS,
            not findings,
            f"{pc.tensors_checked} tensors reconstructed, root {pc.root}",
            hint="the deployed pack is not the expected one: see the findings" if findings else None,
            findings=findings,
        )
    ]


# -- rebuild ----------------------------------------------------------------------------------------------------


def rebuild(required: bool) -> Rule:
    def rule(f: Facts) -> list[Check]:
        r = f.rebuild
        if r is None:
            if not required:
                return []
            return [
                Check.of(
                    RuleId.REBUILD,
                    False,
                    "policy requires a rebuild from source",
                    hint="pass --rebuild-from SOURCE_DIR",
                )
            ]
        if r.error is not None:
            return [Check.of(RuleId.REBUILD, False, r.error, hint="the rebuild source is not a usable model directory")]
        return [
            Check.of(
                RuleId.REBUILD_SOURCE,
                not r.source_findings,
                f"{r.source_files} source files",
                hint="the source is not the one recorded in the manifest/statement" if r.source_findings else None,
                findings=r.source_findings,
            ),
            Check.of(
                RuleId.REBUILD_MATCH,
                not r.rebuild_findings,
                f"re-quantized on {r.device} in {r.seconds:.1f} s",
                hint="rebuilding from the source does not reproduce the pack" if r.rebuild_findings else None,
                findings=r.rebuild_findings,
            ),
        ]

    return rule


# -- validation -------------------------------------------------------------------------------------------------


def last_validated(f: Facts) -> ValidationClaim | None:
    """The newest validation that verified (whatever root it names)."""
    good = [v for v in f.validations or [] if v.claim is not None and v.evidence is not None]
    good.sort(key=lambda v: v.evidence.signed_at or 0 if v.evidence else 0)
    return good[-1].claim if good else None


def validation(policy: Policy, *, required: bool | None = None) -> Rule:
    """Some validator-signed attestation of this exact root meets every threshold (``required`` overrides)."""
    val = policy.validation
    assert val is not None
    must = val.required if required is None else required

    def rule(f: Facts) -> list[Check]:
        root = f.claim.root if f.claim is not None else f.pack.root
        reasons: list[str] = []
        for v in f.validations or []:
            name = v.bundle.name
            if v.claim is None or v.evidence is None:
                reasons.append(f"{name}: {v.error}")
                continue
            why, t = [], v.evidence.signed_at
            if v.claim.root != root:
                why.append(f"validates root {str(v.claim.root)[:23]}…, not this pack's {str(root)[:23]}…")
            if val.evaluation_sets and v.claim.evaluation_set not in val.evaluation_sets:
                why.append(f"evaluation set {v.claim.evaluation_set!r} not accepted")
            for metric, th in sorted(val.thresholds.items()):
                x = v.claim.metrics.get(metric)
                if x is None:
                    why.append(f"metric {metric} missing")
                elif not th.admits(x):
                    why.append(f"{metric}={x:g} outside [{th.min}, {th.max}]")
            if t is None:
                why.append("no verified time")
            elif t > f.now:
                why.append("signed after the deployment check")
            elif val.max_age_days is not None and (f.now - t) / 86400.0 > val.max_age_days:
                why.append(f"{(f.now - t) / 86400.0:.1f} days old (max {val.max_age_days})")
            if not why:
                metrics = ", ".join(f"{k}={x:g}" for k, x in sorted(v.claim.metrics.items()))
                return [
                    Check.of(
                        RuleId.VALIDATION,
                        True,
                        f"{name} by {v.evidence.signer.primary}: {v.claim.evaluation_set}, {metrics}",
                    )
                ]
            reasons.append(f"{name}: " + "; ".join(why))
        if not must:
            return [Check(RuleId.VALIDATION, "skipped", "not required; " + ("; ".join(reasons) or "none given"))]
        last = last_validated(f)
        return [
            Check.of(
                RuleId.VALIDATION,
                False,
                "; ".join(reasons) or "no validation attestation given",
                expected=f"a validator-signed attestation of {root}",
                actual=f"last validated root {last.root}" if last else "none",
                hint="validate this exact pack (uc-attest validate) before deploying it",
            )
        ]

    return rule


# -- OpenSSF Model Signing bundles ------------------------------------------------------------------------------


def oms_predicate(release: Release) -> Rule:
    def rule(f: Facts) -> list[Check]:
        if f.oms is None:
            return []
        ok = OMS_PREDICATE in release.predicate_types
        return [
            Check.of(
                RuleId.RELEASE_PREDICATE_TYPE,
                ok,
                "an OpenSSF Model Signing signature of the pack's files",
                expected=" | ".join(release.predicate_types),
                actual=OMS_PREDICATE,
                hint=None
                if ok
                else f"the policy admits OMS signatures when release.predicate_types lists {OMS_PREDICATE}",
            )
        ]

    return rule


def oms_files(f: Facts) -> list[Check]:
    """Every file of the pack directory is the one the OMS signature lists; nothing missing, nothing extra."""
    if f.oms is None or f.oms_findings is None:
        return []
    n = len(f.oms.resources)
    return [
        Check.of(
            RuleId.OMS_FILES,
            not f.oms_findings,
            f"{n} signed files ({f.oms.serialization.method}, {f.oms.serialization.hash_type})",
            findings=list(f.oms_findings),
            hint="the pack directory is not the signed one" if f.oms_findings else None,
        )
    ]


def oms_rules(policy: Policy | None) -> list[Rule]:
    """An OMS signature of a pack: signer, log, every file (uc-manifest.json included, so the manifest is
    bound) and every tensor against that manifest; with a policy, OMS must be an admitted predicate type."""
    release = (
        policy.release
        if policy is not None
        else Release(require_online_log_check=False, predicate_types=[OMS_PREDICATE])
    )
    rules: list[Rule] = [signer, log_entry(release.require_tlog), online_log(release.require_online_log_check)]
    if release.max_age_days is not None:
        rules.append(max_age(release.max_age_days))
    return [
        *rules,
        oms_predicate(release),
        oms_files,
        pack_tensors,
        rebuild(policy is not None and policy.rebuild.required),
    ]


# -- compiling a policy -----------------------------------------------------------------------------------------


def release_rules(policy: Policy | None) -> list[Rule]:
    """The rules of a signed release: the policy's, or the defaults (``--bundle`` without a policy)."""
    release = policy.release if policy is not None else Release(require_online_log_check=False)
    rules: list[Rule] = [signer, log_entry(release.require_tlog), online_log(release.require_online_log_check)]
    if release.require_timestamps:
        rules.append(timestamps(release.require_timestamps))
    if release.max_age_days is not None:
        rules.append(max_age(release.max_age_days))
    rules.append(statement_claims(release))
    if policy is not None:
        rules.append(constraints(policy))
        if policy.source.signers or policy.source.keys:
            rules.append(source_signers(policy.source))
        q = policy.quantization.calibration
        if q is not None and (q.required or q.methods):
            rules.append(calibration(q))
    rules += [pack_files, pack_manifest, pack_tensors, rebuild(policy is not None and policy.rebuild.required)]
    if policy is not None and policy.validation is not None:
        rules.append(validation(policy))
    return rules


def manifest_source(f: Facts) -> list[Check]:
    """Without a signer, the manifest the pack is held to (the pack's own proves only self-consistency)."""
    if f.expected_source is None:
        return []
    return [Check.of(RuleId.MANIFEST, True, f"expected manifest: {f.expected_source}")]


def pack_rules() -> list[Rule]:
    """Without a signer: the pack against a manifest, and a rebuild when one was run."""
    return [manifest_source, pack_tensors, rebuild(False)]


def evaluate(rules: Sequence[Rule], facts: Facts) -> list[Check]:
    return [c for r in rules for c in r(facts)]
