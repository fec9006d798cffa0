"""Signer identities of Fulcio-style certificates and the sigstore-python policies that pin them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..anchors import require_signer
from ..core.x509names import cert_identities
from ..errors import UsageError

if TYPE_CHECKING:
    from ..signing.trust import Trust

OID_ISSUER_V1, OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.1", "1.3.6.1.4.1.57264.1.8"


class SignerLike(Protocol):
    """A trusted signer: OIDC issuer plus exact identity or anchored regex (policy.Signer fits)."""

    @property
    def issuer(self) -> str: ...
    @property
    def identity(self) -> str | None: ...
    @property
    def identity_regex(self) -> str | None: ...


@dataclass(frozen=True)
class SignerSpec:
    issuer: str
    identity: str | None = None
    identity_regex: str | None = None


def signer_under(identity: str, issuer: str | None, trust: Trust) -> SignerSpec:
    """The signer a value names: ``identity`` via ``issuer``, or via the trust root's default issuer (an embedded
    instance's own). The values refuse any other combination as they are built (``anchors.require_signer``); the
    rule is applied again here, failing closed, before an issuer reaches a verification policy."""
    iss = issuer or trust.default_issuer()
    require_signer(identity, iss, has_default_issuer=False)
    assert iss is not None
    return SignerSpec(iss, identity)


def describe(signers: Sequence[SignerLike]) -> str:
    return " | ".join(f"{s.identity or s.identity_regex} via {s.issuer}" for s in signers)


@dataclass(frozen=True)
class SignerIdentity:
    """Who signed, as the certificate says: every SAN identity and the OIDC issuer."""

    identities: tuple[str, ...]
    issuer: str

    @property
    def primary(self) -> str:
        return self.identities[0] if self.identities else ""

    def __str__(self) -> str:
        return f"{self.primary} via {self.issuer}"


def cert_issuer(cert: Any) -> str:
    """The OIDC issuer from the v2 extension (DER UTF8String), else the legacy raw one."""
    from cryptography.x509 import ExtensionNotFound, ObjectIdentifier

    for oid, der in ((OID_ISSUER_V2, True), (OID_ISSUER_V1, False)):
        try:
            raw = cert.extensions.get_extension_for_oid(ObjectIdentifier(oid)).value.value
        except ExtensionNotFound:
            continue
        if der and len(raw) >= 2:
            n = raw[1]
            start = 2 if n < 0x80 else 2 + (n & 0x7F)
            return bytes(raw[start:]).decode(errors="replace")
        return bytes(raw).decode(errors="replace")
    return ""


def signer_of(cert: Any) -> SignerIdentity:
    return SignerIdentity(tuple(cert_identities(cert)), cert_issuer(cert))


class _RegexIdentity:
    """sigstore VerificationPolicy: issuer exact (both extensions) and a SAN matching an anchored regex."""

    def __init__(self, pattern: str, issuer: str) -> None:
        self._re = re.compile(pattern)
        self._issuer = issuer

    def verify(self, cert: Any) -> None:
        from sigstore.errors import VerificationError
        from sigstore.verify import policy

        policy.OIDCIssuer(self._issuer).verify(cert)
        policy.OIDCIssuerV2(self._issuer).verify(cert)
        if not any(self._re.fullmatch(i) for i in cert_identities(cert)):
            raise VerificationError(f"no certificate identity matches {self._re.pattern}")


class AnyIdentity:
    """sigstore VerificationPolicy that accepts every identity: an auditor reports signers instead of pinning."""

    def verify(self, cert: Any) -> None:
        return None


def sigstore_policy(signers: Sequence[SignerLike]) -> Any:
    """AnyOf the signers, each pinning identity (or regex) AND issuer. No signer: fails closed."""
    from sigstore.verify import policy

    if not signers:
        raise UsageError("no trusted signer given: verification fails closed")
    rules: list[Any] = []
    for sg in signers:
        if sg.identity is not None:
            rules.append(
                policy.AllOf([policy.Identity(identity=sg.identity, issuer=sg.issuer), policy.OIDCIssuerV2(sg.issuer)])
            )
        else:
            rules.append(_RegexIdentity(sg.identity_regex or "^$", sg.issuer))
    return rules[0] if len(rules) == 1 else policy.AnyOf(rules)
