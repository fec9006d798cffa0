"""Attacks on the verdict itself: each test is one way a plausible one-line change to the rules, the gathering of
facts or the gate would let a pack through that must be denied (found by mutation testing, docs/mutation.md).
Pure facts, no I/O beyond a temporary pack directory; a log that answers is a stub of its client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from uc_attest.claims.statement import Statement
from uc_attest.claims.validation import ValidationClaim
from uc_attest.core.digest import Digest
from uc_attest.core.ruleid import RuleId
from uc_attest.evidence.bundle import Evidence, LogProof, TimeProof
from uc_attest.evidence.identity import SignerIdentity
from uc_attest.manifest import Manifest, TensorEntry
from uc_attest.pack.facts import PackFacts
from uc_attest.policy.model import EvidenceRules, Policy
from uc_attest.policy.rules import (
    Facts,
    LogStatus,
    OnlineLog,
    Status,
    ValidationFact,
    evidence_problems,
    online_problem,
    timestamps,
    tsa_count,
    validation,
)
from uc_attest.quant.scheme import DEFAULT_SCHEME

NOW = 2_000_000_000
DAY = 86400
ISSUER = "https://dev-oidc.uc-attest.invalid"


def _manifest() -> Manifest:
    e = TensorEntry("w", "F32", (2, 2), Digest("cd" * 32), Digest("cd" * 32), "model.safetensors")
    return Manifest(DEFAULT_SCHEME.to_dict(), [e], files={"model.safetensors": Digest("ef" * 32)})


def _pack(root: Path) -> PackFacts:
    root.mkdir(parents=True, exist_ok=True)
    (root / "uc-manifest.json").write_bytes(_manifest().to_json())
    return PackFacts(root)


def _evidence(*, times: tuple[TimeProof, ...] = (), log: bool = True) -> Evidence:
    proof = LogProof(b"\x01" * 32, 7, "dsse", "0.0.1", b"{}", "note", 8, b"\x00" * 32) if log else None
    return Evidence(
        Path("v.json"), "application/vnd.in-toto+json", b"{}", SignerIdentity(("v@b",), ISSUER), times, proof
    )


def _tsa(name: str, t: int = NOW - DAY) -> TimeProof:
    return TimeProof("rfc3161", t, name)


def _set(t: int = NOW - DAY, log: str = "01" * 32) -> TimeProof:
    return TimeProof("set", t, log)


def _claim(root: Digest, metrics: dict[str, float], evaluation_set: str = "heldout") -> ValidationClaim:
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
    return ValidationClaim(stmt, root, evaluation_set, metrics, None)


def _policy(**validation_section: Any) -> Policy:
    signers = [{"issuer": ISSUER, "identity": "v@b"}]
    return Policy.model_validate(
        {
            "version": 1,
            "name": "attacks",
            "trust": {"trust_config": "trust.json"},
            "signers": {"release": signers, "validator": signers},
            "release": {"require_online_log_check": False},
            "validation": {"thresholds": {"kl": {"max": 0.1}}, **validation_section},
        }
    )


PROVEN = OnlineLog(LogStatus.PROVEN, "re-fetched and proven")


def _validated(
    tmp_path: Path,
    *,
    metrics: dict[str, float] | None = None,
    times: tuple[TimeProof, ...] | None = None,
    log: bool = True,
    online: OnlineLog | None = PROVEN,
    root: Digest | None = None,
    evaluation_set: str = "heldout",
) -> Facts:
    """Facts of a pack with one verified validation of it that meets ``_policy()`` unless a field says otherwise."""
    pack = _pack(tmp_path / "pack")
    f = Facts(now=NOW, pack=pack)
    claim = _claim(root or pack.root, {"kl": 0.01} if metrics is None else metrics, evaluation_set)
    ev = _evidence(times=(_tsa("tsa-a"),) if times is None else times, log=log)
    f.validations = [ValidationFact(Path("v.sigstore.json"), ev, claim, online=online)]
    return f


def _row(policy: Policy, f: Facts, **kw: Any) -> Any:
    (row,) = validation(policy, **kw)(f)
    assert row.rule == RuleId.VALIDATION
    return row


def test_the_validation_that_meets_the_policy_passes(tmp_path: Path) -> None:
    """The reference case every attack below changes one fact of: it must pass, or the attacks prove nothing."""
    row = _row(_policy(), _validated(tmp_path))
    assert row.status == Status.PASS and "kl=0.01" in row.detail and "v@b" in row.detail


def test_a_validation_that_leaves_out_a_thresholded_metric_is_refused(tmp_path: Path) -> None:
    """A validator that omits the metric the policy bounds (kl) has not shown the bound holds."""
    row = _row(_policy(), _validated(tmp_path, metrics={"accuracy": 0.99}))
    assert row.status == Status.FAIL and "metric kl missing" in row.detail


@pytest.mark.parametrize(("bound", "value"), [({"max": 0.1}, 0.2), ({"min": 0.5}, 0.4)])
def test_a_validation_outside_a_threshold_is_refused(tmp_path: Path, bound: dict[str, float], value: float) -> None:
    """A metric past either end of its bound is a failed validation, not a passed one."""
    row = _row(_policy(thresholds={"kl": bound}), _validated(tmp_path, metrics={"kl": value}))
    assert row.status == Status.FAIL and "outside" in row.detail


def test_every_thresholded_metric_is_checked_not_only_the_first(tmp_path: Path) -> None:
    """Two bounded metrics: meeting the first one does not excuse missing the second."""
    pol = _policy(thresholds={"a": {"max": 1.0}, "b": {"max": 1.0}})
    assert _row(pol, _validated(tmp_path / "1", metrics={"a": 0.5, "b": 0.5})).ok
    assert not _row(pol, _validated(tmp_path / "2", metrics={"a": 0.5, "b": 2.0})).ok
    assert not _row(pol, _validated(tmp_path / "3", metrics={"a": 0.5})).ok


def test_a_validation_of_another_root_does_not_validate_this_pack(tmp_path: Path) -> None:
    """A genuine validation of some other pack is replayed next to this one."""
    row = _row(_policy(), _validated(tmp_path, root=Digest("99" * 32)))
    assert row.status == Status.FAIL and "validates root" in row.detail
    assert row.actual == "last validated root sha256:" + "99" * 32
    assert row.hint is not None and "validate this exact pack" in row.hint


def test_a_validation_on_an_evaluation_set_the_policy_does_not_accept_is_refused(tmp_path: Path) -> None:
    """The validator measured on its own (easier) data, not the accepted evaluation set."""
    pol = _policy(evaluation_sets=["heldout"])
    assert _row(pol, _validated(tmp_path / "1")).ok
    row = _row(pol, _validated(tmp_path / "2", evaluation_set="train"))
    assert not row.ok and "evaluation set 'train' not accepted" in row.detail


def test_a_validation_signed_after_the_check_or_too_long_ago_is_refused(tmp_path: Path) -> None:
    """A time from the future, a validation older than max_age_days, and one with no verified time at all."""
    pol = _policy(max_age_days=10)
    assert _row(pol, _validated(tmp_path / "ok", times=(_tsa("t", NOW - 9 * DAY),))).ok
    future = _row(pol, _validated(tmp_path / "future", times=(_tsa("t", NOW + 60),)))
    assert not future.ok and "signed after the deployment check" in future.detail
    old = _row(pol, _validated(tmp_path / "old", times=(_tsa("t", NOW - 11 * DAY),)))
    assert not old.ok and "days old (max 10" in old.detail
    untimed = _row(pol, _validated(tmp_path / "untimed", times=()))
    assert not untimed.ok and "no verified time" in untimed.detail
    assert _row(_policy(), _validated(tmp_path / "nomax", times=(_tsa("t", NOW - 400 * DAY),))).ok


def test_a_validation_policy_with_required_false_still_reports_and_does_not_pass(tmp_path: Path) -> None:
    """``required: false`` makes a failing validation a skipped row that says why, never a passed one."""
    row = _row(_policy(required=False), _validated(tmp_path, metrics={}))
    assert row.status == Status.SKIPPED and "not required" in row.detail and "metric kl missing" in row.detail


def test_the_gate_requires_a_validation_even_when_the_policy_says_required_false(tmp_path: Path) -> None:
    """``gate`` answers "was this exact root validated?": a policy's ``validation.required: false`` (which only
    lets ``verify`` skip the rule) must not make the gate pass a pack nobody validated."""
    from uc_attest.verify.api import gate

    _pack(tmp_path / "pack")
    (tmp_path / "trust.json").write_text("{}")
    pol = tmp_path / "policy.yaml"
    doc = _policy(required=False).model_dump(mode="json", exclude_none=True)
    pol.write_text(json.dumps(doc))
    v = gate(tmp_path / "pack", pol, validations=[], now=NOW, online=False)
    assert not v.ok and v.exit_code == 1
    (row,) = v.checks
    assert row.rule == RuleId.VALIDATION and row.status == Status.FAIL
    assert v.root == PackFacts(tmp_path / "pack").root


def test_a_log_set_is_not_a_timestamp_authority(tmp_path: Path) -> None:
    """A policy asking for RFC 3161 timestamps is not met by the log's SET (the log is not an independent TSA)."""
    ev = _evidence(times=(_set(), _set(log="02" * 32)))
    assert tsa_count(ev) == []
    f = Facts(now=NOW, pack=_pack(tmp_path / "pack"), evidence=ev)
    (row,) = timestamps(1)(f)
    assert not row.ok and row.actual == "0"
    rules = EvidenceRules(require_tlog=True, require_timestamps=1, require_online_log_check=False)
    assert evidence_problems(ev, None, rules) == ["0 verified RFC 3161 timestamp authorities, 1 required"]
    only_sets = _row(_policy(require_timestamps=1), _validated(tmp_path / "v", times=(_set(),)))
    assert not only_sets.ok


