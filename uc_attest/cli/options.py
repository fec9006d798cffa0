"""Option groups: a command's flags parsed into the facade's typed values.

A command parameter annotated ``Annotated[T, Group(build)]`` is not one option but ``build``'s parameters,
each a flag with its own typer annotation (or a group in turn); the command is called with ``build(**those
flags)``, one typed value. A flag two groups share (``--no-overrides``: no overrides, and so no allocation) is
one option, given to both. The builders hold the checks of flag combinations, in the flags' own words; a
command's groups are built in its signature's order, a ``Group(..., last=True)`` after the others (its refusals
after theirs, whatever the order of the flags in the help).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

import typer

import uc_attest as uc

from . import render

F = TypeVar("F", bound=Callable[..., Any])

TrustOpt = Annotated[
    Path | None, typer.Option(help="sigstore ClientTrustConfig or TrustedRoot file, or public-good / staging.")
]
InstanceOpt = Annotated[Path | None, typer.Option(help="Embedded instance directory (its trust root).")]
NoOverridesOpt = Annotated[
    bool, typer.Option("--no-overrides", help="Same bits for every tensor: no --bits-override, no allocation.")
]


@dataclass(frozen=True)
class Group:
    """An option group: ``build``'s parameters are the flags, its result the command's value; ``last``: built
    after the command's other groups."""

    build: Callable[..., Any]
    last: bool = False

    def _own(self) -> list[inspect.Parameter]:
        return list(inspect.signature(self.build, eval_str=True).parameters.values())

    def parameters(self) -> list[inspect.Parameter]:
        """The flags: ``build``'s parameters, a nested group's flags in its place."""
        flags: dict[str, inspect.Parameter] = {}
        for p in self._own():
            sub = _group_of(p)
            for flag in sub.parameters() if sub else [p]:
                flags.setdefault(flag.name, flag)
        return list(flags.values())

    def value(self, flags: dict[str, Any]) -> Any:
        """``build`` called with its flags' values (a nested group's value built first)."""
        return self.build(**{p.name: g.value(flags) if (g := _group_of(p)) else flags[p.name] for p in self._own()})


def _group_of(p: inspect.Parameter) -> Group | None:
    return next((m for m in get_args(p.annotation)[1:] if isinstance(m, Group)), None)


def grouped(fn: F) -> F:
    """``fn`` as typer sees it: each :class:`Group` parameter replaced by its builder's flags (module docstring)."""
    own = inspect.signature(fn, eval_str=True)
    exposed: dict[str, inspect.Parameter] = {}
    groups: dict[str, Group] = {}
    for p in own.parameters.values():
        group = _group_of(p)
        if group is None:
            exposed[p.name] = p
            continue
        groups[p.name] = group
        for flag in group.parameters():
            exposed.setdefault(flag.name, flag)
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in exposed.values()]

    @functools.wraps(fn)
    def wrapper(**flags: Any) -> Any:
        values = {name: g.value(flags) for name, g in sorted(groups.items(), key=lambda item: item[1].last)}
        return fn(**{n: v for n, v in flags.items() if n in own.parameters and n not in groups}, **values)

    wrapper.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper  # type: ignore[return-value]


def scheme_options(
    bits: Annotated[int, typer.Option(help="Bits per weight code (2-8).")] = uc.PACK_SCHEME.bits,
    group_size: Annotated[
        int, typer.Option(help="Weights per scale/zero-point group (multiple of 8; a power of two when rotated).")
    ] = uc.PACK_SCHEME.group_size,
    scheme_id: Annotated[
        str,
        typer.Option(
            "--scheme",
            help="uc-rht-ldlq/2 (the default), uc-rht-ldlq/3 (feedback across groups), uc-rht-ldlq/1, uc-rht-clip/1, uc-affine-clip/1 or uc-rtn/1.",
        ),
    ] = uc.PACK_SCHEME.id,
    bits_override: Annotated[
        list[str] | None,
        typer.Option(help="GLOB=BITS: bits for matching tensors (repeatable; the allocation starts from them)."),
    ] = None,
    no_overrides: NoOverridesOpt = False,
    include: Annotated[list[str] | None, typer.Option(help="Glob of tensor names to quantize (repeatable).")] = None,
    exclude: Annotated[list[str] | None, typer.Option(help="Glob of tensor names to keep as stored.")] = None,
) -> uc.Scheme:
    """The pack's scheme."""
    return uc.scheme_from_options(
        bits=bits,
        group_size=group_size,
        scheme_id=scheme_id,
        bits_overrides=bits_override,
        no_overrides=no_overrides,
        include=include,
        exclude=exclude,
    )


