"""RFC 3339 date-times as a trusted root's ``validFor`` writes them (protobuf JSON Timestamps): one strict parser."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

#: A date-time with a time zone (``Z`` or an offset): never local time, no other ISO 8601 forms.
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{1,9})?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)", re.ASCII)


def parse(text: Any) -> dt.datetime:
    """The instant ``text`` names (aware, UTC); ValueError for anything else (ASCII digits only; an instant
    outside years 1-9999 in UTC included)."""
    m = _RFC3339.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp with a time zone: {str(text)[:40]!r}")
    seconds, fraction, zone = m.groups()
    when = dt.datetime.fromisoformat(seconds + ("+00:00" if zone == "Z" else zone))
    micro = round(float("0" + fraction) * 1e6) if fraction else 0
    try:
        return (when + dt.timedelta(microseconds=micro)).astimezone(dt.UTC)
    except OverflowError:  # in range as written, out of range once in UTC: 0001-01-01T00:00:00+01:00, 9999-...-01:00
        raise ValueError(f"not a representable instant: {text[:40]!r}") from None


def optional(value: Any) -> dt.datetime | None:
    """A ``validFor`` bound: None where absent (missing or null), else strictly :func:`parse` (``""`` is malformed)."""
    return None if value is None else parse(value)
