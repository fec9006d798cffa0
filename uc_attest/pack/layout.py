"""Names and constants of the pack layout (docs/format.md sections 1-2)."""

from __future__ import annotations

#: The shard encoding (unchanged since format 1; see PACK_FORMAT_V2 for the directory's format).
PACK_FORMAT = "uc-pack/1"
#: The pack directory format: format 2 shards are uc-pack/1 and config.json carries quantization_config.
PACK_FORMAT_V2 = "uc-pack/2"
CONFIG_NAME = "config.json"
QUANTIZATION_CONFIG = "quantization_config"
#: transformers' quant_method of uc-attest packs (``import uc_attest.hf`` registers it).
QUANT_METHOD = "uc-attest"
MANIFEST_NAME = "uc-manifest.json"
SUFFIXES = (".uc_codes", ".uc_scales", ".uc_zeros")
#: Committed calibration moments of a tensor quantized with error feedback (int16, docs/format.md 3.6).
MOMENTS_SUFFIX = ".uc_moments"
META_FORMAT, META_SCHEME, META_TENSORS = "uc.format", "uc.scheme", "uc.quantized"
#: Reconstruction is streamed in blocks of about this many bytes of output.
BLOCK_BYTES = 16 << 20
