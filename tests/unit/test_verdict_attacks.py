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
from uc_attest.evidence.bundle import Evidence, LogProof, TimeKind, TimeProof
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
    validation,
)
from uc_attest.quant.scheme import DEFAULT_SCHEME
from uc_attest.verify.anchor import PolicyAnchor

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
    return TimeProof(TimeKind.RFC3161, t, name)


def _set(t: int = NOW - DAY, log: str = "01" * 32) -> TimeProof:
    return TimeProof(TimeKind.SET, t, log)


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


def test_a_threshold_on_a_misspelt_metric_names_the_metrics_the_validation_has(tmp_path: Path) -> None:
    """Issue 32: ``min_cosin`` in a policy fails closed; the row says what the validation measured (the typo shows)
    and, its root being this pack's, does not tell the user to validate the pack again."""
    row = _row(_policy(thresholds={"min_cosin": {"min": 0.99}}), _validated(tmp_path, metrics={"min_cosine": 0.995}))
    assert row.status == Status.FAIL
    assert row.detail == "v.sigstore.json: metric min_cosin missing (the validation has: min_cosine)"
    assert row.hint == "a validation of this root exists but does not meet the policy: see the detail"
    bare = _row(_policy(), _validated(tmp_path / "bare", metrics={}))
    assert bare.detail == "v.sigstore.json: metric kl missing (the validation has: none)"


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
    v = gate(tmp_path / "pack", PolicyAnchor(pol, ()), now=NOW, online=False)
    assert not v.ok and v.exit_code == 1
    (row,) = v.checks
    assert row.rule == RuleId.VALIDATION and row.status == Status.FAIL
    assert v.root == PackFacts(tmp_path / "pack").root


def test_a_log_set_is_not_a_timestamp_authority(tmp_path: Path) -> None:
    """A policy asking for RFC 3161 timestamps is not met by the log's SET (the log is not an independent TSA)."""
    ev = _evidence(times=(_set(), _set(log="02" * 32)))
    assert ev.tsa_sources == []
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
    assert ev.tsa_sources == ["tsa-a", "tsa-b"]
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


@pytest.mark.parametrize(("start", "end"), [(-2 * DAY, -DAY), (DAY, None)], ids=["retired", "not-yet-valid"])
def test_a_tile_log_key_not_valid_now_proves_no_fresh_checkpoint(
    tmp_path: Path, tiles: type[_Tiles], start: int, end: int | None
) -> None:
    """A tile checkpoint carries no signed time, so the latest one is evidence only while the log key is valid:
    a retired (maybe compromised) key signing a "fresh" checkpoint today, or one not yet in service, proves nothing.
    The log is not even asked; the row says why, is skipped when the check is optional and denies when required."""
    import time as clock

    from uc_attest.policy.rules import evaluate, online_log
    from uc_attest.transparency.tiles import TileLogKey
    from uc_attest.verify.gather import ask_log

    tiles.served = ENTRIES
    tiles.seen = {"seen": (7, _root(ENTRIES))}
    now = clock.time()
    key = TileLogKey("http://127.0.0.1:9", None, b"\x01" * 32, now + start, float("inf") if end is None else now + end)
    o = ask_log(_log_evidence(ENTRIES[0], index=0), _Trust(tile_logs=[key]))  # type: ignore[arg-type]
    assert o.status is LogStatus.NOT_ASKED and tiles.clients == [], o
    assert "log key of http://127.0.0.1:9 is not valid now (validFor " in o.detail
    assert online_problem(o, required=False) is None
    status, detail = online_problem(o, required=True) or (None, "")
    assert status is Status.UNCHECKED and "not valid now" in detail
    f = Facts(now=NOW, pack=_pack(tmp_path / "pack"), evidence=_log_evidence(ENTRIES[0], index=0), online=o)
    (row,) = evaluate([online_log(required=True)], f)
    assert row.status is Status.UNCHECKED and "not valid now" in row.detail


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


def test_an_oms_files_row_names_its_rule_even_when_it_cannot_be_answered(tmp_path: Path) -> None:
    """A denied row without its rule id is a rule missing from the verdict (issue 28: every rule has its row);
    a pack whose files match is not told it "is not the signed one"."""
    from uc_attest.policy.rules import oms_files

    (ok,) = oms_files(_oms_facts(tmp_path / "a", []))
    assert ok.status == Status.PASS and ok.hint is None
    slsa = Facts(now=NOW, pack=_pack(tmp_path / "b"), evidence=_evidence(times=(_tsa("t"),)))
    (not_oms,) = oms_files(slsa)
    assert not_oms.rule == RuleId.OMS_FILES and not_oms.status == Status.UNCHECKED
    assert "not an OpenSSF Model Signing signature" in not_oms.detail
    (unverified,) = oms_files(Facts(now=NOW, pack=_pack(tmp_path / "c"), evidence_error="does not verify"))
    assert unverified.rule == RuleId.OMS_FILES and unverified.status == Status.UNCHECKED


class _TrustRoot:
    """A trust root only compared by identity (``verify_dsse_bundle`` is a spy)."""


def test_the_release_bundle_given_is_verified_under_the_trust_root_given_and_its_claim_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """release_evidence verifies the bundle it was handed (not another one) under the trust root the policy or
    caller chose (never some default root), and reads the release claim of a verified SLSA statement: a pack
    whose claim is dropped would be held to nothing it signed."""
    import datetime as dt

    from uc_attest.claims.slsa import BuildInfo, build_statement
    from uc_attest.evidence.identity import SignerSpec
    from uc_attest.verify import gather

    pack = _pack(tmp_path / "pack")
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    info = BuildInfo("https://builder", "model", "https://src", "cpu", {"python": "3"}, t, t, "run-1")
    manifest = pack.manifest
    payload = json.dumps(build_statement(manifest, manifest.to_json(), info)).encode()
    seen: list[tuple[Any, Any, Any]] = []

    def verify(path: Path, trust: Any, signers: Any) -> Evidence:
        seen.append((path, trust, signers))
        return Evidence(path, "application/vnd.in-toto+json", payload, SignerIdentity(("r@b",), ISSUER),
                        (_tsa("t"),), None)  # fmt: skip

    monkeypatch.setattr(gather, "verify_dsse_bundle", verify)
    trust, signers, bundle = _TrustRoot(), [SignerSpec(ISSUER, "r@b")], tmp_path / "pack.sigstore.json"
    f = Facts(now=NOW, pack=pack)
    gather.release_evidence(f, bundle, trust, signers)  # type: ignore[arg-type]
    assert seen == [(bundle, trust, signers)]
    assert f.claim is not None and f.claim_error is None and f.oms is None
    assert f.claim.root == manifest.root and f.claim.manifest_digest == pack.manifest_digest


def test_the_release_entry_is_asked_again_unless_offline_is_asked_for(tmp_path: Path, rekor: type[_Rekor]) -> None:
    """Online is the default: a caller that does not say ``online`` gets the re-check (an entry the log no
    longer holds, or holds another body for, is then noticed), never a silent "not asked"."""
    from uc_attest.verify import gather

    rekor.answer = b'{"kind":"dsse","other":1}'
    f = Facts(now=NOW, pack=_pack(tmp_path / "pack"), evidence=_log_evidence())
    gather.online_log(f, _Trust([_rekor_log()]))  # type: ignore[arg-type]
    assert f.online is not None and f.online.status is LogStatus.DIFFERS and rekor.asked == [1]


def test_a_log_that_never_answers_cannot_hang_the_verdict(rekor: type[_Rekor], tiles: type[_Tiles]) -> None:
    """The log asked again (Rekor v1 or tiles) is a network peer the attacker may control: every client is made
    with a finite timeout, so a log that accepts the connection and never answers ends as "unreachable"."""
    from uc_attest.verify import gather

    timeouts: list[Any] = []

    class Rekor(rekor):  # type: ignore[valid-type,misc]
        def __init__(self, log: Any, timeout: float) -> None:
            timeouts.append(timeout)
            super().__init__(log, timeout)

    class Tiles(tiles):  # type: ignore[valid-type,misc]
        def __init__(self, log: Any, timeout: float) -> None:
            timeouts.append(timeout)
            super().__init__(log, timeout)

    gather.RekorClient, gather.TileClient = Rekor, Tiles  # type: ignore[misc]  # restored by the fixtures
    rekor.answer = b'{"kind":"dsse"}'
    assert gather.ask_log(_log_evidence(), _Trust([_rekor_log()])).status is LogStatus.PROVEN  # type: ignore[arg-type]
    tiles.served = ENTRIES
    tiles.seen = {"seen": (7, _root(ENTRIES))}
    assert gather.ask_log(_log_evidence(ENTRIES[0], index=0), _tile_trust()).status is LogStatus.PROVEN  # type: ignore[arg-type]
    assert len(timeouts) == 2 and all(isinstance(t, float) and 0 < t <= 30 for t in timeouts), timeouts


# -- what the release claim says against the policy (rules.constraints, calibration, source_signers) ---------------