def test_two_timestamps_by_one_authority_count_once(tmp_path: Path) -> None:
    """Two tokens from the same TSA are not two independent authorities."""
    ev = _evidence(times=(_tsa("tsa-a"), _tsa("tsa-a", NOW - 2 * DAY), _tsa("tsa-b")))
    assert tsa_count(ev) == ["tsa-a", "tsa-b"]
    f = Facts(now=NOW, pack=_pack(tmp_path / "pack"), evidence=ev)
    (two,) = timestamps(2)(f)
    (three,) = timestamps(3)(f)
    assert two.ok and not three.ok and three.actual == "2"


def test_a_validation_without_a_log_entry_is_refused_when_its_role_requires_one(tmp_path: Path) -> None:
    """A TSA-only validation bundle where the validation role (as the release's) requires a log entry."""
    assert not _row(_policy(), _validated(tmp_path / "a", log=False)).ok
    assert _row(_policy(require_tlog=False), _validated(tmp_path / "b", log=False)).ok


@pytest.mark.parametrize(
    ("status", "required", "want"),
    [
        (LogStatus.DIFFERS, False, Status.FAIL),
        (LogStatus.MISBEHAVED, False, Status.FAIL),
        (LogStatus.NO_LOG, False, Status.FAIL),
        (LogStatus.UNREACHABLE, True, Status.UNREACHABLE),
        (LogStatus.NOT_ASKED, True, Status.UNCHECKED),
    ],
)
def test_an_online_recheck_that_did_not_prove_the_entry_is_a_problem(
    status: LogStatus, required: bool, want: Status
) -> None:
    """A split view (another body), a misbehaving or unknown log always count; unreachable and not asked
    count where the policy requires the online check."""
    problem = online_problem(OnlineLog(status, "why"), required)
    assert problem is not None and problem[0] == want
    assert online_problem(OnlineLog(LogStatus.PROVEN, "ok"), True) is None
    assert online_problem(None, False) is None
    none = online_problem(None, True)
    assert none is not None and none[0] == Status.UNCHECKED and "was not asked for again" in none[1]


