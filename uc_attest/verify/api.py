"""The verifier of the product: one pipeline (gather facts → rules → Verdict) for every way it is asked.

* a policy: trust root, signers per role, constraints, validation, rebuild;
* a bundle with identity and issuer (and a trust root): signature, log and pack checks, default rules;
* a separately kept (validated) manifest, or the pack's own: every tensor and file, and a rebuild if asked.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.ruleid import RuleId
from ..errors import Finding, InvalidInput, MalformedPack, UsageError, VerificationFailed
from ..pack.check import PackCheck, Progress
from ..pack.check import check_pack as _check_pack
from ..pack.facts import PackFacts, load_manifest
from ..policy.rules import (
    Check,
    Facts,
    Rule,
    evaluate,
    last_validated,
    oms_default_rules,
    pack_rules,
    release_rules,
    validation,
)
from . import local
from .anchor import Anchor, AnchorKind, require_anchor
from .local import Expected
from .result import Verdict

if TYPE_CHECKING:  # the signature stack and the policy model are imported by the paths that check a signer
    from ..claims.validation import Runtime
    from ..evidence.identity import SignerLike
    from ..policy.model import Policy
    from ..signing.trust import Trust


def default_bundle(pack_dir: Path) -> Path:
    """``<pack>.sigstore.json`` beside the pack directory, where ``attest`` writes it."""
    from ..signing.attest import RELEASE_SUFFIX, bundle_beside

    return bundle_beside(pack_dir, RELEASE_SUFFIX)


def _default_validations(pack_dir: Path) -> list[Path]:
    from ..signing.attest import VALIDATION_SUFFIX, bundle_beside

    p = bundle_beside(pack_dir, VALIDATION_SUFFIX)
    return [p] if p.is_file() else []


def policy_trust(pol: Policy, base: Path, trust: Trust | None, offline: bool) -> Trust:
    """The trust root a policy names (paths relative to the policy file), unless one is given explicitly."""
    from ..signing.trust import select_trust

    if trust is not None:
        return trust
    return select_trust(
        base / pol.trust.trust_config if pol.trust.trust_config else None,
        base / pol.trust.instance if pol.trust.instance else None,
        offline=offline,
    )


def _verdict(facts: Facts, checks: list[Check], title: str, policy: str = "") -> Verdict:
    v = Verdict(facts.pack.dir, checks, title=title, policy=policy)
    if facts.evidence is not None:
        v.signer = str(facts.evidence.signer)
        v.log_index = facts.evidence.log.index if facts.evidence.log else None
    if facts.pack_check is not None:
        pc = facts.pack_check
        v.root, v.manifest_source = pc.root, pc.manifest_source
        v.tensors_checked, v.files_checked = pc.tensors_checked, pc.files_checked
    if facts.claim is not None:
        v.root = facts.claim.root
    last = last_validated(facts)
    v.last_validated_root = last.root if last else None
    if facts.rebuild is not None and facts.rebuild.error is None:
        v.timings["rebuild"] = round(facts.rebuild.seconds, 3)
    return v


@dataclass
class Prepared:
    """A verification with its evidence, claims and expected manifest gathered, before the pack's bulk is read:
    ``verify`` then checks every tensor, a loader reads the pack once (recording file digests in
    ``facts.pack``); :meth:`verdict` runs the rules over whatever was gathered."""

    facts: Facts
    rules: list[Rule]
    expected: Expected | None
    anchor: Anchor
    title: str = ""
    policy_name: str = ""
    device: str = "auto"

    @property
    def signed(self) -> bool:
        return self.anchor.signed

    def verdict(self) -> Verdict:
        v = _verdict(self.facts, evaluate(self.rules, self.facts), self.title, self.policy_name)
        v.manifest = self.expected.manifest if self.expected else None
        v.anchor = self.anchor.describe()
        if v.manifest is not None and v.root is None:
            v.root = v.manifest.root
        return v

    def refuse_early(self) -> Expected:
        """Refuse (VerificationFailed) when the signature, identity or claims failed, before the bulk is read;
        else the manifest the pack must match."""
        if self.facts.evidence_error or self.facts.claim_error or self.expected is None:
            early = self.verdict()
            raise VerificationFailed(
                early.failures() or [Finding(str(self.facts.pack.dir), self.facts.pack_error or "no manifest")]
            )
        return self.expected


def prepare(
    pack_dir: Path,
    anchor: Anchor,
    trust: Trust | None = None,
    *,
    device: str = "auto",
    online: bool = True,
    now: float | None = None,
    runtime: Runtime | None = None,
) -> Prepared:
    """Gather what a verification needs before the pack's tensors are read (see :func:`verify`)."""
    anchor = require_anchor(anchor)
    pack_dir = Path(pack_dir)
    if not pack_dir.is_dir():
        what = "is not a directory" if pack_dir.exists() else "does not exist"
        raise InvalidInput(f"{pack_dir}: the pack directory {what}", path=str(pack_dir))
    facts = local.new_facts(pack_dir, time.time() if now is None else now)
    facts.runtime = runtime
    if anchor.kind is AnchorKind.OMS:
        raise UsageError("an OMS signature anchors a plain model directory: use verify_oms_model")
    if not anchor.signed:  # without a signer there is nothing to verify against but a readable manifest
        if trust is not None:
            raise UsageError("--trust-config/--instance need a signer (--identity or --policy)")
        expected = local.expected_manifest(facts, anchor.manifest)
        if expected is None:
            raise MalformedPack(facts.pack_error or f"{pack_dir}: no manifest", path=str(pack_dir))
        return Prepared(facts, pack_rules(), expected, anchor, device=device)
    from ..evidence.identity import SignerSpec
    from ..policy.model import read_policy
    from . import gather

    pol: Policy | None = None
    if anchor.kind is AnchorKind.POLICY:
        assert anchor.policy_file is not None
        pol, base = read_policy(anchor.policy_file)
        trust = policy_trust(pol, base, trust, not online)
        signers: Sequence[SignerLike] = pol.signers.release
        device = device if device != "auto" else pol.rebuild.device
    else:
        if trust is None:
            raise UsageError("a signer is checked under a trust root: give --instance DIR or --trust-config F")
        iss = anchor.issuer or trust.default_issuer()
        if not anchor.identity or not iss:
            raise UsageError("--identity needs --issuer (or a trust root with a default issuer, e.g. --instance)")
        signers = [SignerSpec(iss, anchor.identity)]
    release = Path(anchor.bundle or default_bundle(pack_dir))
    if not release.is_file():
        raise InvalidInput(f"{release}: bundle not found", path=str(release))
    gather.release_evidence(facts, release, trust, signers)
    gather.online_log(facts, trust, online)
    expected = local.expected_manifest(facts)
    if pol is not None and pol.validation is not None:
        vals = _default_validations(pack_dir) if anchor.validations is None else list(anchor.validations)
        gather.validations(facts, vals, trust, pol.signers.validator, online=online)
    title = f"under {anchor.policy_file}" if pol is not None else ""
    # a policy's rules all run whatever the evidence (an OMS signature fails those it cannot answer);
    # without a policy, the defaults of the evidence kind
    rules = release_rules(pol) if pol is not None or facts.oms is None else oms_default_rules()
    return Prepared(facts, rules, expected, anchor, title, pol.name if pol else "", device)


