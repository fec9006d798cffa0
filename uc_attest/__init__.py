"""uc-attest: the model in production is the model that was validated, as a cryptographic check.

The typed facade: the stage functions and every result type. The CLI imports only from here.
Importing it imports only the error tree, the manifest and the pack reader (NumPy): each stage imports
what it needs when it is called (torch to pack and serve, sigstore to sign and verify bundles), and the
result types of those stages load on first use (``uc.Verdict``...), so ``benchmarks/gpu_check.sh`` runs
where only torch, NumPy and safetensors are installed, and the CLI starts fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The audit and verify packages (whose __init__ import nothing) are imported here, before the functions of
# the same names are defined: a first import of a subpackage sets the parent's attribute, which would
# otherwise replace ``uc.audit`` / ``uc.verify`` by the package when a stage first runs.
from . import audit as _audit_package  # noqa: F401
from . import verify as _verify_package  # noqa: F401
from .errors import (
    EXIT_DENIED,
    EXIT_INTERNAL,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_OPERATIONAL,
    EXIT_USAGE,
    Finding,
    InvalidInput,
    LogMisbehaved,
    LogUnreachable,
    MalformedBundle,
    MalformedModel,
    MalformedPack,
    MalformedSafetensors,
    OperationalError,
    SignatureInvalid,
    UcAttestError,
    UnsupportedTensor,
    UsageError,
    VerificationFailed,
)
from .manifest import Manifest, TensorEntry
from .pack import MANIFEST_NAME, PackCheck, load_manifest
from .quant import DEFAULT_SCHEME, Scheme
from .quant.records import QuantRecord

if TYPE_CHECKING:
    from .audit.custody import AuditReport
    from .evidence.conformance import BundleVerified
    from .instance.http import InstanceServer
    from .instance.state import InstanceState
    from .pack.check import Progress
    from .pack.writer import PackResult
    from .policy.model import Policy
    from .policy.rules import Check
    from .runtime.serve import RunResult
    from .signing.attest import AttestResult, ValidateResult
    from .signing.trust import Trust
    from .transparency.follow import FollowResult
    from .transparency.monitor import WatchResult
    from .verify.reconstruct import Reconstruction
    from .verify.result import Verdict

__version__ = "0.1.0"


def scheme_from_options(
    *,
    bits: int = DEFAULT_SCHEME.bits,
    group_size: int = DEFAULT_SCHEME.group_size,
    scheme_id: str | None = None,
    bits_overrides: Sequence[str] | None = None,
    no_overrides: bool = False,
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> Scheme:
    """A scheme from command-line style options: the default scheme with what is given changed.

    ``bits_overrides`` are ``GLOB=BITS`` strings (the first matching glob sets a tensor's bits)."""
    base = DEFAULT_SCHEME
    overrides = base.bits_overrides
    if bits_overrides:
        try:
            overrides = tuple((g, int(b)) for g, b in (o.rsplit("=", 1) for o in bits_overrides))
        except ValueError:
            raise UsageError(f"--bits-override must be GLOB=BITS, got {list(bits_overrides)}") from None
    return Scheme(
        bits=bits,
        group_size=group_size,
        id=scheme_id or base.id,
        include=tuple(include) if include else base.include,
        exclude=tuple(exclude) if exclude else base.exclude,
        bits_overrides=() if no_overrides else overrides,
    )


def write_pack(
    source_dir: Path,
    out_dir: Path,
    scheme: Scheme = DEFAULT_SCHEME,
    device: str = "auto",
    *,
    force: bool = False,
    progress: Progress | None = None,
    calibration: Path | None = None,
    source_signature: Path | None = None,
    source_identity: str | None = None,
    source_issuer: str | None = None,
    source_key: Path | None = None,
    source_cert_chain: Path | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    calibrate: str = "none",
    calibration_text: Path | None = None,
    calibration_progress: Callable[[int, int], None] | None = None,
    bits_budget: float | None = None,
    budget_strict: bool = True,
    warn: Callable[[str], None] | None = None,
) -> PackResult:
    """Quantize a model directory into a new pack, all or nothing.

    ``calibration``: a calibration file (second moments per weight, :mod:`uc_attest.calibration`); its
    committed form is stored in the pack and drives error feedback (``uc-rht-ldlq/1``). Every name in
    it must be a quantized tensor of the model. The source is validated before torch is imported.
    Without a file, ``calibrate="auto"`` (the CLI's default) measures moments as
    :mod:`uc_attest.calibration.default` says — self-sampled for causal LMs, Python's docstrings or
    ``calibration_text`` for encoders — and, when the model cannot be run, packs without them after
    ``warn``; ``"required"`` then refuses (exit 3); ``"none"`` (the library's default) does not calibrate.
    How the moments were obtained is recorded in the manifest and the release provenance.

    ``bits_budget``: bits per quantized weight (codes, scales and zero-points) the measured allocation
    (:mod:`uc_attest.quant.allocate`) may spend: the tensors that gain most go up one bit; the choice is
    recorded in the scheme, so a rebuild does not measure again. ``budget_strict=False``: a budget the base
    widths already exceed means no allocation (the CLI's default budget), not an error.

    ``source_signature``: the source's OpenSSF Model Signing signature, verified first — sigstore method with
    ``source_identity``/``source_issuer`` under ``trust_config``/``instance``, key method with
    ``source_key``, or certificate method with ``source_cert_chain`` (a private PKI's CA certificates) — and kept in the pack, recorded in its manifest (and so in the release provenance). A
    source that does not verify, or a file the pack reads that it does not cover, refuses the pack."""
    from .source import ModelSource

    if Path(out_dir).exists() and not force:  # before any work: a pack can take minutes
        raise UsageError(f"{Path(out_dir).absolute()}: output already exists (use --force to replace it)",
                         path=str(out_dir))  # fmt: skip
    if calibration_text is not None:
        from .calibration.corpus import read_text_file

        read_text_file(Path(calibration_text))  # a FIFO, a device or a bad file refused before any work
    skip = _signature_inside(Path(source_dir), source_signature)
    src = ModelSource(Path(source_dir), skip)  # every header and the index checked: bad input fails fast
    read = [*src.shards, *src.extra_files]
    src.close()
    gate = None
    if source_signature is not None:
        gate = _source_gate(Path(source_dir), Path(source_signature), read, source_identity, source_issuer,
                            source_key, source_cert_chain, trust_config, instance)  # fmt: skip
    elif source_identity or source_issuer or source_key or source_cert_chain:
        raise UsageError("--source-identity/--source-issuer/--source-key/--source-cert-chain need --source-signature")
    import tempfile

    from .calibration import Calibration
    from .pack.writer import write_pack as _write_pack

    if calibrate not in ("auto", "required", "none"):
        raise UsageError(f"calibrate must be auto, required or none, not {calibrate!r}")
    if calibration is not None and calibration_text is not None:
        raise UsageError("--calibration (a moments file) and --calibration-text are exclusive")
    with tempfile.TemporaryDirectory(prefix="uc-calibration-") as tmp:
        cal_file, record = _moments_for(Path(source_dir), scheme, calibration, calibrate, calibration_text,
                                        calibration_progress, warn, Path(tmp))  # fmt: skip
        cal = Calibration(cal_file, scheme) if cal_file is not None else None
        try:
            if cal is not None:
                cal.check_names(Path(source_dir))
            if bits_budget is not None:
                from .pack.writer import resolve_device
                from .quant.allocate import allocate_bits

                scheme = allocate_bits(Path(source_dir), scheme, bits_budget, cal, resolve_device(device),
                                       strict=budget_strict)  # fmt: skip
            return _write_pack(
                Path(source_dir), Path(out_dir), scheme, device, force=force, progress=progress, moments=cal,
                source_signature=gate[0] if gate else None, signature_file=source_signature if gate else None,
                check_sources=gate[1] if gate else None, skip_files=skip, calibration=record,
            )  # fmt: skip
        finally:
            if cal is not None:
                cal.close()


def _moments_for(source_dir: Path, scheme: Scheme, file: Path | None, mode: str, text: Path | None,
                 progress: Callable[[int, int], None] | None, warn: Callable[[str], None] | None,
                 tmp: Path) -> tuple[Path | None, Any]:  # fmt: skip
    """The calibration file to pack with (given, measured now, or none) and its provenance record."""
    from .core.digest import sha256_file
    from .manifest import CalibrationRecord

    if file is not None:
        digest = sha256_file(Path(file)).hex if Path(file).is_file() else ""  # streamed, not read whole
        return Path(file), CalibrationRecord("moments-file", {"file": Path(file).name, "sha256": digest},
                                             "supplied")  # fmt: skip
    if not scheme.row_signs or (mode == "none" and text is None):
        if text is not None:
            raise UsageError(f"--calibration-text needs a feedback scheme (uc-rht-ldlq/1), not {scheme.id}")
        return None, None
    from .calibration.collect import CalibrationUnavailable
    from .calibration.corpus import read_text_file
    from .calibration.default import measure
    from .calibration.file import write
    from .source import read_json_object

    text_file = read_text_file(text) if text is not None else None  # exit 3 for an empty/binary/non-UTF-8 file
    try:
        measured = measure(source_dir, read_json_object(source_dir / "config.json", "config.json"), scheme,
                           text_file, progress)  # fmt: skip
    except CalibrationUnavailable as exc:
        if mode == "required" or text is not None:
            raise InvalidInput(f"{source_dir}: cannot calibrate: {exc}", path=str(source_dir)) from None
        if warn is not None:
            warn(f"calibration skipped: {exc}. {NO_CALIBRATION_COST} (--calibration-required refuses instead)")
        return None, None
    path = tmp / "calibration.safetensors"
    write(path, measured.moments, f"{measured.record.method} {measured.record.params}")
    return path, measured.record


#: What packing without calibration costs, as benchmarks/fidelity.py measured it (README, "Fidelity").
NO_CALIBRATION_COST = (
    "Without calibration the reconstruction error is 2.4-3.3x larger (all-MiniLM-L6-v2 at 5.29 bits per weight: "
    "1 - mean cosine 0.0082 vs 0.0034 on held-out text, 0.0072 vs 0.0022 on the development set)"
)


def _signature_inside(source_dir: Path, signature: Path | None) -> tuple[str, ...]:
    """The signature's path relative to the model directory when it lies inside it (not part of the model)."""
    if signature is None:
        return ()
    try:
        return (Path(signature).resolve().relative_to(Path(source_dir).resolve()).as_posix(),)
    except ValueError:
        return ()


def _source_gate(source_dir: Path, signature: Path, read: list[str], identity: str | None, issuer: str | None,
                 key: Path | None, cert_chain: Path | None, trust_config: Path | None,
                 instance: Path | None) -> Any:  # fmt: skip
    """Verify the source's OMS signature and return what the pack records and checks (evidence.oms)."""
    from .evidence.identity import SignerSpec
    from .evidence.oms import source_gate, verify_oms

    if cert_chain is not None:
        if key is not None or trust_config or instance or (bool(identity) != bool(issuer)):
            raise UsageError("--source-cert-chain: with both or neither of --source-identity/--source-issuer "
                             "(the issuing CA's DN), no --source-key/--trust-config/--instance")  # fmt: skip
        signers = [SignerSpec(issuer, identity)] if identity and issuer else None
        verified = verify_oms(source_dir, signature, signers=signers, cert_chain=cert_chain)
    elif key is not None:
        if identity or issuer:
            raise UsageError("--source-key is exclusive with --source-identity/--source-issuer")
        verified = verify_oms(source_dir, signature, key=key)
    else:
        trust = select_trust(trust_config, instance)
        iss = issuer or trust.default_issuer()
        if not identity or not iss:
            raise UsageError("--source-signature needs --source-identity and --source-issuer (or --source-key)")
        verified = verify_oms(source_dir, signature, trust=trust, signers=[SignerSpec(iss, identity)])
    if verified.findings:
        raise VerificationFailed(verified.findings)
    return source_gate(verified, source_dir, signature, read)


def push(pack_dir: Path, reference: str, *, plain_http: bool = False) -> Any:
    """Push a pack and the bundles beside it to an OCI registry (``oci://HOST/REPO[:TAG]``); a PushResult
    with the pack manifest's digest and what was uploaded (nothing the registry already has)."""
    from .oci import Reference, push_pack

    return push_pack(Path(pack_dir), Reference.parse(reference), plain_http=plain_http)


def pull(reference: str, out_dir: Path, *, plain_http: bool = False, force: bool = False) -> Any:
    """Pull a pack (by digest; a tag is resolved to one, which the result names) and its bundles: every blob
    checked against its descriptor while streaming, the directory written atomically."""
    from .oci import Reference, pull_pack

    return pull_pack(Reference.parse(reference), Path(out_dir), plain_http=plain_http, force=force)


def list_repository(reference: str, *, plain_http: bool = False) -> list[dict[str, Any]]:
    """What an OCI repository holds: tag -> digest -> manifest root -> referrer bundles by role -> status."""
    from .oci import Reference
    from .oci.artifact import list_repository as _list

    return _list(Reference.parse(reference), plain_http=plain_http)


def verify_oci(reference: str, *, plain_http: bool = False, **kwargs: Any) -> Verdict:
    """``verify`` of a pack in a registry: pulled (every blob checked) with its referrer bundles into a
    temporary directory that is removed afterwards; the verdict's first check names the digest verified."""
    import tempfile

    from .policy.rules import Check

    with tempfile.TemporaryDirectory(prefix="uc-oci-") as tmp:
        pulled = pull(reference, Path(tmp) / "pack", plain_http=plain_http)
        v = verify(Path(tmp) / "pack", **kwargs)
        v.checks.insert(0, Check.of("oci.pull", True, f"{reference} -> {pulled.digest}: {pulled.files} layers, "
                                    f"{len(pulled.bundles)} referrer bundle(s), every blob checked"))  # fmt: skip
        v.pack = Path(f"{reference.split('@')[0]}@{pulled.digest}")
        return v


def read_calibration_text(path: Path) -> list[str]:
    """The non-empty lines of a calibration text file; exit 3 naming it when empty, binary or not UTF-8."""
    from .calibration.corpus import read_text_file

    return read_text_file(Path(path)).lines


def calibrate(model_dir: Path, texts: list[str], output: Path, max_length: int = 128) -> dict[str, Any]:
    """Collect the second moments of every linear layer's input over ``texts`` (transformers) and
    write a calibration file; returns a summary."""
    import hashlib

    from .calibration import collect, write

    moments = collect(Path(model_dir), texts, max_length)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    write(Path(output), moments, f"{len(texts)} texts, sha256 {digest}, max_length {max_length}")
    return {"ok": True, "output": str(output), "tensors": len(moments), "texts": len(texts), "text_sha256": digest}


def select_trust(trust_config: Path | str | None, instance: Path | None, *, offline: bool = False) -> Trust:
    """Exactly one of a trust file (ClientTrustConfig or TrustedRoot), ``public-good``/``staging``, or an
    embedded instance directory. ``offline``: public-good / staging from the root sigstore-python ships."""
    from .signing.trust import select_trust as _select

    return _select(trust_config, instance, offline=offline)


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
    """Verify a pack: under a policy, against a bundle with identity and issuer, or against a (kept) manifest;
    every check run and reported (``Verdict.ok``, ``Verdict.exit_code``). ``online=False``: air-gapped."""
    from .verify.api import verify as _verify

    return _verify(
        Path(pack_dir),
        policy=policy,
        bundle=bundle,
        validations=validations,
        identity=identity,
        issuer=issuer,
        trust_config=trust_config,
        instance=instance,
        manifest=manifest,
        rebuild_from=rebuild_from,
        device=device,
        online=online,
        now=now,
        check_tensors=check_tensors,
        workers=workers,
        progress=progress,
    )


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
    """A plain model directory against its OpenSSF Model Signing signature (sigstore, key or certificate
    method)."""
    from .verify.api import verify_oms_model as _verify

    return _verify(Path(model_dir), Path(signature), identity=identity, issuer=issuer, trust_config=trust_config,
                   instance=instance, key=key, cert_chain=cert_chain, online=online)  # fmt: skip


def gate(
    pack_dir: Path, policy: Path, validations: Sequence[Path] | None = None, *, now: float | None = None
) -> Verdict:
    """The change gate: does this manifest root have a valid validation under the policy?"""
    from .verify.api import gate as _gate

    return _gate(Path(pack_dir), Path(policy), validations, now=now)


def check_pack(
    pack_dir: Path, manifest: Path | None = None, *, workers: int | None = None, progress: Progress | None = None
) -> PackCheck:
    """The pack against its own manifest or a separately kept one: every tensor and file (no signature)."""
    from .verify.api import check_pack as _check

    return _check(Path(pack_dir), manifest, workers=workers, progress=progress)


def verify_pack(
    pack_dir: Path, manifest: Path | None = None, *, workers: int | None = None, progress: Progress | None = None
) -> PackCheck:
    """Like :func:`check_pack`, raising :class:`VerificationFailed` that lists every finding."""
    from .verify.api import verify_pack as _verify_pack

    return _verify_pack(Path(pack_dir), manifest, workers=workers, progress=progress)


def check_rebuild(pack_dir: Path, source_dir: Path, device: str = "auto", *, workers: int | None = None) -> Verdict:
    """The pack against its manifest, and a rebuild from the source compared byte for byte."""
    from .verify.api import check_rebuild as _check_rebuild

    return _check_rebuild(Path(pack_dir), Path(source_dir), device, workers=workers)


def reconstruct(
    pack_dir: Path,
    out_dir: Path,
    *,
    policy: Path | None = None,
    bundle: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    validations: Sequence[Path] | None = None,
    manifest: Path | None = None,
    online: bool = True,
    force: bool = False,
) -> Reconstruction:
    """Verify the trust anchor, then write the reconstruction as a standard safetensors model directory, every
    tensor and file matched against the trusted manifest (nothing written on any finding). Without an anchor
    the pack's own manifest is used and ``.note`` says that only self-consistency was checked."""
    from .verify.reconstruct import reconstruct as _reconstruct

    return _reconstruct(
        Path(pack_dir),
        Path(out_dir),
        policy=policy,
        bundle=bundle,
        identity=identity,
        issuer=issuer,
        trust_config=trust_config,
        instance=instance,
        validations=validations,
        manifest=manifest,
        online=online,
        force=force,
    )


def load_trust_config(path: Path | str, *, offline: bool = False) -> Any:
    """The sigstore-python ``ClientTrustConfig`` of a trust file or ``public-good``/``staging``."""
    return select_trust(path, None, offline=offline).client_config


def attest_pack(
    pack_dir: Path,
    trust: Trust,
    *,
    identity_token: str | None = None,
    dev_identity: str | None = None,
    bundle_out: Path | None = None,
    inline: str = "auto",
    pack_device: str = "unrecorded",
    oms: bool = True,
    oms_out: Path | None = None,
) -> AttestResult:
    """Sign and log the provenance statement of a pack (its files must match its manifest) and, unless
    ``oms=False``, an OpenSSF Model Signing signature over its files (``PACK.model.sig``)."""
    from .signing.attest import attest_pack as _attest

    return _attest(
        Path(pack_dir), trust, identity_token=identity_token, dev_identity=dev_identity, bundle_out=bundle_out,
        inline=inline, pack_device=pack_device, oms=oms, oms_out=oms_out,
    )  # fmt: skip


def validate_pack(
    pack_dir: Path,
    report: Path,
    trust: Trust,
    *,
    identity_token: str | None = None,
    dev_identity: str | None = None,
    bundle_out: Path | None = None,
) -> ValidateResult:
    """Sign and log a validation attestation of the pack's exact reconstruction (every tensor checked first)."""
    from .signing.attest import validate_pack as _validate

    return _validate(
        Path(pack_dir),
        Path(report),
        trust,
        identity_token=identity_token,
        dev_identity=dev_identity,
        bundle_out=bundle_out,
    )


def load_verified(
    pack_dir: Path,
    *,
    policy: Path | None = None,
    bundle: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    validations: Sequence[Path] | None = None,
    manifest: Path | None = None,
    online: bool = True,
    insecure_trust_pack_manifest: bool = False,
) -> dict[str, Any]:
    """A torch state dict made of exactly the bytes that were hashed and matched against a trust anchor
    (a policy, a bundle with identity and issuer, or a separately kept manifest); raises otherwise."""
    from .runtime.loader import load_verified as _load

    return _load(
        Path(pack_dir),
        policy=policy,
        bundle=bundle,
        identity=identity,
        issuer=issuer,
        trust_config=trust_config,
        instance=instance,
        validations=validations,
        manifest=manifest,
        online=online,
        insecure_trust_pack_manifest=insecure_trust_pack_manifest,
    )


def load_model(
    pack_dir: Path,
    *,
    policy: Path | None = None,
    bundle: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    validations: Sequence[Path] | None = None,
    manifest: Path | None = None,
    online: bool = True,
    device: str = "cpu",
    dtype: Any = None,
    deep: bool = False,
    cache: bool = False,
    insecure_trust_pack_manifest: bool = False,
) -> Any:
    """A verified pack served as a torch module (transformers architecture) whose quantized Linear layers stay
    packed and decode by the contract formula; raises (nothing returned) on any finding. ``device``: cpu,
    cuda or auto; ``dtype``: a torch dtype to compute in (default: the source dtype); ``deep``: decode every
    layer once at load and match the manifest; ``cache``: keep decoded weights (memory for speed).
    The module's ``uc_attest`` attribute reports the verdict, notes and memory."""
    from .runtime.model import load_model as _load

    return _load(
        Path(pack_dir),
        policy=policy,
        bundle=bundle,
        identity=identity,
        issuer=issuer,
        trust_config=trust_config,
        instance=instance,
        validations=validations,
        manifest=manifest,
        online=online,
        device=device,
        dtype=dtype,
        deep=deep,
        cache=cache,
        insecure_trust_pack_manifest=insecure_trust_pack_manifest,
    )


def generate(
    pack_dir: Path,
    *,
    prompt: str | None = None,
    prompt_ids: list[int] | None = None,
    max_new_tokens: int = 16,
    policy: Path | None = None,
    bundle: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    manifest: Path | None = None,
    online: bool = True,
    device: str = "cpu",
    cache: bool = False,
) -> RunResult:
    """Verify and load a causal LM pack (packed), then generate greedily from a prompt (text or token ids)."""
    from .runtime.serve import generate as _generate

    model = load_model(
        pack_dir, policy=policy, bundle=bundle, identity=identity, issuer=issuer, trust_config=trust_config,
        instance=instance, manifest=manifest, online=online, device=device, cache=cache,
    )  # fmt: skip
    return _generate(model, Path(pack_dir), prompt=prompt, prompt_ids=prompt_ids, max_new_tokens=max_new_tokens)


def embed(
    pack_dir: Path,
    texts: list[str],
    *,
    policy: Path | None = None,
    bundle: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    manifest: Path | None = None,
    online: bool = True,
    device: str = "cpu",
) -> RunResult:
    """Verify and load an encoder pack (packed), then embed ``texts`` (mean pooling, normalised)."""
    from .runtime.serve import embed as _embed

    model = load_model(
        pack_dir, policy=policy, bundle=bundle, identity=identity, issuer=issuer, trust_config=trust_config,
        instance=instance, manifest=manifest, online=online, device=device,
    )  # fmt: skip
    return _embed(model, Path(pack_dir), texts)


def load_policy(path: Path) -> Policy:
    """Load and validate a policy file (errors name file, line and field)."""
    from .policy.model import load_policy as _load

    return _load(Path(path))[0]


def policy_schema() -> dict[str, Any]:
    from .policy.model import policy_schema as _schema

    return _schema()


def watch_log(
    state: Path,
    trust_config: Path | None = None,
    instance: Path | None = None,
    *,
    index: Path | None = None,
    identities: Sequence[str] = (),
    identity_regexes: Sequence[str] = (),
    digests: Sequence[str] = (),
    mirror: str | None = None,
) -> list[WatchResult | FollowResult]:
    """Witness every log of the trust root: Rekor v1 logs by checkpoint and consistency proof (``state``,
    JSON); tile logs (Rekor v2) by catching up from their tiles into the index (default beside ``state``),
    indexing the entries by the watched identities / digests (all when none). A fork, rollback or a tile
    or entry that does not verify → a failed result naming it. Unreachable log → OperationalError."""
    from .audit.custody import index_for
    from .audit.tilelog import follow_logs
    from .transparency.follow import TileIndex, Watch
    from .transparency.monitor import WatchResult, watch
    from .transparency.rekor_v1 import RekorClient

    trust = select_trust(trust_config, instance)
    w = Watch(tuple(identities), tuple(identity_regexes), tuple(digests))
    results: list[WatchResult | FollowResult] = []
    for log in trust.logs():
        try:
            results.append(watch(Path(state), RekorClient(log)))
        except LogMisbehaved as exc:
            results.append(WatchResult(log.base_url, None, None, False, exc.message))
    if trust.tile_logs():
        idx = TileIndex(index_for(Path(state), index))
        try:
            results += [r for r, _ in follow_logs(trust, idx, w, mirror)]
        finally:
            idx.close()
    return results


def audit(
    target: Path | None = None,
    *,
    manifest_root: str | None = None,
    digest: str | None = None,
    trust_config: Path | None = None,
    instance: Path | None = None,
    state: Path | None = None,
    index: Path | None = None,
    bundles: Sequence[Path] = (),
) -> AuditReport:
    """Find and verify every log entry about a pack / manifest root (``sha256:<hex>`` or hex) / digest.
    On a Rekor v2 log the pack's bundles and ``bundles`` are proven from the tiles; ``index`` (default
    beside ``state``; none: the log is scanned) lists every other entry by their signers."""
    from .audit.custody import audit as _audit
    from .core.digest import Digest

    root = None
    if manifest_root is not None:
        try:
            root = Digest.parse(manifest_root) if manifest_root.startswith("sha256:") else Digest(manifest_root)
        except ValueError:
            raise InvalidInput(f"--manifest-root {manifest_root!r} is not sha256:<64 hex>") from None
    trust = select_trust(trust_config, instance)
    return _audit(Path(target) if target else None, trust, manifest_root=root, digest=digest, state=state,
                  index=index, bundles=bundles)  # fmt: skip


def inventory(
    *,
    trust_config: Path | None = None,
    instance: Path | None = None,
    index: Path | None = None,
    bundle_dirs: Sequence[Path] = (),
) -> list[dict[str, Any]]:
    """Every release in the logs grouped by source model, with validations and status; bad entries listed.
    On a Rekor v2 log statements come from the bundles in ``bundle_dirs`` (the index: as in ``audit``)."""
    from .audit.inventory import inventory as _inventory

    return _inventory(select_trust(trust_config, instance), index=index, bundle_dirs=bundle_dirs)


def verify_any_bundle(
    bundle: Path,
    artifact: str,
    *,
    identity: str | None = None,
    issuer: str | None = None,
    key: Path | None = None,
    trusted_root: Path | None = None,
    staging: bool = False,
    require_tlog: bool = True,
) -> BundleVerified:
    """sigstore-conformance ``verify-bundle``: any Sigstore bundle, for auditors; both verifiers run (raises if
    it does not verify). ``require_tlog=False`` admits a bundle without a log entry (TSA-only)."""
    from .evidence.conformance import verify_any_bundle as _verify

    return _verify(
        Path(bundle), artifact, identity=identity, issuer=issuer, key=key, trusted_root=trusted_root,
        staging=staging, require_tlog=require_tlog,
    )  # fmt: skip


def render_report_html(report: dict[str, Any]) -> str:
    """The audit report as one self-contained HTML page (every untrusted field escaped)."""
    from .audit.report import render_html

    return render_html(report)


def write_report_html(report: dict[str, Any], path: Path) -> None:
    """Write the HTML audit report atomically (a reader sees the old file or the whole new one)."""
    from .core.fsutil import atomic_write_bytes

    atomic_write_bytes(Path(path), render_report_html(report).encode("utf-8"))


def init_instance(root: Path, port: int = 8787, *, force: bool = False, rekor_version: int = 2) -> InstanceState:
    """Create an embedded instance state directory (DEV: its issuer can mint any identity); its signing
    config prefers Rekor ``rekor_version`` (2: tiles + TSA timestamps; 1: Rekor v1 with its SET)."""
    from .instance.state import init_instance as _init

    return _init(root, port, force=force, rekor_version=rekor_version)


def load_instance(root: Path) -> InstanceState:
    from .instance.state import InstanceState as _State

    return _State.load(root)


def instance_server(root: Path, port: int | None = None, *, move: bool = False) -> InstanceServer:
    """The instance's HTTP service (``.start()`` in a thread, ``.serve_forever()``). Another port than the
    trust config names is refused unless ``move`` rewrites the trust config for it."""
    from .instance.http import InstanceServer as _Server

    return _Server(load_instance(root), port, move=move)


def dev_token(root: Path, identity: str, lifetime_s: int = 600) -> str:
    """Mint a dev identity token from an embedded instance's OIDC key."""
    from .instance.oidc import mint_token

    state = load_instance(root)
    return mint_token(state.oidc_key, state.issuer, identity, lifetime_s=lifetime_s)


__all__ = [
    "DEFAULT_SCHEME",
    "EXIT_DENIED",
    "EXIT_INTERNAL",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_OPERATIONAL",
    "EXIT_USAGE",
    "MANIFEST_NAME",
    "AttestResult",
    "AuditReport",
    "Check",
    "Finding",
    "InstanceServer",
    "InstanceState",
    "InvalidInput",
    "LogMisbehaved",
    "LogUnreachable",
    "MalformedBundle",
    "MalformedModel",
    "MalformedPack",
    "MalformedSafetensors",
    "Manifest",
    "OperationalError",
    "PackCheck",
    "PackResult",
    "Policy",
    "Progress",
    "QuantRecord",
    "Reconstruction",
    "RunResult",
    "Scheme",
    "SignatureInvalid",
    "TensorEntry",
    "Trust",
    "UcAttestError",
    "UnsupportedTensor",
    "UsageError",
    "ValidateResult",
    "Verdict",
    "VerificationFailed",
    "WatchResult",
    "__version__",
    "attest_pack",
    "audit",
    "calibrate",
    "check_pack",
    "check_rebuild",
    "dev_token",
    "embed",
    "gate",
    "generate",
    "init_instance",
    "instance_server",
    "inventory",
    "list_repository",
    "load_instance",
    "load_manifest",
    "load_model",
    "load_policy",
    "load_trust_config",
    "load_verified",
    "policy_schema",
    "pull",
    "push",
    "read_calibration_text",
    "reconstruct",
    "render_report_html",
    "scheme_from_options",
    "select_trust",
    "validate_pack",
    "verify",
    "verify_any_bundle",
    "verify_oci",
    "verify_pack",
    "watch_log",
    "write_pack",
    "write_report_html",
]


def __getattr__(name: str) -> Any:
    """Result types of stages that import torch or sigstore, loaded on first use (``uc.AttestResult``...)."""
    lazy = {
        "Check": ("policy.rules", "Check"),
        "Reconstruction": ("verify.reconstruct", "Reconstruction"),
        "Verdict": ("verify.result", "Verdict"),
        "AttestResult": ("signing.attest", "AttestResult"),
        "ValidateResult": ("signing.attest", "ValidateResult"),
        "AuditReport": ("audit.custody", "AuditReport"),
        "PackResult": ("pack.writer", "PackResult"),
        "Progress": ("pack.check", "Progress"),
        "Policy": ("policy.model", "Policy"),
        "RunResult": ("runtime.serve", "RunResult"),
        "Trust": ("signing.trust", "Trust"),
        "WatchResult": ("transparency.monitor", "WatchResult"),
        "InstanceServer": ("instance.http", "InstanceServer"),
        "InstanceState": ("instance.state", "InstanceState"),
    }
    if name not in lazy:
        raise AttributeError(f"module 'uc_attest' has no attribute {name!r}")
    import importlib

    module, attr = lazy[name]
    return getattr(importlib.import_module(f".{module}", __name__), attr)