def test_a_validation_whose_log_shows_another_body_is_refused(tmp_path: Path) -> None:
    """The validation's entry re-fetched from its log is another body (split view): the validation is not
    evidence, whatever the online-check setting of its role."""
    split = OnlineLog(LogStatus.DIFFERS, "entry 7 in the log has another body than the bundle's")
    row = _row(_policy(), _validated(tmp_path, online=split))
    assert not row.ok and "another body" in row.detail


# -- the log asked again (gather.ask_log, gather._online_tiles) with stub clients --------------------------------


class _Trust:
    """A trust root with the logs given (duck-typed: ``ask_log`` reads only these two)."""

    def __init__(self, logs: list[Any] = (), tile_logs: list[Any] = ()) -> None:  # type: ignore[assignment]
        self._logs, self._tiles = list(logs), list(tile_logs)

    def logs(self) -> list[Any]:
        return self._logs

    def tile_logs(self) -> list[Any]:
        return self._tiles


def _log_evidence(body: bytes = b'{"kind":"dsse"}', *, index: int = 1, checkpoint: str | None = "seen",
                  log_id: bytes = b"\x01" * 32) -> Evidence:  # fmt: skip
    proof = LogProof(log_id, index, "dsse", "0.0.1", body, checkpoint, None, None)
    return Evidence(Path("b.json"), "application/vnd.in-toto+json", b"{}", SignerIdentity(("a@b",), ISSUER),
                    (_set(),), proof)  # fmt: skip