def _release_claim(pack: PackFacts) -> Any:
    """The release claim uc-attest signs for ``pack`` (its manifest's root, scheme, files), parsed back."""
    import datetime as dt

    from uc_attest.claims.slsa import BuildInfo, build_statement, parse_release

    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    info = BuildInfo("https://builder", "model", "https://src", "cpu", {"python": "3"}, t, t, "run-1")
    return parse_release(Statement.parse(json.dumps(build_statement(pack.manifest, pack.manifest.to_json(),
                                                                    info)).encode()))  # fmt: skip


def _claim_policy(**sections: Any) -> Policy:
    signers = [{"issuer": ISSUER, "identity": "r@b"}]
    return Policy.model_validate({"version": 1, "name": "claims", "trust": {"trust_config": "trust.json"},
                                  "signers": {"release": signers}, **sections})  # fmt: skip


def _claimed(tmp_path: Path, **fields: Any) -> Facts:
    """Facts of a verified release bundle whose claim is the pack's own, with ``fields`` replaced."""
    import dataclasses

    pack = _pack(tmp_path)
    f = Facts(now=NOW, pack=pack, evidence=_evidence(times=(_tsa("t"),)))
    f.claim = dataclasses.replace(_release_claim(pack), **fields)
    return f


def _rows(rule: Any, f: Facts) -> dict[RuleId, Any]:
    rows = rule(f)
    assert None not in [r.rule for r in rows] and len({r.rule for r in rows}) == len(rows)
    return {r.rule: r for r in rows}


def test_a_pack_quantized_with_a_scheme_bits_or_group_size_the_policy_does_not_allow_is_refused(
    tmp_path: Path,
) -> None:
    """Each quantization constraint reads its own field of the signed scheme (id, bits, group_size): a pack of 2
    bits or another scheme is refused, the actual value named; a scheme that leaves a field out is refused."""
    from uc_attest.policy.rules import constraints

    scheme = {**DEFAULT_SCHEME.to_dict(), "id": "uc-rht-ldlq/2", "bits": 5, "group_size": 128}
    pol = _claim_policy(quantization={"schemes": ["uc-rht-ldlq/2"], "bits": [4, 5], "group_sizes": [128]})
    rows = _rows(constraints(pol), _claimed(tmp_path / "ok", scheme=scheme))
    assert [r.status for r in rows.values()] == [Status.PASS] * 3
    assert (rows[RuleId.QUANTIZATION_SCHEME].actual, rows[RuleId.QUANTIZATION_BITS].actual,
            rows[RuleId.QUANTIZATION_GROUP_SIZE].actual) == ("uc-rht-ldlq/2", "5", "128")  # fmt: skip
    assert rows[RuleId.QUANTIZATION_BITS].expected == "4 | 5"
    for field, value, rule in (("id", "naive-rtn/1", RuleId.QUANTIZATION_SCHEME), ("bits", 2, RuleId.QUANTIZATION_BITS),
                               ("group_size", 32, RuleId.QUANTIZATION_GROUP_SIZE)):  # fmt: skip
        bad = _rows(constraints(pol), _claimed(tmp_path / field, scheme={**scheme, field: value}))
        assert bad[rule].status == Status.FAIL and bad[rule].actual == str(value), field
        assert all(r.ok for k, r in bad.items() if k != rule), field
        missing = _rows(constraints(pol), _claimed(tmp_path / f"no-{field}", scheme={
            k: v for k, v in scheme.items() if k != field}))  # fmt: skip
        assert missing[rule].status == Status.FAIL and missing[rule].actual == "None", field
    assert constraints(_claim_policy())(_claimed(tmp_path / "any", scheme={})) == []  # no constraint, no row


def test_a_pack_built_from_a_source_model_the_policy_does_not_allow_is_refused(tmp_path: Path) -> None:
    """``source.allowed_digests``: the signed source tree digest must be one of them; a claim without a source
    digest is refused as "none" (never as the text of a missing value a policy could list)."""
    from uc_attest.policy.rules import constraints

    good, other = Digest("aa" * 32), Digest("bb" * 32)
    pol = _claim_policy(source={"allowed_digests": [str(good)]})
    (ok,) = constraints(pol)(_claimed(tmp_path / "ok", source_tree=good))
    assert ok.rule == RuleId.SOURCE_DIGEST and ok.status == Status.PASS and ok.actual == str(good)
    (bad,) = constraints(pol)(_claimed(tmp_path / "bad", source_tree=other))
    assert bad.rule == RuleId.SOURCE_DIGEST and bad.status == Status.FAIL and bad.actual == str(other)
    assert bad.expected == str(good) and bad.hint is not None and "source model" in bad.hint
    (none,) = constraints(pol)(_claimed(tmp_path / "none", source_tree=None))
    assert none.status == Status.FAIL and none.actual == "none"


def test_constraints_an_oms_signature_cannot_answer_are_denied_naming_what_it_lacks(tmp_path: Path) -> None:
    """Under a policy an OMS signature is held to every rule: the quantization and source rules deny it as not
    checked, saying which fact it carries none of (issue 28, finding 1)."""
    from uc_attest.policy.model import CalibrationPolicy, Source
    from uc_attest.policy.rules import calibration, constraints, source_signers

    f = _oms_facts(tmp_path, [])
    pol = _claim_policy(quantization={"bits": [5]}, source={"allowed_digests": ["sha256:" + "aa" * 32]})
    rows = _rows(constraints(pol), f)
    assert set(rows) == {RuleId.QUANTIZATION_BITS, RuleId.SOURCE_DIGEST}
    assert all(r.status == Status.UNCHECKED for r in rows.values())
    assert "carries no quantization facts" in rows[RuleId.QUANTIZATION_BITS].detail
    assert "carries no source model digest" in rows[RuleId.SOURCE_DIGEST].detail
    (cal,) = calibration(CalibrationPolicy(required=True))(f)
    assert cal.status == Status.UNCHECKED and "carries no calibration record" in cal.detail
    (src,) = source_signers(Source(keys=["sha256:" + "cc" * 32]))(f)
    assert src.status == Status.UNCHECKED and "carries no source signature record" in src.detail


def _calibrated(tmp_path: Path, method: str = "self-sampled", moments: Any = "pack") -> Facts:
    from uc_attest.manifest import CalibrationRecord, moments_digest_of

    pack = _pack(tmp_path)
    digest = moments_digest_of(pack.manifest.tensors) if moments == "pack" else moments
    return _claimed(tmp_path, calibration=CalibrationRecord(method, {"seed": 0}, "uc-attest 1", digest))


def test_a_pack_whose_calibration_is_missing_or_not_the_committed_one_or_of_a_method_not_allowed_is_refused(
    tmp_path: Path,
) -> None:
    """``quantization.calibration``: the provenance must record how the moments were obtained, by an allowed
    method, and its moments digest must be the one of the moments the pack's manifest commits (a record copied
    from another pack does not vouch for these moments)."""
    from uc_attest.policy.model import CalibrationPolicy
    from uc_attest.policy.rules import calibration

    some = calibration(CalibrationPolicy(required=True))
    sampled = calibration(CalibrationPolicy(methods=["self-sampled", "text-file"]))
    (ok,) = some(_calibrated(tmp_path / "ok"))
    assert ok.status == Status.PASS and ok.expected == "any method" and ok.actual == "self-sampled"
    assert ok.detail == "self-sampled (uc-attest 1)"
    (ok,) = sampled(_calibrated(tmp_path / "ok2", "text-file"))
    assert ok.status == Status.PASS and ok.expected == "self-sampled | text-file"
    (other,) = sampled(_calibrated(tmp_path / "other", "moments-file"))
    assert other.rule == RuleId.QUANTIZATION_CALIBRATION and other.status == Status.FAIL
    assert other.actual == "moments-file" and other.expected == "self-sampled | text-file"
    for rule, want in ((some, "any method"), (sampled, "self-sampled | text-file")):
        (none,) = rule(_claimed(tmp_path / "none", calibration=None))
        assert none.rule == RuleId.QUANTIZATION_CALIBRATION and none.status == Status.FAIL
        assert none.detail == "the provenance records no calibration" and (none.expected, none.actual) == (want,
                                                                                                         "none")  # fmt: skip
    copied = Digest("ee" * 32)
    (moved,) = some(_calibrated(tmp_path / "copied", moments=copied))
    assert moved.rule == RuleId.QUANTIZATION_CALIBRATION and moved.status == Status.FAIL
    assert moved.detail == "the recorded moments digest is not the pack's" and moved.expected == str(copied)
    from uc_attest.manifest import moments_digest_of

    assert moved.actual == str(moments_digest_of(PackFacts(tmp_path / "copied").manifest.tensors))
    (unset,) = some(_calibrated(tmp_path / "unset", moments=None))
    assert unset.status == Status.FAIL


