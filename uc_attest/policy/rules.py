"""Rules: pure functions from facts and claims to :class:`Check` outcomes; a policy compiles to a list of them.

Facts are gathered elsewhere (``verify/``: bundles verified into evidence, claims parsed, the pack checked,
the log asked, the source rebuilt); rules only read them, so every rule can be tested without I/O. A
verdict is the conjunction of its checks and fails closed: no check at all is a denial.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.ruleid import RuleId
from ..errors import Finding, MalformedPack
from ..manifest import OmsMethod, moments_digest_of
from ..pack.layout import MANIFEST_NAME

if TYPE_CHECKING:  # types only: a check without a signer needs neither the claims nor the policy model
    from ..claims.oms import OmsClaim
    from ..claims.slsa import ReleaseClaim
    from ..claims.statement import Statement
    from ..claims.validation import Runtime, ValidationClaim
    from ..core.digest import Digest
    from ..evidence.bundle import Evidence
    from ..pack.check import PackCheck
    from ..pack.facts import PackFacts
    from .model import CalibrationPolicy, EvidenceRules, Policy, Release, RuntimeNeed, Source, Validation


class Status(StrEnum):
    """A check's outcome. A ``str``: it compares equal to and encodes as its value."""

    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"  # passes, and says why the rule had nothing to require here
    UNREACHABLE = "unreachable"  # a service the policy requires could not be reached: operational (exit 4)
    UNCHECKED = "unchecked"  # the policy states the rule, the evidence at hand cannot answer it: denied


@dataclass
class Check:
    """One rule's outcome. ``skipped`` passes (and says so); ``unreachable`` fails as an operational problem;
    ``unchecked`` denies: a rule the policy states is never absent from a verdict, whatever evidence came."""

    rule: RuleId
    status: Status
    detail: str = ""
    expected: str | None = None
    actual: str | None = None
    hint: str | None = None
    findings: list[Finding] = field(default_factory=list)

    @classmethod
    def of(cls, rule: RuleId, ok: bool, detail: str = "", **kw: Any) -> Check:
        return cls(rule, Status.PASS if ok else Status.FAIL, detail, **kw)

    @classmethod
    def unchecked(cls, rule: RuleId, why: str, **kw: Any) -> Check:
        """A rule the policy states that the evidence cannot answer: denied, saying what is lacking."""
        return cls(rule, Status.UNCHECKED, f"not checked: {why}", **kw)

    @property
    def ok(self) -> bool:
        return self.status in (Status.PASS, Status.SKIPPED)

    @property
    def skipped(self) -> bool:
        return self.status is Status.SKIPPED

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": str(self.rule),
            "ok": self.ok,
            "status": str(self.status),
            "skipped": self.skipped,
        }
        for k in ("detail", "expected", "actual", "hint"):
            v = getattr(self, k)
            if v:
                out[k] = v
        return out


def all_of(checks: Sequence[Check]) -> bool:
    """Every check passes; an empty set of checks denies (fail closed)."""
    return bool(checks) and all(c.ok for c in checks)


# -- facts ------------------------------------------------------------------------------------------------------


class LogStatus(StrEnum):
    """A signed entry asked for again from its log."""

    PROVEN = "proven"  # same body, proven against a fresh signed checkpoint consistent with the bundle's
    DIFFERS = "differs"  # the log holds another body at that index
    UNREACHABLE = "unreachable"  # a timeout or a refusal
    MISBEHAVED = "misbehaved"  # a malformed or inconsistent answer
    NO_LOG = "no-log"  # no log of the trust root has the entry's log id
    NOT_ASKED = "not-asked"  # offline (--offline), or an entry with no log to ask (TSA-only)


@dataclass(frozen=True)
class OnlineLog:
    """A signed entry asked for again from its log (see :class:`LogStatus`)."""

    status: LogStatus
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
    """One validation bundle: verified (evidence + claim, and its entry asked again when online) or why not."""

    bundle: Path
    evidence: Evidence | None = None
    claim: ValidationClaim | None = None
    error: str | None = None
    online: OnlineLog | None = None


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
    runtime: Runtime | None = None  # the runtime the deployment serves with (policy validation.runtime: match)