class _Rekor:
    """A Rekor v1 client stub answering ``body`` (or raising ``error``) for any index."""

    answer: bytes = b""
    error: Exception | None = None
    asked: list[int] = []  # noqa: RUF012
    clients: list[Any] = []  # noqa: RUF012  # the log each client was made for

    def __init__(self, log: Any, timeout: float) -> None:
        type(self).clients.append(log)

    def entry_by_index(self, index: int) -> Any:
        type(self).asked.append(index)
        if type(self).error is not None:
            raise type(self).error  # type: ignore[misc]
        return type("E", (), {"body": type(self).answer})()


@pytest.fixture
def rekor(monkeypatch: pytest.MonkeyPatch) -> type[_Rekor]:
    from uc_attest.verify import gather

    class Stub(_Rekor):
        asked: list[int] = []  # noqa: RUF012
        clients: list[Any] = []  # noqa: RUF012

    monkeypatch.setattr(gather, "RekorClient", Stub)
    return Stub


def _rekor_log(log_id: bytes = b"\x01" * 32) -> Any:
    from uc_attest.transparency.rekor_v1 import LogKey

    return LogKey("http://127.0.0.1:9", None, log_id)  # type: ignore[arg-type]


def test_a_log_answering_another_body_at_the_same_index_is_a_split_view(rekor: type[_Rekor]) -> None:
    """The log shows the verifier a different entry at the bundle's index than the one the bundle carries:
    the bundle's proof was made for a view of the log others do not see."""
    from uc_attest.verify.gather import ask_log

    ev = _log_evidence(b'{"kind":"dsse","a":1}', index=5)
    rekor.answer = b'{"kind":"dsse","a":2}'
    other, mine = _rekor_log(b"\x03" * 32), _rekor_log()
    o = ask_log(ev, _Trust([other, mine]))  # type: ignore[arg-type]
    assert o.status is LogStatus.DIFFERS and "entry 5" in o.detail and rekor.asked == [5]
    assert rekor.clients == [mine]  # the bundle's own log was asked, not the first the trust root lists
    rekor.answer = b'{"kind":"dsse","a":1}'
    same = ask_log(ev, _Trust([_rekor_log()]))  # type: ignore[arg-type]
    assert same.status is LogStatus.PROVEN and "entry 5" in same.detail


def test_a_log_that_cannot_be_reached_or_misbehaves_proves_nothing(rekor: type[_Rekor]) -> None:
    """A refusal is unreachable (operational), a malformed answer is misbehaviour: neither is "proven"."""
    from uc_attest.errors import LogMisbehaved, LogUnreachable
    from uc_attest.verify.gather import ask_log

    ev = _log_evidence()
    rekor.error = LogUnreachable("connection refused")
    down = ask_log(ev, _Trust([_rekor_log()]))  # type: ignore[arg-type]
    assert down.status is LogStatus.UNREACHABLE and "connection refused" in down.detail
    rekor.error = LogMisbehaved("inclusion proof does not verify")
    bad = ask_log(ev, _Trust([_rekor_log()]))  # type: ignore[arg-type]
    assert bad.status is LogStatus.MISBEHAVED and bad.detail == "inclusion proof does not verify"


def test_an_entry_of_a_log_the_trust_root_does_not_list_is_not_asked_of_another_log(rekor: type[_Rekor]) -> None:
    """The bundle names a log id the trust root does not have: the verifier must not ask some other log (which
    would answer for its own entry at that index)."""
    from uc_attest.verify.gather import ask_log

    rekor.answer = b'{"kind":"dsse"}'
    o = ask_log(_log_evidence(log_id=b"\x02" * 32), _Trust([_rekor_log(b"\x01" * 32)]))  # type: ignore[arg-type]
    assert o.status is LogStatus.NO_LOG and rekor.asked == []
    tsa_only = Evidence(Path("b"), "t", b"{}", SignerIdentity(("a@b",), ISSUER), (), None)
    assert ask_log(tsa_only, _Trust()).status is LogStatus.NOT_ASKED  # type: ignore[arg-type]