def test_a_calibration_record_for_a_pack_whose_manifest_cannot_be_read_is_refused(tmp_path: Path) -> None:
    """The committed moments come from the pack's manifest: an unreadable one refuses the rule (it is not
    skipped, nor passed for want of anything to compare)."""
    from uc_attest.policy.model import CalibrationPolicy
    from uc_attest.policy.rules import calibration

    f = _calibrated(tmp_path / "p")
    (tmp_path / "p" / "uc-manifest.json").write_text("not json")
    f.pack = PackFacts(tmp_path / "p")
    (row,) = calibration(CalibrationPolicy(required=True))(f)
    assert row.rule == RuleId.QUANTIZATION_CALIBRATION and row.status == Status.FAIL and "JSON" in row.detail


def _signed_source(tmp_path: Path, method: str, identity: str, issuer: str) -> Facts:
    from uc_attest.manifest import OmsMethod, SourceSignature

    sig = SourceSignature(
        "model.sig", Digest("11" * 32), OmsMethod(method), identity, issuer, "model", Digest("22" * 32), None
    )
    return _claimed(tmp_path, source_signature=sig)


KEY_ID = "sha256:" + "cc" * 32


def test_a_source_model_signed_by_someone_the_policy_does_not_allow_or_not_signed_is_refused(tmp_path: Path) -> None:
    """``source.signers`` / ``source.keys``: the provenance must record a verified OMS signature of the source by
    an allowed signer: another identity, another issuer, another key, a key id offered as a sigstore identity,
    or no signature at all are refused."""
    from uc_attest.policy.model import Source
    from uc_attest.policy.rules import source_signers

    rule = source_signers(Source.model_validate({"signers": [{"issuer": ISSUER, "identity": "vendor@x"}],
                                                 "keys": [KEY_ID]}))  # fmt: skip
    allowed = f"vendor@x via {ISSUER} | key {KEY_ID}"
    for name, (method, identity, issuer), ok in (
        ("sigstore", ("sigstore", "vendor@x", ISSUER), True),
        ("key", ("key", KEY_ID, ""), True),
        ("identity", ("sigstore", "eve@x", ISSUER), False),
        ("issuer", ("sigstore", "vendor@x", "https://other.example"), False),
        ("otherkey", ("key", "sha256:" + "dd" * 32, ""), False),
        ("key-as-identity", ("sigstore", KEY_ID, ISSUER), False),
        ("identity-as-key", ("key", "vendor@x", ISSUER), False),
    ):
        (row,) = rule(_signed_source(tmp_path / name, method, identity, issuer))
        assert row.rule == RuleId.SOURCE_SIGNERS and row.status == (Status.PASS if ok else Status.FAIL), name
        who = f"key {identity}" if method == "key" else f"{identity} via {issuer}"
        assert row.detail == f"model signed by {who} ({method})", name
        assert (row.expected, row.actual) == ((None, None) if ok else (allowed, who)), name
        assert row.hint == (None if ok else "the source model was signed by someone the policy does not allow"), name
    (none,) = rule(_claimed(tmp_path / "unsigned", source_signature=None))
    assert none.rule == RuleId.SOURCE_SIGNERS and none.status == Status.FAIL
    assert none.detail == "the provenance records no verified source signature"
    assert (none.expected, none.actual) == (allowed, "none")


def test_each_validation_is_verified_under_the_trust_root_given_and_read_from_its_own_payload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rekor: type[_Rekor]
) -> None:
    """gather.validations verifies each validation bundle under the policy's trust root (not some default root),
    reads the claim from that bundle's own signed payload (not another's, not nothing), and records a refused
    bundle under its own name (the rule reports each by name)."""
    from uc_attest.errors import InvalidInput, SignatureInvalid
    from uc_attest.verify import gather

    trust = _Trust([_rekor_log()])
    verified: list[Any] = []
    read: list[Any] = []

    def statement(name: str) -> bytes:
        return json.dumps({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://x",
                           "subject": [{"name": name, "digest": {"sha256": "ab" * 32}}],
                           "predicate": {"x": 1}}).encode()  # fmt: skip

    def verify(path: Path, t: Any, signers: Any) -> Evidence:
        verified.append(t)
        if path.name == "forged":
            raise SignatureInvalid(str(path), "signed by eve@x")
        ev = _log_evidence(b'{"kind":"dsse"}', index=4)
        return Evidence(ev.bundle, ev.payload_type, statement(path.name), ev.signer, ev.times, ev.log)

    def parse(stmt: Statement) -> ValidationClaim:
        read.append(stmt.subjects[0].name)
        if stmt.subjects[0].name == "other":
            raise InvalidInput("not a validation statement")
        return _claim(Digest("ab" * 32), {"kl": 0.01})

    monkeypatch.setattr(gather, "verify_dsse_bundle", verify)
    monkeypatch.setattr(gather, "parse_validation", parse)
    rekor.answer = b'{"kind":"dsse"}'
    f = Facts(now=NOW, pack=_pack(tmp_path / "pack"))
    gather.validations(f, [Path("d/forged"), Path("d/other"), Path("d/good")], trust, [object()])  # type: ignore[arg-type]
    assert verified == [trust] * 3 and read == ["other", "good"]
    assert f.validations is not None
    assert [v.bundle for v in f.validations] == [Path("d/forged"), Path("d/other"), Path("d/good")]
    assert [v.error for v in f.validations] == ["signed by eve@x", "not a validation statement", None]


# -- the verdict a caller reads (api._verdict, Prepared.verdict, Prepared.refuse_early, gate) ---------------------


def _full_facts(tmp_path: Path) -> Facts:
    """A pack with a verified release bundle (log entry at index 7), its claim, a tensor check, a passed rebuild
    and a validation of another root: every fact a verdict reports."""
    from uc_attest.pack.check import PackCheck
    from uc_attest.policy.rules import RebuildOutcome

    f = _claimed(tmp_path / "pack")
    f.pack_check = PackCheck(f.pack.dir, "signed statement", Digest("77" * 32), 3, 2)
    f.rebuild = RebuildOutcome([], [], 4, 12.34567, "cpu")
    v = _validated(tmp_path / "v", root=Digest("99" * 32)).validations
    f.validations = v
    return f


def test_the_verdict_reports_the_signer_log_entry_roots_and_counts_it_decided_on(tmp_path: Path) -> None:
    """A verdict that names another signer, log entry or root than the ones checked (or none) misleads whoever
    acts on it (an auditor comparing roots, a deploy gate reading ``root``): every reported fact is the
    gathered one, the signed root over the tensor check's, and the title and policy are the caller's."""
    from uc_attest.policy.rules import Check
    from uc_attest.verify.api import _verdict

    f = _full_facts(tmp_path)
    row = Check.of(RuleId.RELEASE_SIGNER, True)
    v = _verdict(f, [row], "under p.yaml", "bank")
    assert (v.pack, v.checks, v.title, v.policy) == (f.pack.dir, [row], "under p.yaml", "bank")
    assert v.signer == f"v@b via {ISSUER}" and v.log_index == 7
    assert f.claim is not None and v.root == f.claim.root != Digest("77" * 32)  # the signed root wins
    assert (v.manifest_source, v.tensors_checked, v.files_checked) == ("signed statement", 3, 2)
    assert v.last_validated_root == Digest("99" * 32) and v.timings == {"rebuild": 12.346}
    f.claim = None
    assert _verdict(f, [], "t").root == Digest("77" * 32) and _verdict(f, [], "t").policy == ""
    bare = Facts(now=NOW, pack=_pack(tmp_path / "bare"))
    b = _verdict(bare, [], "t")
    assert (b.signer, b.log_index, b.root, b.last_validated_root, b.timings) == ("", None, None, None, {})
    tsa_only = Facts(now=NOW, pack=bare.pack, evidence=_evidence(log=False))
    assert _verdict(tsa_only, [], "t").log_index is None
    from uc_attest.policy.rules import RebuildOutcome

    bare.rebuild = RebuildOutcome([], [], 0, 1.0, "cpu", error="not a model directory")
    assert _verdict(bare, [], "t").timings == {}  # a rebuild that did not run has no time


def _prepared(tmp_path: Path, f: Facts, expected: bool = True) -> Any:
    from uc_attest.policy.rules import release_rules
    from uc_attest.verify.anchor import Anchor
    from uc_attest.verify.api import Prepared
    from uc_attest.verify.local import Expected

    exp = Expected(f.pack.manifest, "signed statement") if expected else None
    return Prepared(f, release_rules(None), exp, Anchor.policy(tmp_path / "p.yaml"), "under p.yaml", "bank")


