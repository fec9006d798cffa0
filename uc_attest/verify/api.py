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
from typing import TYPE_CHECKING, assert_never

from ..anchors import CaChain, OmsSignature, PublicKey, SignatureMethod, SigstoreIdentity
from ..core.device import Device
from ..core.ruleid import RuleId
from ..errors import Finding, InvalidInput, MalformedPack, MissingExtra, UsageError, VerificationFailed
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
from .anchor import (
    Anchor,
    KeptManifest,
    OmsAnchor,
    PackAnchor,
    PackItself,
    PolicyAnchor,
    SignedBy,
    TrustGiven,
    pack_anchor,
    require_anchor,
)
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


def policy_trust(pol: Policy, base: Path, trust: TrustGiven | None, offline: bool) -> Trust:
    """The trust root a policy names (paths relative to the policy file), unless one is given explicitly."""
    from ..signing.trust import resolve_trust, select_trust

    if trust is not None:
        return resolve_trust(trust, offline=offline)
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
    anchor: PackAnchor
    title: str = ""
    policy_name: str = ""
    device: Device | str = Device.AUTO

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
    anchor: PackAnchor,
    *,
    device: Device | str = Device.AUTO,
    online: bool = True,
    now: float | None = None,
    runtime: Runtime | None = None,
) -> Prepared:
    """Gather what a verification needs before the pack's tensors are read (see :func:`verify`)."""
    anchor = pack_anchor(anchor)
    pack_dir = Path(pack_dir)
    if not pack_dir.is_dir():
        what = "is not a directory" if pack_dir.exists() else "does not exist"
        raise InvalidInput(f"{pack_dir}: the pack directory {what}", path=str(pack_dir))
    facts = local.new_facts(pack_dir, time.time() if now is None else now)
    facts.runtime = runtime
    match anchor:
        case KeptManifest(path=kept):
            return _unsigned(facts, anchor, kept, device)
        case PackItself():
            return _unsigned(facts, anchor, None, device)
        case PolicyAnchor() | SignedBy():
            return _signed(facts, anchor, device, online)
    assert_never(anchor)


def _unsigned(facts: Facts, anchor: KeptManifest | PackItself, kept: Path | None, device: Device | str) -> Prepared:
    """Without a signer there is nothing to verify against but a readable manifest (the kept one, or the pack's)."""
    expected = local.expected_manifest(facts, kept)
    if expected is None:
        pack_dir = facts.pack.dir
        raise MalformedPack(facts.pack_error or f"{pack_dir}: no manifest", path=str(pack_dir))
    return Prepared(facts, pack_rules(), expected, anchor, device=device)


def _signed(facts: Facts, anchor: PolicyAnchor | SignedBy, device: Device | str, online: bool) -> Prepared:
    from ..evidence.identity import signer_under
    from ..policy.model import read_policy
    from ..signing.trust import resolve_trust
    from . import gather

    pack_dir = facts.pack.dir
    pol: Policy | None = None  # a policy anchor's (it alone has one)
    asked: tuple[Path, ...] | None = None  # its validation bundles (None: the one beside the pack)
    title = ""
    if isinstance(anchor, PolicyAnchor):
        pol, base = read_policy(anchor.path)
        if pol.validation is None and anchor.validations:  # evidence handed over is never silently dropped
            raise UsageError(
                "{0} given, but {policy} has no validation section: the policy names no validators or rule to "
                "check it under",
                option="validations",
                policy=str(anchor.path),
            )
        trust = policy_trust(pol, base, anchor.trust, not online)
        signers: Sequence[SignerLike] = pol.signers.release
        if Device.parse(device) is Device.AUTO:  # a device given is kept (an unknown one fails the rebuild check)
            device = pol.rebuild.device
        asked, title = anchor.validations, f"under {anchor.path}"
    else:
        trust = resolve_trust(anchor.trust, offline=not online)
        signers = [signer_under(anchor.identity, anchor.issuer, trust)]
    release = Path(anchor.bundle or default_bundle(pack_dir))
    if not release.is_file():
        raise InvalidInput(f"{release}: bundle not found", path=str(release))
    gather.release_evidence(facts, release, trust, signers)
    gather.online_log(facts, trust, online)
    expected = local.expected_manifest(facts)
    if pol is not None and pol.validation is not None:
        vals = _default_validations(pack_dir) if asked is None else list(asked)
        gather.validations(facts, vals, trust, pol.signers.validator, online=online)
    # a policy's rules all run whatever the evidence (an OMS signature fails those it cannot answer);
    # without a policy, the defaults of the evidence kind
    rules = release_rules(pol) if pol is not None or facts.oms is None else oms_default_rules()
    return Prepared(facts, rules, expected, anchor, title, pol.name if pol else "", device)