def test_offline_the_release_entry_is_recorded_as_not_asked(tmp_path: Path, rekor: type[_Rekor]) -> None:
    """``--offline`` never pretends the log was asked (a policy requiring the check then denies)."""
    from uc_attest.verify import gather

    f = Facts(now=NOW, pack=_pack(tmp_path / "pack"), evidence=_log_evidence())
    gather.online_log(f, _Trust([_rekor_log()]), online=False)  # type: ignore[arg-type]
    assert f.online is gather.OFFLINE and rekor.asked == []
    rekor.answer = b'{"kind":"dsse"}'
    gather.online_log(f, _Trust([_rekor_log()]), online=True)  # type: ignore[arg-type]
    assert f.online is not None and f.online.status is LogStatus.PROVEN and rekor.asked == [1]
    g = Facts(now=NOW, pack=_pack(tmp_path / "pack"))
    gather.online_log(g, _Trust(), online=True)  # type: ignore[arg-type]
    assert g.online is None  # no verified bundle: nothing to ask about


class _Tiles:
    """A tile log stub: ``tree`` is what the log serves now (entries and subtree hashes), ``seen`` the checkpoints
    the log signed earlier (by note text). Nothing is fetched; ``gather`` proves everything itself."""

    served: list[bytes] = []  # noqa: RUF012
    seen: dict[str, tuple[int, bytes]] = {}  # noqa: RUF012
    error: Exception | None = None
    clients: list[Any] = []  # noqa: RUF012

    def __init__(self, log: Any, timeout: float) -> None:
        from uc_attest.core.merkle import MerkleTree, leaf_hash

        type(self).clients.append(log)
        self.tree = MerkleTree([leaf_hash(e) for e in type(self).served])

    def checkpoint(self) -> Any:
        from uc_attest.transparency.tiles import TileCheckpoint

        if type(self).error is not None:
            raise type(self).error  # type: ignore[misc]
        return TileCheckpoint("log", len(self.tree), self.tree.root(), "latest")

    def verify_note(self, note: str) -> Any:
        from uc_attest.transparency.tiles import TileCheckpoint

        size, root = type(self).seen[note]
        return TileCheckpoint("log", size, root, note)

    def entries(self, bundle: int, size: int) -> list[bytes]:
        from uc_attest.transparency.tiles import WIDTH

        return type(self).served[bundle * WIDTH : min(size, (bundle + 1) * WIDTH)]


class _TileTree:
    def __init__(self, client: _Tiles, size: int) -> None:
        self.client, self.size = client, size

    def hash_range(self, lo: int, n: int) -> bytes:
        assert lo + n <= self.size
        return self.client.tree._hash(lo, n)


@pytest.fixture
def tiles(monkeypatch: pytest.MonkeyPatch) -> type[_Tiles]:
    from uc_attest.verify import gather

    class Stub(_Tiles):
        clients: list[Any] = []  # noqa: RUF012
        served: list[bytes] = []  # noqa: RUF012
        seen: dict[str, tuple[int, bytes]] = {}  # noqa: RUF012

    monkeypatch.setattr(gather, "TileClient", Stub)
    monkeypatch.setattr(gather, "TileTree", _TileTree)
    return Stub


def _tile_trust(log_id: bytes = b"\x01" * 32) -> _Trust:
    from uc_attest.transparency.tiles import TileLogKey

    return _Trust(tile_logs=[TileLogKey("http://127.0.0.1:9", None, log_id)])


def _root(entries: list[bytes]) -> bytes:
    from uc_attest.core.merkle import leaf_hash, root_from_leaf_hashes

    return root_from_leaf_hashes([leaf_hash(e) for e in entries])


ENTRIES = [f'{{"entry":{i}}}'.encode() for i in range(7)]


@pytest.mark.parametrize("seen_size", [1, 3, 4, 6, 7])
def test_a_tile_log_that_extends_what_the_bundle_saw_proves_the_entry(tiles: type[_Tiles], seen_size: int) -> None:
    """The honest log: the bundle's checkpoint is a prefix of the latest one, the entry is in it, same body."""
    from uc_attest.verify.gather import ask_log

    tiles.served = ENTRIES
    tiles.seen = {"seen": (seen_size, _root(ENTRIES[:seen_size]))}
    trust = _tile_trust()
    o = ask_log(_log_evidence(ENTRIES[0], index=0), trust)  # type: ignore[arg-type]
    assert o.status is LogStatus.PROVEN and "proven in checkpoint 7" in o.detail, o
    assert tiles.clients == trust.tile_logs()  # the tile log of the bundle's log id


@pytest.mark.parametrize("seen_size", [3, 4, 6])
def test_a_tile_recheck_without_its_consistency_proof_misses_a_rewritten_history(
    tiles: type[_Tiles], seen_size: int
) -> None:
    """The log rewrote an entry the bundle's checkpoint committed to and serves a tree that still holds the
    bundle's entry: only the consistency proof from the bundle's checkpoint to the latest one shows the fork."""
    from uc_attest.verify.gather import ask_log

    tiles.served = ENTRIES
    forked = [b'{"entry":"rewritten"}', *ENTRIES[1:seen_size]]
    tiles.seen = {"seen": (seen_size, _root(forked))}
    o = ask_log(_log_evidence(ENTRIES[1], index=1), _tile_trust())  # type: ignore[arg-type]
    assert o.status is LogStatus.MISBEHAVED, o


