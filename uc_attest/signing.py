"""Sign and verify DSSE bundles with sigstore-python (public-good, private or embedded instance).

One code path for every deployment: a sigstore ClientTrustConfig selects Fulcio, Rekor and
the trusted root. Verification always pins both the signer identity and the OIDC issuer.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import Finding, InvalidInput, OperationalError, UsageError, VerificationFailed

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def load_trust_config(path: Path) -> Any:
    """Load a sigstore ClientTrustConfig JSON file (no network)."""
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import ClientTrustConfig

    try:
        return ClientTrustConfig.from_json(Path(path).read_text())
    except FileNotFoundError:
        raise InvalidInput(f"{path}: trust config not found", path=str(path)) from None
    except (ValueError, SigstoreError) as exc:  # pydantic ValidationError is a ValueError
        raise InvalidInput(f"{path}: not a sigstore ClientTrustConfig: {exc}", path=str(path)) from None


def resolve_identity_token(explicit: str | None) -> Any:
    """The identity token: explicit, ``SIGSTORE_IDENTITY_TOKEN``, or ambient CI credentials (GitHub Actions)."""
    from sigstore.oidc import IdentityError, IdentityToken, detect_credential

    raw = explicit or os.environ.get("SIGSTORE_IDENTITY_TOKEN")
    if not raw:
        try:
            raw = detect_credential()
        except IdentityError as exc:
            raise OperationalError(f"ambient OIDC credential detection failed: {exc}") from None
    if not raw:
        raise UsageError(
            "no identity token: pass --identity-token, set SIGSTORE_IDENTITY_TOKEN, run in GitHub "
            "Actions with 'id-token: write', or use --instance (dev tokens)"
        )
    try:
        return IdentityToken(raw)
    except IdentityError as exc:
        raise InvalidInput(f"identity token rejected: {exc}") from None


def sign_statement(statement: dict[str, Any], trust_config: Any, token: Any) -> str:
    """Sign ``statement`` as DSSE; returns the Sigstore bundle v0.3 JSON."""
    from sigstore import dsse
    from sigstore.errors import Error as SigstoreError
    from sigstore.sign import SigningContext

    payload = json.dumps(statement, separators=(",", ":"), sort_keys=True).encode()
    try:
        stmt = dsse.Statement(payload)
        ctx = SigningContext.from_trust_config(trust_config)
        # cache=True is required: with cache=False sigstore-python 4.5.1 draws a new ephemeral key on every
        # access, so the DSSE signature and the certificate disagree. A fresh Signer per call is still ephemeral.
        with ctx.signer(token, cache=True) as signer:
            bundle = signer.sign_dsse(stmt)
    except (SigstoreError, OSError) as exc:
        raise OperationalError(f"signing failed (is the signing service reachable?): {exc}") from exc
    except Exception as exc:
        raise OperationalError(f"signing failed: {exc}") from exc
    return str(bundle.to_json())


@dataclass(frozen=True)
class VerifiedBundle:
    payload: bytes
    log_index: int
    integrated_time: int
    identity: str
    issuer: str


def verify_bundle(bundle_path: Path, trust_config: Any, identity: str, issuer: str) -> VerifiedBundle:
    """Verify signature, certificate chain + SCT, identity and issuer, SET, inclusion proof and checkpoint.

    Offline: everything comes from the bundle and the trusted root. Raises VerificationFailed
    with the reason, InvalidInput for an unreadable bundle.
    """
    from sigstore.errors import VerificationError
    from sigstore.models import Bundle, InvalidBundle
    from sigstore.verify import Verifier, policy

    try:
        bundle = Bundle.from_json(Path(bundle_path).read_bytes())
    except FileNotFoundError:
        raise InvalidInput(f"{bundle_path}: bundle not found", path=str(bundle_path)) from None
    except (InvalidBundle, ValueError) as exc:
        raise VerificationFailed([Finding(str(bundle_path), f"malformed bundle: {exc}")]) from None
    verifier = Verifier(trusted_root=trust_config.trusted_root)
    pol = policy.AllOf([policy.Identity(identity=identity, issuer=issuer), policy.OIDCIssuerV2(issuer)])
    try:
        payload_type, payload = verifier.verify_dsse(bundle, pol)
    except VerificationError as exc:
        raise VerificationFailed([Finding(str(bundle_path), f"bundle rejected: {exc}")]) from None
    if payload_type != PAYLOAD_TYPE:
        raise VerificationFailed(
            [Finding(str(bundle_path), "unexpected DSSE payload type", PAYLOAD_TYPE, payload_type)]
        )
    entry = bundle.log_entry._inner
    return VerifiedBundle(payload, int(entry.log_index or 0), int(entry.integrated_time or 0), identity, issuer)
