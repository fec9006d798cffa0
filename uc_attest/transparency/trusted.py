"""The transparency logs of a sigstore trusted root, parsed once, with one strictness, for every reader.

Each ``tlogs[]`` entry must name its base URL, its public key (DER ``rawBytes``), its log id and the key's
validity (``validFor.start`` required: a missing start is not "always"; a missing end: still valid). The own
bundle verifier, trust selection (the Rekor v1 and tile clients, the audit) read the same :class:`TrustedLog`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from ..core import rfc3339
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
            start = rfc3339.parse(valid["start"]).timestamp()
            end_at = rfc3339.optional(valid.get("end"))  # absent or null: still valid
            end = float("inf") if end_at is None else end_at.timestamp()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedBundle(
                f"{where}: tlogs[{i}] is malformed (baseUrl, logId, publicKey with rawBytes and validFor.start "
                f"needed): {exc!r}"
            ) from None
        out.append(TrustedLog(url, key, log_id, start, end))
    return out