def test_a_tile_log_smaller_than_the_bundle_saw_is_a_rollback(tiles: type[_Tiles]) -> None:
    """The log now serves fewer entries than the checkpoint the bundle carries: it rolled back."""
    from uc_attest.verify.gather import ask_log

    tiles.served = ENTRIES[:3]
    tiles.seen = {"seen": (5, _root(ENTRIES[:5]))}
    o = ask_log(_log_evidence(ENTRIES[1], index=1), _tile_trust())  # type: ignore[arg-type]
    assert o.status is LogStatus.MISBEHAVED and "rollback" in o.detail and "size 3" in o.detail


def test_a_tile_log_holding_another_body_at_the_index_is_a_split_view(tiles: type[_Tiles]) -> None:
    """The tiles prove a different entry at the bundle's index (the bundle's body is not in this log's tree)."""
    from uc_attest.verify.gather import ask_log

    tiles.served = ENTRIES
    tiles.seen = {"seen": (7, _root(ENTRIES))}
    o = ask_log(_log_evidence(b'{"entry":"mine"}', index=2), _tile_trust())  # type: ignore[arg-type]
    assert o.status is LogStatus.MISBEHAVED, o  # the inclusion proof of the bundle's body fails first


def test_a_tile_entry_bundle_serving_another_body_than_the_tree_proves_differs(tiles: type[_Tiles]) -> None:
    """The tree commits to the bundle's entry but the entry bundle read back holds another body."""
    from uc_attest.verify.gather import ask_log

    class Lying(tiles):  # type: ignore[valid-type,misc]
        def entries(self, bundle: int, size: int) -> list[bytes]:
            return [b'{"entry":"other"}' if i == 2 else e for i, e in enumerate(super().entries(bundle, size))]

    from uc_attest.verify import gather

    gather.TileClient = Lying  # type: ignore[misc]  # restored by the fixture's monkeypatch
    tiles.served = ENTRIES
    tiles.seen = {"seen": (7, _root(ENTRIES))}
    o = ask_log(_log_evidence(ENTRIES[2], index=2), _tile_trust())  # type: ignore[arg-type]
    assert o.status is LogStatus.DIFFERS and "entry 2" in o.detail, o


def test_a_tile_entry_without_a_checkpoint_or_an_unreachable_tile_log_proves_nothing(tiles: type[_Tiles]) -> None:
    """No checkpoint in the bundle: nothing to be consistent with; a log that cannot be reached: not proven."""
    from uc_attest.errors import LogUnreachable
    from uc_attest.verify.gather import ask_log

    tiles.served = ENTRIES
    tiles.seen = {"seen": (7, _root(ENTRIES))}
    none = ask_log(_log_evidence(ENTRIES[0], index=0, checkpoint=None), _tile_trust())  # type: ignore[arg-type]
    assert none.status is LogStatus.MISBEHAVED and "without a checkpoint" in none.detail
    tiles.error = LogUnreachable("timed out")
    down = ask_log(_log_evidence(ENTRIES[0], index=0), _tile_trust())  # type: ignore[arg-type]
    assert down.status is LogStatus.UNREACHABLE and "timed out" in down.detail


# -- gathering validations (gather.validations) --------------------------------------------------------------------


