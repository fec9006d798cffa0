"""The serving modes and the runtime id a validation names, without torch: ``gate``/``verify --runtime fast`` and
``validate --runtime exact`` name the runtime they check on a machine with ``pip install uc-attest`` alone. The
kernels themselves (``kernels.py``) and the ``reference`` mode, named by torch's version, need torch."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from ..claims.validation import Runtime
from ..errors import UsageError

if TYPE_CHECKING:
    import torch

try:
    from . import _serve  # type: ignore[attr-defined]
except ImportError:  # a pure-Python install: every layer runs reference
    _serve = None
#: The native kernels, or None: the one module kernels.py computes with.
_native: Any = _serve

KERNEL = "uc-serve/2"  # bumped whenever a kernel's outputs change


class Mode(enum.Enum):
    REFERENCE = "reference"
    EXACT = "exact"
    FAST = "fast"

    @classmethod
    def parse(cls, value: Mode | str) -> Mode:
        if isinstance(value, Mode):
            return value
        try:
            return cls(value)
        except ValueError:
            raise UsageError(f"mode must be one of reference, exact, fast; got {value!r}") from None


def _our_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("uc-attest")
    except PackageNotFoundError:
        return "unknown"


def available() -> bool:
    return _native is not None


def isa() -> str:
    return _native.get_isa() if _native is not None else "none"


def runtime(mode: Mode | str, device: torch.device | str = "cpu") -> Runtime:
    """The runtime a model loaded in ``mode`` on ``device`` runs, as validations and the gate name it
    (reference: torch's own kernels, named by torch's version; the native modes: this kernel and ISA)."""
    mode = Mode.parse(mode)
    if mode is Mode.REFERENCE:
        import torch  # only reference is named by torch (the [torch] extra)

        kernel, where = f"torch {torch.__version__.split('+')[0]}", torch.device(device).type
    else:
        kernel, where = KERNEL, isa()
    return Runtime("uc-attest", mode.value, kernel, where, _our_version())


serving_runtime = runtime  # the facade's name (uc_attest.serving_runtime)