def calibration_options(
    calibration: Annotated[
        Path | None,
        typer.Option(
            help="Calibration file (second moments per weight, from `uc-attest calibrate`): errors are fed "
            "forward through them; their committed form is stored in the pack."
        ),
    ] = None,
    calibration_text: Annotated[
        Path | None,
        typer.Option(help="Your own calibration text (UTF-8, one sample per line) instead of the default."),
    ] = None,
    no_calibration: Annotated[
        bool,
        typer.Option("--no-calibration", help="Do not calibrate (the reconstruction error roughly doubles; printed)."),
    ] = False,
    calibration_required: Annotated[
        bool,
        typer.Option(
            "--calibration-required",
            help="Exit 3 when the model cannot be run for calibration (default: warn, pack without).",
        ),
    ] = False,
) -> uc.Calibration | uc.MomentsFile | None:
    """How the pack calibrates (None: not at all)."""
    if no_calibration and (calibration or calibration_text or calibration_required):
        raise uc.UsageError("--no-calibration excludes --calibration, --calibration-text and --calibration-required")
    if calibration is not None and calibration_text is not None:
        raise uc.UsageError("--calibration (a moments file) and --calibration-text are exclusive")
    if no_calibration:
        return None
    if calibration is not None:
        return uc.MomentsFile(calibration)
    mode = uc.CalibrationMode.REQUIRED if calibration_required else uc.CalibrationMode.AUTO
    return uc.Calibration(mode, calibration_text)


def allocation_options(
    ctx: typer.Context,
    bits_budget: Annotated[
        float,
        typer.Option(
            help="Bits per quantized weight (codes, scales, zero-points) the measured allocation may spend "
            "(not given: none spent when the base widths already exceed the default; given: exit 2 then)."
        ),
    ] = uc.DEFAULT_BUDGET,
    no_allocation: Annotated[
        bool,
        typer.Option("--no-allocation", help="No measured allocation: the same bits everywhere, or --bits-override."),
    ] = False,
    no_overrides: NoOverridesOpt = False,
) -> uc.Allocation | None:
    """The measured bit allocation (None: none). A budget given must be met; whether it was given is the
    parser's answer (the option's source: click's ``ParameterSource``), not a comparison with the default."""
    if no_allocation or no_overrides:
        return None
    source = ctx.get_parameter_source("bits_budget")
    if source is None or source is type(source).DEFAULT:
        return uc.Allocation()
    return uc.Allocation(bits_budget, strict=True)


