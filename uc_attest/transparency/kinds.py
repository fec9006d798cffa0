"""Rekor entry kinds (an entry body's ``kind``) that uc-attest writes or reads; a log may hold others, which are
kept as their text."""

from __future__ import annotations

from enum import StrEnum


class EntryKind(StrEnum):
    """A Rekor entry type (a ``str``: it compares equal to and encodes as its value)."""

    DSSE = "dsse"  # a DSSE envelope: what attest logs (v1: with its payload stored as the attestation)
    HASHEDREKORD = "hashedrekord"  # a signature over an artifact digest (Rekor v2 logs only these)
    INTOTO = "intoto"  # an in-toto envelope (read by the own verifier, not by sigstore-python)
