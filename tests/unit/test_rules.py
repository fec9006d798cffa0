"""Rules are pure functions over facts: tested here without any I/O, and the CLI's renderer with markup-laden data."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

import uc_attest as uc
from uc_attest.evidence.bundle import Evidence, LogProof, TimeKind, TimeProof
from uc_attest.evidence.identity import SignerIdentity
from uc_attest.pack.facts import PackFacts
from uc_attest.policy.rules import (
    Check,
    Facts,
    LogStatus,
    OnlineLog,
    all_of,
    evaluate,
    max_age,
    online_log,
    release_rules,
    signer,
)


def _facts(tmp_path: Path, **kw: object) -> Facts:
    return Facts(now=1_000_000.0, pack=PackFacts(tmp_path), **kw)  # type: ignore[arg-type]


def _evidence(t: int = 999_000) -> Evidence:
    log = LogProof(b"\x01" * 32, 7, "dsse", "0.0.1", b"{}", "note", 8, b"\x00" * 32)
    return Evidence(
        Path("b.json"),
        "application/vnd.in-toto+json",
        b"{}",
        SignerIdentity(("a@b",), "https://i"),
        (TimeProof(TimeKind.SET, t, "01" * 32),),
        log,
    )


def test_no_check_at_all_denies() -> None:
    assert not all_of([])
    assert all_of([Check.of("x", True)]) and not all_of([Check.of("x", True), Check.of("y", False)])
    assert Check("z", "skipped").ok and not Check("z", "unreachable").ok


def test_signer_rule_names_who_was_expected(tmp_path: Path) -> None:
    (c,) = signer(_facts(tmp_path, evidence_error="bundle rejected: SANs differ", expected_signers="r@b via x"))
    assert not c.ok and c.expected == "r@b via x" and "SANs" in c.detail
    (ok,) = signer(_facts(tmp_path, evidence=_evidence()))
    assert ok.ok and ok.detail == "a@b via https://i"


def test_online_log_unreachable_is_skipped_or_unreachable_by_policy(tmp_path: Path) -> None:
    f = _facts(tmp_path, evidence=_evidence(), online=OnlineLog(LogStatus.UNREACHABLE, "log unreachable (HTTP 503)"))
    (lenient,) = online_log(False)(f)
    (strict,) = online_log(True)(f)
    assert lenient.status == "skipped" and strict.status == "unreachable"
    v = uc.Verdict(tmp_path, [Check.of("release.signer", True), strict])
    assert v.exit_code == uc.EXIT_OPERATIONAL  # nothing denied, a required service unreachable
    v.checks.append(Check.of("pack.tensors", False))
    assert v.exit_code == uc.EXIT_DENIED
    (bad,) = online_log(False)(
        _facts(tmp_path, evidence=_evidence(), online=OnlineLog(LogStatus.MISBEHAVED, "not JSON"))
    )
    assert not bad.ok and bad.status == "fail"


def test_max_age_uses_the_verified_time_only(tmp_path: Path) -> None:
    (fresh,) = max_age(1.0)(_facts(tmp_path, evidence=_evidence(t=999_000)))
    (stale,) = max_age(0.001)(_facts(tmp_path, evidence=_evidence(t=999_000)))
    assert fresh.ok and not stale.ok
    untimed = _evidence()
    untimed = Evidence(untimed.bundle, untimed.payload_type, untimed.payload, untimed.signer, (), untimed.log)
    (none,) = max_age(365.0)(_facts(tmp_path, evidence=untimed))
    assert not none.ok and "no verified time" in none.detail


def test_release_rules_fail_closed_without_a_bundle_claim(tmp_path: Path) -> None:
    checks = evaluate(release_rules(None), _facts(tmp_path, evidence_error="no bundle"))
    assert checks[0].rule == "release.signer" and not all_of(checks)
    # every other rule is present and denied as not checked, never absent and never passed
    assert all(c.status == "unchecked" and "did not verify" in c.detail for c in checks[1:])
    assert {c.rule for c in checks[1:]} >= {"release.log", "release.predicate_type", "pack.files", "pack.manifest"}


def test_renderer_shows_markup_as_data() -> None:
    from uc_attest.cli import render

    buf = io.StringIO()
    saved = render.err
    render.err = Console(file=buf, force_terminal=True, width=200, markup=False, highlight=False)
    try:
        v = uc.Verdict(Path("[bold]pack"), [Check.of("release.signer", False, "[/x] rejected", expected="[red]eve[/]")])
        render.verdict(v, signed=True)
        with render.progress("verifying") as progress:
            progress("[/x]", 1)  # a tensor name with markup must not crash the bar
        render.error("pip install 'uc-attest[bench]'")
    finally:
        render.err = saved
    out = buf.getvalue()
    for literal in ("[bold]pack", "[/x] rejected", "[red]eve[/]", "uc-attest[bench]"):
        assert literal in out


def test_rule_ids_are_one_str_enum_and_encode_as_their_values(tmp_path: Path) -> None:
    import json

    from uc_attest.core.ruleid import RuleId

    c = Check.of(RuleId.RELEASE_SIGNER, True, "a@b")
    assert c.rule == "release.signer" and type(c.to_dict()["rule"]) is str
    assert json.dumps(c.to_dict()) == json.dumps({"rule": "release.signer", "ok": True, "status": "pass",
                                                  "skipped": False, "detail": "a@b"})  # fmt: skip
    assert len({m.value for m in RuleId}) == len(RuleId)
    v = uc.Verdict(tmp_path, [Check.of(RuleId.PACK_TENSORS, False, "differs")])
    assert [type(f.subject) for f in v.failures()] == [str]


def test_a_bundle_failing_its_timestamps_fails_the_timestamps_rule(tmp_path: Path, monkeypatch: object) -> None:
    import pytest

    from uc_attest.core.ruleid import RuleId
    from uc_attest.errors import SignatureInvalid
    from uc_attest.evidence.timestamps import TimestampInvalid
    from uc_attest.verify import gather

    mp = monkeypatch
    assert isinstance(mp, pytest.MonkeyPatch)
    for exc, rule in ((TimestampInvalid("b", "two timestamps from one TSA"), RuleId.RELEASE_TIMESTAMPS),
                      (SignatureInvalid("b", "SANs differ"), RuleId.RELEASE_SIGNER)):  # fmt: skip

        def fail(*_a: object, _exc: Exception = exc) -> None:
            raise _exc

        mp.setattr(gather, "verify_dsse_bundle", fail)
        f = _facts(tmp_path)
        gather.release_evidence(f, tmp_path / "b.json", None, [])  # type: ignore[arg-type]
        assert f.evidence_rule is rule
        c, *rest = signer(f)
        assert c.rule == rule and not c.ok
        # the signer row is never absent: not reached when a timestamp failed first
        assert [r.rule for r in rest] == ([RuleId.RELEASE_SIGNER] if rule is RuleId.RELEASE_TIMESTAMPS else [])
        assert all(r.status == "unchecked" for r in rest)
        assert ("timestamp" in (c.hint or "")) is (rule is RuleId.RELEASE_TIMESTAMPS)


def test_kept_signature_notes_do_not_fail_the_source_event() -> None:
    from uc_attest.audit.events import AuditEvent
    from uc_attest.audit.kinds import EventKind
    from uc_attest.evidence.oms import KeptSignatureCheck

    kept = KeptSignatureCheck(notes=("s.sig: signed with the key method: not re-verified here",))
    assert kept.ok and kept.lines() == list(kept.notes)
    bad = KeptSignatureCheck(("a: not the signed one",), kept.notes)
    assert not bad.ok and bad.lines() == [*kept.notes, "a: not the signed one"]
    ev = AuditEvent(0, EventKind.SOURCE, -1, "", notes=list(kept.notes))
    assert ev.ok and "notes" not in ev.to_dict() and ev.to_dict()["problems"] == []


def test_signing_errors_are_classified_by_type() -> None:
    import requests
    from sigstore.models import InvalidBundle

    from uc_attest.signing.sign import _signing_failed

    class _Trust:
        def __init__(self, tsas: list[str]) -> None:
            self.urls = {"caUrls": ["https://ca"], "rekorTlogUrls": ["https://log"], "tsaUrls": tsas}

        def services(self, key: str) -> list[str]:
            return self.urls[key]

    tsa = _Trust(["https://tsa"])
    got = _signing_failed(InvalidBundle("bundle must contain an inclusion promise or signed timestamp(s)"), tsa)  # type: ignore[arg-type]
    assert got == "signing failed: no timestamp authority answered (TSA: https://tsa); nothing was written"
    assert "(TSA: none configured)" in _signing_failed(InvalidBundle("x"), _Trust([]))  # type: ignore[arg-type]
    http = _signing_failed(requests.HTTPError("500 Server Error: x for url: https://log/api"), tsa)  # type: ignore[arg-type]
    assert http.endswith("for url: https://log/api; nothing was written") and "services:" not in http
    down = _signing_failed(requests.ConnectionError("HTTPConnectionPool(host='ca'): refused"), tsa)  # type: ignore[arg-type]
    assert "(services: https://ca, https://log, https://tsa)" in down