def test_every_validation_bundle_is_verified_and_its_entry_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rekor: type[_Rekor]
) -> None:
    """A validation bundle that does not verify, or whose statement is no validation, is recorded with why (the
    rule then refuses it); one that verifies has its log entry asked for again when online, and is recorded as
    not asked when offline: a validation never skips the online re-check its role requires."""
    from uc_attest.errors import InvalidInput, SignatureInvalid
    from uc_attest.verify import gather

    claims = {"good": _claim(Digest("ab" * 32), {"kl": 0.01})}
    seen: list[tuple[str, Any]] = []

    def verify(path: Path, trust: Any, signers: Any) -> Evidence:
        seen.append((path.name, signers))
        if path.name == "forged":
            raise SignatureInvalid(str(path), "signed by eve@x, not by an expected signer")
        return _log_evidence(b'{"kind":"dsse"}', index=4)

    def parse(stmt: Any) -> ValidationClaim:
        if "good" not in seen[-1][0]:
            raise InvalidInput("not a validation statement")
        return claims["good"]

    monkeypatch.setattr(gather, "verify_dsse_bundle", verify)
    monkeypatch.setattr(gather, "parse_validation", parse)
    monkeypatch.setattr(gather.Statement, "parse", staticmethod(lambda payload: payload))
    rekor.answer = b'{"kind":"dsse"}'
    f = Facts(now=NOW, pack=_pack(tmp_path / "pack"))
    validators = [object()]
    gather.validations(f, [Path("forged"), Path("other"), Path("good")], _Trust([_rekor_log()]), validators)  # type: ignore[arg-type]
    assert f.validations is not None
    forged, other, good = f.validations
    assert forged.evidence is None and forged.error == "signed by eve@x, not by an expected signer"
    assert other.claim is None and other.error == "not a validation statement"
    assert good.claim is claims["good"] and good.evidence is not None and good.bundle == Path("good")
    assert good.online is not None and good.online.status is LogStatus.PROVEN and rekor.asked == [4]
    assert all(s is validators for _, s in seen)  # verified against the validators, not the release signers
    gather.validations(f, [Path("good")], _Trust([_rekor_log()]), validators, online=False)  # type: ignore[arg-type]
    assert f.validations[0].online is gather.OFFLINE and rekor.asked == [4]


def test_without_a_signer_the_pack_is_held_to_the_named_manifest(tmp_path: Path) -> None:
    """The unsigned path says which manifest it held the pack to; without one it adds no row of its own."""
    from uc_attest.policy.rules import evaluate, manifest_source, pack_rules

    f = Facts(now=NOW, pack=_pack(tmp_path / "pack"))
    assert manifest_source(f) == [] and evaluate(pack_rules(), f) == []
    f.expected_source = "kept/uc-manifest.json"
    (row,) = manifest_source(f)
    assert row.ok and row.rule == RuleId.MANIFEST and row.detail == "expected manifest: kept/uc-manifest.json"
    f.pack_error = "uc-manifest.json is not JSON"
    rows = evaluate(pack_rules(), f)
    assert [r.rule for r in rows] == [RuleId.MANIFEST, RuleId.PACK_TENSORS] and not rows[1].ok
    f.pack_error, f.rebuild = None, None
    assert len(pack_rules()) == 3


# -- an OpenSSF Model Signing signature as the release (rules.oms_files, rules.oms_default_rules) -----------------


def _oms_facts(tmp_path: Path, findings: list[Any]) -> Facts:
    from uc_attest.claims.oms import build_oms, parse_oms

    payload = json.dumps(build_oms("p", {"uc-manifest.json": "ab" * 32, "model.safetensors": "cd" * 32})).encode()
    f = Facts(now=NOW, pack=_pack(tmp_path / "pack"), evidence=_evidence(times=(_tsa("t"),)))
    f.statement = Statement.parse(payload)
    f.oms, f.oms_findings = parse_oms(f.statement), findings
    return f


def test_an_oms_signature_with_a_changed_or_extra_file_is_refused(tmp_path: Path) -> None:
    """A pack directory whose files are not exactly the ones the OMS signature lists (one changed, one added)."""
    from uc_attest.errors import Finding
    from uc_attest.policy.rules import evaluate, oms_default_rules, oms_files

    (ok,) = oms_files(_oms_facts(tmp_path / "a", []))
    assert ok.ok and ok.rule == RuleId.OMS_FILES and ok.detail.startswith("2 signed files (")
    changed = [Finding("model.safetensors", "changed"), Finding("extra.bin", "not signed")]
    (bad,) = oms_files(_oms_facts(tmp_path / "b", changed))
    assert bad.status == Status.FAIL and bad.findings == changed and bad.hint
    f = _oms_facts(tmp_path / "c", [])
    f.oms_findings = None
    (unchecked,) = oms_files(f)
    assert unchecked.status == Status.UNCHECKED
    (none,) = oms_files(Facts(now=NOW, pack=_pack(tmp_path / "d"), evidence_error="does not verify"))
    assert none.status == Status.UNCHECKED
    rules = oms_default_rules()
    f = _oms_facts(tmp_path / "e", changed)
    f.online = OnlineLog(LogStatus.DIFFERS, "another body")
    rows = {c.rule: c for c in evaluate(rules, f)}
    assert set(rows) == {RuleId.RELEASE_SIGNER, RuleId.RELEASE_LOG, RuleId.LOG_ONLINE, RuleId.RELEASE_PREDICATE_TYPE,
                         RuleId.OMS_FILES}  # fmt: skip
    assert not rows[RuleId.OMS_FILES].ok and not rows[RuleId.LOG_ONLINE].ok
    assert rows[RuleId.RELEASE_PREDICATE_TYPE].ok  # the OMS predicate is the one admitted without a policy
    tsa_only = _oms_facts(tmp_path / "f", [])
    tsa_only.evidence = _evidence(times=(_tsa("t"),), log=False)
    assert not {c.rule: c for c in evaluate(rules, tsa_only)}[RuleId.RELEASE_LOG].ok  # a log entry is required
    offline = _oms_facts(tmp_path / "g", [])
    offline.online = OnlineLog(LogStatus.NOT_ASKED, "offline")
    assert {c.rule: c for c in evaluate(rules, offline)}[RuleId.LOG_ONLINE].ok  # not required without a policy