@dataclass(frozen=True)
class Rebuild:
    """A rebuild from ``source``: re-quantized on ``device`` (auto, cpu or cuda; auto under a policy: its
    ``rebuild.device``) and compared with the pack byte for byte."""

    source: Path
    device: Device | str = Device.AUTO


@dataclass(frozen=True)
class TensorCheck:
    """How every tensor is checked: by ``workers`` (None: the cores), telling ``progress``; ``shard_digests``:
    also hash every shard file against its signed digest (byte-identical files; without it each shard is proven
    by its tensors, every served byte matched: docs/security.md). ``split``: under torchrun, the ranks split the
    tensors and each returns the one check (every rank must verify; without it each process checks alone, whatever
    its environment says: docs/distributed.md)."""

    workers: int | None = None
    progress: Progress | None = None
    shard_digests: bool = False
    split: bool = False


def verify(
    pack_dir: Path,
    anchor: Anchor,
    *,
    rebuild: Rebuild | None = None,
    tensors: TensorCheck | None = TensorCheck(),
    online: bool = True,
    now: float | None = None,
    runtime: Runtime | None = None,
) -> Verdict:
    """Verify a pack against its ``anchor`` (each anchor carries its trust root; a policy its own unless it is
    given one); returns a Verdict (``.ok`` = allowed, ``.exit_code``) with every check and finding. An
    :class:`OmsAnchor` verifies a plain model directory (:func:`verify_oms_model`). ``online=False``: the log is
    not asked again. ``rebuild``: re-quantize the source and compare byte for byte (PyTorch: without it,
    :class:`~uc_attest.MissingExtra` before anything is checked). ``tensors``: how every
    tensor is checked (None: not at all). ``runtime``: the one the deployment will serve with
    (``uc_attest.serving_runtime(mode)``), for policy ``validation.runtime: match``."""
    anchor = require_anchor(anchor)
    if isinstance(anchor, OmsAnchor):
        if rebuild is not None or (tensors is not None and tensors.shard_digests) or runtime is not None:
            raise UsageError("an OMS signature verifies a plain model directory: no rebuild, shards or runtime")
        return verify_oms_model(pack_dir, anchor, online=online)
    if isinstance(anchor, PackItself | KeptManifest) and tensors is None:  # nothing would read a byte of the shards
        raise UsageError(
            "an unsigned anchor (pack_itself, kept_manifest) proves the pack only by its tensors: "
            "tensors=None leaves nothing to check"
        )
    if isinstance(anchor, KeptManifest) and rebuild is not None:
        raise UsageError("a kept manifest cannot be combined with a rebuild (the rebuild uses the pack's manifest)")
    if rebuild is not None:  # re-quantizing is torch's: refused before a signature or a tensor is checked
        MissingExtra.require("torch", "a rebuild")
    device = rebuild.device if rebuild is not None else Device.AUTO
    prep = prepare(pack_dir, anchor, device=device, online=online, now=now, runtime=runtime)
    if tensors is not None and prep.expected is not None:
        local.tensors(
            prep.facts,
            prep.expected,
            workers=tensors.workers,
            progress=tensors.progress,
            shard_digests=tensors.shard_digests,
            split=tensors.split,
        )
    if rebuild is not None:
        local.rebuilt(prep.facts, Path(rebuild.source), prep.device, prep.expected.manifest if prep.expected else None)
    return prep.verdict()


