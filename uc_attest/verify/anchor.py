"""Who must have made what you are about to trust: one :class:`Anchor` value, built once at the edge.

An anchor is exactly one of

* a **policy** (signers per role, log, validation, constraints; its trust root unless one is given);
* a **bundle with its signer**: the identity (and issuer) that must have signed the release bundle, by
  default ``<pack>.sigstore.json`` where ``attest`` writes it;
* a **kept manifest**: a separately kept (validated) manifest the pack must match, no signer;
* an **OpenSSF Model Signing signature** of a plain model directory with its method: an identity (and
  issuer) under a trust root, a public key, or a private PKI's CA certificates;
* **the pack itself**: its own manifest, which whoever can write the pack controls — self-consistency
  only, and every result says so.

The constructors make illegal combinations unwritable; :func:`anchor_from_options` turns CLI options into
one (refusing contradictory ones in one place), and :func:`require_anchor` is the one refusal of "no anchor".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..errors import UsageError
from ..manifest import OmsMethod

NO_ANCHOR = (
    "no trust anchor: give --policy P, --identity ID (with --instance DIR or --trust-config F; the bundle beside "
    "the pack, or --bundle B), or --manifest KEPT.json; in Python: Anchor.policy(...), Anchor.signed_by(...), "
    "Anchor.kept_manifest(...) (Anchor.pack_itself() accepts the pack's own manifest: self-consistency only)"
)


class AnchorKind(StrEnum):
    POLICY = "policy"
    BUNDLE = "bundle"
    MANIFEST = "manifest"
    OMS = "oms"
    PACK_ITSELF = "pack-itself"


@dataclass(frozen=True)
class Anchor:
    """One trust anchor (see the module docstring); build it with a constructor, not the fields."""

    kind: AnchorKind
    policy_file: Path | None = None
    bundle: Path | None = None  # BUNDLE: None = <pack>.sigstore.json; OMS: the signature file
    identity: str | None = None
    issuer: str | None = None  # None: the trust root's default issuer (an embedded instance's own)
    manifest: Path | None = None
    validations: tuple[Path, ...] | None = None  # None: <pack>.validation.sigstore.json when present
    oms_method: OmsMethod | None = None
    key: Path | None = None
    cert_chain: Path | None = None

    def __post_init__(self) -> None:
        """An anchor built field by field holds exactly what its kind needs (the constructors always do):
        never a kept-manifest anchor without its manifest that would fall back to the pack's own."""
        try:  # a kind or method given as its string is the enum member (compared with `is` everywhere)
            object.__setattr__(self, "kind", AnchorKind(self.kind))
            if self.oms_method is not None:
                object.__setattr__(self, "oms_method", OmsMethod(self.oms_method))
        except ValueError:
            raise UsageError(f"unknown anchor kind {self.kind!r} or OMS method {self.oms_method!r}") from None
        given = {name for name in _FIELDS if getattr(self, name) is not None}
        shape = _SHAPES.get((self.kind, self.oms_method))
        if shape is None:
            raise UsageError(f"an anchor of kind {self.kind} cannot have OMS method {self.oms_method}")
        need, may = shape
        missing, extra = need - given, given - need - may
        if missing or extra:
            what = ", ".join([f"without {m}" for m in sorted(missing)] + [f"with {x}" for x in sorted(extra)])
            raise UsageError(f"an anchor of kind {self.kind} {what}: build it with an Anchor constructor")

    @classmethod
    def policy(
        cls,
        path: Path | str,
        validations: list[Path] | tuple[Path, ...] | None = None,
        *,
        bundle: Path | str | None = None,
    ) -> Anchor:
        """A policy file; ``bundle``: the release bundle when it is not beside the pack (<pack>.sigstore.json)."""
        return cls(
            AnchorKind.POLICY,
            policy_file=Path(path),
            bundle=None if bundle is None else Path(bundle),
            validations=None if validations is None else tuple(map(Path, validations)),
        )

    @classmethod
    def signed_by(cls, identity: str, issuer: str | None = None, *, bundle: Path | str | None = None) -> Anchor:
        if not identity:
            raise UsageError("a signer anchor needs the identity that must have signed (--identity)")
        return cls(AnchorKind.BUNDLE, bundle=None if bundle is None else Path(bundle), identity=identity, issuer=issuer)

    @classmethod
    def kept_manifest(cls, path: Path | str) -> Anchor:
        return cls(AnchorKind.MANIFEST, manifest=Path(path))

    @classmethod
    def pack_itself(cls) -> Anchor:
        return cls(AnchorKind.PACK_ITSELF)

    @classmethod
    def oms_signed_by(cls, signature: Path | str, identity: str, issuer: str | None = None) -> Anchor:
        if not identity:
            raise UsageError("--oms-signature needs --identity and --issuer (or --key, or --cert-chain)")
        return cls(
            AnchorKind.OMS, bundle=Path(signature), identity=identity, issuer=issuer, oms_method=OmsMethod.SIGSTORE
        )

    @classmethod
    def oms_key(cls, signature: Path | str, key: Path | str) -> Anchor:
        return cls(AnchorKind.OMS, bundle=Path(signature), key=Path(key), oms_method=OmsMethod.KEY)

    @classmethod
    def oms_certificate(
        cls, signature: Path | str, cert_chain: Path | str, identity: str | None = None, issuer: str | None = None
    ) -> Anchor:
        if bool(identity) != bool(issuer):
            raise UsageError("with --cert-chain, give both or neither of --identity/--issuer (the CA's DN, RFC 4514)")
        return cls(
            AnchorKind.OMS,
            bundle=Path(signature),
            cert_chain=Path(cert_chain),
            identity=identity,
            issuer=issuer,
            oms_method=OmsMethod.CERTIFICATE,
        )

    @property
    def signed(self) -> bool:
        """A signer is checked (policy, bundle, OMS); a kept manifest or the pack itself checks none."""
        return self.kind in (AnchorKind.POLICY, AnchorKind.BUNDLE, AnchorKind.OMS)

    @property
    def anchored(self) -> bool:
        """Something other than the pack's own manifest says what the pack must be."""
        return self.kind is not AnchorKind.PACK_ITSELF

    def describe(self) -> str:
        if self.kind is AnchorKind.POLICY:
            return f"policy {self.policy_file}"
        if self.kind is AnchorKind.BUNDLE:
            return f"signed by {self.identity}" + (f" via {self.issuer}" if self.issuer else "")
        if self.kind is AnchorKind.MANIFEST:
            return f"kept manifest {self.manifest}"
        if self.kind is AnchorKind.OMS:
            return f"OpenSSF Model Signing signature {self.bundle} ({self.oms_method})"
        return "the pack's own manifest (self-consistency only)"


