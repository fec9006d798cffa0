"""Reading an enum member from untrusted text: one rule for every file, flag and policy field that names one."""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

_E = TypeVar("_E", bound=Enum)


def member(kind: type[_E], value: Any) -> _E | None:
    """The member of ``kind`` that ``value`` names, or None (text only: never a number or another type; each
    caller refuses None in its own words)."""
    if not isinstance(value, str):
        return None
    try:
        return kind(value)
    except ValueError:
        return None
