"""Attest a pack: build the provenance statement, sign it (DSSE via Sigstore), log it, save the bundle."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError, VerificationFailed
from .fsutil import atomic_write_bytes
from .pack import MANIFEST_NAME, load_manifest
from .provenance import BuildInfo, build_statement, default_versions
from .signing import load_trust_config, resolve_identity_token, sign_statement
from .trust import TrustSelection
from .verifier import check_files

DEFAULT_DEV_IDENTITY = "release-bot@uc-attest.dev"


def default_bundle_path(pack_dir: Path) -> Path:
    """``<pack>.sigstore.json`` beside the pack directory (inside it would be an unlisted file)."""
    p = Path(pack_dir).absolute()
    return p.with_name(p.name + ".sigstore.json")


def builder_id() -> str:
    """The workflow identity in GitHub Actions, a local builder URN otherwise."""
    ref = os.environ.get("GITHUB_WORKFLOW_REF")
    if ref:
        return f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{ref}"
    return f"urn:uc-attest:local-builder:{getpass.getuser()}@{socket.gethostname()}"


@dataclass(frozen=True)
class AttestResult:
    bundle: Path
    root: str
    log_index: int
    statement_bytes: int
    manifest_inline: bool
    identity: str


def attest_pack(
    pack_dir: Path,
    trust: TrustSelection,
    *,
    identity_token: str | None = None,
    dev_identity: str | None = None,
    bundle_out: Path | None = None,
    inline: str = "auto",
    pack_device: str = "unrecorded",
) -> AttestResult:
    """Sign and log the provenance of ``pack_dir``; the pack's files must match its manifest."""
    if inline not in ("auto", "always", "never"):
        raise UsageError(f"--inline-manifest must be auto, always or never, got {inline!r}")
    started = dt.datetime.now(dt.UTC)
    pack_dir = Path(pack_dir)
    manifest = load_manifest(pack_dir / MANIFEST_NAME)
    findings = check_files(pack_dir, manifest)
    if findings:
        raise VerificationFailed(findings)
    manifest_bytes = (pack_dir / MANIFEST_NAME).read_bytes()
    config = load_trust_config(trust.trust_config_path)
    token = _token(trust, identity_token, dev_identity)
    info = BuildInfo(
        builder_id=builder_id(),
        source_name=_source_name(pack_dir),
        source_uri="",
        device=pack_device,
        versions=default_versions(pack_device),
        started=started,
        finished=dt.datetime.now(dt.UTC),
        invocation_id=os.environ.get("GITHUB_RUN_ID", ""),
    )
    statement = build_statement(manifest, manifest_bytes, info, inline)
    bundle_json = sign_statement(statement, config, token)
    out = bundle_out or default_bundle_path(pack_dir)
    atomic_write_bytes(out, bundle_json.encode())
    import json

    entry = json.loads(bundle_json)["verificationMaterial"]["tlogEntries"][0]
    size = len(json.dumps(statement, separators=(",", ":")).encode())
    byproduct = statement["predicate"]["runDetails"]["byproducts"][0]
    return AttestResult(
        out, manifest.root.hex, int(entry["logIndex"]), size, "content" in byproduct, str(token.identity)
    )


def _source_name(pack_dir: Path) -> str:
    import json

    try:
        cfg: dict[str, Any] = json.loads((pack_dir / "config.json").read_text())
        return str(cfg.get("_name_or_path") or cfg.get("model_type") or pack_dir.name)
    except (OSError, ValueError):
        return pack_dir.name


def _token(trust: TrustSelection, explicit: str | None, dev_identity: str | None) -> Any:
    if trust.instance_dir is not None and not explicit and not os.environ.get("SIGSTORE_IDENTITY_TOKEN"):
        from sigstore.oidc import IdentityToken

        from .instance.oidc import mint_token
        from .instance.state import InstanceState

        state = InstanceState.load(trust.instance_dir)
        return IdentityToken(mint_token(state.oidc_key, state.issuer, dev_identity or DEFAULT_DEV_IDENTITY))
    if dev_identity:
        raise UsageError("--identity only applies to the embedded instance (--instance DIR)")
    return resolve_identity_token(explicit)


def default_validation_bundle(pack_dir: Path) -> Path:
    """``<pack>.validation.sigstore.json`` beside the pack directory."""
    p = Path(pack_dir).absolute()
    return p.with_name(p.name + ".validation.sigstore.json")


@dataclass(frozen=True)
class ValidateResult:
    bundle: Path
    root: str
    log_index: int
    identity: str
    metrics: dict[str, float]


def validate_pack(
    pack_dir: Path,
    report_path: Path,
    trust: TrustSelection,
    *,
    identity_token: str | None = None,
    dev_identity: str | None = None,
    bundle_out: Path | None = None,
) -> ValidateResult:
    """The validator signs "this report describes exactly this reconstruction" (subject = manifest root).

    The pack is checked against its own manifest first (every tensor): a validator signs only
    what is really on disk.
    """
    import json

    from .provenance import build_validation_statement, load_report
    from .verifier import check_pack

    report = load_report(report_path)
    pc = check_pack(Path(pack_dir))
    if pc.findings:
        raise VerificationFailed(pc.findings)
    statement = build_validation_statement(pc.root.hex, report, dt.datetime.now(dt.UTC))
    token = _token(trust, identity_token, dev_identity)
    bundle_json = sign_statement(statement, load_trust_config(trust.trust_config_path), token)
    out = bundle_out or default_validation_bundle(pack_dir)
    atomic_write_bytes(out, bundle_json.encode())
    entry = json.loads(bundle_json)["verificationMaterial"]["tlogEntries"][0]
    return ValidateResult(out, pc.root.hex, int(entry["logIndex"]), str(token.identity), report.metrics)
