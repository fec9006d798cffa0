"""uc-attest: the model in production is the model that was validated, as a cryptographic check.

Public facade: the stage functions and result types. The CLI imports only from here.
Importing it does not import torch: reading and verifying packs needs NumPy only;
packing imports the quantizer (torch) when it is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import (
    Finding,
    InvalidInput,
    MalformedModel,
    MalformedPack,
    MalformedSafetensors,
    OperationalError,
    UcAttestError,
    UnsupportedTensor,
    UsageError,
    VerificationFailed,
)
from .export import export_reconstruction
from .manifest import Manifest, TensorEntry
from .pack import MANIFEST_NAME, load_manifest
from .quant import DEFAULT_SCHEME, Scheme
from .verify import PackCheck, check_pack, verify_pack

if TYPE_CHECKING:
    from .pack.writer import PackResult, Progress


def write_pack(
    source_dir: Path,
    out_dir: Path,
    scheme: Scheme = DEFAULT_SCHEME,
    device: str = "auto",
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> PackResult:
    """Quantize a model directory into a new pack (imports torch on first use)."""
    from .pack.writer import write_pack as _write_pack

    if progress is None:
        return _write_pack(Path(source_dir), Path(out_dir), scheme, device, force=force)
    return _write_pack(Path(source_dir), Path(out_dir), scheme, device, force=force, progress=progress)


__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SCHEME",
    "MANIFEST_NAME",
    "Finding",
    "InvalidInput",
    "MalformedModel",
    "MalformedPack",
    "MalformedSafetensors",
    "Manifest",
    "OperationalError",
    "PackCheck",
    "Scheme",
    "TensorEntry",
    "UcAttestError",
    "UnsupportedTensor",
    "UsageError",
    "VerificationFailed",
    "__version__",
    "check_pack",
    "export_reconstruction",
    "load_manifest",
    "verify_pack",
    "write_pack",
]
