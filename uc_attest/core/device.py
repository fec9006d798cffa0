"""Where tensors are computed, as the library's options name it: ``auto`` (a GPU when there is one), ``cpu``
or ``cuda``. A ``StrEnum`` without torch (the policy model and the CLI read it): a member is its text, so
``"cpu"`` given by a caller or a policy file parses to ``Device.CPU`` and JSON shows the same words.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from ..errors import UsageError
from .enums import member

if TYPE_CHECKING:  # torch is imported lazily: the policy model and the CLI read this module without it
    import torch


class Device(StrEnum):
    AUTO = "auto"  # cuda when a GPU is available, else cpu
    CPU = "cpu"
    CUDA = "cuda"

    @classmethod
    def parse(cls, value: str) -> Device | None:
        """The member named ``value`` (None for anything else: each caller refuses it in its own words)."""
        return member(cls, value)

    @classmethod
    def of(cls, value: Device | str) -> Device:
        """The member named ``value``; anything else is a usage error (``option="device"``)."""
        asked = cls.parse(value)
        if asked is None:
            raise UsageError("{0} must be auto, cpu or cuda, got {device!r}", option="device", device=value)
        return asked

    def resolved(self, cuda_available: bool) -> Device:
        """``auto`` made concrete: cuda when ``cuda_available``, else cpu; cpu and cuda are themselves."""
        if self is Device.AUTO:
            return Device.CUDA if cuda_available else Device.CPU
        return self


def torch_device(value: Device | str) -> torch.device:
    """The torch device ``value`` names: ``auto`` -> cuda if available else cpu. Anything but auto, cpu or cuda,
    or ``cuda`` without a GPU, is a usage error (``option="device"``)."""
    import torch

    dev = Device.of(value).resolved(torch.cuda.is_available())
    if dev is Device.CUDA and not torch.cuda.is_available():
        raise UsageError("{0:=cuda} requested but no CUDA device is available", option="device")
    return torch.device(dev.value)
