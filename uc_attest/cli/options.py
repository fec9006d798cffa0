"""Option groups: a command's flags parsed into the facade's typed values.

A command parameter annotated ``Annotated[T, Group(build)]`` is not one option but ``build``'s parameters,
each a flag with its own typer annotation; the command is called with ``build(**those flags)``, one typed
value. A flag two groups share (``--no-overrides``: no overrides, and so no allocation) is one option, given
to both. The builders hold the checks of flag combinations, in the flags' own words.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args

import typer

import uc_attest as uc

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
    """An option group: ``build``'s parameters are the flags, its result the command's value."""

    build: Callable[..., Any]

    def parameters(self) -> list[inspect.Parameter]:
        return list(inspect.signature(self.build, eval_str=True).parameters.values())


def grouped(fn: F) -> F:
    """``fn`` as typer sees it: each :class:`Group` parameter replaced by its builder's flags (module docstring)."""
    own = inspect.signature(fn, eval_str=True)
    exposed: dict[str, inspect.Parameter] = {}
    groups: dict[str, Group] = {}
    for p in own.parameters.values():
        group = next((m for m in get_args(p.annotation)[1:] if isinstance(m, Group)), None)
        if group is None:
            exposed[p.name] = p
            continue
        groups[p.name] = group
        for flag in group.parameters():
            exposed.setdefault(flag.name, flag)
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in exposed.values()]

    @functools.wraps(fn)
    def wrapper(**flags: Any) -> Any:
        values = {name: g.build(**{p.name: flags[p.name] for p in g.parameters()}) for name, g in groups.items()}
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
            "--scheme", help="uc-rht-ldlq/2 (the default), uc-rht-ldlq/1, uc-rht-clip/1, uc-affine-clip/1 or uc-rtn/1."
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
    if source_signature is None:
        if source_identity or source_issuer or source_key or source_cert_chain:
            raise uc.UsageError(
                "--source-identity/--source-issuer/--source-key/--source-cert-chain need --source-signature"
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
        if source_identity or source_issuer:
            raise uc.UsageError("--source-key is exclusive with --source-identity/--source-issuer")
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