_FIELDS = ("policy_file", "bundle", "identity", "issuer", "manifest", "validations", "oms_method", "key", "cert_chain")
#: (kind, OMS method) -> (fields it needs, fields it may have): every other combination is unwritable.
_SHAPES: dict[tuple[AnchorKind, OmsMethod | None], tuple[set[str], set[str]]] = {
    (AnchorKind.POLICY, None): ({"policy_file"}, {"bundle", "validations"}),
    (AnchorKind.BUNDLE, None): ({"identity"}, {"bundle", "issuer"}),
    (AnchorKind.MANIFEST, None): ({"manifest"}, set()),
    (AnchorKind.PACK_ITSELF, None): (set(), set()),
    (AnchorKind.OMS, OmsMethod.SIGSTORE): ({"bundle", "identity", "oms_method"}, {"issuer"}),
    (AnchorKind.OMS, OmsMethod.KEY): ({"bundle", "key", "oms_method"}, set()),
    (AnchorKind.OMS, OmsMethod.CERTIFICATE): ({"bundle", "cert_chain", "oms_method"}, {"identity", "issuer"}),
}


def require_anchor(anchor: Anchor | None) -> Anchor:
    """The one refusal of "no anchor" (loading, serving and verifying need one)."""
    if anchor is None:
        raise UsageError(NO_ANCHOR)
    if not isinstance(anchor, Anchor):
        raise UsageError(f"a trust anchor is an Anchor value, not {type(anchor).__name__}: {NO_ANCHOR}")
    return anchor


def anchor_from_options(
    *,
    policy: Path | None = None,
    bundle: Path | None = None,
    identity: str | None = None,
    issuer: str | None = None,
    manifest: Path | None = None,
    validations: list[Path] | None = None,
) -> Anchor | None:
    """The anchor CLI options name, or None when they name none; contradictory options are a usage error."""
    if policy is not None and (identity or issuer):
        raise UsageError("--identity/--issuer go without --policy: identities come from the policy's signers")
    given = [name for name, v in (("--policy", policy), ("--manifest", manifest)) if v is not None]
    if identity is not None or (bundle is not None and policy is None):
        given.append("--bundle/--identity")
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} are exclusive: give one trust anchor")
    if policy is not None:
        return Anchor.policy(policy, validations, bundle=bundle)
    if validations:
        raise UsageError("--validation goes with --policy (the policy names the validators)")
    if manifest is not None:
        if issuer:
            raise UsageError("--issuer goes with --identity")
        return Anchor.kept_manifest(manifest)
    if bundle is not None or identity is not None:
        if not identity:
            raise UsageError("--bundle needs --identity (and --issuer, or a trust root with a default issuer)")
        return Anchor.signed_by(identity, issuer, bundle=bundle)
    if issuer:
        raise UsageError("--issuer goes with --identity")
    return None
