"""uc-attest: the model in production is the model that was validated, as a cryptographic check.

Public facade: the stage functions and result types. The CLI imports only from here.
"""

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
from .pack import MANIFEST_NAME, PackResult, load_manifest, write_pack
from .quant import DEFAULT_SCHEME, Scheme
from .verify import PackCheck, check_pack, verify_pack

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
    "PackResult",
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
