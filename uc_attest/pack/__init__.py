"""The on-disk pack (docs/format.md).

``api`` is the pack pipeline behind a ``PackRequest`` (one set of defaults for the library and the CLI);
``reader`` opens packs with NumPy only (verify needs no torch); ``writer`` quantizes with torch and is
imported only when packing; ``facts`` observes a pack once per run; ``check`` compares a pack with a
manifest (every tensor reconstructed and hashed, every file); ``export`` writes the reconstruction.
"""

import importlib
from typing import Any

_LAZY = {
    "DEFAULT_BUDGET": "api",
    "PACK_SCHEME": "api",
    "PackProgress": "api",
    "PackRequest": "api",
    "PackCheck": "check",
    "check_files": "check",
    "check_pack": "check",
    "PackFacts": "facts",
    "load_manifest": "facts",
    "MANIFEST_NAME": "layout",
    "PACK_FORMAT": "layout",
    "SUFFIXES": "layout",
    "Pack": "reader",
    "PackedTensor": "reader",
}


def __getattr__(name: str) -> Any:
    """Each name from its module on first use: ``pack.api`` (the CLI's defaults) without NumPy."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_BUDGET",
    "MANIFEST_NAME",
    "PACK_FORMAT",
    "PACK_SCHEME",
    "SUFFIXES",
    "Pack",
    "PackCheck",
    "PackFacts",
    "PackProgress",
    "PackRequest",
    "PackedTensor",
    "check_files",
    "check_pack",
    "load_manifest",
]
