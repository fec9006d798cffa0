"""Names and constants of the pack layout (docs/format.md sections 1-2)."""

from __future__ import annotations

PACK_FORMAT = "uc-pack/1"
MANIFEST_NAME = "uc-manifest.json"
SUFFIXES = (".uc_codes", ".uc_scales", ".uc_zeros")
#: Committed calibration moments of a tensor quantized with error feedback (int16, docs/format.md 3.6).
MOMENTS_SUFFIX = ".uc_moments"
META_FORMAT, META_SCHEME, META_TENSORS = "uc.format", "uc.scheme", "uc.quantized"
#: Reconstruction is streamed in blocks of about this many bytes of output.
BLOCK_BYTES = 16 << 20
