"""The transparency logs of a sigstore trusted root, parsed once, with one strictness, for every reader.

Each ``tlogs[]`` entry must name its base URL, its public key (DER ``rawBytes``), its log id and the key's
validity (``validFor.start`` required: a missing start is not "always"; a missing end: still valid). The own
bundle verifier, trust selection (the Rekor v1 and tile clients, the audit) read the same :class:`TrustedLog`.
"""

from __future__ import annotations

import base64
import datetime as dt
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


def trusted_logs(root_doc: dict[str, Any], where: str = "trusted root") -> list[TrustedLog]:
    """Every ``tlogs[]`` entry of a trusted root document; MalformedBundle naming the first that is malformed."""
    from cryptography.hazmat.primitives import serialization

    out = []
    for i, t in enumerate(root_doc.get("tlogs") or []):
        try:
            key = serialization.load_der_public_key(base64.b64decode(t["publicKey"]["rawBytes"]))
            log_id = base64.b64decode(t["logId"]["keyId"])
            url = str(t["baseUrl"]).rstrip("/")
            valid = t["publicKey"].get("validFor") or {}
            start = dt.datetime.fromisoformat(valid["start"]).timestamp()
            end = dt.datetime.fromisoformat(valid["end"]).timestamp() if valid.get("end") else float("inf")
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MalformedBundle(
                f"{where}: tlogs[{i}] is malformed (baseUrl, logId, publicKey with rawBytes and validFor.start "
                f"needed): {exc!r}"
            ) from None
        out.append(TrustedLog(url, key, log_id, start, end))
    return out