Rule = Callable[[Facts], list[Check]]


def _no_evidence(f: Facts, rule: RuleId) -> list[Check] | None:
    """The row of a rule about the release bundle when the bundle did not verify (its signer row says why)."""
    if f.evidence is None:
        return [Check.unchecked(rule, "the release bundle did not verify (see release.signer)")]
    return None


def _no_claim(f: Facts, rule: RuleId, lacks: str) -> list[Check] | None:
    """The row of a rule about the release claim when there is none to read: the bundle did not verify, is an
    OpenSSF Model Signing signature (which carries no ``lacks``), or its statement is malformed."""
    if f.claim is not None:
        return None
    if f.evidence is None:
        return _no_evidence(f, rule)
    if f.oms is not None:
        return [
            Check.unchecked(
                rule,
                f"an OpenSSF Model Signing signature carries no {lacks}",
                hint="verify the pack with its SLSA release bundle (<pack>.sigstore.json)",
            )
        ]
    return [Check.unchecked(rule, f"no release claim ({f.claim_error or 'unreadable statement'})")]


# -- release evidence -------------------------------------------------------------------------------------------


def signer(f: Facts) -> list[Check]:
    """Who signed the release bundle; when it does not verify, why (a failing timestamp is named as the
    release.timestamps row, and the signer row says it was not reached)."""
    if f.evidence is not None:
        return [Check.of(RuleId.RELEASE_SIGNER, True, str(f.evidence.signer))]
    if f.evidence_rule == RuleId.RELEASE_TIMESTAMPS:
        return [
            Check.of(
                RuleId.RELEASE_TIMESTAMPS,
                False,
                f.evidence_error or "no verified timestamp",
                hint="a timestamp of the bundle does not verify or breaks the limits",
            ),
            Check.unchecked(RuleId.RELEASE_SIGNER, "the bundle's timestamps do not verify (see release.timestamps)"),
        ]
    return [
        Check.of(
            RuleId.RELEASE_SIGNER,
            False,
            f.evidence_error or "no release bundle",
            expected=f.expected_signers or None,
            hint="signed by someone the policy does not trust, or the bundle/trust root does not verify",
        )
    ]


def log_entry(require_tlog: bool) -> Rule:
    """The bundle's transparency-log entry (verified with the bundle); a TSA-only bundle only if the policy
    admits it (``require_tlog: false``), and the verdict says so."""

    def rule(f: Facts) -> list[Check]:
        if (no := _no_evidence(f, RuleId.RELEASE_LOG)) is not None:
            return no
        assert f.evidence is not None
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
            return [Check(RuleId.RELEASE_LOG, Status.SKIPPED, "no log entry: TSA-only bundle admitted by the policy")]
        log = f.evidence.log
        proofs = "SET, inclusion proof" if f.evidence.has_set else "inclusion proof"
        return [Check.of(RuleId.RELEASE_LOG, True, f"{proofs} and signed checkpoint at log index {log.index}")]

    return rule


def timestamps(required: int) -> Rule:
    """At least ``required`` verified RFC 3161 timestamps from distinct timestamp authorities."""

    def rule(f: Facts) -> list[Check]:
        if f.evidence is None and f.evidence_rule == RuleId.RELEASE_TIMESTAMPS:
            return []  # the signer rule named the failing timestamp in this rule's row
        if (no := _no_evidence(f, RuleId.RELEASE_TIMESTAMPS)) is not None:
            return no
        assert f.evidence is not None
        tsas = f.evidence.tsa_sources
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


