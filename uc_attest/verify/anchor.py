"""Who must have made what you are about to trust: one anchor value, built once at the edge.

An anchor is exactly one of a closed set of frozen variants, each carrying what it needs:

* :class:`PolicyAnchor` — a policy (signers per role, log, validation, constraints); its own trust root
  unless one is given;
* :class:`SignedBy` — the identity (and issuer) that must have signed the release bundle, under a trust
  root; the bundle by default ``<pack>.sigstore.json`` where ``attest`` writes it;
* :class:`KeptManifest` — a separately kept (validated) manifest the pack must match, no signer;
* :class:`OmsAnchor` — an OpenSSF Model Signing signature of a plain model directory
  (:class:`uc_attest.OmsSignature`: a sigstore identity under a trust root, a public key, or CA certificates);
* :class:`PackItself` — the pack's own manifest, which whoever can write the pack controls: self-consistency
  only, and every result says so.

A trust root belongs to the variant that needs one, so "a kept manifest under a trust root" or "a key with a
trust root" cannot be written, nor a signer without an issuer under a trust root that has no default issuer
(only an instance's has one: refused as the value is built). :class:`Anchor` is their common base; its
constructors (``Anchor.policy(...)``, ``Anchor.signed_by(...)``, ...) return the variants.

What each entry point takes is a narrower union: :data:`PackAnchor` (a pack's: not an OMS signature, which anchors
a plain model directory) and :data:`ServingAnchor` (a loader's: not the pack itself either, which no one vouches
for). :func:`require_anchor`, :func:`pack_anchor` and :func:`serving_anchor` are the one refusal of each, for
callers that are not type-checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeAlias

from ..anchors import (
    CaChain,
    CaSigner,
    OmsSignature,
    PublicKey,
    SigstoreIdentity,
    TrustFile,
    TrustInstance,
    require_signer,
)
from ..errors import UsageError

if TYPE_CHECKING:
    from ..signing.trust import Trust

#: A trust root as the caller gives it: selected (``TrustRoot.instance(D)``) or a choice to select at use.
TrustGiven: TypeAlias = "Trust | TrustFile | TrustInstance"

NO_ANCHOR = (
    "no trust anchor: give one of Anchor.policy(P), Anchor.signed_by(IDENTITY, ISSUER, trust=T), "
    "Anchor.kept_manifest(KEPT.json), or an OMS signature (Anchor.oms(OmsSignature(...))); "
    "Anchor.pack_itself() accepts the pack's own manifest: self-consistency only"
)
NOT_A_PACK = "an OMS signature anchors a plain model directory, not a pack: use verify_oms_model"
NOT_SERVED = (
    "a model is loaded and served only under a trust anchor: Anchor.pack_itself() checks the pack against its own "
    "manifest, which whoever can write the pack controls (self-consistency only); give Anchor.policy(P), "
    "Anchor.signed_by(IDENTITY, ISSUER, trust=T) or Anchor.kept_manifest(KEPT.json)"
)


class Anchor:
    """The base of the anchor variants (module docstring); its constructors return them."""

    #: a signer is checked (policy, signer, OMS); a kept manifest or the pack itself checks none
    signed: ClassVar[bool] = True
    #: something other than the pack's own manifest says what the pack must be
    anchored: ClassVar[bool] = True

    def describe(self) -> str:
        raise NotImplementedError

    @staticmethod
    def policy(
        path: Path | str,
        validations: list[Path] | tuple[Path, ...] | None = None,
        *,
        bundle: Path | str | None = None,
        trust: TrustGiven | None = None,
    ) -> PolicyAnchor:
        """A policy file; ``bundle``: the release bundle when it is not beside the pack (<pack>.sigstore.json);
        ``trust``: instead of the trust root the policy names."""
        return PolicyAnchor(
            Path(path),
            None if validations is None else tuple(map(Path, validations)),
            None if bundle is None else Path(bundle),
            trust,
        )

    @staticmethod
    def signed_by(
        identity: str, issuer: str | None = None, *, trust: TrustGiven, bundle: Path | str | None = None
    ) -> SignedBy:
        """``identity`` (with ``issuer``; None: the trust root's default) must have signed the release bundle."""
        return SignedBy(identity, issuer, trust, None if bundle is None else Path(bundle))

    @staticmethod
    def kept_manifest(path: Path | str) -> KeptManifest:
        return KeptManifest(Path(path))

    @staticmethod
    def pack_itself() -> PackItself:
        return PackItself()

    @staticmethod
    def oms(signature: OmsSignature) -> OmsAnchor:
        return OmsAnchor(signature)

    @staticmethod
    def oms_signed_by(
        signature: Path | str, identity: str, issuer: str | None = None, *, trust: TrustFile | TrustInstance
    ) -> OmsAnchor:
        return OmsAnchor(OmsSignature(Path(signature), SigstoreIdentity(identity, issuer, trust)))

    @staticmethod
    def oms_key(signature: Path | str, key: Path | str) -> OmsAnchor:
        return OmsAnchor(OmsSignature(Path(signature), PublicKey(Path(key))))

    @staticmethod
    def oms_certificate(
        signature: Path | str, cert_chain: Path | str, identity: str | None = None, issuer: str | None = None
    ) -> OmsAnchor:
        """``identity`` and ``issuer`` (the CA's DN, RFC 4514): both (the signer expected) or neither."""
        if bool(identity) != bool(issuer):
            raise UsageError("a CA-certified signer is named by both its identity and its issuer's DN, or neither")
        signer = CaSigner(identity, issuer) if identity and issuer else None
        return OmsAnchor(OmsSignature(Path(signature), CaChain(Path(cert_chain), signer)))


@dataclass(frozen=True)
class PolicyAnchor(Anchor):
    """A policy file; ``validations``: None = <pack>.validation.sigstore.json when present; ``bundle``: None =
    <pack>.sigstore.json; ``trust``: None = the trust root the policy names."""

    path: Path
    validations: tuple[Path, ...] | None = None
    bundle: Path | None = None
    trust: TrustGiven | None = None

    def describe(self) -> str:
        return f"policy {self.path}"


@dataclass(frozen=True)
class SignedBy(Anchor):
    """``identity`` must have signed the release bundle (``issuer`` None: the trust root's default issuer)."""

    identity: str
    issuer: str | None
    trust: TrustGiven
    bundle: Path | None = None

    def __post_init__(self) -> None:
        if not self.identity:
            raise UsageError("a signer anchor needs the identity that must have signed")
        require_signer(self.identity, self.issuer, _has_default_issuer(self.trust))

    def describe(self) -> str:
        return f"signed by {self.identity}" + (f" via {self.issuer}" if self.issuer else "")


@dataclass(frozen=True)
class KeptManifest(Anchor):
    """A separately kept (validated) manifest the pack must match."""

    signed: ClassVar[bool] = False
    path: Path

    def describe(self) -> str:
        return f"kept manifest {self.path}"


@dataclass(frozen=True)
class OmsAnchor(Anchor):
    """A plain model directory's OpenSSF Model Signing signature, with its method."""

    signature: OmsSignature

    def describe(self) -> str:
        method = {SigstoreIdentity: "sigstore", PublicKey: "key", CaChain: "certificate"}[type(self.signature.method)]
        return f"OpenSSF Model Signing signature {self.signature.file} ({method})"


@dataclass(frozen=True)
class PackItself(Anchor):
    """The pack's own manifest: self-consistency only."""

    signed: ClassVar[bool] = False
    anchored: ClassVar[bool] = False

    def describe(self) -> str:
        return "the pack's own manifest (self-consistency only)"


def _has_default_issuer(trust: TrustGiven) -> bool:
    """Whether a trust root names a default issuer: an embedded instance's (selected or not) does."""
    from ..signing.trust import Trust

    return isinstance(trust, TrustInstance) or (isinstance(trust, Trust) and trust.instance_dir is not None)


#: The closed set: every anchor is exactly one of these.
AnyAnchor: TypeAlias = PolicyAnchor | SignedBy | KeptManifest | OmsAnchor | PackItself
#: What anchors a pack (verify, reconstruct): every variant but an OMS signature (a plain model directory's).
PackAnchor: TypeAlias = PolicyAnchor | SignedBy | KeptManifest | PackItself
#: What a model is loaded and served under: something other than the pack says what it must be.
ServingAnchor: TypeAlias = PolicyAnchor | SignedBy | KeptManifest


def require_anchor(anchor: Anchor | None) -> AnyAnchor:
    """The one refusal of "no anchor" (loading, serving and verifying need one)."""
    if anchor is None:
        raise UsageError(NO_ANCHOR)
    if not isinstance(anchor, AnyAnchor):
        raise UsageError(f"a trust anchor is an Anchor value, not {type(anchor).__name__}: {NO_ANCHOR}")
    return anchor


def pack_anchor(anchor: Anchor | None) -> PackAnchor:
    """A pack's anchor, or the one refusal of an OMS signature given for a pack (and of no anchor)."""
    anchor = require_anchor(anchor)
    if isinstance(anchor, OmsAnchor):
        raise UsageError(NOT_A_PACK)
    return anchor


def serving_anchor(anchor: Anchor | None) -> ServingAnchor:
    """A loader's anchor, or the one refusal of the pack itself as one (and of what :func:`pack_anchor` refuses):
    a loaded model serves what someone vouched for, never only what the pack says of itself."""
    anchor = pack_anchor(anchor)
    if isinstance(anchor, PackItself):
        raise UsageError(NOT_SERVED)
    return anchor
