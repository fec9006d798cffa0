"""The kinds of audit event: a module of its own so that the HTML report reads them without the audit's
signature stack."""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """What an audit event is (its ``kind`` in the audit JSON: a ``str``, it encodes as its value)."""

    RELEASE = "release"  # a uc-attest release provenance
    VALIDATION = "validation"  # a validator's attestation
    OMS = "oms"  # an OpenSSF Model Signing signature of the pack
    SOURCE = "source"  # the source model's OMS signature, as a release of the pack recorded it (custody)
    UNATTRIBUTED = "unattributed"  # a Rekor v2 entry of a watched signer that no given bundle accounts for
    OTHER = "other"  # anything else: another entry type, a statement uc-attest does not read, an unreadable entry
