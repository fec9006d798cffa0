"""The attest stages: sign and log what a pack is (release provenance) and that it was validated.

A pack is checked against its own manifest before anything is signed (every file for a release, every
tensor for a validation): a signer signs only what is really on disk. Bundles are written atomically
beside the pack (inside it they would be unlisted files).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import getpass
import os
import socket
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..claims.oms import FILES_SHA256, build_oms, scan
from ..claims.slsa import BuildInfo, ManifestInline, build_statement, default_versions
from ..claims.validation import Runtime, build_validation_statement, load_report
from ..core.digest import Digest
from ..core.fsutil import atomic_write_bytes
from ..core.x509names import cert_identities
from ..errors import UsageError, VerificationFailed
from ..instance.state import DEV_RISK
from ..pack.check import check_files, check_pack
from ..pack.facts import PackFacts
from .sign import DEV_VALIDATOR_IDENTITY, sign_statement, sign_statements
from .sign import identity_token as token_for
from .trust import Trust

RELEASE_SUFFIX, VALIDATION_SUFFIX = ".sigstore.json", ".validation.sigstore.json"
#: The pack's OpenSSF Model Signing signature, beside the pack (``model_signing verify --signature`` reads it).
OMS_SUFFIX = ".model.sig"


def bundle_beside(pack_dir: Path, suffix: str) -> Path:
    """``<pack><suffix>`` beside the pack directory."""
    p = Path(pack_dir).absolute()
    return p.with_name(p.name + suffix)


def builder_id() -> str:
    """The workflow identity in GitHub Actions, a local builder URN otherwise."""
    ref = os.environ.get("GITHUB_WORKFLOW_REF")
    if ref:
        return f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{ref}"
    return f"urn:uc-attest:local-builder:{getpass.getuser()}@{socket.gethostname()}"


def _oms_beside(bundle_out: Path | None) -> Path | None:
    """With an explicit release bundle path ``X.sigstore.json``, the OMS signature goes to ``X.model.sig``."""
    if bundle_out is None:
        return None
    name = Path(bundle_out).name
    return Path(bundle_out).with_name(name.removesuffix(RELEASE_SUFFIX) + OMS_SUFFIX)


@dataclass(frozen=True)
class AttestResult:
    bundle: Path
    root: Digest
    log_index: int | None
    statement_bytes: int
    manifest_inline: bool
    identity: str
    oms_bundle: Path | None = None  # the OMS signature of the pack (None with oms=False)
    oms_log_index: int | None = None
    oms_statement_bytes: int = 0
    dev_instance: bool = False  # signed through an embedded DEV instance (its issuer can mint any identity)

    def to_dict(self) -> dict[str, Any]:
        """What ``attest --json`` prints; a DEV instance's signature carries its warning."""
        out: dict[str, Any] = {
            "ok": True,
            "bundle": str(self.bundle),
            "root": str(self.root),
            "log_index": self.log_index,
            "identity": self.identity,
            "statement_bytes": self.statement_bytes,
            "manifest_inline": self.manifest_inline,
            "oms_signature": str(self.oms_bundle) if self.oms_bundle else None,
            "oms_log_index": self.oms_log_index,
            "oms_statement_bytes": self.oms_statement_bytes,
        }
        if self.dev_instance:
            out["warning"] = f"signed by a DEV instance: {DEV_RISK}"
        return out


def _source_name(facts: PackFacts) -> str:
    import json

    try:
        cfg = json.loads((facts.dir / "config.json").read_text())
        return str(cfg.get("_name_or_path") or cfg.get("model_type") or facts.dir.name)
    except (OSError, ValueError, AttributeError):
        return facts.dir.name


@dataclass(frozen=True)
class SignAs:
    """Who signs: ``identity_token``, an OIDC identity token (else ``SIGSTORE_IDENTITY_TOKEN`` or ambient CI),
    or, through an embedded instance without one, a token it mints for ``dev_identity`` (else the role's own)."""

    identity_token: str | None = None
    dev_identity: str | None = None