def online_problem(o: OnlineLog | None, required: bool) -> tuple[Status, str] | None:
    """Why a signed entry's online re-check does not pass, as the status it earns; None when it passes (proven,
    or not asked and not required). The one reading of :class:`OnlineLog` for every role."""
    if o is None or o.status is LogStatus.NOT_ASKED:
        if not required:
            return None
        why = o.detail if o is not None else "the entry was not asked for again"
        return Status.UNCHECKED, f"not checked: {why}; the policy requires the online log check"
    if o.status is LogStatus.PROVEN:
        return None
    if o.status is LogStatus.UNREACHABLE:
        return (Status.UNREACHABLE, o.detail) if required else None
    return Status.FAIL, o.detail


def online_log(required: bool) -> Rule:
    """The release entry asked for again from its log: a different body or a log that does not prove it
    denies; unreachable (or ``--offline``) is operational when the policy requires the check, else skipped."""

    def rule(f: Facts) -> list[Check]:
        name = RuleId.LOG_ONLINE
        if (no := _no_evidence(f, name)) is not None:
            return no
        o = f.online
        problem = online_problem(o, required)
        if problem is None:
            if o is not None and o.status is LogStatus.PROVEN:
                return [Check.of(name, True, o.detail)]
            return [Check(name, Status.SKIPPED, o.detail if o is not None else "not asked")]
        status, detail = problem
        assert o is None or o.status is not LogStatus.PROVEN
        if status is Status.UNCHECKED:
            return [
                Check(name, status, detail, hint="run without --offline, or a policy without require_online_log_check")
            ]
        if status is Status.UNREACHABLE:
            return [Check(name, status, detail, hint="the policy requires the online check")]
        assert o is not None
        if o.status is LogStatus.DIFFERS:
            return [Check.of(name, False, detail, expected="the bundle's entry body", actual="a different body")]
        hint = "the log does not prove the entry: possible split view" if o.status is LogStatus.MISBEHAVED else None
        return [Check.of(name, False, detail, hint=hint)]

    return rule


def max_age(days: float) -> Rule:
    def rule(f: Facts) -> list[Check]:
        if (no := _no_evidence(f, RuleId.RELEASE_MAX_AGE)) is not None:
            return no
        assert f.evidence is not None
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


def predicate_type(release: Release) -> Rule:
    """The statement's predicate type is one the policy admits as a release, and its claim reads."""

    def rule(f: Facts) -> list[Check]:
        if (no := _no_evidence(f, RuleId.RELEASE_PREDICATE_TYPE)) is not None:
            return no
        out: list[Check] = []
        if f.statement is not None:
            admitted = f.statement.predicate_type in release.predicate_types
            out.append(
                Check.of(
                    RuleId.RELEASE_PREDICATE_TYPE,
                    admitted,
                    expected=" | ".join(release.predicate_types),
                    actual=f.statement.predicate_type,
                    hint=None if admitted else "the policy does not admit this kind of statement as a release",
                )
            )
        if f.claim is None and f.oms is None:
            out.append(Check.of(RuleId.RELEASE_STATEMENT, False, f.claim_error or "no release claim"))
        return out

    return rule


def build_claims(release: Release) -> Rule:
    """The release claim's build type (and builder, when the policy names builders) are allowed."""

    def rule(f: Facts) -> list[Check]:
        out: list[Check] = []
        wanted = [(RuleId.RELEASE_BUILD_TYPE, release.build_types, "build type")]
        if release.builder_ids:
            wanted.append((RuleId.RELEASE_BUILDER_ID, release.builder_ids, "builder id"))
        for rule_id, allowed, what in wanted:
            if (no := _no_claim(f, rule_id, what)) is not None:
                out += no
                continue
            assert f.claim is not None
            got = f.claim.build_type if rule_id is RuleId.RELEASE_BUILD_TYPE else f.claim.builder_id
            out.append(Check.of(rule_id, got in allowed, expected=" | ".join(allowed), actual=got))
        return out

    return rule


