"""Gather the facts the rules read about signatures: evidence from bundles, claims from their payloads, the log
asked again (``local`` gathers what needs no signer: the pack against a manifest, the rebuild). A failure to
obtain a fact is recorded as the fact (a rule then fails), never raised past the caller.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from ..claims.oms import OMS_PREDICATE, diff, parse_oms, scan
from ..claims.slsa import parse_release
from ..claims.statement import Statement
from ..claims.validation import parse_validation
from ..core import merkle
from ..core.ruleid import RuleId
from ..errors import (
    InvalidInput,
    LogMisbehaved,
    LogUnreachable,
    MalformedBundle,
    MerkleError,
    SignatureInvalid,
)
from ..evidence.bundle import Evidence, LogProof, verify_dsse_bundle
from ..evidence.identity import SignerLike, describe
from ..evidence.timestamps import TimestampInvalid
from ..policy.rules import Facts, LogStatus, OnlineLog, ValidationFact
from ..signing.trust import Trust
from ..transparency.rekor_v1 import RekorClient
from ..transparency.tiles import WIDTH, TileClient, TileLogKey, TileTree


def release_evidence(facts: Facts, bundle: Path, trust: Trust, signers: Sequence[SignerLike]) -> None:
    """The release bundle verified against the signers, and the claim its payload makes."""
    facts.expected_signers = describe(signers)
    try:
        facts.evidence = verify_dsse_bundle(bundle, trust, signers)
    except SignatureInvalid as exc:
        facts.evidence_error = exc.problem
        facts.evidence_rule = exc.rule if isinstance(exc, TimestampInvalid) else RuleId.RELEASE_SIGNER
        return
    try:
        facts.statement = Statement.parse(facts.evidence.payload)
        if facts.statement.predicate_type == OMS_PREDICATE:
            facts.oms = parse_oms(facts.statement)
            actual = scan(facts.pack.dir, facts.oms.serialization, exclude=(Path(bundle),))
            facts.oms_findings = diff(facts.oms, actual)
            return
        facts.claim = parse_release(facts.statement)
    except (MalformedBundle, InvalidInput) as exc:
        facts.claim_error = exc.message


def _online_tiles(proof: LogProof, log: TileLogKey) -> OnlineLog:
    """A Rekor v2 (tiles) log: its latest checkpoint, a consistency proof from the bundle's checkpoint and an
    inclusion proof of the entry computed from its tiles, and the entry read back from its entry bundle.

    A tile checkpoint carries no signed time: the latest one is evidence only while the log key is valid now
    (as a bundle entry without a SET or timestamp is, in the bundle verifier). Outside its validity the key
    vouches for nothing it signs now (a retired key may be a compromised one): the log is not asked, which
    passes as skipped, saying why, unless the policy requires the check (then unchecked: denied)."""
    if proof.checkpoint is None:
        return OnlineLog(LogStatus.MISBEHAVED, "a tile log entry without a checkpoint")
    if not log.valid_at(time.time()):
        return OnlineLog(
            LogStatus.NOT_ASKED,
            f"the log key of {log.base_url} is not valid now ({log.window()}): a checkpoint it signs now is no "
            "evidence, so the entry was not asked for again",
        )
    client = TileClient(log, timeout=5.0)
    try:
        latest = client.checkpoint()
        seen = client.verify_note(proof.checkpoint)
        if latest.size < seen.size:
            return OnlineLog(
                LogStatus.MISBEHAVED, f"rollback: the log is at size {latest.size}, the bundle saw {seen.size}"
            )
        tree = TileTree(client, latest.size)
        if seen.size:
            merkle.verify_consistency(
                seen.size,
                latest.size,
                seen.root,
                latest.root,
                merkle.consistency_path(tree.hash_range, seen.size, latest.size),
            )
        leaf = merkle.leaf_hash(proof.canonical_body)
        merkle.verify_inclusion(
            proof.index,
            latest.size,
            leaf,
            merkle.inclusion_path(tree.hash_range, proof.index, latest.size),
            latest.root,
        )
        body = client.entries(proof.index // WIDTH, latest.size)[proof.index % WIDTH]
    except LogUnreachable as exc:
        return OnlineLog(LogStatus.UNREACHABLE, f"log unreachable, entry not re-fetched ({exc.message})")
    except (LogMisbehaved, MerkleError) as exc:
        return OnlineLog(LogStatus.MISBEHAVED, exc.message)
    if body != proof.canonical_body:
        return OnlineLog(LogStatus.DIFFERS, f"entry {proof.index} in the log has another body than the bundle's")
    return OnlineLog(
        LogStatus.PROVEN, f"entry {proof.index} re-read from the tiles, proven in checkpoint {latest.size}"
    )


def ask_log(ev: Evidence, trust: Trust) -> OnlineLog:
    """Ask a verified bundle's log for its entry again: same body, proven against a fresh signed checkpoint."""
    if ev.log is None:
        return OnlineLog(LogStatus.NOT_ASKED, "the bundle has no log entry to ask for again (TSA-only)")
    tiles = next((lg for lg in trust.tile_logs() if lg.log_id == ev.log.log_id), None)
    if tiles is not None:
        return _online_tiles(ev.log, tiles)
    log = next((lg for lg in trust.logs() if lg.log_id == ev.log.log_id), None)
    if log is None:
        return OnlineLog(LogStatus.NO_LOG, "no log in the trust root has the bundle's log id")
    try:
        entry = RekorClient(log, timeout=5.0).entry_by_index(ev.log.index)
    except LogUnreachable as exc:
        return OnlineLog(LogStatus.UNREACHABLE, f"log unreachable, entry not re-fetched ({exc.message})")
    except LogMisbehaved as exc:
        return OnlineLog(LogStatus.MISBEHAVED, exc.message)
    if entry.body != ev.log.canonical_body:
        return OnlineLog(LogStatus.DIFFERS, f"entry {ev.log.index} in the log has another body than the bundle's")
    return OnlineLog(LogStatus.PROVEN, f"entry {ev.log.index} re-fetched and proven in the log")


OFFLINE = OnlineLog(LogStatus.NOT_ASKED, "offline (--offline): the log was not asked again")


def online_log(facts: Facts, trust: Trust, online: bool = True) -> None:
    """The release entry asked for again (or recorded as not asked when offline)."""
    if facts.evidence is not None:
        facts.online = ask_log(facts.evidence, trust) if online else OFFLINE


def validations(
    facts: Facts, bundles: Sequence[Path], trust: Trust, signers: Sequence[SignerLike], *, online: bool = True
) -> None:
    """Every validation bundle verified against the validators, its claim read, and its log entry asked for
    again (when online): the validation rule then holds each to the evidence rules of its role."""
    out = []
    for b in bundles:
        try:
            ev: Evidence = verify_dsse_bundle(Path(b), trust, signers)
            claim = parse_validation(Statement.parse(ev.payload))
        except SignatureInvalid as exc:
            out.append(ValidationFact(Path(b), error=exc.problem))
            continue
        except InvalidInput as exc:  # not found, malformed statement
            out.append(ValidationFact(Path(b), error=exc.message))
            continue
        out.append(ValidationFact(Path(b), ev, claim, online=ask_log(ev, trust) if online else OFFLINE))
    facts.validations = out