def test_a_prepared_verdict_runs_its_rules_over_its_facts_and_names_its_anchor(tmp_path: Path) -> None:
    """Prepared.verdict (what verify, reconstruct and the loaders return): the rules it was prepared with, over
    the facts gathered, the manifest the pack was held to, what anchored it; the root is the manifest's when no
    tensor was checked and nothing signed one."""
    f = _full_facts(tmp_path)
    f.online = OnlineLog(LogStatus.DIFFERS, "entry 7 in the log has another body than the bundle's")
    v = _prepared(tmp_path, f).verdict()
    rows = {c.rule: c for c in v.checks}
    assert not v.ok and rows[RuleId.LOG_ONLINE].status == Status.FAIL and rows[RuleId.RELEASE_SIGNER].ok
    assert (v.title, v.policy, v.anchor) == ("under p.yaml", "bank", f"policy {tmp_path / 'p.yaml'}")
    assert v.manifest is f.pack.manifest and f.claim is not None and v.root == f.claim.root
    unsigned = Facts(now=NOW, pack=_pack(tmp_path / "u"))
    w = _prepared(tmp_path, unsigned).verdict()
    assert w.root == unsigned.pack.manifest.root and w.manifest is unsigned.pack.manifest
    nothing = _prepared(tmp_path, unsigned, expected=False).verdict()
    assert nothing.manifest is None and nothing.root is None


def test_a_pack_whose_signature_or_claim_failed_is_refused_before_its_bulk_is_read(tmp_path: Path) -> None:
    """refuse_early (reconstruct and the loaders call it before reading gigabytes): a bundle that did not
    verify, a claim that does not read, or no manifest to hold the pack to, each refuses with why; only a pack
    with none of these gets its expected manifest."""
    from uc_attest.errors import VerificationFailed

    good = _prepared(tmp_path, _claimed(tmp_path / "good"))
    assert good.refuse_early() is good.expected
    forged = Facts(now=NOW, pack=_pack(tmp_path / "forged"), evidence_error="signed by eve@x")
    with pytest.raises(VerificationFailed) as exc:
        _prepared(tmp_path, forged).refuse_early()
    assert any(x.subject == "release.signer" and x.problem == "signed by eve@x" for x in exc.value.findings)
    unreadable = _claimed(
        tmp_path / "unreadable",
    )
    unreadable.claim, unreadable.claim_error = None, "statement field subject is missing"
    with pytest.raises(VerificationFailed):
        _prepared(tmp_path, unreadable).refuse_early()
    no_manifest = _claimed(tmp_path / "nomanifest")
    with pytest.raises(VerificationFailed):
        _prepared(tmp_path, no_manifest, expected=False).refuse_early()
    # nothing failed a rule, but there is no manifest: the refusal still says why, about the pack
    lone = Facts(now=NOW, pack=_pack(tmp_path / "lone"))
    from uc_attest.verify.anchor import Anchor
    from uc_attest.verify.api import Prepared

    for error, why in ((None, "no manifest"), ("uc-manifest.json is not JSON", "uc-manifest.json is not JSON")):
        lone.pack_error = error
        with pytest.raises(VerificationFailed) as exc:
            Prepared(lone, [], None, Anchor.pack_itself()).refuse_early()
        assert [(x.subject, x.problem) for x in exc.value.findings] == [(str(lone.pack.dir), why)]


def test_the_gate_checks_the_validations_beside_the_pack_under_the_policys_trust_and_validators(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gate: the validations given (or the one beside the pack), verified under the policy's trust root (online
    unless told offline) against the policy's validators, at the time given (else now), for the runtime given;
    the verdict names the root and the policy."""
    import time

    from uc_attest.errors import UsageError
    from uc_attest.verify import api, gather

    pack = _pack(tmp_path / "pack")
    (tmp_path / "trust.json").write_text("{}")
    pol = tmp_path / "policy.yaml"
    pol.write_text(json.dumps(_policy().model_dump(mode="json", exclude_none=True)))
    trusts: list[Any] = []
    calls: list[dict[str, Any]] = []

    def policy_trust(p: Policy, base: Path, trust: Any, offline: bool) -> Any:
        trusts.append(offline)
        return ("trust", p.name)

    def validations(facts: Facts, bundles: Any, trust: Any, signers: Any, *, online: bool = True) -> None:
        calls.append({"now": facts.now, "runtime": facts.runtime, "bundles": list(bundles), "trust": trust,
                      "signers": signers, "online": online})  # fmt: skip
        facts.validations = []

    monkeypatch.setattr(api, "policy_trust", policy_trust)
    monkeypatch.setattr(gather, "validations", validations)
    runtime = object()
    v = api.gate(pack.dir, PolicyAnchor(pol, (tmp_path / "v.json",)), now=NOW, runtime=runtime)  # type: ignore[arg-type]
    validators = _policy().signers.validator
    assert trusts == [False] and calls[-1] == {
        "now": NOW,
        "runtime": runtime,
        "bundles": [tmp_path / "v.json"],
        "trust": ("trust", "attacks"),
        "signers": validators,
        "online": True,
    }
    assert not v.ok and v.title == f"manifest root {pack.root}" and v.policy == "attacks" and v.root == pack.root
    api.gate(pack.dir, PolicyAnchor(pol, ()), online=False)
    assert trusts[-1] is True and calls[-1]["online"] is False and abs(calls[-1]["now"] - time.time()) < 60
    assert calls[-1]["bundles"] == []
    api.gate(pack.dir, pol)  # no validation beside the pack
    assert calls[-1]["bundles"] == []
    beside = tmp_path / "pack.validation.sigstore.json"
    beside.write_text("{}")
    api.gate(pack.dir, pol)
    assert calls[-1]["bundles"] == [beside.absolute()]
    no_section = tmp_path / "noval.yaml"
    no_section.write_text(json.dumps({k: x for k, x in _policy().model_dump(mode="json", exclude_none=True).items()
                                      if k != "validation"}))  # fmt: skip
    with pytest.raises(UsageError, match="no validation section"):
        api.gate(pack.dir, no_section)


def test_validation_bundles_given_under_a_policy_without_validators_are_refused_not_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evidence a caller hands over is never silently ignored: ``verify --validation V`` under a policy with no
    validation section (so no validators to check V against, and no rule to report it under) is a usage error
    naming the flag and the policy, raised before any bundle is read; the CLI says it in one line, exit 2. A
    validation merely lying beside the pack is not "given" and is still left alone by such a policy."""
    from tests.e2e.test_cli import assert_clean_error, cli
    from uc_attest.errors import UsageError
    from uc_attest.verify import api, gather

    pack = _pack(tmp_path / "pack")
    section = _policy().model_dump(mode="json", exclude_none=True)
    no_section = tmp_path / "noval.yaml"
    no_section.write_text(json.dumps({k: x for k, x in section.items() if k != "validation"}))
    (tmp_path / "pack.sigstore.json").write_text("{}")
    given = tmp_path / "v.sigstore.json"
    given.write_text("{}")
    read: list[str] = []
    monkeypatch.setattr(api, "policy_trust", lambda *a: read.append("trust"))
    monkeypatch.setattr(gather, "release_evidence", lambda *a: read.append("release"))
    monkeypatch.setattr(gather, "online_log", lambda *a: None)
    monkeypatch.setattr(gather, "validations", lambda *a, **k: read.append("validations"))
    with pytest.raises(UsageError) as exc:
        api.prepare(pack.dir, PolicyAnchor(no_section, (given,)), online=False)
    assert "validation" in str(exc.value) and str(no_section) in str(exc.value) and read == []
    api.prepare(pack.dir, PolicyAnchor(no_section, ()), online=False)  # none given: nothing to refuse
    (tmp_path / "pack.validation.sigstore.json").write_text("{}")
    api.prepare(pack.dir, PolicyAnchor(no_section), online=False)  # beside the pack, not given
    assert "validations" not in read
    r = cli("verify", pack.dir, "--policy", no_section, "--validation", given, "--offline")
    assert_clean_error(r, 2, "--validation", str(no_section), "no validation section")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


# -- every row exactly as a caller reads it (signer, log, timestamps, online, age, statement, pack, rebuild) ------
# A row is the verdict's unit: its rule, status (pass, fail, skipped, unreachable, unchecked), what was expected and
# found, the hint and the findings. Each test holds a rule's rows for every branch to the exact Check: a slip that
# passes a failing row, drops its findings or names another rule is a changed row.


def _bad(**kw: Any) -> Facts:
    return Facts(now=NOW, pack=kw.pop("pack"), **kw)


NO_BUNDLE = "not checked: the release bundle did not verify (see release.signer)"


def test_the_signer_row_says_who_signed_or_why_the_bundle_does_not_verify(tmp_path: Path) -> None:
    """A bundle that does not verify fails release.signer with why (and whom the policy expected); one whose
    timestamp failed fails release.timestamps, the signer row then not checked; a verified one names its signer."""
    from uc_attest.policy.rules import Check, signer

    pack = _pack(tmp_path / "p")
    ok = Facts(now=NOW, pack=pack, evidence=_evidence())
    assert signer(ok) == [Check(RuleId.RELEASE_SIGNER, Status.PASS, f"v@b via {ISSUER}")]
    hint = "signed by someone the policy does not trust, or the bundle/trust root does not verify"
    assert signer(_bad(pack=pack, evidence_error="signed by eve@x", expected_signers="r@b via x")) == [
        Check(RuleId.RELEASE_SIGNER, Status.FAIL, "signed by eve@x", expected="r@b via x", hint=hint)
    ]
    assert signer(_bad(pack=pack)) == [Check(RuleId.RELEASE_SIGNER, Status.FAIL, "no release bundle", hint=hint)]
    ts_hint = "a timestamp of the bundle does not verify or breaks the limits"
    unchecked = Check(RuleId.RELEASE_SIGNER, Status.UNCHECKED,
                      "not checked: the bundle's timestamps do not verify (see release.timestamps)")  # fmt: skip
    assert signer(_bad(pack=pack, evidence_error="duplicate", evidence_rule=RuleId.RELEASE_TIMESTAMPS)) == [
        Check(RuleId.RELEASE_TIMESTAMPS, Status.FAIL, "duplicate", hint=ts_hint),
        unchecked,
    ]
    assert signer(_bad(pack=pack, evidence_rule=RuleId.RELEASE_TIMESTAMPS)) == [
        Check(RuleId.RELEASE_TIMESTAMPS, Status.FAIL, "no verified timestamp", hint=ts_hint),
        unchecked,
    ]