def source_signature_options(
    source_signature: Annotated[
        Path | None, typer.Option(help="The source's OpenSSF Model Signing signature: verified first, recorded.")
    ] = None,
    source_identity: Annotated[str | None, typer.Option(help="Who must have signed the source (sigstore).")] = None,
    source_issuer: Annotated[str | None, typer.Option(help="Their OIDC issuer (default with --instance).")] = None,
    source_key: Annotated[Path | None, typer.Option(help="The source signer's public key (key method).")] = None,
    source_cert_chain: Annotated[
        Path | None,
        typer.Option(help="CA certificates (PEM) the source's signing certificate chains to (certificate method)."),
    ] = None,
    trust_config: TrustOpt = None,
    instance: InstanceOpt = None,
) -> uc.OmsSignature | None:
    """The source's signature with its method (None: an unsigned source)."""
    if source_signature is None:  # every source flag without the signature is refused, never ignored
        if source_identity or source_issuer or source_key or source_cert_chain or trust_config or instance:
            raise uc.UsageError(
                "--source-identity/--source-issuer/--source-key/--source-cert-chain/--trust-config/--instance "
                "need --source-signature"
            )
        return None
    if source_cert_chain is not None:
        if source_key is not None or trust_config or instance or (bool(source_identity) != bool(source_issuer)):
            raise uc.UsageError(
                "--source-cert-chain: with both or neither of --source-identity/--source-issuer "
                "(the issuing CA's DN), no --source-key/--trust-config/--instance"
            )
        signer = uc.CaSigner(source_identity, source_issuer) if source_identity and source_issuer else None
        return uc.OmsSignature(source_signature, uc.CaChain(source_cert_chain, signer))
    if source_key is not None:
        if source_identity or source_issuer or trust_config or instance:
            raise uc.UsageError(
                "--source-key is exclusive with --source-identity/--source-issuer/--trust-config/--instance"
            )
        return uc.OmsSignature(source_signature, uc.PublicKey(source_key))
    trust = _trust(trust_config, instance)
    if not source_identity:
        raise uc.UsageError("--source-signature needs --source-identity and --source-issuer (or --source-key)")
    return uc.OmsSignature(source_signature, uc.SigstoreIdentity(source_identity, source_issuer, trust))


def _trust(trust_config: Path | None, instance: Path | None) -> uc.TrustFile | uc.TrustInstance:
    if trust_config is not None and instance is None:
        return uc.TrustFile(trust_config)
    if instance is not None and trust_config is None:
        return uc.TrustInstance(instance)
    raise uc.UsageError("give exactly one of --trust-config FILE or --instance DIR")


PolicyOpt = Annotated[Path | None, typer.Option(help="Trust anchor: a policy file (signers, log, validation).")]
ManifestOpt = Annotated[Path | None, typer.Option(help="Trust anchor: a separately kept, validated manifest.")]
BundleOpt = Annotated[
    Path | None, typer.Option(help="The release bundle (default: <pack>.sigstore.json), with --policy or --identity.")
]
ValidationOpt = Annotated[
    list[Path] | None,
    typer.Option(help="With --policy: validation bundle(s) (default: <pack>.validation.sigstore.json)."),
]
IdentityOpt = Annotated[
    str | None, typer.Option(help="Trust anchor: the signer identity, exact (without --policy), under a trust root.")
]
IssuerOpt = Annotated[
    str | None, typer.Option(help="With --identity: the OIDC issuer (default with --instance: its own).")
]
IntegrityOpt = Annotated[
    bool,
    typer.Option(
        help="No trust anchor: check the pack against its own manifest only (whoever can write the pack can "
        "rewrite it; the output says so)."
    ),
]


def anchor_flags(
    policy: Path | None,
    manifest: Path | None,
    bundle: Path | None,
    validation: list[Path] | None,
    identity: str | None,
    issuer: str | None,
    trust_config: Path | None,
    instance: Path | None,
) -> uc.ServingAnchor | None:
    """The anchor the flags name (None: none); a contradictory or incomplete combination is refused here, at
    parse time, in the flags' words."""
    trust = None if trust_config is None and instance is None else _trust(trust_config, instance)
    if policy is not None:
        if identity or issuer:
            raise uc.UsageError("--identity/--issuer go without --policy: identities come from the policy's signers")
        if manifest is not None:
            raise uc.UsageError("--policy and --manifest are exclusive: give one trust anchor")
        return uc.PolicyAnchor(policy, tuple(validation) if validation else None, bundle, trust)
    if validation:
        raise uc.UsageError("--validation goes with --policy (the policy names the validators)")
    if manifest is not None:
        if identity or bundle is not None:
            raise uc.UsageError("--manifest and --bundle/--identity are exclusive: give one trust anchor")
    elif identity or bundle is not None:
        if not identity:
            raise uc.UsageError("--bundle needs --identity (and --issuer, or a trust root with a default issuer)")
        if trust is None:
            raise uc.UsageError("a signer is checked under a trust root: give --instance DIR or --trust-config F")
        if not issuer and isinstance(trust, uc.TrustFile):
            raise uc.UsageError("--identity needs --issuer (or a trust root with a default issuer, e.g. --instance)")
        return uc.SignedBy(identity, issuer, trust, bundle)
    if issuer:
        raise uc.UsageError("--issuer goes with --identity")
    if trust is not None:
        raise uc.UsageError("--trust-config/--instance need a signer (--identity or --policy)")
    return None if manifest is None else uc.KeptManifest(manifest)


