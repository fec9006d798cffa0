"""The identities a signing certificate names (its SANs), for every layer that reads a certificate."""

from __future__ import annotations

from typing import Any


def cert_identities(cert: Any) -> list[str]:
    """Every SAN identity of a Fulcio-style certificate (email, URI, Sigstore OtherName)."""
    from cryptography.x509 import (
        ExtensionNotFound,
        OtherName,
        RFC822Name,
        SubjectAlternativeName,
        UniformResourceIdentifier,
    )

    try:
        san = cert.extensions.get_extension_for_class(SubjectAlternativeName).value
    except ExtensionNotFound:
        return []
    out = list(san.get_values_for_type(RFC822Name)) + list(san.get_values_for_type(UniformResourceIdentifier))
    out += [_der_string(o.value) for o in san.get_values_for_type(OtherName)]
    return out


def _der_string(raw: bytes) -> str:
    """The text of a DER string (an OtherName's value, e.g. Sigstore's UTF8String ``foo!oidc.local``), without
    its tag and length; bytes that are not one DER string are shown as they are."""
    if len(raw) >= 2 and raw[0] in (0x0C, 0x13, 0x16, 0x1A):  # UTF8String, PrintableString, IA5String, VisibleString
        n, start = raw[1], 2
        if n & 0x80:
            width = n & 0x7F
            n, start = int.from_bytes(raw[2 : 2 + width], "big"), 2 + width
        if start + n == len(raw):
            return raw[start:].decode("utf-8", errors="replace")
    return raw.decode("utf-8", errors="replace")
