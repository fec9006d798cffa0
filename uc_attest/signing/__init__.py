"""Signing: which trust root (``trust``), DSSE through sigstore-python (``sign``), the attest stages (``attest``)."""

from .attest import AttestResult, ValidateResult, attest_pack, validate_pack
from .trust import Trust, select_trust

__all__ = ["AttestResult", "Trust", "ValidateResult", "attest_pack", "select_trust", "validate_pack"]
