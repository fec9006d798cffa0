"""The dev OIDC issuer: mints ES256 identity tokens and verifies them (for the CA).

DEV ONLY: anyone with the instance's ``oidc.key.pem`` can mint any identity. The issuer
URL is the instance URL + ``/oidc``; policies pin it together with the identity.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

AUDIENCE = "sigstore"


class TokenError(Exception):
    """A token is forged, expired, for another audience or issuer, or malformed."""


def mint_token(
    key: ec.EllipticCurvePrivateKey, issuer: str, identity: str, *, lifetime_s: int = 600, now: int | None = None
) -> str:
    """An identity token for ``identity`` (an email, or a URI such as a workflow identity)."""
    now = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": identity,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_s,
    }
    if "@" in identity and "://" not in identity:
        claims.update(email=identity, email_verified=True)
    return jwt.encode(claims, key, algorithm="ES256")


def verify_token(raw: str, key: ec.EllipticCurvePublicKey, issuer: str) -> str:
    """Check signature, issuer, audience, expiry; return the identity for the certificate SAN."""
    try:
        claims = jwt.decode(
            raw,
            key,
            algorithms=["ES256"],
            audience=AUDIENCE,
            issuer=issuer,
            options={"require": ["iss", "aud", "sub", "exp", "iat"]},
            leeway=5,
        )
    except jwt.PyJWTError as exc:
        raise TokenError(f"identity token rejected: {exc}") from None
    if claims.get("email") and claims.get("email_verified"):
        return str(claims["email"])
    return str(claims["sub"])