def verify(
    pack_dir: Path,
    anchor: Anchor,
    trust: Trust | None = None,
    *,
    rebuild_from: Path | None = None,
    device: str = "auto",
    online: bool = True,
    now: float | None = None,
    check_tensors: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
    shard_digests: bool = False,
    runtime: Runtime | None = None,
) -> Verdict:
    """Verify a pack against its ``anchor`` (under ``trust``, or the policy's own trust root); returns a
    Verdict (``.ok`` = allowed, ``.exit_code``) with every check and finding. ``online=False`` (``--offline``):
    the log is not asked again. ``rebuild_from``: re-quantize the source and compare byte for byte.
    ``shard_digests``: also hash every shard file against its signed digest (byte-identical files; without it
    each shard is proven by its tensors, every served byte matched: docs/security.md). ``runtime``: the one the
    deployment will serve with (``uc_attest.serving_runtime(mode)``), for policy ``validation.runtime: match``."""
    anchor = require_anchor(anchor)
    if anchor.kind is AnchorKind.MANIFEST and rebuild_from is not None:
        raise UsageError("--manifest is exclusive with --rebuild-from (the rebuild uses the pack's manifest)")
    prep = prepare(pack_dir, anchor, trust, device=device, online=online, now=now, runtime=runtime)
    if check_tensors and prep.expected is not None:
        local.tensors(prep.facts, prep.expected, workers=workers, progress=progress, shard_digests=shard_digests)
    if rebuild_from is not None:
        local.rebuilt(prep.facts, Path(rebuild_from), prep.device, prep.expected.manifest if prep.expected else None)
    return prep.verdict()


def gate(
    pack_dir: Path,
    policy: Path,
    validations: Sequence[Path] | None = None,
    *,
    now: float | None = None,
    online: bool = True,
    runtime: Runtime | None = None,
) -> Verdict:
    """ "Did the deployed manifest change since the last validation?" — the validation rule alone, required,
    for the pack's current manifest root (no tensor decoding: pair it with verify for integrity). Each
    validation meets the evidence rules of its role (log entry, timestamps, the online re-check) and, under
    ``validation.runtime: match``, was measured on ``runtime`` (the deployment's)."""
    from ..policy.model import read_policy
    from . import gather

    pol, base = read_policy(policy)
    if pol.validation is None:
        raise UsageError(f"{policy}: the policy has no validation section; the gate needs one")
    trust = policy_trust(pol, base, None, not online)
    facts = local.new_facts(Path(pack_dir), time.time() if now is None else now)
    facts.runtime = runtime
    gather.validations(
        facts,
        _default_validations(pack_dir) if validations is None else validations,
        trust,
        pol.signers.validator,
        online=online,
    )
    v = _verdict(facts, evaluate([validation(pol, required=True)], facts), f"manifest root {facts.pack.root}", pol.name)
    v.root = facts.pack.root
    return v