def test_the_release_bundle_is_verified_against_the_release_signers_and_its_claim_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """release_evidence: a bundle failing its timestamps fails release.timestamps, any other failure the signer
    rule; an OMS payload is checked file by file (the bundle itself excluded); a malformed claim is recorded."""
    from uc_attest.errors import InvalidInput, SignatureInvalid
    from uc_attest.evidence.timestamps import TimestampInvalid
    from uc_attest.verify import gather

    state: dict[str, Any] = {}

    def verify(path: Path, trust: Any, signers: Any) -> Evidence:
        state["signers"] = signers
        if state.get("raise"):
            raise state["raise"]
        return _evidence(times=(_tsa("t"),))

    monkeypatch.setattr(gather, "verify_dsse_bundle", verify)
    from uc_attest.evidence.identity import SignerSpec

    signer = SignerSpec(ISSUER, "r@b")
    who = SignerIdentity(("r@b",), ISSUER)
    f = Facts(now=NOW, pack=_pack(tmp_path / "pack"))
    state["raise"] = TimestampInvalid("b", "timestamp 0 is outside tsa's validity")
    gather.release_evidence(f, tmp_path / "b.json", None, [signer])  # type: ignore[arg-type]
    assert f.evidence is None and f.evidence_rule == RuleId.RELEASE_TIMESTAMPS and "outside" in (f.evidence_error or "")
    assert f.expected_signers and state["signers"] == [signer]
    f = Facts(now=NOW, pack=_pack(tmp_path / "pack"))
    state["raise"] = SignatureInvalid("b", "signed by eve@x")
    gather.release_evidence(f, tmp_path / "b.json", None, [signer])  # type: ignore[arg-type]
    assert f.evidence is None and f.evidence_rule == RuleId.RELEASE_SIGNER and f.evidence_error == "signed by eve@x"
    state["raise"] = None
    f = Facts(now=NOW, pack=_pack(tmp_path / "pack"))
    gather.release_evidence(f, tmp_path / "b.json", None, [signer])  # type: ignore[arg-type]
    assert f.evidence is not None and f.claim is None and f.claim_error  # "{}" is no statement
    assert f.oms is None and f.oms_findings is None

    from uc_attest.claims.oms import build_oms

    pack = tmp_path / "pack"
    (pack / "model.safetensors").write_bytes(b"weights")
    bundle = pack / "pack.sigstore.json"
    bundle.write_text("{}")
    import hashlib

    digests = {"uc-manifest.json": hashlib.sha256((pack / "uc-manifest.json").read_bytes()).hexdigest(),
               "model.safetensors": hashlib.sha256(b"other weights").hexdigest()}  # fmt: skip
    payload = json.dumps(build_oms("p", digests)).encode()
    monkeypatch.setattr(gather, "verify_dsse_bundle", lambda p, t, s: Evidence(
        p, "application/vnd.in-toto+json", payload, who, (_tsa("t"),), None))  # fmt: skip
    f = Facts(now=NOW, pack=PackFacts(pack))
    gather.release_evidence(f, bundle, None, [signer])  # type: ignore[arg-type]
    assert f.oms is not None and f.claim is None and f.statement is not None
    assert f.oms_findings is not None and [x.subject for x in f.oms_findings] == ["model.safetensors"]
    monkeypatch.setattr(gather, "parse_oms", lambda st: (_ for _ in ()).throw(InvalidInput("bad oms")))
    f = Facts(now=NOW, pack=PackFacts(pack))
    gather.release_evidence(f, bundle, None, [signer])  # type: ignore[arg-type]
    assert f.claim_error == "bad oms" and f.oms is None
