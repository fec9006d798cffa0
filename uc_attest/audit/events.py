"""One log entry about a model, verified, and what it says (an :class:`AuditEvent`).

The entry arrives verified by the log client (checkpoint signature, body re-hashed, SET, inclusion and
consistency, stored attestation against its payload hash). Here it is rebuilt into a Sigstore bundle and
verified by sigstore-python's Verifier (certificate chain + SCT at the logged time, DSSE signature, log
proof); signer identities are reported, not pinned. What it claims is read from the stored statement
whether or not it verifies, so a bad release is shown as a bad release — never dropped, never a crash:
log contents are written by anyone.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from ..claims import OmsClaim, ReleaseClaim, ValidationClaim, parse_claim
from ..claims.statement import Statement
from ..core.dsse import PAYLOAD_TYPE_IN_TOTO
from ..errors import UcAttestError
from ..evidence.identity import AnyIdentity, signer_of
from ..signing.trust import Trust
from ..transparency.kinds import EntryKind
from ..transparency.rekor_v1 import VerifiedEntry
from .kinds import EventKind


@dataclass
class AuditEvent:
    """One log entry about the model, verified, with what it says."""

    time: int
    kind: EventKind
    log_index: int
    uuid: str
    signer: str = ""
    issuer: str = ""
    ok: bool = True
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # each makes the event not ok
    notes: list[str] = field(default_factory=list)  # informative only (e.g. what could not be checked here)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        del out["notes"]  # shown in ``details`` where they apply (the audit JSON keeps its keys)
        return out


def claim_details(claim: ReleaseClaim | ValidationClaim | OmsClaim | None) -> tuple[EventKind, dict[str, Any]]:
    if isinstance(claim, ReleaseClaim):
        out: dict[str, Any] = {
            "root": str(claim.root),
            "builder": claim.builder_id,
            "scheme": claim.scheme,
            "source_digest": str(claim.source_tree) if claim.source_tree else None,
            "files": len(claim.files),
        }
        if claim.source_signature is not None:
            out["source_signature"] = claim.source_signature.to_dict()
        if claim.calibration is not None:
            out["calibration"] = claim.calibration.to_dict()
        return EventKind.RELEASE, out
    if isinstance(claim, OmsClaim):
        return EventKind.OMS, {
            "model": claim.model_name,
            "oms_root": f"sha256:{claim.root}",
            "resources": len(claim.resources),
        }
    if isinstance(claim, ValidationClaim):
        return EventKind.VALIDATION, {
            "root": str(claim.root),
            "evaluation_set": claim.evaluation_set,
            "metrics": claim.metrics,
        }
    return EventKind.OTHER, {}


def _bundle_json(e: VerifiedEntry, log_id: bytes, sig: dict[str, Any]) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(base64.b64decode(sig["verifier"]))

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {
                "certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))},
                "tlogEntries": [e.raw_entry(log_id)],
            },
            "dsseEnvelope": {
                "payload": b64(e.attestation or b""),
                "payloadType": PAYLOAD_TYPE_IN_TOTO,
                "signatures": [{"sig": sig["signature"]}],
            },
        }
    )


def verify_event(e: VerifiedEntry, log_id: bytes, trust: Trust) -> AuditEvent:
    """Verify one entry with sigstore-python and read its claim; every problem is recorded on the event."""
    from cryptography import x509
    from sigstore.errors import Error as SigstoreError
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle, InvalidBundle
    from sigstore.verify import Verifier

    ev = AuditEvent(e.integrated_time, EventKind.OTHER, e.index, e.uuid)
    if e.kind != EntryKind.DSSE:
        ev.details["kind"] = e.kind
        return ev
    if e.attestation is not None:  # what the entry claims, read whether or not it verifies
        try:
            ev.kind, ev.details = claim_details(parse_claim(Statement.parse(e.attestation)))
        except UcAttestError as exc:
            ev.details = {"statement": f"not a uc-attest statement: {exc.message}"}
    try:
        sig = e.body_json()["spec"]["signatures"][0]
        cert = x509.load_pem_x509_certificate(base64.b64decode(sig["verifier"]))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        ev.ok = False
        ev.problems.append(f"malformed log entry: no readable signature or certificate ({exc!r})")
        return ev
    who = signer_of(cert)
    ev.signer, ev.issuer = who.primary, who.issuer
    if e.attestation is None:
        ev.ok = False
        ev.problems.append("the log does not store this entry's statement (no attestation): check its bundle")
        return ev
    try:
        bundle = Bundle.from_json(_bundle_json(e, log_id, sig))
        Verifier(trusted_root=trust.trusted_root).verify_dsse(bundle, AnyIdentity())
    except (VerificationError, InvalidBundle, SigstoreError, ValueError, KeyError, TypeError) as exc:
        ev.ok = False
        ev.problems.append(f"sigstore verification failed: {exc}")
    return ev