def anchor_options(
    policy: PolicyOpt = None,
    manifest: ManifestOpt = None,
    bundle: BundleOpt = None,
    identity: IdentityOpt = None,
    issuer: IssuerOpt = None,
    trust_config: TrustOpt = None,
    instance: InstanceOpt = None,
    integrity_only: IntegrityOpt = False,
) -> uc.PackAnchor:
    """The pack's trust anchor; none is a usage error (exit 2) unless --integrity-only says so explicitly."""
    return _or_integrity_only(
        anchor_flags(policy, manifest, bundle, None, identity, issuer, trust_config, instance), integrity_only
    )


def serving_anchor_options(
    policy: PolicyOpt = None,
    bundle: BundleOpt = None,
    identity: IdentityOpt = None,
    issuer: IssuerOpt = None,
    trust_config: TrustOpt = None,
    instance: InstanceOpt = None,
    manifest: ManifestOpt = None,
) -> uc.ServingAnchor:
    """The anchor a pack is served under (``generate``, ``embed``): :func:`anchor_options` without
    --integrity-only; none is a usage error (exit 2)."""
    anchor = anchor_flags(policy, manifest, bundle, None, identity, issuer, trust_config, instance)
    if anchor is None:
        raise uc.UsageError(f"no trust anchor: {render.HOW_TO_ANCHOR}")
    return anchor


def threads_options(
    threads: Annotated[
        int | None,
        typer.Option(help="Threads to use (default: the cores this process may run on, or UC_ATTEST_THREADS)."),
    ] = None,
) -> int | None:
    """The thread budget asked for (None: the default), at least 1; the command sets it."""
    if threads is not None and threads < 1:
        raise uc.UsageError(f"--threads must be at least 1, got {threads}")
    return threads


ThreadsOpt = Annotated[int | None, Group(threads_options)]
DeviceOpt = Annotated[str, typer.Option(help="cpu, cuda or auto.")]
ModeOpt = Annotated[
    str | None,
    typer.Option(help="How packed layers compute: fast, exact or reference (docs/runtime.md; default fast on CPU)."),
]
CacheOpt = Annotated[
    bool, typer.Option(help="Keep decoded weights after first use (mode reference: memory for speed).")
]


@dataclass(frozen=True)
class ServeOptions:
    """How ``generate``/``embed`` serve a pack: the library's :class:`uc_attest.Serving` (--device, --mode,
    --cache) and the thread budget the command sets for the process (--threads; None: the default)."""

    serving: uc.Serving
    threads: int | None = None


def serve_options(device: DeviceOpt = "cpu", mode: ModeOpt = None, *, threads: ThreadsOpt) -> ServeOptions:
    """``embed``'s: where and how the pack computes, a device or mode that is none of the library's refused here
    in its words (:class:`uc_attest.Serving`), and the threads."""
    return ServeOptions(uc.Serving(device, mode), threads)


def cached_serve_options(serve: Annotated[ServeOptions, Group(serve_options)], cache: CacheOpt = False) -> ServeOptions:
    """``generate``'s: :func:`serve_options`, and --cache (after --threads, as the help has always listed them)."""
    return ServeOptions(dataclasses.replace(serve.serving, cache=cache), serve.threads)


def prompt_ids_options(
    prompt_ids: Annotated[str | None, typer.Option(help="Prompt as token ids, e.g. 1,50,300 (no tokenizer).")] = None,
) -> list[int] | None:
    """--prompt-ids as token ids (None: not given, or empty)."""
    try:
        return [int(x) for x in prompt_ids.split(",")] if prompt_ids else None
    except ValueError:
        raise uc.UsageError(f"--prompt-ids must be comma-separated integers, got {prompt_ids!r}") from None