def test_the_log_row_requires_an_entry_unless_the_policy_admits_tsa_only_bundles(tmp_path: Path) -> None:
    """A TSA-only bundle fails release.log where the policy requires a log entry, and is a skipped (said) row
    where it does not; a logged one names its proofs and index."""
    from uc_attest.policy.rules import Check, log_entry

    pack = _pack(tmp_path / "p")
    tsa_only = Facts(now=NOW, pack=pack, evidence=_evidence(times=(_tsa("t"),), log=False))
    assert log_entry(True)(tsa_only) == [Check(RuleId.RELEASE_LOG, Status.FAIL,
        "the bundle has no transparency-log entry",
        hint="a TSA-only bundle (e.g. GitHub's private-repository instance) needs require_tlog: false")]  # fmt: skip
    assert log_entry(False)(tsa_only) == [Check(RuleId.RELEASE_LOG, Status.SKIPPED,
                                                "no log entry: TSA-only bundle admitted by the policy")]  # fmt: skip
    logged = Facts(now=NOW, pack=pack, evidence=_evidence(times=(_tsa("t"),)))
    assert log_entry(True)(logged) == [Check(RuleId.RELEASE_LOG, Status.PASS,
                                             "inclusion proof and signed checkpoint at log index 7")]  # fmt: skip
    with_set = Facts(now=NOW, pack=pack, evidence=_evidence(times=(_tsa("t"), _set())))
    assert log_entry(False)(with_set) == [Check(RuleId.RELEASE_LOG, Status.PASS,
                                                "SET, inclusion proof and signed checkpoint at log index 7")]  # fmt: skip
    assert log_entry(True)(_bad(pack=pack)) == [Check(RuleId.RELEASE_LOG, Status.UNCHECKED, NO_BUNDLE)]


def test_the_timestamps_row_counts_distinct_trusted_authorities_and_says_what_it_did_not_count(tmp_path: Path) -> None:
    """release.timestamps: the distinct authorities named, the untrusted tokens said (not counted); no row of
    its own when the signer row already failed it for a bad timestamp; not checked when the bundle failed."""
    import dataclasses

    from uc_attest.policy.rules import Check, timestamps

    pack = _pack(tmp_path / "p")
    ev = dataclasses.replace(_evidence(times=(_tsa("b"), _tsa("a"), _set())), ignored_timestamps=("x", "y"))
    assert timestamps(2)(Facts(now=NOW, pack=pack, evidence=ev)) == [Check(RuleId.RELEASE_TIMESTAMPS, Status.PASS,
        "2 verified RFC 3161 timestamp authorities: a, b (2 timestamps by authorities not trusted, not counted)",
        expected=">= 2 distinct TSAs", actual="2")]  # fmt: skip
    assert timestamps(1)(Facts(now=NOW, pack=pack, evidence=_evidence(times=(_set(),)))) == [Check(
        RuleId.RELEASE_TIMESTAMPS, Status.FAIL, "0 verified RFC 3161 timestamp authorities", expected=">= 1 distinct TSAs",
        actual="0")]  # fmt: skip
    assert timestamps(1)(_bad(pack=pack, evidence_rule=RuleId.RELEASE_TIMESTAMPS)) == []
    assert timestamps(1)(_bad(pack=pack)) == [Check(RuleId.RELEASE_TIMESTAMPS, Status.UNCHECKED, NO_BUNDLE)]
    # a verified bundle with a (stale) timestamp rule recorded still gets its row
    stale = Facts(now=NOW, pack=pack, evidence=_evidence(times=(_tsa("a"),)), evidence_rule=RuleId.RELEASE_TIMESTAMPS)
    assert [c.status for c in timestamps(1)(stale)] == [Status.PASS]
    rules = EvidenceRules(require_tlog=True, require_timestamps=1, require_online_log_check=False)
    assert evidence_problems(_evidence(times=(_tsa("a"),)), None, rules) == []  # exactly enough is enough


@pytest.mark.parametrize("required", [False, True])
def test_the_online_row_for_every_answer_of_the_log(tmp_path: Path, required: bool) -> None:
    """log.online: proven passes; another body and a misbehaving log fail (the split view said); a log with no
    entry id fails; unreachable is operational and not asked is denied where the policy requires the check, and
    a skipped (said) row where it does not."""
    from uc_attest.policy.rules import Check, online_log

    pack = _pack(tmp_path / "p")

    def row(o: OnlineLog | None) -> list[Check]:
        return online_log(required)(Facts(now=NOW, pack=pack, evidence=_evidence(), online=o))

    name = RuleId.LOG_ONLINE
    assert row(PROVEN) == [Check(name, Status.PASS, "re-fetched and proven")]
    assert row(OnlineLog(LogStatus.DIFFERS, "entry 7 differs")) == [Check(name, Status.FAIL, "entry 7 differs",
        expected="the bundle's entry body", actual="a different body")]  # fmt: skip
    assert row(OnlineLog(LogStatus.MISBEHAVED, "bad proof")) == [Check(name, Status.FAIL, "bad proof",
        hint="the log does not prove the entry: possible split view")]  # fmt: skip
    assert row(OnlineLog(LogStatus.NO_LOG, "no log")) == [Check(name, Status.FAIL, "no log")]
    down, offline = OnlineLog(LogStatus.UNREACHABLE, "timed out"), OnlineLog(LogStatus.NOT_ASKED, "offline")
    if required:
        assert row(down) == [Check(name, Status.UNREACHABLE, "timed out", hint="the policy requires the online check")]
        hint = "run without --offline, or a policy without require_online_log_check"
        assert row(offline) == [Check(name, Status.UNCHECKED,
            "not checked: offline; the policy requires the online log check", hint=hint)]  # fmt: skip
        assert row(None) == [Check(name, Status.UNCHECKED,
            "not checked: the entry was not asked for again; the policy requires the online log check", hint=hint)]  # fmt: skip
    else:
        assert row(down) == [Check(name, Status.SKIPPED, "timed out")]
        assert row(offline) == [Check(name, Status.SKIPPED, "offline")]
        assert row(None) == [Check(name, Status.SKIPPED, "not asked")]
    assert online_log(required)(_bad(pack=pack)) == [Check(name, Status.UNCHECKED, NO_BUNDLE)]


def test_the_age_row_measures_from_the_earliest_verified_time_to_the_bound_inclusive(tmp_path: Path) -> None:
    """release.max_age: a bundle signed exactly max_age_days ago passes, one second older fails; no verified time
    fails (an undated signature is not young)."""
    from uc_attest.policy.rules import Check, max_age

    pack = _pack(tmp_path / "p")

    def rows(*times: TimeProof) -> list[Check]:
        return max_age(10)(Facts(now=NOW, pack=pack, evidence=_evidence(times=times)))

    assert rows(_tsa("a", NOW - 10 * DAY), _tsa("b", NOW - DAY)) == [Check(RuleId.RELEASE_MAX_AGE, Status.PASS,
        "signed 10.0 days ago", expected="<= 10 days", actual="10.0 days")]  # fmt: skip
    assert [c.status for c in rows(_tsa("a", NOW - 10 * DAY - 1))] == [Status.FAIL]
    assert rows() == [Check(RuleId.RELEASE_MAX_AGE, Status.FAIL, "no verified time for the signature")]
    assert max_age(10)(_bad(pack=pack)) == [Check(RuleId.RELEASE_MAX_AGE, Status.UNCHECKED, NO_BUNDLE)]


