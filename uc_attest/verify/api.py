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

from ..errors import InvalidInput, MalformedPack, UsageError, VerificationFailed
from ..evidence.identity import SignerLike, SignerSpec
from ..manifest import Manifest
from ..pack.check import PackCheck, Progress
from ..pack.check import check_pack as _check_pack
from ..pack.facts import PackFacts, load_manifest
from ..policy.model import Policy, load_policy
from ..policy.rules import (
    Check,
    Facts,
    Rule,
    evaluate,
    last_validated,
    oms_rules,
    pack_rules,
    release_rules,
    validation,
)
from ..signing.attest import RELEASE_SUFFIX, VALIDATION_SUFFIX, bundle_beside
from ..signing.trust import Trust, select_trust
from . import gather
from .result import Verdict


def default_bundle(pack_dir: Path) -> Path:
    """``<pack>.sigstore.json`` beside the pack directory, where ``attest`` writes it."""
    return bundle_beside(pack_dir, RELEASE_SUFFIX)


def _default_validations(pack_dir: Path) -> list[Path]:
    p = bundle_beside(pack_dir, VALIDATION_SUFFIX)
    return [p] if p.is_file() else []


def policy_trust(pol: Policy, base: Path, trust_config: Path | None, instance: Path | None, offline: bool) -> Trust:
    """The trust root a policy names (paths relative to the policy file), unless one is given explicitly."""
    if trust_config is not None or instance is not None:
        return select_trust(trust_config, instance, offline=offline)
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
    expected: tuple[Manifest, str] | None
    title: str = ""
    policy_name: str = ""
    signed: bool = False
    device: str = "auto"

    def verdict(self) -> Verdict:
        v = _verdict(self.facts, evaluate(self.rules, self.facts), self.title, self.policy_name)
        v.manifest = self.expected[0] if self.expected else None
        if v.manifest is not None and v.root is None:
            v.root = v.manifest.root
        return v


def prepare(
    pack_dir: Path,
    *,
    policy: Path | None = None,
    bundle: Path | None = None,
    validations: Sequence[Path] | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    manifest: Path | None = None,
    device: str = "auto",
    online: bool = True,
    now: float | None = None,
) -> Prepared:
    """Gather what a verification needs before the pack's tensors are read (see :func:`verify`)."""
    pack_dir = Path(pack_dir)
    facts = gather.new_facts(pack_dir, time.time() if now is None else now)
    if bundle is None and policy is None and identity is not None:
        bundle = default_bundle(pack_dir)  # where attest wrote it
    signed = policy is not None or bundle is not None
    if manifest is not None and signed:
        raise UsageError("--manifest is exclusive with --policy/--bundle (they carry the signed manifest)")
    if not signed and (identity or issuer or trust_config or instance or validations):
        raise UsageError("--identity/--issuer/--trust-config/--instance/--validation need --bundle or --policy")
    pol: Policy | None = None
    if not signed:  # without a signer there is nothing to verify against but a readable manifest: invalid input
        expected = gather.expected_manifest(facts, manifest)
        if expected is None:
            raise MalformedPack(facts.pack_error or f"{pack_dir}: no manifest", path=str(pack_dir))
        return Prepared(facts, pack_rules(), expected, device=device)
    if policy is not None:
        pol, base = load_policy(policy)
        trust = policy_trust(pol, base, trust_config, instance, not online)
        signers: Sequence[SignerLike] = pol.signers.release
        device = device if device != "auto" else pol.rebuild.device
    else:
        trust = select_trust(trust_config, instance, offline=not online)
        iss = issuer or trust.default_issuer()
        if not identity or not iss:
            raise UsageError("--bundle needs --identity and --issuer (or a --policy naming the signers)")
        signers = [SignerSpec(iss, identity)]
    release = Path(bundle or default_bundle(pack_dir))
    if not release.is_file():
        raise InvalidInput(f"{release}: bundle not found", path=str(release))
    gather.release_evidence(facts, release, trust, signers)
    if online:
        gather.online_log(facts, trust)
    expected = gather.expected_manifest(facts)
    if pol is not None and pol.validation is not None:
        vals = _default_validations(pack_dir) if validations is None else validations
        gather.validations(facts, vals, trust, pol.signers.validator)
    title = "under " + str(policy) if policy else ""
    rules = oms_rules(pol) if facts.oms is not None else release_rules(pol)
    return Prepared(facts, rules, expected, title, pol.name if pol else "", True, device)