def check_pack(
    pack_dir: Path,
    manifest: Path | None = None,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    shard_digests: bool = False,
) -> PackCheck:
    """The pack against a separately kept (validated) manifest, or against its own — then the result says
    ``integrity_only`` (no signer checked): every tensor and file (a shard's own digest with ``shard_digests``)."""
    facts = PackFacts(Path(pack_dir))
    expected, source = (
        (load_manifest(manifest), str(manifest)) if manifest else (facts.manifest, str(facts.manifest_path))
    )
    result = _check_pack(facts, expected, source, workers=workers, progress=progress, shard_digests=shard_digests)
    result.integrity_only = manifest is None
    return result


def verify_pack(
    pack_dir: Path,
    manifest: Path | None = None,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    shard_digests: bool = False,
) -> PackCheck:
    """Like :func:`check_pack` but raises :class:`VerificationFailed` listing every finding."""
    result = check_pack(pack_dir, manifest, workers=workers, progress=progress, shard_digests=shard_digests)
    if not result.ok:
        raise VerificationFailed(result.findings)
    return result


def check_rebuild(pack_dir: Path, source_dir: Path, device: str = "auto", *, workers: int | None = None) -> Verdict:
    """The quick reproducibility check: the pack against its manifest, and a rebuild from source."""
    return verify(pack_dir, Anchor.pack_itself(), rebuild_from=source_dir, device=device, workers=workers)


def verify_oms_model(model_dir: Path, anchor: Anchor, trust: Trust | None = None, *, online: bool = True) -> Verdict:
    """A plain model directory against its OpenSSF Model Signing signature (no pack): the signature (``anchor``
    from ``Anchor.oms_signed_by`` under ``trust``, ``Anchor.oms_key``, or ``Anchor.oms_certificate`` — a private
    PKI's CA certificates, identity/issuer then optional and matched against the leaf) and every file, each
    named when missing, extra or changed. A bundle that does not verify is a failed ``oms.signature`` check."""
    from ..errors import SignatureInvalid
    from ..evidence.identity import SignerSpec
    from ..evidence.oms import verify_oms
    from ..evidence.timestamps import TimestampInvalid
    from ..manifest import OmsMethod

    if anchor.kind is not AnchorKind.OMS or anchor.bundle is None:
        raise UsageError("verify_oms_model needs an OMS anchor (Anchor.oms_signed_by / oms_key / oms_certificate)")
    model_dir, signature = Path(model_dir), anchor.bundle
    identity, issuer, key, cert_chain = anchor.identity, anchor.issuer, anchor.key, anchor.cert_chain
    if not signature.is_file():
        raise InvalidInput(f"{signature}: signature not found", path=str(signature))
    signers: list[SignerLike] | None = None
    if anchor.oms_method is not OmsMethod.SIGSTORE:
        if trust is not None:
            raise UsageError("--key/--cert-chain are exclusive with --trust-config/--instance")
        signers = [SignerSpec(issuer, identity)] if identity and issuer else None
    else:
        if trust is None:
            raise UsageError("--oms-signature with --identity needs a trust root: --instance DIR or --trust-config F")
        iss = issuer or trust.default_issuer()
        if not identity or not iss:
            raise UsageError("--oms-signature needs --identity and --issuer (or --key)")
        signers = [SignerSpec(iss, identity)]
    try:
        r = verify_oms(model_dir, signature, trust=trust, signers=signers, key=key, cert_chain=cert_chain)
    except SignatureInvalid as exc:
        expected = f"{identity} via {issuer or (trust.default_issuer() if trust else '')}" if key is None else str(key)
        if cert_chain is not None:
            expected = f"a certificate chaining to {cert_chain}" + (
                f", {identity} issued by {issuer}" if identity else ""
            )
        rule = exc.rule if isinstance(exc, TimestampInvalid) else RuleId.OMS_SIGNATURE
        check = Check.of(rule, False, exc.problem, expected=expected)
        return Verdict(model_dir, [check], title=f"OpenSSF Model Signing signature {signature.name}")
    checks = [
        Check.of(RuleId.OMS_SIGNATURE, True, f"{r.signer} ({r.method}; verified by {' and '.join(r.verified_by)})"),
        Check.of(
            RuleId.OMS_FILES,
            r.ok,
            f"{len(r.claim.resources)} signed files ({r.claim.serialization.method}, "
            f"{r.claim.serialization.hash_type})",
            findings=r.findings,
            hint="the directory is not the signed model" if r.findings else None,
        ),
    ]
    v = Verdict(model_dir, checks, title=f"OpenSSF Model Signing signature {signature.name}", signer=r.signer)
    v.files_checked = len(r.claim.resources)
    return v