def test_the_statement_rows_admit_only_the_policys_predicate_types_and_builders(tmp_path: Path) -> None:
    """release.predicate_type and release.statement; release.build_type and release.builder_id (only when the
    policy names builders): another predicate, build type or builder is refused naming it; a claim that does not
    read is refused with why; an OMS statement is not asked for a claim it does not carry."""
    from uc_attest.policy.model import Release
    from uc_attest.policy.rules import Check, build_claims, predicate_type

    f = _claimed(tmp_path / "p")
    f.statement = f.claim.statement if f.claim else None
    slsa = "https://slsa.dev/provenance/v1"
    rel = Release(predicate_types=[slsa, "https://x"], build_types=["https://github.com/uc-attest/uc-attest/pack/v1"],
                  builder_ids=["https://builder", "https://b2"])  # fmt: skip
    assert predicate_type(rel)(f) == [Check(RuleId.RELEASE_PREDICATE_TYPE, Status.PASS, expected=f"{slsa} | https://x",
                                            actual=slsa)]  # fmt: skip
    (other,) = predicate_type(Release(predicate_types=["https://x"]))(f)
    assert other == Check(RuleId.RELEASE_PREDICATE_TYPE, Status.FAIL, expected="https://x", actual=slsa,
                          hint="the policy does not admit this kind of statement as a release")  # fmt: skip
    f.claim, f.claim_error = None, "statement field subject is missing"
    assert predicate_type(rel)(f)[1:] == [Check(RuleId.RELEASE_STATEMENT, Status.FAIL,
                                                "statement field subject is missing")]  # fmt: skip
    f.claim_error = None
    assert predicate_type(rel)(f)[1:] == [Check(RuleId.RELEASE_STATEMENT, Status.FAIL, "no release claim")]
    assert build_claims(rel)(f) == [
        Check(RuleId.RELEASE_BUILD_TYPE, Status.UNCHECKED, "not checked: no release claim (unreadable statement)"),
        Check(RuleId.RELEASE_BUILDER_ID, Status.UNCHECKED, "not checked: no release claim (unreadable statement)"),
    ]
    f.claim_error = "bad"
    assert build_claims(rel)(f)[0].detail == "not checked: no release claim (bad)"
    assert predicate_type(rel)(_bad(pack=f.pack)) == [Check(RuleId.RELEASE_PREDICATE_TYPE, Status.UNCHECKED,
                                                            NO_BUNDLE)]  # fmt: skip
    g = _claimed(tmp_path / "q")
    assert build_claims(rel)(g) == [
        Check(
            RuleId.RELEASE_BUILD_TYPE,
            Status.PASS,
            expected="https://github.com/uc-attest/uc-attest/pack/v1",
            actual="https://github.com/uc-attest/uc-attest/pack/v1",
        ),
        Check(
            RuleId.RELEASE_BUILDER_ID, Status.PASS, expected="https://builder | https://b2", actual="https://builder"
        ),
    ]
    import dataclasses

    g.claim = dataclasses.replace(g.claim, builder_id="https://evil", build_type="https://other")  # type: ignore[arg-type]
    assert [(c.rule, c.status, c.actual) for c in build_claims(rel)(g)] == [
        (RuleId.RELEASE_BUILD_TYPE, Status.FAIL, "https://other"), (RuleId.RELEASE_BUILDER_ID, Status.FAIL,
                                                                    "https://evil")]  # fmt: skip
    assert [c.rule for c in build_claims(Release())(g)] == [RuleId.RELEASE_BUILD_TYPE]  # no builders: no row
    oms = _oms_facts(tmp_path / "o", [])
    assert [c.rule for c in predicate_type(Release(predicate_types=["https://model_signing/signature/v1.0"]))(oms)] == [
        RuleId.RELEASE_PREDICATE_TYPE]  # fmt: skip
    assert build_claims(rel)(oms)[0] == Check(RuleId.RELEASE_BUILD_TYPE, Status.UNCHECKED,
        "not checked: an OpenSSF Model Signing signature carries no build type",
        hint="verify the pack with its SLSA release bundle (<pack>.sigstore.json)")  # fmt: skip


def test_the_pack_files_row_names_every_signed_file_that_changed_or_went_missing(tmp_path: Path) -> None:
    """pack.files: each signed subject against the file on disk (the digest expected, the one found or none);
    shards proven by their tensors (no shard hashing) are counted and skipped, files in subdirectories and other
    files never are; an OMS signature's findings are the row's."""
    import dataclasses
    import hashlib

    from uc_attest.errors import Finding
    from uc_attest.pack.check import PackCheck
    from uc_attest.policy.rules import Check, pack_files

    f = _claimed(tmp_path / "p")
    pack = f.pack.dir
    (pack / "config.json").write_bytes(b"{}")
    (pack / "model.safetensors").write_bytes(b"weights")
    (pack / "model2.safetensors").write_bytes(b"weights 2")
    (pack / "sub").mkdir()
    (pack / "sub" / "extra.safetensors").write_bytes(b"nested")

    def sha(b: bytes) -> Digest:
        return Digest(hashlib.sha256(b).hexdigest())

    files = {"config.json": sha(b"{}"), "model.safetensors": sha(b"weights"), "sub/extra.safetensors": sha(b"nested"),
             "model2.safetensors": sha(b"weights 2"), "uc-manifest.json": f.pack.manifest_digest}  # fmt: skip
    f.claim = dataclasses.replace(f.claim, files=files)  # type: ignore[arg-type]
    f.pack = PackFacts(pack)
    assert pack_files(f) == [Check(RuleId.PACK_FILES, Status.PASS, "5 signed files")]
    f.claim = dataclasses.replace(f.claim, files={**files, "config.json": sha(b"x"), "gone.bin": sha(b"y"),  # type: ignore[arg-type]
                                                  "model.safetensors": sha(b"z"), "sub/extra.safetensors": sha(b"w")})  # fmt: skip
    f.pack = PackFacts(pack)
    changed = [Finding("config.json", "pack file differs from the signed subject", str(sha(b"x")), str(sha(b"{}"))),
               Finding("gone.bin", "pack file differs from the signed subject", str(sha(b"y")), None),
               Finding("model.safetensors", "pack file differs from the signed subject", str(sha(b"z")),
                       str(sha(b"weights"))),
               Finding("sub/extra.safetensors", "pack file differs from the signed subject", str(sha(b"w")),
                       str(sha(b"nested")))]  # fmt: skip
    hint = "a pack file was changed, removed or replaced after signing"
    assert pack_files(f) == [Check(RuleId.PACK_FILES, Status.FAIL, "6 signed files", hint=hint, findings=changed)]
    f.pack_check = PackCheck(pack, "signed statement", Digest("77" * 32), 1, 1, shards_hashed=False)
    f.pack = PackFacts(pack)
    assert pack_files(f) == [Check(RuleId.PACK_FILES, Status.FAIL,
        "6 signed files (2 shards proven by their tensors: pack.tensors)", hint=hint,
        findings=[changed[0], changed[1], changed[3]])]  # fmt: skip
    f.pack_check = PackCheck(pack, "signed statement", Digest("77" * 32), 1, 1, shards_hashed=True)
    f.pack = PackFacts(pack)
    assert pack_files(f)[0].findings == changed
    f.claim, f.claim_error = None, "bad statement"
    assert pack_files(f) == [
        Check(RuleId.PACK_FILES, Status.UNCHECKED, "not checked: no release claim (bad statement)")
    ]
    oms_changed = [Finding("model.safetensors", "changed")]
    oms = _oms_facts(tmp_path / "o", oms_changed)
    assert oms.oms is not None
    detail = (f"2 files signed by the OpenSSF Model Signing signature ({oms.oms.serialization.method}, "
              f"{oms.oms.serialization.hash_type})")  # fmt: skip
    assert pack_files(oms) == [Check(RuleId.PACK_FILES, Status.FAIL, detail, findings=oms_changed,
                                     hint="the pack directory is not the signed one")]  # fmt: skip
    oms.oms_findings = []
    assert pack_files(oms) == [Check(RuleId.PACK_FILES, Status.PASS, detail)]
    oms.oms_findings = None  # the pack was not scanned against the OMS payload: held to the claim it lacks
    assert pack_files(oms) == [Check(RuleId.PACK_FILES, Status.UNCHECKED,
        "not checked: an OpenSSF Model Signing signature carries no pack file digests",
        hint="verify the pack with its SLSA release bundle (<pack>.sigstore.json)")]  # fmt: skip
    slsa_with_findings = _claimed(tmp_path / "s")
    slsa_with_findings.oms_findings = oms_changed  # findings without an OMS claim are not an OMS row
    assert pack_files(slsa_with_findings)[0].detail != detail