def constraints(policy: Policy) -> Rule:
    """The quantization scheme, bits and group size the policy allows; the source model digest it allows."""

    def rule(f: Facts) -> list[Check]:
        q, out = policy.quantization, []
        for key, rule_id, allowed in (
            ("id", RuleId.QUANTIZATION_SCHEME, q.schemes),
            ("bits", RuleId.QUANTIZATION_BITS, q.bits),
            ("group_size", RuleId.QUANTIZATION_GROUP_SIZE, q.group_sizes),
        ):
            if not allowed:
                continue
            if (no := _no_claim(f, rule_id, "quantization facts")) is not None:
                out += no
                continue
            assert f.claim is not None
            got = f.claim.scheme.get(key)
            out.append(Check.of(rule_id, got in allowed, expected=" | ".join(map(str, allowed)), actual=str(got)))
        if policy.source.allowed_digests:
            if (no := _no_claim(f, RuleId.SOURCE_DIGEST, "source model digest")) is not None:
                return out + no
            assert f.claim is not None
            got_digest = str(f.claim.source_tree) if f.claim.source_tree else "none"
            out.append(
                Check.of(
                    RuleId.SOURCE_DIGEST,
                    got_digest in policy.source.allowed_digests,
                    expected=" | ".join(policy.source.allowed_digests),
                    actual=got_digest,
                    hint="the pack was built from a source model the policy does not allow",
                )
            )
        return out

    return rule


def calibration(cal: CalibrationPolicy) -> Rule:
    """The release provenance records how the calibration moments were obtained, by an allowed method,
    and its moments digest is that of the moments the manifest commits."""

    def rule(f: Facts) -> list[Check]:
        if (no := _no_claim(f, RuleId.QUANTIZATION_CALIBRATION, "calibration record")) is not None:
            return no
        assert f.claim is not None
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
        try:
            committed = moments_digest_of(f.pack.manifest.tensors)
        except MalformedPack as exc:
            return [Check.of(RuleId.QUANTIZATION_CALIBRATION, False, exc.message)]
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
        if (no := _no_claim(f, RuleId.SOURCE_SIGNERS, "source signature record")) is not None:
            return no
        assert f.claim is not None
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
        if sig.method is OmsMethod.KEY:
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


def _oms_manifest_findings(f: Facts) -> list[Finding]:
    assert f.oms is not None and f.oms_findings is not None
    if MANIFEST_NAME not in f.oms.resources:
        return [Finding(MANIFEST_NAME, "not among the files the OpenSSF Model Signing signature lists")]
    return [x for x in f.oms_findings if x.subject == MANIFEST_NAME]


def pack_files(f: Facts) -> list[Check]:
    """Every signed pack file (statement subjects, or an OMS signature's resources) is on disk with the signed
    digest; an OMS signature also names every file the pack has that it does not list."""
    if f.oms is not None and f.oms_findings is not None:
        return [
            Check.of(
                RuleId.PACK_FILES,
                not f.oms_findings,
                f"{len(f.oms.resources)} files signed by the OpenSSF Model Signing signature "
                f"({f.oms.serialization.method}, {f.oms.serialization.hash_type})",
                findings=list(f.oms_findings),
                hint="the pack directory is not the signed one" if f.oms_findings else None,
            )
        ]
    if (no := _no_claim(f, RuleId.PACK_FILES, "pack file digests")) is not None:
        return no
    assert f.claim is not None
    by_tensors = f.pack_check is not None and not f.pack_check.shards_hashed  # the shards' bytes, as served
    bad, shards = [], 0
    for name, want in sorted(f.claim.files.items()):
        if by_tensors and "/" not in name and name.endswith(".safetensors"):
            shards += 1
            continue
        got = f.pack.file_digest(name)
        if got != want:
            bad.append(Finding(name, "pack file differs from the signed subject", str(want), str(got) if got else None))
    proven = f" ({shards} shards proven by their tensors: pack.tensors)" if shards else ""
    return [
        Check.of(
            RuleId.PACK_FILES,
            not bad,
            f"{len(f.claim.files)} signed files{proven}",
            hint="a pack file was changed, removed or replaced after signing" if bad else None,
            findings=bad,
        )
    ]


