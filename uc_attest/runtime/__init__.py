"""Serving verified packs: the loader never returns a byte it did not hash and match against a trust anchor."""

from .loader import load_verified

__all__ = ["load_verified"]
