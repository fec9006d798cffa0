"""The transparency logs of a sigstore trusted root, parsed once, with one strictness, for every reader.

Each ``tlogs[]`` entry must name its base URL, its public key (DER ``rawBytes``), its log id and the key's
validity (``validFor.start`` required: a missing start is not "always"; a missing end: still valid). The own
bundle verifier, trust selection (the Rekor v1 and tile clients, the audit) read the same :class:`TrustedLog`.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from ..errors import MalformedBundle


@dataclass(frozen=True)
class TrustedLog:
    """One log of a trusted root: where it answers, its key, its log id, and when the key is valid (POSIX)."""

    base_url: str
    key: Any
    log_id: bytes
    start: float
    end: float

    def valid_at(self, t: float) -> bool:
        return self.start <= t <= self.end


#: RFC 3339 date-time with a time zone (``Z`` or an offset), as protobuf's JSON Timestamp writes it.
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")


def rfc3339(text: Any) -> float:
    """POSIX seconds of an RFC 3339 timestamp; ValueError for anything else (no local time, no other ISO forms)."""
    m = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp with a time zone: {str(text)[:40]!r}")
    seconds, fraction, zone = m.groups()
    when = dt.datetime.fromisoformat(seconds + ("+00:00" if zone == "Z" else zone))
    return when.timestamp() + (float("0" + fraction) if fraction else 0.0)


def trusted_logs(root_doc: dict[str, Any], where: str = "trusted root") -> list[TrustedLog]:
    """Every ``tlogs[]`` entry of a trusted root document; MalformedBundle naming the first that is malformed."""
    from cryptography.hazmat.primitives import serialization

    tlogs = root_doc.get("tlogs")
    tlogs = [] if tlogs is None else tlogs  # null is absent (protobuf JSON)
    if not isinstance(tlogs, list):
        raise MalformedBundle(f"{where}: tlogs is not a list")
    out = []
    for i, t in enumerate(tlogs):
        try:
            key = serialization.load_der_public_key(base64.b64decode(t["publicKey"]["rawBytes"], validate=True))
            log_id = base64.b64decode(t["logId"]["keyId"], validate=True)
            url = str(t["baseUrl"]).rstrip("/")
            valid = t["publicKey"]["validFor"]
            start = rfc3339(valid["start"])
            end = float("inf") if valid.get("end") is None else rfc3339(valid["end"])  # absent/null: still valid
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedBundle(
                f"{where}: tlogs[{i}] is malformed (baseUrl, logId, publicKey with rawBytes and validFor.start "
                f"needed): {exc!r}"
            ) from None
        out.append(TrustedLog(url, key, log_id, start, end))
    return out
