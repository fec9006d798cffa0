"""The only tensor math of uc-attest: deterministic quantization and exact reconstruction.

* ``scheme``      parameters and tensor selection (no torch)
* ``codec``       bit packing (torch, any device)
* ``rotation``    group-local randomized Hadamard rotation and its sign streams
* ``quantize``    the deterministic encoder (torch, any device)
* ``reconstruct`` the reconstruction contract in torch (any device: the GPU path)
* ``decode``      the same contract in NumPy (host, torch-free: the fast verify path)

Nothing here imports signing, HTTP or logging modules, so packing runs with only
torch + safetensors + numpy (e.g. ``benchmarks/gpu_check.sh`` on a GPU machine).
Importing this package does not import torch.
"""

from .scheme import DEFAULT_SCHEME, RHT_ID, RTN_ID, SCHEME_ID, Scheme

__all__ = ["DEFAULT_SCHEME", "RHT_ID", "RTN_ID", "SCHEME_ID", "Scheme"]