def pack_manifest(f: Facts) -> list[Check]:
    """The pack's uc-manifest.json is the signed one (digest, and the inline bytes when signed inline; or a file
    an OMS signature lists and the pack's copy matches)."""
    if f.oms is not None and f.oms_findings is not None:
        bad = _oms_manifest_findings(f)
        return [
            Check.of(
                RuleId.PACK_MANIFEST,
                not bad,
                "listed by the OpenSSF Model Signing signature" if not bad else bad[0].problem,
                hint=None if not bad else "the pack's uc-manifest.json is not the signed one",
            )
        ]
    if (no := _no_claim(f, RuleId.PACK_MANIFEST, "manifest digest")) is not None:
        return no
    assert f.claim is not None
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
    """Every tensor reconstructed and matched against the expected (signed or validated) manifest. Absent when
    the caller checks the tensors itself (a loader matches each tensor as it keeps it)."""
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


def evidence_problems(ev: Evidence, online: OnlineLog | None, req: EvidenceRules) -> list[str]:
    """What a verified bundle lacks against the log and timestamp requirements of its role."""
    why = []
    if req.require_tlog and ev.log is None:
        why.append("no transparency-log entry")
    tsas = ev.tsa_sources
    if len(tsas) < req.require_timestamps:
        why.append(f"{len(tsas)} verified RFC 3161 timestamp authorities, {req.require_timestamps} required")
    problem = online_problem(online, req.require_online_log_check)
    if problem is not None:
        why.append(problem[1])
    return why


def _runtime_problems(need: RuntimeNeed, claim: ValidationClaim, deployed: Runtime | None) -> list[str]:
    """What a validation lacks against policy ``validation.runtime`` (any, named, match)."""
    from .model import RuntimeNeed  # a policy is loaded: its model is imported

    if need is RuntimeNeed.ANY:
        return []
    if claim.runtime is None:
        return [f"its runtime is unreadable ({claim.runtime_error})" if claim.runtime_error else "names no runtime"]
    if need is RuntimeNeed.NAMED:
        return []
    if deployed is None:
        return ["the deployment's runtime is not known (load_model gives its own; gate/verify --runtime MODE)"]
    if not claim.runtime.same_outputs(deployed):
        return [f"measured on {claim.runtime.id}, deployed on {deployed.id}"]
    return []


def validation(policy: Policy, *, required: bool | None = None) -> Rule:
    """Some validator-signed attestation of this exact root meets every threshold and the evidence rules of its
    role (log entry, timestamps, the online re-check: ``Policy.validation_evidence``); ``required`` overrides."""
    val = policy.validation
    assert val is not None
    must = val.required if required is None else required
    req = policy.validation_evidence()

    def rule(f: Facts) -> list[Check]:
        if f.claim is not None:
            root = f.claim.root
        else:
            try:
                root = f.pack.root
            except MalformedPack as exc:
                return [Check.of(RuleId.VALIDATION, False, f"no manifest root to match: {exc.message}")]
        reasons: list[str] = []
        for v in f.validations or []:
            name = v.bundle.name
            if v.claim is None or v.evidence is None:
                reasons.append(f"{name}: {v.error}")
                continue
            why = _validation_problems(v.claim, v.evidence, v.online, root, val, req, f)
            if not why:
                metrics = ", ".join(f"{k}={x:g}" for k, x in sorted(v.claim.metrics.items()))
                on = f" on {v.claim.runtime.id}" if v.claim.runtime is not None else ""
                return [
                    Check.of(
                        RuleId.VALIDATION,
                        True,
                        f"{name} by {v.evidence.signer.primary}: {v.claim.evaluation_set}, {metrics}{on}",
                    )
                ]
            reasons.append(f"{name}: " + "; ".join(why))
        return [_no_validation(f, root, reasons, must)]

    return rule


