"""Audit: every log entry concerning a model, each verified by sigstore-python, as a chain of custody.

Entries are found through the log's index (the manifest root is a subject of both the release
provenance and every validation; ``--digest`` adds any other subject digest),
fetched with the verifying client (checkpoint signature, body re-hashed, SET, inclusion and
consistency, stored attestation against its payload hash), then rebuilt into a Sigstore bundle
and verified by sigstore-python's Verifier (certificate chain + SCT at the logged time, DSSE
signature, log proof). Signer identities are reported, not pinned (pin them with a policy).
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidInput, OperationalError
from .manifest import Manifest
from .pack import MANIFEST_NAME, load_manifest
from .provenance import VALIDATION_PREDICATE, parse_statement, parse_validation
from .signing import PAYLOAD_TYPE, cert_identities, cert_issuer
from .tlog.client import LogMisbehaved, LogUnreachable, RekorClient, VerifiedEntry, log_keys
from .tlog.monitor import load_state, stored_checkpoint
from .trust import select_trust
from .verifier import Check, check_pack


@dataclass
class AuditEvent:
    """One log entry about the model, verified, with what it says."""

    time: int
    kind: str  # release | validation | other
    log_index: int
    uuid: str
    signer: str
    issuer: str
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class AuditReport:
    target: str
    root: str
    log_url: str
    checkpoint: dict[str, Any]
    events: list[AuditEvent]
    checks: list[Check]
    tensors: list[dict[str, Any]]
    requests: int
    seconds: float

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks) and all(e.ok for e in self.events)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "target": self.target,
            "manifest_root": self.root,
            "log": self.log_url,
            "checkpoint": self.checkpoint,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "checks": [c.to_dict() for c in self.checks],
            "events": [e.__dict__ for e in self.events],
            "tensors": self.tensors,
        }


class _ReportIdentity:
    """sigstore VerificationPolicy that accepts any identity: the audit reports it instead."""

    def verify(self, cert: Any) -> None:
        return None


def _bundle_json(e: VerifiedEntry, log_id: bytes) -> str:
    body = e.body_json()
    sig = body["spec"]["signatures"][0]
    cert_pem = base64.b64decode(sig["verifier"])
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"certificate": {"rawBytes": b64(der)}, "tlogEntries": [e.raw_entry(log_id)]},
            "dsseEnvelope": {
                "payload": b64(e.attestation or b""),
                "payloadType": PAYLOAD_TYPE,
                "signatures": [{"sig": sig["signature"]}],
            },
        }
    )


def _verify_event(e: VerifiedEntry, client: RekorClient, trust_config: Any) -> AuditEvent:
    from cryptography import x509
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle, InvalidBundle
    from sigstore.verify import Verifier

    body = e.body_json()
    ev = AuditEvent(e.integrated_time, "other", e.index, e.uuid, "", "", True)
    if e.kind != "dsse":
        ev.details["kind"] = e.kind
        return ev
    cert = x509.load_pem_x509_certificate(base64.b64decode(body["spec"]["signatures"][0]["verifier"]))
    ids = cert_identities(cert)
    ev.signer, ev.issuer = (ids[0] if ids else ""), cert_issuer(cert)
    if e.attestation is None:
        ev.ok = False
        ev.problems.append("the log does not store this entry's statement (no attestation): check its bundle")
        return ev
    try:
        bundle = Bundle.from_json(_bundle_json(e, client.log.log_id))
        Verifier(trusted_root=trust_config.trusted_root).verify_dsse(bundle, _ReportIdentity())
    except (VerificationError, InvalidBundle, ValueError, KeyError) as exc:
        ev.ok = False
        ev.problems.append(f"sigstore verification failed: {exc}")
        return ev
    try:
        kind = json.loads(e.attestation).get("predicateType")
        if kind == VALIDATION_PREDICATE:
            v = parse_validation(e.attestation)
            ev.kind = "validation"
            ev.details = {"root": v.root, "evaluation_set": v.evaluation_set, "metrics": v.metrics}
        else:
            st = parse_statement(e.attestation)
            ev.kind = "release"
            ev.details = {
                "root": st.root,
                "builder": st.builder_id,
                "scheme": st.scheme,
                "source_digest": st.source_digest,
                "files": len(st.files),
            }
    except InvalidInput as exc:
        ev.details = {"statement": f"not a uc-attest statement: {exc.message}"}
    return ev


def _log_client(trust_config: Path | None, instance: Path | None) -> tuple[RekorClient, Any]:
    """A verifying client for the (first) log of the selected trust root, and the trust config."""
    trust = select_trust(trust_config, instance)
    cfg = trust.load()
    logs = log_keys(cfg)
    if not logs:
        raise InvalidInput(f"{trust.trust_config_path}: the trust root names no transparency log")
    return RekorClient(logs[0]), cfg


def audit(
    target: Path | None = None,
    *,
    manifest_root: str | None = None,
    digest: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    state: Path | None = None,
) -> AuditReport:
    """Find and verify every log entry about a pack / manifest root / digest; build the chain."""
    t0 = time.perf_counter()
    manifest: Manifest | None = None
    if target is not None:
        manifest = load_manifest(Path(target) / MANIFEST_NAME)
        manifest_root = manifest.root.hex
    keys = [f"sha256:{manifest_root}"] if manifest_root else []
    if digest:
        keys.append(digest if digest.startswith("sha256:") else f"sha256:{digest}")
    if not keys:
        raise InvalidInput("audit needs a pack directory, --manifest-root or --digest")
    client, cfg = _log_client(trust_config, instance)
    checks: list[Check] = []
    events: list[AuditEvent] = []
    latest = None
    try:
        latest = client.checkpoint()
        checks.append(Check("log.checkpoint", True, f"size {latest.size}, signed by the log key"))
        if state is not None:
            stored = stored_checkpoint(load_state(Path(state)), client)
            if stored is None:
                checks.append(Check("log.consistency", True, "no stored checkpoint for this log", skipped=True))
            else:
                try:
                    client.prove_consistent(stored, latest)
                    checks.append(Check("log.consistency", True, f"extends the witnessed size {stored.size}"))
                except LogMisbehaved as exc:
                    checks.append(Check("log.consistency", False, str(exc), hint="the log was rewritten"))
        uuids = sorted({u for k in keys for u in client.search(k)})
        for u in uuids:
            try:
                events.append(_verify_event(client.entry_by_uuid(u, latest), client, cfg))
            except LogMisbehaved as exc:
                events.append(AuditEvent(0, "other", -1, u, "", "", False, problems=[str(exc)]))
    except LogUnreachable as exc:
        raise OperationalError(f"log unreachable: {exc}", url=client.log.base_url) from None
    except LogMisbehaved as exc:
        checks.append(Check("log.checkpoint", False, str(exc), hint="the log's answers do not verify"))
    events.sort(key=lambda e: (e.time, e.log_index))
    root = manifest_root or ""
    mine = [e for e in events if e.details.get("root") == root]
    if root:
        checks.append(
            Check(
                "custody.release",
                any(e.kind == "release" and e.ok for e in mine),
                f"{sum(e.kind == 'release' for e in mine)} release attestation(s) of this root",
            )
        )
        checks.append(
            Check(
                "custody.validation",
                any(e.kind == "validation" and e.ok for e in mine),
                f"{sum(e.kind == 'validation' for e in mine)} validation(s) of this root",
                hint=None if any(e.kind == "validation" for e in mine) else "never validated",
            )
        )
    if target is not None:
        pc = check_pack(Path(target))
        checks.append(Check("pack.matches", pc.ok, f"{pc.tensors_checked} tensors reconstructed and matched"))
    tensors = (
        [
            {
                "name": t.name,
                "dtype": t.dtype,
                "shape": list(t.shape),
                "digest": str(t.digest),
                "bits": (t.quant or {}).get("bits"),
                "rel_err_ppm": (t.quant or {}).get("rel_err_ppm"),
                "moments": (t.quant or {}).get("moments"),  # committed calibration moments (feedback)
            }
            for t in sorted(manifest.tensors, key=lambda t: t.name)
        ]
        if manifest
        else []
    )
    cp = {"size": latest.size, "root": latest.root.hex(), "origin": latest.origin} if latest is not None else {}
    return AuditReport(
        str(target or manifest_root or digest),
        root,
        client.log.base_url,
        cp,
        events,
        checks,
        tensors,
        client.requests,
        time.perf_counter() - t0,
    )


def inventory(
    *, trust_config: Path | None = None, instance: Path | None = None, batch: int = 10
) -> list[dict[str, Any]]:
    """The model inventory as a registry of digests: every release in the log (all entries are read
    and verified, ``batch`` per request as Rekor allows), grouped by source model, with validations
    and a status: validated / not validated / superseded (a newer release of the same source exists)."""
    client, cfg = _log_client(trust_config, instance)
    events: list[AuditEvent] = []
    try:
        latest = client.checkpoint()
        for start in range(0, latest.size, batch):
            answers = client.retrieve(list(range(start, min(latest.size, start + batch))))
            for a in answers:
                try:
                    events.append(_verify_event(client.verify_entry(a, latest), client, cfg))
                except LogMisbehaved as exc:
                    events.append(AuditEvent(0, "other", -1, "", "", "", False, problems=[str(exc)]))
    except LogUnreachable as exc:
        raise OperationalError(f"log unreachable: {exc}", url=client.log.base_url) from None
    except LogMisbehaved as exc:
        raise OperationalError(f"log does not verify: {exc}", url=client.log.base_url) from None
    validations: dict[str, list[AuditEvent]] = {}
    for e in events:
        if e.kind == "validation" and e.ok:
            validations.setdefault(str(e.details.get("root")), []).append(e)
    releases = sorted((e for e in events if e.kind == "release" and e.ok), key=lambda e: (e.time, e.log_index))
    newest: dict[str, AuditEvent] = {}
    for e in releases:
        newest[str(e.details.get("source_digest"))] = e
    rows = []
    for e in releases:
        root, source = str(e.details.get("root")), str(e.details.get("source_digest"))
        vals = validations.get(root, [])
        status = (
            "superseded"
            if newest[source] is not e and newest[source].details.get("root") != root
            else "validated"
            if vals
            else "not validated"
        )
        scheme = e.details.get("scheme", {})
        rows.append(
            {
                "model": f"sha256:{source}",
                "manifest_root": f"sha256:{root}",
                "released": e.time,
                "log_index": e.log_index,
                "builder": e.details.get("builder"),
                "signer": e.signer,
                "scheme": f"{scheme.get('id')} {scheme.get('bits')}b/g{scheme.get('group_size')}",
                "validations": len(vals),
                "last_validation": vals[-1].details.get("metrics") if vals else None,
                "status": status,
            }
        )
    bad = [e for e in events if not e.ok and e.kind in ("release", "validation")]
    for e in bad:
        rows.append(
            {
                "model": "?",
                "manifest_root": str(e.details.get("root", "?")),
                "released": e.time,
                "log_index": e.log_index,
                "status": "DOES NOT VERIFY: " + "; ".join(e.problems),
            }
        )
    return rows
