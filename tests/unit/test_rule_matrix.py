"""The class behind issue 28's findings 1, 2 and 5 — a rule the policy states that silently does not run for
some kind of evidence or some mode — made impossible: over the matrix policy x evidence kind x mode, every
rule a policy enables has its row in the verdict (passed, failed, or denied as "not checked"), never absent;
and a rule that needs the release claim never passes without one.

The expected rules are derived here from the policy's fields, independently of ``release_rules``."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uc_attest.claims.oms import build_oms, parse_oms
from uc_attest.claims.slsa import BuildInfo, build_statement, parse_release
from uc_attest.claims.statement import Statement
from uc_attest.claims.validation import ValidationClaim
from uc_attest.core.digest import Digest
from uc_attest.core.ruleid import RuleId
from uc_attest.evidence.bundle import Evidence, LogProof, TimeKind, TimeProof
from uc_attest.evidence.identity import SignerIdentity
from uc_attest.manifest import Manifest, TensorEntry
from uc_attest.pack.facts import PackFacts
from uc_attest.policy.model import Policy
from uc_attest.policy.rules import (
    Facts,
    LogStatus,
    OnlineLog,
    Status,
    ValidationFact,
    evaluate,
    oms_default_rules,
    release_rules,
)
from uc_attest.quant.scheme import DEFAULT_SCHEME
from uc_attest.verify.result import Verdict

EXAMPLES = int(os.environ.get("UC_FUZZ_EXAMPLES", "200"))
NOW = 2_000_000_000
ISSUER = "https://dev-oidc.uc-attest.invalid"
D = "sha256:" + "ab" * 32
NEEDS_CLAIM = {
    RuleId.RELEASE_BUILD_TYPE,
    RuleId.RELEASE_BUILDER_ID,
    RuleId.QUANTIZATION_SCHEME,
    RuleId.QUANTIZATION_BITS,
    RuleId.QUANTIZATION_GROUP_SIZE,
    RuleId.QUANTIZATION_CALIBRATION,
    RuleId.SOURCE_DIGEST,
    RuleId.SOURCE_SIGNERS,
}


def _pack(root: Path) -> tuple[PackFacts, Manifest]:
    e = TensorEntry("w", "F32", (2, 2), Digest("cd" * 32), Digest("cd" * 32), "model.safetensors")
    m = Manifest(DEFAULT_SCHEME.to_dict(), [e], files={"model.safetensors": Digest("ef" * 32)})
    root.mkdir(parents=True, exist_ok=True)
    (root / "uc-manifest.json").write_bytes(m.to_json())
    return PackFacts(root), m


def _evidence(payload: bytes, *, log: bool, tsas: int) -> Evidence:
    proof = LogProof(b"\x01" * 32, 7, "dsse", "0.0.2", b"{}", "note", 8, b"\x00" * 32) if log else None
    times = tuple(TimeProof(TimeKind.RFC3161, NOW - 3600, f"tsa{i}") for i in range(tsas))
    return Evidence(
        Path("b.json"), "application/vnd.in-toto+json", payload, SignerIdentity(("a@b",), ISSUER), times, proof
    )


signers = st.just([{"issuer": ISSUER, "identity": "v@b"}])
policies = st.fixed_dictionaries(
    {
        "version": st.just(1),
        "name": st.just("matrix"),
        "trust": st.just({"instance": "i"}),
        "signers": st.fixed_dictionaries({"release": signers, "validator": signers}),
        "release": st.fixed_dictionaries(
            {
                "predicate_types": st.sampled_from(
                    [
                        ["https://slsa.dev/provenance/v1"],
                        ["https://slsa.dev/provenance/v1", "https://model_signing/signature/v1.0"],
                    ]
                ),
                "builder_ids": st.sampled_from([[], ["b"]]),
                "max_age_days": st.sampled_from([None, 30.0]),
                "require_online_log_check": st.booleans(),
                "require_timestamps": st.integers(0, 2),
                "require_tlog": st.booleans(),
            }
        ),
        "quantization": st.fixed_dictionaries(
            {
                "schemes": st.sampled_from([[], ["uc-rht-ldlq/1"]]),
                "bits": st.sampled_from([[], [5]]),
                "group_sizes": st.sampled_from([[], [128]]),
                "calibration": st.sampled_from([None, {"required": True}, {"methods": ["self-sampled"]}]),
            }
        ),
        "source": st.fixed_dictionaries(
            {
                "allowed_digests": st.sampled_from([[], [D]]),
                "signers": st.sampled_from([[], [{"issuer": ISSUER, "identity": "vendor@x"}]]),
                "keys": st.sampled_from([[], [D]]),
            }
        ),
        "rebuild": st.fixed_dictionaries({"required": st.booleans()}),
        "validation": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {
                    "required": st.booleans(),
                    "thresholds": st.sampled_from([{}, {"kl": {"max": 0.1}}]),
                    "require_tlog": st.sampled_from([None, True, False]),
                }
            ),
        ),
    }
)


def expected_rules(p: Policy) -> set[RuleId]:
    r, q, s = p.release, p.quantization, p.source
    out = {
        RuleId.RELEASE_SIGNER,
        RuleId.RELEASE_LOG,
        RuleId.LOG_ONLINE,
        RuleId.RELEASE_PREDICATE_TYPE,
        RuleId.RELEASE_BUILD_TYPE,
        RuleId.PACK_FILES,
        RuleId.PACK_MANIFEST,
    }
    optional = {
        RuleId.RELEASE_BUILDER_ID: bool(r.builder_ids),
        RuleId.RELEASE_TIMESTAMPS: r.require_timestamps > 0,
        RuleId.RELEASE_MAX_AGE: r.max_age_days is not None,
        RuleId.QUANTIZATION_SCHEME: bool(q.schemes),
        RuleId.QUANTIZATION_BITS: bool(q.bits),
        RuleId.QUANTIZATION_GROUP_SIZE: bool(q.group_sizes),
        RuleId.QUANTIZATION_CALIBRATION: q.calibration is not None
        and (q.calibration.required or bool(q.calibration.methods)),
        RuleId.SOURCE_DIGEST: bool(s.allowed_digests),
        RuleId.SOURCE_SIGNERS: bool(s.signers or s.keys),
        RuleId.REBUILD: p.rebuild.required,
        RuleId.VALIDATION: p.validation is not None,
    }
    return out | {rule for rule, on in optional.items() if on}


kinds = st.sampled_from(["failed", "failed-timestamp", "slsa", "slsa-malformed", "oms"])
onlines = st.sampled_from([None, *LogStatus])
validation_kinds = st.lists(st.sampled_from(["ok", "error", "no-log", "offline", "other-root"]), max_size=3)


def _facts(tmp: Path, kind: str, online: LogStatus | None, vals: list[str], log: bool, tsas: int) -> Facts:
    pack, manifest = _pack(tmp)
    f = Facts(now=NOW, pack=pack, expected_signers="a@b via x")
    if kind.startswith("failed"):
        f.evidence_error = "the bundle does not verify"
        f.evidence_rule = RuleId.RELEASE_TIMESTAMPS if kind == "failed-timestamp" else RuleId.RELEASE_SIGNER
    elif kind == "oms":
        payload = json.dumps(build_oms("p", {"uc-manifest.json": "ab" * 32})).encode()
        f.evidence = _evidence(payload, log=log, tsas=tsas)
        f.statement = Statement.parse(payload)
        f.oms, f.oms_findings = parse_oms(f.statement), []
    else:
        info = BuildInfo(
            "b", "src", "", "cpu", {}, dt.datetime(2030, 1, 1, tzinfo=dt.UTC), dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
        )
        payload = json.dumps(build_statement(manifest, manifest.to_json(), info)).encode()
        f.evidence = _evidence(payload, log=log, tsas=tsas)
        f.statement = Statement.parse(payload)
        if kind == "slsa":
            f.claim = parse_release(f.statement)
        else:
            f.claim_error = "statement field predicate.buildDefinition is missing or invalid"
    if f.evidence is not None:
        f.online = None if online is None else OnlineLog(online, str(online))
    f.validations = []
    for i, v in enumerate(vals):
        if v == "error":
            f.validations.append(ValidationFact(Path(f"v{i}"), error="does not verify"))
            continue
        root = manifest.root if v != "other-root" else Digest("99" * 32)
        stmt = Statement.parse(
            json.dumps(
                {
                    "_type": "https://in-toto.io/Statement/v1",
                    "subject": [{"name": "r", "digest": {"sha256": root.hex}}],
                    "predicateType": "https://x",
                    "predicate": {"x": 1},
                }
            ).encode()
        )
        claim = ValidationClaim(stmt, root, "set", {"kl": 0.01}, None)
        ev = _evidence(b"{}", log=v != "no-log", tsas=tsas)
        status = LogStatus.NOT_ASKED if v == "offline" else LogStatus.PROVEN
        f.validations.append(ValidationFact(Path(f"v{i}"), ev, claim, online=OnlineLog(status, str(status))))
    return f


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(policies, kinds, onlines, validation_kinds, st.booleans(), st.integers(0, 2))
def test_every_rule_a_policy_enables_has_its_row_whatever_the_evidence(
    tmp_path: Path, doc: dict[str, Any], kind: str, online: LogStatus | None, vals: list[str], log: bool, tsas: int
) -> None:
    policy = Policy.model_validate(doc)
    f = _facts(tmp_path / "pack", kind, online, vals, log, tsas)
    checks = evaluate(release_rules(policy), f)
    rows = {c.rule for c in checks}
    missing = expected_rules(policy) - rows
    assert not missing, (kind, missing)
    verdict = Verdict(tmp_path, checks)
    if kind != "slsa":  # no readable release claim: denied, and no rule that needs one passes
        assert not verdict.ok
        assert not [c for c in checks if c.rule in NEEDS_CLAIM and c.ok], checks
    if f.evidence is None:  # nothing about the release passes when its bundle did not verify
        assert not [c for c in checks if c.ok and c.rule not in (RuleId.VALIDATION, RuleId.PACK_TENSORS)], checks
    if policy.release.require_online_log_check and f.evidence is not None and (online is None or online != "proven"):
        assert not verdict.ok  # offline, unreachable, a split view: never an allowed release
    if policy.validation is not None and policy.validation.required and not verdict.ok:
        assert verdict.exit_code in (1, 4)
    if policy.validation is not None:
        req = policy.validation_evidence()
        row = next(c for c in checks if c.rule == RuleId.VALIDATION)
        admitted = {"ok"} | ({"offline"} if not req.require_online_log_check else set())
        if not req.require_tlog:
            admitted.add("no-log")
        if row.status == Status.PASS:  # only a validation meeting its role's evidence rules passes
            assert admitted & set(vals) and tsas >= req.require_timestamps, (vals, req)


@given(kinds, onlines, st.booleans(), st.integers(0, 2))
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_without_a_policy_the_evidence_kind_has_its_own_rows(
    tmp_path: Path, kind: str, online: LogStatus | None, log: bool, tsas: int
) -> None:
    f = _facts(tmp_path / "pack", kind, online, [], log, tsas)
    rules = oms_default_rules() if f.oms is not None else release_rules(None)
    rows = {c.rule for c in evaluate(rules, f)}
    base = {RuleId.RELEASE_SIGNER, RuleId.RELEASE_LOG, RuleId.LOG_ONLINE, RuleId.RELEASE_PREDICATE_TYPE}
    assert base <= rows
    assert (RuleId.OMS_FILES in rows) if f.oms is not None else {RuleId.PACK_FILES, RuleId.PACK_MANIFEST} <= rows