def gate(
    pack_dir: Path,
    policy: PolicyAnchor | Path | str,
    *,
    now: float | None = None,
    online: bool = True,
    runtime: Runtime | None = None,
) -> Verdict:
    """ "Did the deployed manifest change since the last validation?" — the validation rule alone, required,
    for the pack's current manifest root (no tensor decoding: pair it with verify for integrity). ``policy``: a
    :class:`PolicyAnchor` (its validation bundles, default <pack>.validation.sigstore.json; its trust root, default
    the policy's), or a policy file. Each validation meets the evidence rules of its role (log entry, timestamps,
    the online re-check) and, under ``validation.runtime: match``, was measured on ``runtime`` (the deployment's)."""
    from ..policy.model import read_policy
    from . import gather

    anchor = policy if isinstance(policy, PolicyAnchor) else PolicyAnchor(Path(policy))
    pol, base = read_policy(anchor.path)
    if pol.validation is None:
        raise UsageError(f"{anchor.path}: the policy has no validation section; the gate needs one")
    trust = policy_trust(pol, base, anchor.trust, not online)
    facts = local.new_facts(Path(pack_dir), time.time() if now is None else now)
    facts.runtime = runtime
    gather.validations(
        facts,
        _default_validations(pack_dir) if anchor.validations is None else anchor.validations,
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


def check_rebuild(
    pack_dir: Path, source_dir: Path, device: Device | str = Device.AUTO, *, workers: int | None = None
) -> Verdict:
    """The quick reproducibility check: the pack against its manifest, and a rebuild from source."""
    return verify(pack_dir, Anchor.pack_itself(), rebuild=Rebuild(source_dir, device), tensors=TensorCheck(workers))


def verify_oms_model(model_dir: Path, anchor: OmsAnchor | OmsSignature, *, online: bool = True) -> Verdict:
    """A plain model directory against its OpenSSF Model Signing signature (no pack): the signature by its method
    (a sigstore identity under its trust root, a public key, or a private PKI's CA certificates, identity/issuer
    then optional and matched against the leaf) and every file, each named when missing, extra or changed. A
    bundle that does not verify is a failed ``oms.signature`` check."""
    from ..errors import SignatureInvalid
    from ..evidence.packing import verify_source
    from ..evidence.timestamps import TimestampInvalid

    signature = anchor.signature if isinstance(anchor, OmsAnchor) else anchor
    model_dir = Path(model_dir)
    if not signature.file.exists():
        raise InvalidInput(f"{signature.file}: signature not found", path=str(signature.file))
    if not signature.file.is_file():
        raise InvalidInput(f"{signature.file}: not a regular file (the signature)", path=str(signature.file))
    title = f"OpenSSF Model Signing signature {signature.file.name}"
    try:
        r = verify_source(model_dir, signature, offline=not online)
    except SignatureInvalid as exc:
        rule = exc.rule if isinstance(exc, TimestampInvalid) else RuleId.OMS_SIGNATURE
        check = Check.of(rule, False, exc.problem, expected=_expected_signer(signature.method))
        return Verdict(model_dir, [check], title=title)
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
    v = Verdict(model_dir, checks, title=title, signer=r.signer)
    v.files_checked = len(r.claim.resources)
    return v


def _expected_signer(method: SignatureMethod) -> str:
    """Who an OMS method expected, for a failed signature check."""
    match method:
        case SigstoreIdentity(identity=identity, issuer=issuer, trust=trust):
            from ..signing.trust import resolve_trust

            return f"{identity} via {issuer or resolve_trust(trust).default_issuer()}"
        case PublicKey(path=key):
            return str(key)
        case CaChain(path=chain, signer=who):
            return f"a certificate chaining to {chain}" + (f", {who.identity} issued by {who.issuer}" if who else "")
    assert_never(method)