def verify(
    pack_dir: Path,
    *,
    policy: Path | None = None,
    bundle: Path | None = None,
    validations: Sequence[Path] | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    manifest: Path | None = None,
    rebuild_from: Path | None = None,
    device: str = "auto",
    online: bool = True,
    now: float | None = None,
    check_tensors: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
) -> Verdict:
    """Verify a pack; returns a Verdict (``.ok`` = allowed, ``.exit_code``) with every check and finding.

    * ``policy``: trust root, signers per role, constraints, validation, rebuild;
    * ``bundle`` + ``identity`` + ``issuer`` (+ trust): signature, log and pack checks, default rules;
    * else the pack against ``manifest`` (a separately kept, validated one) or its own, and a rebuild.

    ``online=False`` (``--offline``): the log is not asked again, and public-good / staging trust roots
    are the ones shipped with sigstore-python (no TUF update)."""
    if manifest is not None and rebuild_from is not None:
        raise UsageError("--manifest is exclusive with --rebuild-from (the rebuild uses the pack's manifest)")
    prep = prepare(
        pack_dir,
        policy=policy,
        bundle=bundle,
        validations=validations,
        identity=identity,
        issuer=issuer,
        trust_config=trust_config,
        instance=instance,
        manifest=manifest,
        device=device,
        online=online,
        now=now,
    )
    if check_tensors and prep.expected is not None:
        gather.tensors(prep.facts, prep.expected, workers=workers, progress=progress)
    if rebuild_from is not None:
        gather.rebuilt(prep.facts, Path(rebuild_from), prep.device, prep.expected[0] if prep.expected else None)
    return prep.verdict()


def gate(
    pack_dir: Path, policy: Path, validations: Sequence[Path] | None = None, *, now: float | None = None
) -> Verdict:
    """ "Did the deployed manifest change since the last validation?" — the validation rule alone, required,
    for the pack's current manifest root (no tensor decoding: pair it with verify for integrity)."""
    pol, base = load_policy(policy)
    if pol.validation is None:
        raise UsageError(f"{policy}: the policy has no validation section; the gate needs one")
    trust = policy_trust(pol, base, None, None, False)
    facts = gather.new_facts(Path(pack_dir), time.time() if now is None else now)
    gather.validations(
        facts, _default_validations(pack_dir) if validations is None else validations, trust, pol.signers.validator
    )
    v = _verdict(facts, evaluate([validation(pol, required=True)], facts), f"manifest root {facts.pack.root}", pol.name)
    v.root = facts.pack.root
    return v


def check_pack(
    pack_dir: Path, manifest: Path | None = None, *, workers: int | None = None, progress: Progress | None = None
) -> PackCheck:
    """The pack against its own manifest or a separately kept (validated) one: every tensor and file."""
    facts = PackFacts(Path(pack_dir))
    expected, source = (
        (load_manifest(manifest), str(manifest)) if manifest else (facts.manifest, str(facts.manifest_path))
    )
    return _check_pack(facts, expected, source, workers=workers, progress=progress)


def verify_pack(
    pack_dir: Path, manifest: Path | None = None, *, workers: int | None = None, progress: Progress | None = None
) -> PackCheck:
    """Like :func:`check_pack` but raises :class:`VerificationFailed` listing every finding."""
    result = check_pack(pack_dir, manifest, workers=workers, progress=progress)
    if not result.ok:
        raise VerificationFailed(result.findings)
    return result


def check_rebuild(pack_dir: Path, source_dir: Path, device: str = "auto", *, workers: int | None = None) -> Verdict:
    """The quick reproducibility check: the pack against its manifest, and a rebuild from source."""
    return verify(pack_dir, rebuild_from=source_dir, device=device, workers=workers)


def verify_oms_model(
    model_dir: Path,
    signature: Path,
    *,
    identity: str | None = None,
    issuer: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    key: Path | None = None,
    cert_chain: Path | None = None,
    online: bool = True,
) -> Verdict:
    """A plain model directory against its OpenSSF Model Signing signature (no pack): the signature (sigstore
    with ``identity``/``issuer`` under a trust root, ``key``, or ``cert_chain`` — a private PKI's CA
    certificates, ``identity``/``issuer`` then optional and matched against the leaf) and every file, each
    named when missing, extra or changed. A bundle that does not verify is a failed ``oms.signature`` check."""
    from ..errors import SignatureInvalid
    from ..evidence.oms import verify_oms

    model_dir, signature = Path(model_dir), Path(signature)
    if not signature.is_file():
        raise InvalidInput(f"{signature}: signature not found", path=str(signature))
    if key is not None and (identity or issuer or trust_config or instance or cert_chain):
        raise UsageError("--key is exclusive with --identity/--issuer/--trust-config/--instance/--cert-chain")
    signers: list[SignerLike] | None = None
    trust = None
    if cert_chain is not None:
        if trust_config or instance:
            raise UsageError("--cert-chain (a private PKI) is exclusive with --trust-config/--instance")
        if bool(identity) != bool(issuer):
            raise UsageError("with --cert-chain, give both or neither of --identity/--issuer (the CA's DN, RFC 4514)")
        signers = [SignerSpec(issuer, identity)] if identity and issuer else None
    elif key is None:
        trust = select_trust(trust_config, instance, offline=not online)
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
        rule = getattr(exc, "rule", "oms.signature")
        check = Check.of(rule if rule != "release.signer" else "oms.signature", False, exc.problem, expected=expected)
        return Verdict(model_dir, [check], title=f"OpenSSF Model Signing signature {signature.name}")
    checks = [
        Check.of("oms.signature", True, f"{r.signer} ({r.method}; verified by {' and '.join(r.verified_by)})"),
        Check.of(
            "oms.files",
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
