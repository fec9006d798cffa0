"""The on-disk pack (docs/format.md).

``reader`` opens packs with NumPy only (verify needs no torch); ``writer`` quantizes
with torch and is imported only when packing.
"""

from .layout import MANIFEST_NAME, PACK_FORMAT, SUFFIXES
from .reader import Pack, PackedTensor, load_manifest

__all__ = ["MANIFEST_NAME", "PACK_FORMAT", "SUFFIXES", "Pack", "PackedTensor", "load_manifest"]