def _validation_problems(
    claim: ValidationClaim,
    ev: Evidence,
    online: OnlineLog | None,
    root: Digest,
    val: Validation,
    req: EvidenceRules,
    f: Facts,
) -> list[str]:
    """What one verified validation lacks against the policy: its evidence, root, evaluation set, runtime,
    metrics (each threshold) and signing time (verified, not after now, not older than ``max_age_days``)."""
    why, t = evidence_problems(ev, online, req), ev.signed_at
    if claim.root != root:
        why.append(f"validates root {str(claim.root)[:23]}…, not this pack's {str(root)[:23]}…")
    if val.evaluation_sets and claim.evaluation_set not in val.evaluation_sets:
        why.append(f"evaluation set {claim.evaluation_set!r} not accepted")
    why += _runtime_problems(val.runtime, claim, f.runtime)
    for metric, th in sorted(val.thresholds.items()):
        x = claim.metrics.get(metric)
        if x is None:  # name what it has: a policy's typo (min_cosin) reads as one
            has = ", ".join(sorted(claim.metrics)) or "none"
            why.append(f"metric {metric} missing (the validation has: {has})")
        elif not th.admits(x):
            why.append(f"{metric}={x:g} outside [{th.min}, {th.max}]")
    if t is None:
        why.append("no verified time")
    elif t > f.now:
        why.append("signed after the deployment check")
    elif val.max_age_days is not None and (f.now - t) / 86400.0 > val.max_age_days:
        why.append(f"{(f.now - t) / 86400.0:.1f} days old (max {val.max_age_days})")
    return why


def _no_validation(f: Facts, root: Digest, reasons: list[str], must: bool) -> Check:
    """No validation meets the policy: skipped when not required, else a failure saying why each fell short."""
    if not must:
        return Check(RuleId.VALIDATION, Status.SKIPPED, "not required; " + ("; ".join(reasons) or "none given"))
    last = last_validated(f)
    never = last is None or last.root != root
    return Check.of(
        RuleId.VALIDATION,
        False,
        "; ".join(reasons) or "no validation attestation given",
        expected=f"a validator-signed attestation of {root}",
        actual=f"last validated root {last.root}" if last else "none",
        hint="validate this exact pack (uc-attest validate) before deploying it"
        if never
        else "a validation of this root exists but does not meet the policy: see the detail",
    )


# -- OpenSSF Model Signing bundles without a policy -------------------------------------------------------------


def oms_default_rules() -> list[Rule]:
    """An OMS signature of a pack checked against its signer alone (no policy): signer, log, every file
    (uc-manifest.json included, so the manifest is bound) and every tensor against that manifest. Under a
    policy an OMS signature meets the policy's rules like any release bundle (:func:`release_rules`), and the
    ones it cannot answer deny."""
    from ..claims.oms import OMS_PREDICATE
    from .model import Release

    release = Release(require_online_log_check=False, predicate_types=[OMS_PREDICATE])
    return [
        signer,
        log_entry(release.require_tlog),
        online_log(release.require_online_log_check),
        predicate_type(release),
        oms_files,
        pack_tensors,
        rebuild(False),
    ]


def oms_files(f: Facts) -> list[Check]:
    """Every file of the pack directory is the one the OMS signature lists; nothing missing, nothing extra."""
    if (no := _no_evidence(f, RuleId.OMS_FILES)) is not None:
        return no
    if f.oms is None or f.oms_findings is None:
        return [Check.unchecked(RuleId.OMS_FILES, "the release bundle is not an OpenSSF Model Signing signature")]
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


# -- compiling a policy -----------------------------------------------------------------------------------------


def release_rules(policy: Policy | None) -> list[Rule]:
    """The rules of a signed release: the policy's — every one of them, whatever kind of evidence arrives — or
    the defaults (``--bundle`` without a policy)."""
    from .model import Release

    release = policy.release if policy is not None else Release(require_online_log_check=False)
    rules: list[Rule] = [signer, log_entry(release.require_tlog), online_log(release.require_online_log_check)]
    if release.require_timestamps:
        rules.append(timestamps(release.require_timestamps))
    if release.max_age_days is not None:
        rules.append(max_age(release.max_age_days))
    rules += [predicate_type(release), build_claims(release)]
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
