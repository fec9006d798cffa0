"""Auditing on a tile-based log (Rekor v2), which has no search API and stores no statements.

An entry is a hashedrekord v0.0.2: the digest of what was signed (for DSSE: of the PAE), the signature and
the certificate. So the log answers *who signed what digest when it was integrated*, not *what was
claimed*: statements come from their bundles. The audit therefore (1) follows the log into the local index
(``transparency.follow``: every entry verified), (2) verifies each bundle it is given and proves its entry
in the latest verified checkpoint from the tiles, and (3) lists, from the index, every entry by the same
signers (or over the audited digest) that none of those bundles accounts for — what an auditor must have
explained.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from ..claims import parse_claim
from ..claims.statement import Statement
from ..core import merkle
from ..errors import (
    InvalidInput,
    LogMisbehaved,
    LogUnreachable,
    MerkleError,
    OperationalError,
    SignatureInvalid,
    UcAttestError,
)
from ..evidence.bundle import read_bundle, verify_dsse_bundle
from ..evidence.identity import signer_of
from ..signing.trust import Trust
from ..transparency.follow import EntryFacts, FollowResult, TileIndex, Watch, follow
from ..transparency.tiles import TileCheckpoint, TileClient, TileTree
from .events import AuditEvent, claim_details
from .kinds import EventKind

UNATTRIBUTED_NOTE = "Rekor v2 stores no statement; no bundle given accounts for this entry"
_certs: dict[str, tuple[str, str]] = {}


def describe_entry(body: bytes) -> EntryFacts:
    """Index facts of a canonical entry body; an entry this does not read is indexed as such (never dropped)."""
    try:
        doc = json.loads(body)
        kind = f"{doc['kind']}/{doc['apiVersion']}"
        spec = doc["spec"]["hashedRekordV002"]
        algo = {"SHA2_256": "sha256", "SHA2_384": "sha384", "SHA2_512": "sha512"}[spec["data"]["algorithm"]]
        digest = f"{algo}:{base64.b64decode(spec['data']['digest']).hex()}"
        raw = spec["signature"]["verifier"]["x509Certificate"]["rawBytes"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        return EntryFacts(f"unreadable ({type(exc).__name__})", "", "", "")
    if raw not in _certs:
        try:
            who = signer_of(x509.load_der_x509_certificate(base64.b64decode(raw)))
            _certs[raw] = (who.primary, who.issuer)
        except ValueError:
            _certs[raw] = ("", "")
    identity, issuer = _certs[raw]
    return EntryFacts(kind, digest, identity, issuer)


def follow_logs(
    trust: Trust, index: TileIndex, watch: Watch | None = None, mirror: str | None = None
) -> list[tuple[FollowResult, TileClient]]:
    """Catch every tile log of the trust root up into ``index`` (``mirror``: read the tiles from another
    base URL, verified with the same key; only with exactly one tile log). OperationalError naming the URL
    when a log cannot be reached."""
    logs = trust.tile_logs()
    if mirror is not None:
        if len(logs) != 1:
            raise InvalidInput(
                "{0} needs a trust root with exactly one tile log, it has {logs}", option="mirror", logs=len(logs)
            )
        logs = [dataclasses.replace(logs[0], base_url=mirror.rstrip("/"))]
    out = []
    for log in logs:
        client = TileClient(log)
        try:
            out.append((follow(index, client, describe_entry, watch), client))
        except LogUnreachable as exc:
            raise OperationalError(f"log unreachable: {exc.message}", url=log.base_url) from None
    return out


@dataclass(frozen=True)
class TileAudit:
    events: list[AuditEvent]
    leaves: set[str]  # leaf hashes (hex) the bundles account for


def bundle_events(paths: Iterable[Path], trust: Trust, client: TileClient, cp: TileCheckpoint) -> TileAudit:
    """Each bundle whose entry is on this log: verified (any signer, reported), its entry proven in ``cp``."""
    events, leaves, tree = [], set(), TileTree(client, cp.size)
    for path in paths:
        try:
            _, doc = read_bundle(path)
            entry = (doc.get("verificationMaterial", {}).get("tlogEntries") or [{}])[0]
            if base64.b64decode(entry.get("logId", {}).get("keyId", "")) != client.log.log_id:
                continue  # another log's (Rekor v1 entries are found by its search)
            body = base64.b64decode(entry["canonicalizedBody"])
            index = int(entry["logIndex"])
        except (UcAttestError, KeyError, TypeError, ValueError):
            continue  # unreadable: verify-bundle says why; the audit covers what it can attribute
        leaf = merkle.leaf_hash(body)
        leaves.add(leaf.hex())
        ev = AuditEvent(0, EventKind.OTHER, index, leaf.hex(), details={"log": "rekor-v2", "bundle": str(path)})
        try:
            payload = base64.b64decode(doc["dsseEnvelope"]["payload"])
            ev.kind, ev.details = claim_details(parse_claim(Statement.parse(payload)))
            ev.details |= {"log": "rekor-v2", "bundle": str(path)}
        except UcAttestError as exc:
            ev.details["statement"] = f"not a uc-attest statement: {exc.message}"
        except (KeyError, TypeError, ValueError) as exc:
            ev.details["statement"] = f"not a uc-attest statement: {exc}"
        facts = describe_entry(body)
        ev.signer, ev.issuer = facts.identity, facts.issuer
        try:
            evidence = verify_dsse_bundle(path, trust, None)
            ev.time = evidence.signed_at or 0
        except SignatureInvalid as exc:
            ev.ok = False
            ev.problems.append(f"bundle does not verify: {exc.problem or exc.message}")
        except InvalidInput as exc:
            ev.ok = False
            ev.problems.append(f"bundle does not verify: {exc.message}")
        if index >= cp.size:
            ev.ok = False
            ev.problems.append(f"entry {index} is beyond the verified checkpoint (size {cp.size})")
        else:
            try:
                path_ = merkle.inclusion_path(tree.hash_range, index, cp.size)
                merkle.verify_inclusion(index, cp.size, leaf, path_, cp.root)
            except (MerkleError, LogMisbehaved) as exc:
                ev.ok = False
                ev.problems.append(f"entry {index} is not in the log as its tiles show it: {exc.message}")
        events.append(ev)
    return TileAudit(events, leaves)


def unattributed(
    index: TileIndex, log_id: bytes, identities: Sequence[str], digests: Sequence[str], known: set[str]
) -> list[AuditEvent]:
    """Indexed entries by ``identities`` or over ``digests`` that no known bundle accounts for."""
    out = []
    for e in index.entries(log_id, identities=identities, digests=digests):
        if e.leaf in known:
            continue
        details = {
            "log": "rekor-v2",
            "entry_kind": e.facts.kind,
            "signed_digest": e.facts.digest,
            "note": UNATTRIBUTED_NOTE,
        }
        out.append(
            AuditEvent(
                e.seen_at, EventKind.UNATTRIBUTED, e.index, e.leaf, e.facts.identity, e.facts.issuer, details=details
            )
        )
    return out


def pae_digest(payload_type: str, payload: bytes) -> str:
    """``sha256:<hex>`` of a DSSE PAE: what a Rekor v2 entry of that envelope records."""
    from ..core.dsse import pae

    return "sha256:" + hashlib.sha256(pae(payload_type, payload)).hexdigest()
