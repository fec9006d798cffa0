"""DSSE v1 pre-authentication encoding: the exact bytes a DSSE signature covers."""

from __future__ import annotations

PAYLOAD_TYPE_IN_TOTO = "application/vnd.in-toto+json"


def pae(payload_type: str, payload: bytes) -> bytes:
    """``DSSEv1 <len(type)> <type> <len(payload)> <payload>`` (lengths in ASCII decimal)."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)
