"""The on-disk pack (docs/format.md).

``api`` is the pack pipeline behind a ``PackRequest`` (one set of defaults for the library and the CLI);
``reader`` opens packs with NumPy only (verify needs no torch); ``writer`` quantizes with torch and is
imported only when packing; ``facts`` observes a pack once per run; ``check`` compares a pack with a
manifest (every tensor reconstructed and hashed, every file); ``export`` writes the reconstruction.
"""

from .api import DEFAULT_BUDGET, PACK_SCHEME, PackProgress, PackRequest
from .check import PackCheck, check_files, check_pack
from .facts import PackFacts, load_manifest
from .layout import MANIFEST_NAME, PACK_FORMAT, SUFFIXES
from .reader import Pack, PackedTensor

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