def attest_pack(
    pack_dir: Path,
    trust: Trust,
    *,
    sign_as: SignAs | None = None,
    bundle_out: Path | None = None,
    inline: ManifestInline | str = ManifestInline.AUTO,
    pack_device: str = "unrecorded",
    oms: bool = True,
    oms_out: Path | None = None,
) -> AttestResult:
    """Sign and log the provenance of ``pack_dir`` and (``oms``) an OpenSSF Model Signing statement over its
    files, with one signer (``sign_as``, None: ``SignAs()``); its files must match its manifest. Both bundles are
    written only once both are signed (each atomically)."""
    try:
        how = ManifestInline(inline)
    except ValueError:
        raise UsageError("{0} must be auto, always or never, got {inline!r}", option="inline", inline=inline) from None
    started = dt.datetime.now(dt.UTC)
    facts = PackFacts(Path(pack_dir))
    findings = check_files(facts, facts.manifest)
    if findings:
        raise VerificationFailed(findings)
    sign_as = SignAs() if sign_as is None else sign_as
    token = token_for(trust, sign_as.identity_token, sign_as.dev_identity)
    info = BuildInfo(
        builder_id=builder_id(),
        source_name=_source_name(facts),
        source_uri="",
        device=pack_device,
        versions=default_versions(pack_device),
        started=started,
        finished=dt.datetime.now(dt.UTC),
        invocation_id=os.environ.get("GITHUB_RUN_ID", ""),
    )
    statement = build_statement(facts.manifest, facts.manifest_bytes, info, how)
    statements = [statement]
    if oms:
        statements.append(build_oms(facts.dir.name, scan(facts.dir, FILES_SHA256)))
    signed = sign_statements(statements, trust, token)
    out = bundle_out or bundle_beside(facts.dir, RELEASE_SUFFIX)
    oms_path = (oms_out or _oms_beside(bundle_out) or bundle_beside(facts.dir, OMS_SUFFIX)) if oms else None
    atomic_write_bytes(out, signed[0].json.encode())
    if oms_path is not None:
        atomic_write_bytes(oms_path, signed[1].json.encode())
    byproduct = statement["predicate"]["runDetails"]["byproducts"][0]
    return AttestResult(
        out,
        facts.root,
        signed[0].log_index,
        signed[0].statement_bytes,
        "content" in byproduct,
        signed[0].identity,
        oms_path,
        signed[1].log_index if oms else None,
        signed[1].statement_bytes if oms else 0,
        dev_instance=trust.instance_dir is not None,
    )


GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


def token_identities(token: Any) -> set[str]:
    """The identities a certificate issued for ``token`` will name: sigstore-python's identity claim and, for a
    GitHub Actions token (whose identity claim is ``sub``), the workflow URI Fulcio puts in the SAN."""
    out = {str(token.identity)}
    claims = getattr(token, "_unverified_claims", None) or {}
    ref = claims.get("job_workflow_ref") if claims.get("iss") == GITHUB_ISSUER else None
    if isinstance(ref, str) and ref:
        out.add(f"https://github.com/{ref}")
    return out


def certificate_identities(bundle_json: str) -> set[str]:
    """The SAN identities of the signing certificate in a bundle this process just wrote (empty if none)."""
    import base64
    import json

    from cryptography import x509

    try:
        vm = json.loads(bundle_json)["verificationMaterial"]
        raw = (vm.get("certificate") or vm["x509CertificateChain"]["certificates"][0])["rawBytes"]
        return set(cert_identities(x509.load_der_x509_certificate(base64.b64decode(raw))))
    except (KeyError, IndexError, TypeError, ValueError):
        return set()


@dataclass(frozen=True)
class ValidateResult:
    bundle: Path
    root: Digest
    log_index: int | None
    identity: str
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """What ``validate --json`` prints."""
        return {
            "ok": True,
            "bundle": str(self.bundle),
            "root": str(self.root),
            "log_index": self.log_index,
            "identity": self.identity,
            "metrics": self.metrics,
        }


def validate_pack(
    pack_dir: Path,
    report_path: Path,
    trust: Trust,
    *,
    sign_as: SignAs | None = None,
    bundle_out: Path | None = None,
    release_signers: Collection[str] = (),
    runtime: Runtime | None = None,
) -> ValidateResult:
    """The validator signs "this report describes exactly this reconstruction" (subject = manifest root),
    after checking every tensor of the pack against its manifest; signed as ``sign_as`` says (None: ``SignAs()``).
    ``release_signers``: identities that signed the release; signing the validation as one of them is refused
    (separation of duties). ``runtime``: the one the metrics were measured with, signed with them (a report may
    name it itself; both must then agree)."""
    report = load_report(Path(report_path))
    if runtime is not None:
        if report.runtime is not None and report.runtime != runtime:
            raise UsageError(f"{report_path}: the report names runtime {report.runtime.id!r}, not {runtime.id!r}")
        report = dataclasses.replace(report, runtime=runtime)
    facts = PackFacts(Path(pack_dir))
    pc = check_pack(facts, facts.manifest, str(facts.manifest_path))
    if pc.findings:
        raise VerificationFailed(pc.findings)
    sign_as = SignAs() if sign_as is None else sign_as
    token = token_for(trust, sign_as.identity_token, sign_as.dev_identity, DEV_VALIDATOR_IDENTITY)
    same = token_identities(token) & set(release_signers)
    if same:
        raise UsageError(
            "{signer} signed the release of this pack: a validation by the same identity breaks the separation of "
            "duties; sign as the validator ({0}, or its own token), or allow it explicitly ({1:=()})",
            option=["dev_identity", "release_signers"],
            signer=min(same),
        )
    statement = build_validation_statement(pc.root, report, dt.datetime.now(dt.UTC))
    signed = sign_statement(statement, trust, token)
    same = certificate_identities(signed.json) & set(release_signers)
    if same:  # the certificate names an identity the token did not show: refuse before anything is written
        raise UsageError(
            "the validation was signed as {signer}, which signed the release of this pack: nothing was written "
            "(the log holds the entry); sign as the validator, or {0:=()}",
            option="release_signers",
            signer=min(same),
        )
    out = bundle_out or bundle_beside(facts.dir, VALIDATION_SUFFIX)
    atomic_write_bytes(out, signed.json.encode())
    return ValidateResult(out, pc.root, signed.log_index, signed.identity, report.metrics)