def _or_integrity_only(anchor: uc.ServingAnchor | None, integrity_only: bool) -> uc.PackAnchor:
    if integrity_only:
        if anchor is not None:
            raise uc.UsageError("--integrity-only goes without a trust anchor (--policy/--identity/--manifest)")
        return uc.PackItself()
    if anchor is None:
        raise uc.UsageError(
            f"no trust anchor: {render.HOW_TO_ANCHOR}; or --integrity-only to check the pack against its own "
            "manifest (self-consistency only)"
        )
    return anchor


@dataclass(frozen=True)
class AnchorFlags:
    """The flags that name a pack's trust anchor, as given: an option group of its own (``Group(AnchorFlags)``)."""

    policy: PolicyOpt = None
    manifest: ManifestOpt = None
    bundle: BundleOpt = None
    validation: ValidationOpt = None
    identity: IdentityOpt = None
    issuer: IssuerOpt = None
    trust_config: TrustOpt = None
    instance: InstanceOpt = None

    def anchor(self) -> uc.ServingAnchor | None:
        """The anchor they name (:func:`anchor_flags`)."""
        return anchor_flags(
            self.policy,
            self.manifest,
            self.bundle,
            self.validation,
            self.identity,
            self.issuer,
            self.trust_config,
            self.instance,
        )


def verify_anchor_options(
    flags: Annotated[AnchorFlags, Group(AnchorFlags)] = AnchorFlags(),
    integrity_only: IntegrityOpt = False,
) -> uc.PackAnchor:
    """``verify``'s anchor: a pack's (:func:`anchor_options`, with --validation); a plain model directory's OMS
    signature is ``verify-model``'s, each method a command of its own (:func:`oms_sigstore_options` ...)."""
    return _or_integrity_only(flags.anchor(), integrity_only)


SignatureOpt = Annotated[
    Path, typer.Option(help="The model's OpenSSF Model Signing signature (model_signing's --signature, model.sig).")
]


def oms_sigstore_options(
    signature: SignatureOpt,
    identity: Annotated[str, typer.Option(help="The signer identity that must have signed, exact.")],
    issuer: Annotated[str | None, typer.Option(help="Their OIDC issuer (default with --instance: its own).")] = None,
    trust_config: TrustOpt = None,
    instance: InstanceOpt = None,
) -> uc.OmsSignature:
    """``verify-model sigstore``: a signer under exactly one trust root."""
    trust = _trust(trust_config, instance)
    if not issuer and isinstance(trust, uc.TrustFile):
        raise uc.UsageError("--identity needs --issuer (or --instance, whose issuer is the default)")
    return uc.OmsSignature(signature, uc.SigstoreIdentity(identity, issuer, trust))


def oms_key_options(
    signature: SignatureOpt,
    key: Annotated[Path, typer.Option(help="The signer's public key (PEM).")],
) -> uc.OmsSignature:
    """``verify-model key``: the signer's public key; no log, no trust root."""
    return uc.OmsSignature(signature, uc.PublicKey(key))


def oms_certificate_options(
    signature: SignatureOpt,
    cert_chain: Annotated[
        Path, typer.Option(help="CA certificates (PEM) of the private PKI the signing certificate chains to.")
    ],
    identity: Annotated[
        str | None,
        typer.Option(help="With --issuer: who must have signed (the certificate's first SAN, else its subject)."),
    ] = None,
    issuer: Annotated[
        str | None, typer.Option(help="With --identity: the issuing CA's distinguished name (RFC 4514).")
    ] = None,
) -> uc.OmsSignature:
    """``verify-model certificate``: the CA certificates, and the signer expected (both or neither of
    --identity/--issuer: without them, anyone the CAs certify)."""
    if bool(identity) != bool(issuer):
        raise uc.UsageError("give both or neither of --identity/--issuer (the CA's DN, RFC 4514)")
    signer = uc.CaSigner(identity, issuer) if identity and issuer else None
    return uc.OmsSignature(signature, uc.CaChain(cert_chain, signer))
