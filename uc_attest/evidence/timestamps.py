"""RFC 3161 timestamps of a bundle, verified against the trusted root's timestamp authorities.

Each ``verificationMaterial.timestampVerificationData.rfc3161Timestamps[i].signedTimestamp`` must be a
granted TimeStampResp over the bundle's signature bytes (SHA-256/384/512 imprint), signed by a TSA whose
chain is in the trusted root (``timestampAuthorities``), at a time inside that TSA's ``validFor`` and
inside the signing certificate's validity. At most 32 per bundle, no duplicates (sigstore's limits).
A timestamp no trusted TSA signed is not counted (as sigstore clients do: a bundle may carry timestamps from
authorities this verifier does not trust) and is reported; one a trusted TSA signed at a time outside that
TSA's validity or the certificate's is a :class:`TimestampInvalid` naming it. The verified times are the
evidence rules use.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography import x509

from ..core.ruleid import RuleId
from ..errors import MalformedBundle, SignatureInvalid
from ..transparency.trusted import RootLike, RootSections, TrustedTsa

MAX_TIMESTAMPS = 32


class TimestampInvalid(SignatureInvalid):
    """A timestamp of the bundle does not verify, or the bundle breaks the timestamp limits."""

    rule: ClassVar[RuleId] = RuleId.RELEASE_TIMESTAMPS  # the rule it fails, not the signer rule


#: A timestamp authority of the trusted root: its chain (leaf first), name and validity.
Authority = TrustedTsa


def authorities(root: RootLike) -> list[TrustedTsa]:
    """The trusted root's timestamp authorities (a document's, or its sections': ``Trust.sections``), read strictly
    (:func:`~uc_attest.transparency.trusted.trusted_tsas`: MalformedBundle naming the first malformed one)."""
    return list(RootSections.of(root).tsas)


def _tokens(doc: dict[str, Any], where: str) -> list[bytes]:
    tvd = doc.get("verificationMaterial", {}).get("timestampVerificationData") or {}
    try:
        return [base64.b64decode(t["signedTimestamp"]) for t in tvd.get("rfc3161Timestamps") or []]
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedBundle(f"{where}: timestampVerificationData is malformed: {exc!r}") from None


def signature_bytes(doc: dict[str, Any]) -> bytes:
    """The bytes a timestamp covers: the DSSE signature, or the message signature."""
    try:
        if "dsseEnvelope" in doc:
            return base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"])
        return base64.b64decode(doc["messageSignature"]["signature"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise MalformedBundle(f"bundle: no readable signature: {exc!r}") from None


@dataclass(frozen=True)
class Timestamps:
    verified: list[tuple[dt.datetime, str]]  # (time, authority name)
    ignored: list[str]  # why each uncounted timestamp was not counted


def verify_timestamps(doc: dict[str, Any], root: RootLike, leaf: x509.Certificate | None, where: str) -> Timestamps:
    """The bundle's timestamps verified against the trusted root's TSAs; TimestampInvalid on a broken limit."""
    from rfc3161_client import decode_timestamp_response
    from rfc3161_client.errors import VerificationError
    from rfc3161_client.verify import VerifierBuilder

    tokens = _tokens(doc, where)
    if len(tokens) > MAX_TIMESTAMPS:
        raise TimestampInvalid(where, f"{len(tokens)} RFC 3161 timestamps: more than {MAX_TIMESTAMPS}")
    if len(set(tokens)) != len(tokens):
        raise TimestampInvalid(where, "duplicate RFC 3161 timestamp")
    if not tokens:
        return Timestamps([], [])
    tsas = authorities(root)
    message = signature_bytes(doc)
    out, ignored = [], []
    for i, token in enumerate(tokens):
        try:
            resp = decode_timestamp_response(token)
        except ValueError as exc:
            raise TimestampInvalid(where, f"timestamp {i} is not an RFC 3161 response: {exc}") from None
        when = resp.tst_info.gen_time
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        name = None
        for ta in tsas:
            if len(ta.chain) < 2:
                continue
            builder = VerifierBuilder().tsa_certificate(ta.chain[0]).add_root_certificate(ta.chain[-1])
            for mid in ta.chain[1:-1]:
                builder = builder.add_intermediate_certificate(mid)
            try:
                builder.build().verify_message(resp, message)
            except VerificationError:
                continue
            if not ta.valid_at(when):
                raise TimestampInvalid(
                    where, f"timestamp {i} at {when:%Y-%m-%d %H:%M:%S} is outside {ta.name}'s validity"
                )
            name = ta.name
            break
        if name is None:
            ignored.append(f"timestamp {i} is not signed by a timestamp authority of the trusted root")
            continue
        if leaf is not None and not (leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc):
            raise TimestampInvalid(
                where,
                f"timestamp {i} at {when:%Y-%m-%d %H:%M:%S} is outside the signing certificate's validity "
                f"({leaf.not_valid_before_utc:%H:%M:%S}-{leaf.not_valid_after_utc:%H:%M:%S})",
            )
        out.append((when, name))
    return Timestamps(out, ignored)
