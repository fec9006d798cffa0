"""``import uc_attest.hf`` registers quant method ``uc-attest`` with transformers (see ``runtime/hf.py``)."""

from .runtime.hf import UcAttestConfig, UcAttestQuantizer, is_packed

__all__ = ["UcAttestConfig", "UcAttestQuantizer", "is_packed"]
