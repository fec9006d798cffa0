"""Sign a statement as DSSE through sigstore-python's Signer (public-good, private or embedded instance).

One code path for every deployment: the trust config's signing config selects the CA, the logs and the
timestamp authorities. Identity tokens come from the caller, the environment, ambient CI credentials, or
(embedded instance only) the instance's dev issuer.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from ..claims.statement import encode
from ..errors import InvalidInput, OperationalError, UsageError
from .trust import Trust

#: The dev identity each role signs as on an embedded instance when none is given: two roles, two identities,
#: so that following the README keeps the separation of duties (a validation is not signed by the release bot).
DEV_RELEASE_IDENTITY = "release-bot@uc-attest.dev"
DEV_VALIDATOR_IDENTITY = "validator@uc-attest.dev"


@dataclass(frozen=True)
class SignedBundle:
    """A Sigstore bundle (v0.3 JSON) as written to disk, and the log index of its entry."""

    json: str
    log_index: int | None
    identity: str
    statement_bytes: int


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
            "no identity token: pass {0}, set SIGSTORE_IDENTITY_TOKEN, run in GitHub Actions with "
            "'id-token: write', or use {1} (dev tokens)",
            option=["identity_token", "instance"],
        )
    try:
        return IdentityToken(raw)
    except IdentityError as exc:
        raise InvalidInput(f"identity token rejected: {exc}") from None


def identity_token(
    trust: Trust, explicit: str | None, dev_identity: str | None, role_default: str = DEV_RELEASE_IDENTITY
) -> Any:
    """The token to sign with: a dev token minted by an embedded instance unless one is given (``dev_identity``,
    else the role's own default dev identity)."""
    if trust.instance_dir is not None and not explicit and not os.environ.get("SIGSTORE_IDENTITY_TOKEN"):
        from sigstore.oidc import IdentityToken

        from ..instance.oidc import mint_token
        from ..instance.state import InstanceState

        state = InstanceState.load(trust.instance_dir)
        return IdentityToken(mint_token(state.oidc_key, state.issuer, dev_identity or role_default))
    if dev_identity:
        raise UsageError("{0} only applies to the embedded instance ({1:DIR})", option=["dev_identity", "instance"])
    return resolve_identity_token(explicit)


def _signing_failed(exc: Exception, trust: Trust) -> str:
    """One line naming what failed, by the exception's type: every timestamp authority down, else the client's
    error with the URL it names (an HTTP status error), or with the services that were asked."""
    from requests import HTTPError
    from sigstore.models import InvalidBundle

    if isinstance(exc, InvalidBundle):
        # sigstore-python (4.5) drops each TSA that fails (TimestampError, logged), then refuses the v0.3 bundle it
        # built with neither an inclusion promise (a Rekor v2 log gives none) nor a timestamp: every TSA failed.
        # (Its only other InvalidBundle while signing is a log entry answered without a checkpoint.)
        tsas = ", ".join(trust.services("tsaUrls")) or "none configured"
        return f"signing failed: no timestamp authority answered (TSA: {tsas}); nothing was written"
    text = str(exc)
    if not isinstance(exc, HTTPError):  # requests' status errors name the URL; the others do not
        asked = ", ".join(trust.services("caUrls") + trust.services("rekorTlogUrls") + trust.services("tsaUrls"))
        text += f" (services: {asked})" if asked else ""
    return f"signing failed (is the signing service reachable?): {text}; nothing was written"


def sign_statement(statement: dict[str, Any], trust: Trust, token: Any) -> SignedBundle:
    """Sign ``statement`` as DSSE (payload type in-toto) and record it in the log; the bundle is returned."""
    return sign_statements([statement], trust, token)[0]


def sign_statements(statements: list[dict[str, Any]], trust: Trust, token: Any) -> list[SignedBundle]:
    """Sign each statement as DSSE with one signer (one certificate) and record each in the log; all or an
    OperationalError naming the service (nothing is written here: the caller writes the bundles)."""
    from sigstore import dsse
    from sigstore.sign import SigningContext

    payloads = [encode(s) for s in statements]
    try:
        ctx = SigningContext.from_trust_config(trust.client_config)
        # cache=True is required: with cache=False sigstore-python 4.5.1 draws a new ephemeral key on every
        # access, so the DSSE signature and the certificate disagree. A fresh Signer per call is still ephemeral.
        with ctx.signer(token, cache=True) as signer:
            bundles = [signer.sign_dsse(dsse.Statement(p)) for p in payloads]
    except Exception as exc:  # sigstore-python raises its own errors and bare ones from its HTTP clients
        raise OperationalError(_signing_failed(exc, trust)) from exc
    out = []
    for bundle, payload in zip(bundles, payloads, strict=True):
        text = str(bundle.to_json())
        entries = json.loads(text).get("verificationMaterial", {}).get("tlogEntries", [])
        index = int(entries[0]["logIndex"]) if entries else None
        out.append(SignedBundle(text, index, str(token.identity), len(payload)))
    return out
