"""Where and how ``generate``/``embed`` compute a pack's packed layers, as a value built without torch: a caller
(the CLI among them) makes a :class:`Serving` where only ``pip install uc-attest`` is installed, and a device or
mode that is none of the library's is refused when it is made, before anything is verified or loaded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.device import Device

if TYPE_CHECKING:  # the modes' module names runtimes (uc_attest.claims): imported when a Serving is made
    from .modes import Mode


@dataclass(frozen=True)
class Serving:
    """Where and how a pack's packed layers compute, as ``load_model`` takes them: ``device`` (auto, cpu or
    cuda), ``mode`` (None: by the device) and ``cache`` (keep decoded weights after first use: mode reference,
    memory for speed). Text is parsed into :class:`~uc_attest.Device` and :class:`~uc_attest.Mode` members;
    any other is a :class:`~uc_attest.UsageError`, in the words ``load_model`` refuses it in."""

    device: Device | str = Device.CPU
    mode: Mode | str | None = None
    cache: bool = False

    def __post_init__(self) -> None:
        from .modes import Mode

        object.__setattr__(self, "device", Device.of(self.device))
        if self.mode is not None:
            object.__setattr__(self, "mode", Mode.parse(self.mode))
