"""Where tensors are computed, as the library's options name it: ``auto`` (a GPU when there is one), ``cpu``
or ``cuda``. A ``StrEnum`` without torch (the policy model and the CLI read it): a member is its text, so
``"cpu"`` given by a caller or a policy file parses to ``Device.CPU`` and JSON shows the same words.
"""

from __future__ import annotations

from enum import StrEnum


class Device(StrEnum):
    AUTO = "auto"  # cuda when a GPU is available, else cpu
    CPU = "cpu"
    CUDA = "cuda"

    @classmethod
    def parse(cls, value: str) -> Device | None:
        """The member named ``value`` (None for anything else: each caller refuses it in its own words)."""
        try:
            return cls(value)
        except ValueError:
            return None

    def resolved(self, cuda_available: bool) -> Device:
        """``auto`` made concrete: cuda when ``cuda_available``, else cpu; cpu and cuda are themselves."""
        if self is Device.AUTO:
            return Device.CUDA if cuda_available else Device.CPU
        return self