def test_the_pack_tensors_row_names_every_tensor_finding_and_a_root_that_is_not_the_signed_one(tmp_path: Path) -> None:
    """pack.tensors: the tensor check's findings, and first of them a reconstructed root that is not the signed
    reconstruction subject (a pack of other tensors than those signed, even with no tensor finding)."""
    from uc_attest.errors import Finding
    from uc_attest.pack.check import PackCheck
    from uc_attest.policy.rules import Check, pack_tensors

    f = _claimed(tmp_path / "p")
    assert f.claim is not None
    signed = f.claim.root
    assert pack_tensors(f) == []  # the loader checks the tensors itself
    f.pack_error = "uc-manifest.json is not JSON"
    assert pack_tensors(f) == [Check(RuleId.PACK_TENSORS, Status.FAIL, "uc-manifest.json is not JSON",
                                     hint="the pack's manifest is unreadable")]  # fmt: skip
    f.pack_check = PackCheck(f.pack.dir, "signed statement", signed, 3, 1)
    assert pack_tensors(f) == [Check(RuleId.PACK_TENSORS, Status.PASS, f"3 tensors reconstructed, root {signed}")]
    tensor = Finding("w", "reconstructed digest differs", "a", "b")
    other = Digest("77" * 32)
    f.pack_check = PackCheck(f.pack.dir, "signed statement", other, 3, 1, findings=[tensor])
    hint = "the deployed pack is not the expected one: see the findings"
    assert pack_tensors(f) == [Check(RuleId.PACK_TENSORS, Status.FAIL, f"3 tensors reconstructed, root {other}",
        hint=hint, findings=[Finding("manifest root", "differs from the signed reconstruction subject", str(signed),
                                     str(other)), tensor])]  # fmt: skip
    assert f.pack_check.findings == [tensor]  # the check's own list is not changed
    f.claim = None
    assert pack_tensors(f) == [Check(RuleId.PACK_TENSORS, Status.FAIL, f"3 tensors reconstructed, root {other}",
                                     hint=hint, findings=[tensor])]  # fmt: skip


def test_the_rebuild_rows_name_the_source_and_the_reproduction_findings(tmp_path: Path) -> None:
    """rebuild: required and not run fails; a source that is no model directory fails; a rebuild reports the
    source check and the byte-for-byte match separately, each failing on its own findings."""
    from uc_attest.errors import Finding
    from uc_attest.policy.rules import Check, RebuildOutcome, rebuild

    f = Facts(now=NOW, pack=_pack(tmp_path / "p"))
    assert rebuild(False)(f) == []
    assert rebuild(True)(f) == [Check(RuleId.REBUILD, Status.FAIL, "policy requires a rebuild from source",
                                      hint="pass --rebuild-from SOURCE_DIR")]  # fmt: skip
    f.rebuild = RebuildOutcome([], [], 0, 0.0, "cpu", error="no config.json")
    assert rebuild(False)(f) == [Check(RuleId.REBUILD, Status.FAIL, "no config.json",
                                       hint="the rebuild source is not a usable model directory")]  # fmt: skip
    f.rebuild = RebuildOutcome([], [], 4, 2.25, "cpu")
    assert rebuild(False)(f) == [
        Check(RuleId.REBUILD_SOURCE, Status.PASS, "4 source files"),
        Check(RuleId.REBUILD_MATCH, Status.PASS, "re-quantized on cpu in 2.2 s"),
    ]
    src, out = [Finding("model.safetensors", "differs")], [Finding("w", "differs")]
    for s, o in ((src, []), ([], out), (src, out)):
        f.rebuild = RebuildOutcome(s, o, 4, 2.25, "cuda")
        assert rebuild(True)(f) == [
            Check(RuleId.REBUILD_SOURCE, Status.FAIL if s else Status.PASS, "4 source files", findings=s,
                  hint="the source is not the one recorded in the manifest/statement" if s else None),
            Check(RuleId.REBUILD_MATCH, Status.FAIL if o else Status.PASS, "re-quantized on cuda in 2.2 s",
                  findings=o, hint="rebuilding from the source does not reproduce the pack" if o else None)]  # fmt: skip


def test_a_validations_runtime_is_held_to_the_policys_runtime_requirement() -> None:
    """validation.runtime: any admits every validation; named needs a readable runtime (an unreadable one is
    said, not taken as none); match needs the deployment's runtime and the same outputs."""
    from uc_attest.claims.validation import Runtime
    from uc_attest.policy.model import RuntimeNeed
    from uc_attest.policy.rules import _runtime_problems

    fast = Runtime("uc-attest", "fast", "k1", "avx2", "1")
    exact = Runtime("uc-attest", "exact", "k2", "avx2", "1")
    root = Digest("ab" * 32)

    def claim(rt: Runtime | None, err: str | None = None) -> ValidationClaim:
        return ValidationClaim(_claim(root, {}).statement, root, "s", {}, None, rt, err)

    assert _runtime_problems(RuntimeNeed.ANY, claim(None, "bad"), None) == []
    assert _runtime_problems(RuntimeNeed.NAMED, claim(None), fast) == ["names no runtime"]
    unreadable = "its runtime is unreadable (kind 'x' unknown)"
    assert _runtime_problems(RuntimeNeed.NAMED, claim(None, "kind 'x' unknown"), fast) == [unreadable]
    assert _runtime_problems(RuntimeNeed.NAMED, claim(fast), None) == []
    assert _runtime_problems(RuntimeNeed.MATCH, claim(fast), None) == [
        "the deployment's runtime is not known (load_model gives its own; gate/verify --runtime MODE)"
    ]
    assert _runtime_problems(RuntimeNeed.MATCH, claim(fast), Runtime("uc-attest", "fast", "k1", "avx512", "2")) == []
    assert _runtime_problems(RuntimeNeed.MATCH, claim(fast), exact) == [
        f"measured on {fast.id}, deployed on {exact.id}"
    ]
    assert _runtime_problems(RuntimeNeed.MATCH, claim(None), fast) == ["names no runtime"]


def test_the_release_rules_of_no_policy_and_of_a_policy_run_every_rule_they_state(tmp_path: Path) -> None:
    """release_rules: without a policy the defaults (log entry required, online check not required); under a
    policy its log, online and source-signer requirements, each with its row."""
    from uc_attest.policy.rules import evaluate, release_rules

    tsa_only = Facts(now=NOW, pack=_pack(tmp_path / "p"), evidence=_evidence(times=(_tsa("t"),), log=False))
    rows = {c.rule: c for c in evaluate(release_rules(None), tsa_only)}
    assert rows[RuleId.RELEASE_LOG].status == Status.FAIL and rows[RuleId.LOG_ONLINE].status == Status.SKIPPED
    offline = _claimed(tmp_path / "o")
    offline.online = OnlineLog(LogStatus.NOT_ASKED, "offline")
    pol = _claim_policy(release={"require_online_log_check": True, "require_tlog": False},
                        source={"keys": [KEY_ID]})  # fmt: skip
    rows = {c.rule: c for c in evaluate(release_rules(pol), offline)}
    assert rows[RuleId.LOG_ONLINE].status == Status.UNCHECKED and rows[RuleId.SOURCE_SIGNERS].status == Status.FAIL
    assert {c.rule: c for c in evaluate(release_rules(pol), tsa_only)}[RuleId.RELEASE_LOG].status == Status.SKIPPED


def test_the_pack_manifest_row_binds_the_packs_manifest_to_the_signed_one(tmp_path: Path) -> None:
    """pack.manifest: the pack's uc-manifest.json must be the signed one: its digest, and its bytes when the
    payload carries them inline; a missing or unreadable one fails; an OMS signature must list it unchanged (a
    signature that does not list it binds no manifest, and the pack's tensors would be held to a file anyone
    could rewrite)."""
    import dataclasses

    from uc_attest.errors import Finding
    from uc_attest.policy.rules import Check, pack_manifest

    f = _claimed(tmp_path / "p")
    assert f.claim is not None and f.claim.manifest_bytes is not None  # small manifests are signed inline
    signed = f.claim.manifest_digest
    hint = "the pack's uc-manifest.json is not the signed one"
    assert pack_manifest(f) == [Check(RuleId.PACK_MANIFEST, Status.PASS, expected=str(signed))]
    digest_only = dataclasses.replace(f.claim, manifest_bytes=None)
    f.claim = digest_only
    assert pack_manifest(f) == [Check(RuleId.PACK_MANIFEST, Status.PASS, expected=str(signed))]
    other = Digest("ee" * 32)
    f.claim = dataclasses.replace(digest_only, manifest_digest=other)
    assert pack_manifest(f) == [Check(RuleId.PACK_MANIFEST, Status.FAIL, expected=str(other), actual=str(signed),
                                      hint=hint)]  # fmt: skip
    # same digest claimed, other inline bytes signed: the pack's bytes are not the signed ones
    f.claim = dataclasses.replace(digest_only, manifest_bytes=b'{"other":1}')
    assert pack_manifest(f) == [Check(RuleId.PACK_MANIFEST, Status.FAIL, expected=str(signed), actual=str(signed),
                                      hint=hint)]  # fmt: skip
    f.claim = digest_only
    (f.pack.dir / "uc-manifest.json").unlink()
    f.pack = PackFacts(f.pack.dir)
    assert pack_manifest(f) == [Check(RuleId.PACK_MANIFEST, Status.FAIL, expected=str(signed),
                                      actual="missing or unreadable", hint=hint)]  # fmt: skip
    f.claim = None
    assert pack_manifest(f) == [Check(RuleId.PACK_MANIFEST, Status.UNCHECKED,
                                      "not checked: no release claim (unreadable statement)")]  # fmt: skip
    oms = _oms_facts(tmp_path / "o", [])
    assert pack_manifest(oms) == [Check(RuleId.PACK_MANIFEST, Status.PASS,
                                        "listed by the OpenSSF Model Signing signature")]  # fmt: skip
    changed = Finding("uc-manifest.json", "changed", "a", "b")
    oms.oms_findings = [Finding("model.safetensors", "changed"), changed, Finding("uc-manifest.json", "second")]
    assert pack_manifest(oms) == [Check(RuleId.PACK_MANIFEST, Status.FAIL, "changed", hint=hint)]
    oms.oms_findings = [Finding("model.safetensors", "changed")]
    assert pack_manifest(oms)[0].status == Status.PASS  # another file's finding is pack.files', not this row's
    assert oms.oms is not None
    oms.oms = dataclasses.replace(oms.oms, resources={k: v for k, v in oms.oms.resources.items()
                                                      if k != "uc-manifest.json"})  # fmt: skip
    oms.oms_findings = []
    assert pack_manifest(oms) == [Check(RuleId.PACK_MANIFEST, Status.FAIL,
        "not among the files the OpenSSF Model Signing signature lists", hint=hint)]  # fmt: skip
    oms.oms_findings = None
    assert pack_manifest(oms) == [Check(RuleId.PACK_MANIFEST, Status.UNCHECKED,
        "not checked: an OpenSSF Model Signing signature carries no manifest digest",
        hint="verify the pack with its SLSA release bundle (<pack>.sigstore.json)")]  # fmt: skip


