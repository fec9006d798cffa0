"""Trust as values: who must have signed, and under which Sigstore, as closed sets of frozen variants.

An OpenSSF Model Signing signature (:class:`OmsSignature`) is verified by exactly one method, and each method
carries what it needs: :class:`SigstoreIdentity` (a signer under a trust root), :class:`PublicKey`, or
:class:`CaChain` (a private PKI's CA certificates, optionally with the expected :class:`CaSigner`). A method
that needs no trust root cannot be given one, and a trust root is exactly one of :class:`TrustFile` or
:class:`TrustInstance`; a signer without an issuer is built only under an instance (whose own issuer is the
default). A Sigstore bundle (``verify_any_bundle``) is verified for exactly one :class:`BundleSigner`: a
:class:`BundleIdentity` (identity and issuer, both required) or a :class:`ManagedKey`. Plain values: nothing here
reads a file (the stages that verify do).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

NO_ISSUER = "a sigstore signer needs an identity and an issuer (only an instance's trust root has a default issuer)"


def require_signer(identity: str, issuer: str | None, has_default_issuer: bool) -> None:
    """The one signer rule, applied as a signer value is built (here and ``verify.anchor.SignedBy``): an identity,
    and an issuer unless the trust root has a default one (an embedded instance's)."""
    if not identity or not (issuer or has_default_issuer):
        raise UsageError(NO_ISSUER)


@dataclass(frozen=True)
class TrustFile:
    """A sigstore ClientTrustConfig or TrustedRoot file, or ``public-good`` / ``staging`` (``--trust-config``)."""

    path: Path


@dataclass(frozen=True)
class TrustInstance:
    """An embedded DEV instance's trust root (``--instance DIR``); its issuer is the default issuer."""

    directory: Path


TrustChoice = TrustFile | TrustInstance


@dataclass(frozen=True)
class SigstoreIdentity:
    """The sigstore method: ``identity`` (with ``issuer``; None: the trust root's default, an instance's own)
    must have signed, under ``trust``."""

    identity: str
    issuer: str | None
    trust: TrustChoice

    def __post_init__(self) -> None:
        require_signer(self.identity, self.issuer, isinstance(self.trust, TrustInstance))


@dataclass(frozen=True)
class PublicKey:
    """The key method: the signer's public key (PEM); no log, no trust root."""

    path: Path


@dataclass(frozen=True)
class CaSigner:
    """Who must have signed under a private CA: the certificate's identity (its first SAN, else its subject)
    and its issuer's distinguished name (RFC 4514)."""

    identity: str
    issuer: str


@dataclass(frozen=True)
class CaChain:
    """The certificate method: the CA certificates (PEM) the signing certificate chains to; ``signer``: who
    must have signed (None: anyone the CAs certify)."""

    path: Path
    signer: CaSigner | None = None


SignatureMethod = SigstoreIdentity | PublicKey | CaChain


@dataclass(frozen=True)
class OmsSignature:
    """An OpenSSF Model Signing signature ``file`` over a model directory, and how it must verify."""

    file: Path
    method: SignatureMethod


NO_BUNDLE_SIGNER = "a bundle's expected signer needs an identity and an issuer (or verify by a managed key)"


@dataclass(frozen=True)
class BundleIdentity:
    """Who must have signed a Sigstore bundle: the certificate's ``identity`` (a SAN) and its OIDC ``issuer``,
    both required (no trust root gives ``verify_any_bundle`` a default issuer)."""

    identity: str
    issuer: str

    def __post_init__(self) -> None:
        if not self.identity or not self.issuer:
            raise UsageError(NO_BUNDLE_SIGNER)


@dataclass(frozen=True)
class ManagedKey:
    """A bundle signed with a managed key: its public key (PEM). Unlike :class:`PublicKey` (an OMS signature,
    no log), the bundle's log entries are still checked under the trusted root (managed keys in Rekor)."""

    path: Path


BundleSigner = BundleIdentity | ManagedKey
