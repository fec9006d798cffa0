"""The only tensor math of uc-attest: deterministic quantization and exact reconstruction.

This package imports nothing from signing, HTTP or logging modules, so it runs
with only torch + safetensors (e.g. on a GPU machine for ``benchmarks/gpu_check.sh``).
"""

from .quantize import QuantizedTensor, quantize_tensor
from .reconstruct import reconstruct_tensor
from .scheme import DEFAULT_SCHEME, Scheme

__all__ = ["DEFAULT_SCHEME", "QuantizedTensor", "Scheme", "quantize_tensor", "reconstruct_tensor"]