def test_the_validation_row_says_exactly_why_each_validation_does_not_count(tmp_path: Path) -> None:
    """The validation rule's row: the passing validation named with its signer, set, metrics and runtime; each
    refused one named with every reason (another root, too old, from the future, a bundle that did not verify);
    the root held to is the signed claim's, else the pack's; a pack without a readable manifest fails."""
    import dataclasses

    from uc_attest.claims.validation import Runtime
    from uc_attest.policy.rules import Check, last_validated

    pol = _policy(max_age_days=10)
    f = _validated(tmp_path / "a", times=(_tsa("t", NOW - 10 * DAY),))
    assert f.validations is not None
    v0 = f.validations[0]
    assert _row(pol, f) == Check(RuleId.VALIDATION, Status.PASS, "v.sigstore.json by v@b: heldout, kl=0.01")
    fast = Runtime("uc-attest", "fast", "k1", "avx2", "1")
    assert v0.claim is not None
    f.validations = [dataclasses.replace(v0, claim=dataclasses.replace(v0.claim, runtime=fast))]
    assert _row(pol, f).detail == f"v.sigstore.json by v@b: heldout, kl=0.01 on {fast.id}"
    now = _validated(tmp_path / "now", times=(_tsa("t", NOW),))
    assert _row(pol, now).ok  # signed at the very time of the check: not "after" it
    old = _validated(tmp_path / "old", times=(_tsa("t", NOW - 10 * DAY - 1),))
    assert _row(pol, old).detail == "v.sigstore.json: 10.0 days old (max 10.0)"
    older = _validated(tmp_path / "older", times=(_tsa("t", NOW - 12 * DAY - DAY // 2),))
    assert _row(pol, older).detail == "v.sigstore.json: 12.5 days old (max 10.0)"
    other = _validated(tmp_path / "other", root=Digest("99" * 32))
    pack_root = PackFacts(tmp_path / "other" / "pack").root
    row = _row(pol, other)
    assert row == Check(RuleId.VALIDATION, Status.FAIL,
        f"v.sigstore.json: validates root sha256:{'9' * 16}…, not this pack's {str(pack_root)[:23]}…",
        expected=f"a validator-signed attestation of {pack_root}", actual=f"last validated root sha256:{'99' * 32}",
        hint="validate this exact pack (uc-attest validate) before deploying it")  # fmt: skip
    kl = _validated(tmp_path / "kl", metrics={"kl": 0.5})
    assert _row(pol, kl).hint == "a validation of this root exists but does not meet the policy: see the detail"
    assert _row(pol, kl).actual == f"last validated root {PackFacts(tmp_path / 'kl' / 'pack').root}"
    empty = Facts(now=NOW, pack=_pack(tmp_path / "e"))
    assert _row(pol, empty) == Check(RuleId.VALIDATION, Status.FAIL, "no validation attestation given",
        expected=f"a validator-signed attestation of {empty.pack.root}", actual="none",
        hint="validate this exact pack (uc-attest validate) before deploying it")  # fmt: skip
    refused = Facts(now=NOW, pack=empty.pack, validations=[ValidationFact(Path("d/forged.json"), error="signed by eve"),
                                                           *(other.validations or [])])  # fmt: skip
    assert _row(pol, refused).detail.startswith("forged.json: signed by eve; v.sigstore.json: validates root")
    assert _row(_policy(required=False), Facts(now=NOW, pack=empty.pack)) == Check(
        RuleId.VALIDATION, Status.SKIPPED, "not required; none given")  # fmt: skip
    # the root held to is the signed claim's when there is one, the pack's otherwise
    claimed = _validated(tmp_path / "c")
    signed_root = Digest("99" * 32)
    claimed.claim = dataclasses.replace(_release_claim(claimed.pack), root=signed_root)
    assert not _row(pol, claimed).ok and "validates root" in _row(pol, claimed).detail
    of_signed = _validated(tmp_path / "s", root=signed_root)
    of_signed.claim = dataclasses.replace(_release_claim(of_signed.pack), root=signed_root)
    assert _row(pol, of_signed).ok
    ancient = _validated(tmp_path / "ancient", times=(_tsa("t", NOW - 86405184),))  # 1000.06 days
    assert _row(pol, ancient).detail == "v.sigstore.json: 1000.1 days old (max 10.0)"
    bad_manifest = _validated(tmp_path / "m")
    (tmp_path / "m" / "pack" / "uc-manifest.json").write_text("[]")
    bad_manifest.pack = PackFacts(tmp_path / "m" / "pack")
    row = _row(pol, bad_manifest)
    assert row.status == Status.FAIL and row.detail.startswith("no manifest root to match: ") and "format" in row.detail
    # the newest verified validation is the one reported as last validated (not the first, nor an unverified one)
    g = Facts(now=NOW, pack=empty.pack)

    def mk(t: int, root: Digest) -> ValidationFact:
        return ValidationFact(Path("v"), _evidence(times=(_tsa("x", t),)), _claim(root, {}))

    g.validations = [mk(NOW - 5 * DAY, Digest("01" * 32)), mk(NOW - DAY, Digest("02" * 32)),
                     mk(NOW - 3 * DAY, Digest("03" * 32)), ValidationFact(Path("x"), error="bad"),
                     ValidationFact(Path("y"), None, _claim(Digest("04" * 32), {}))]  # fmt: skip
    last = last_validated(g)
    assert last is not None and last.root == Digest("02" * 32)
    g.validations.append(ValidationFact(Path("u"), _evidence(times=()), _claim(Digest("05" * 32), {})))
    assert last_validated(g).root == Digest("02" * 32)  # type: ignore[union-attr]  # undated sorts first
    assert last_validated(Facts(now=NOW, pack=empty.pack)) is None


def test_a_half_verified_validation_never_counts(tmp_path: Path) -> None:
    """A validation recorded with its evidence but no claim (its statement is no validation), or a claim but no
    evidence, is refused with why and is never the "last validated" one, however recent."""
    from uc_attest.policy.rules import last_validated

    f = _validated(tmp_path / "a")
    assert f.validations is not None
    good = f.validations[0]
    newest = _evidence(times=(_tsa("t", NOW - 60),))
    f.validations = [ValidationFact(Path("d/no-claim.json"), newest, None, error="not a validation statement"),
                     ValidationFact(Path("d/no-evidence.json"), None, _claim(Digest("07" * 32), {"kl": 0.0}),
                                    error="signed by eve"), good]  # fmt: skip
    assert _row(_policy(), f).ok
    f.validations = f.validations[:2]
    row = _row(_policy(), f)
    assert row.detail == "no-claim.json: not a validation statement; no-evidence.json: signed by eve"
    assert last_validated(f) is None
    f.validations = [good, ValidationFact(Path("n"), newest, None, error="x")]
    assert last_validated(f) is good.claim


def test_a_validation_is_held_to_the_runtime_the_policy_requires(tmp_path: Path) -> None:
    """validation.runtime named: a validation must name its runtime; match: it must be the deployment's."""
    import dataclasses

    from uc_attest.claims.validation import Runtime

    fast = Runtime("uc-attest", "fast", "k1", "avx2", "1")
    f = _validated(tmp_path / "a")
    assert f.validations is not None and f.validations[0].claim is not None
    f.validations = [dataclasses.replace(f.validations[0], claim=dataclasses.replace(f.validations[0].claim,
                                                                                     runtime=fast))]  # fmt: skip
    assert _row(_policy(runtime="named"), f).ok
    f.runtime = Runtime("uc-attest", "fast", "k1", "avx512", "2")
    assert _row(_policy(runtime="match"), f).ok
    f.runtime = Runtime("uc-attest", "exact", "k2", "avx512", "2")
    assert "deployed on" in _row(_policy(runtime="match"), f).detail
