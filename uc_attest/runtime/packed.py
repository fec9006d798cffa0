"""PackedLinear: an ``nn.Linear`` whose weight stays packed (~5.25 bits), served in one of three modes
(``runtime/kernels.py``, docs/runtime.md).

``layer.weight`` is a :class:`PackedWeight` holding the pack's components as buffers under the pack's own
names (``weight.uc_codes``, ``weight.uc_scales``, ``weight.uc_zeros``: a packed model's state dict has the
keys of the pack's shards). In mode ``reference`` each forward decodes the weight with ``quant.reconstruct`` —
torch ops only, so CPU and CUDA run the same code and the weight in the matmul is bit-identical to the manifest
entry — into a buffer shared by every layer of the same shape (per thread), then calls the matmul
``nn.Linear`` calls (``cache=True`` keeps the decoded weight instead: memory for speed). Modes ``exact`` and
``fast`` call the native kernels on the packed buffers and never hold a decoded layer.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional name

from ..core.digest import Digest
from ..core.stfile import dtype_name
from ..errors import UsageError
from ..quant.decode_protocol import Decoding
from ..quant.reconstruct import reconstruct_into, reconstruct_parts_into
from ..quant.records import QuantRecord
from ..quant.rotation import sign_key
from ..quant.scheme import Part
from .kernels import NativeWeight
from .modes import Mode


@dataclass
class DecodeStats:
    """Where a packed model's forward time goes: seconds decoding weights, seconds in the matmuls."""

    decode_s: float = 0.0
    matmul_s: float = 0.0
    decodes: int = 0
    enabled: bool = False


@dataclass
class Workspace:
    """Decode buffers shared by the layers of one model: one per (shape, dtype, device) and thread."""

    stats: DecodeStats = field(default_factory=DecodeStats)
    _local: threading.local = field(default_factory=threading.local)

    def buffer(self, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        pool: dict[tuple[torch.Size, torch.dtype, torch.device], torch.Tensor] = self._local.__dict__.setdefault(
            "pool", {}
        )
        key = (shape, dtype, device)
        if key not in pool:
            pool[key] = torch.empty(shape, dtype=dtype, device=device)
        return pool[key]


class PackedWeight(torch.nn.Module):
    """The packed components of one weight (buffers) and what decoding them needs."""

    uc_codes: torch.Tensor
    uc_scales: torch.Tensor
    uc_zeros: torch.Tensor
    shape: torch.Size
    dtype: torch.dtype

    def __init__(
        self,
        name: str,
        shape: tuple[int, int],
        dtype: torch.dtype,
        record: QuantRecord,
        rotated: bool,
        sign_period: int,
        device: torch.device | str = "meta",
        parts: tuple[Part, ...] = (),
    ) -> None:
        super().__init__()
        n = shape[0] * shape[1]
        g = record.group_size
        groups = -(-n // g)
        self.name, self.shape, self.dtype, self.record = name, torch.Size(shape), dtype, record
        self.key = sign_key(name) if rotated else None
        self.sign_period = sign_period
        #: The row-aligned parts (``Scheme.parts``) when there are two, else () (one part, groups over the tensor).
        self.parts = parts if len(parts) > 1 else ()
        self.register_buffer("uc_codes", torch.empty(groups * g * record.bits // 8, dtype=torch.uint8, device=device))
        self.register_buffer("uc_scales", torch.empty(groups, dtype=torch.float16, device=device))
        self.register_buffer("uc_zeros", torch.empty(groups, dtype=torch.uint8, device=device))

    def _apply(self, fn: Any, recurse: bool = True) -> PackedWeight:
        """Device moves only: the components' dtypes are part of the format (``model.half()`` must not turn
        the fp16 scales into anything else, nor touch the codes)."""
        for key, buf in self._buffers.items():
            if buf is not None:
                device = fn(torch.empty(0, dtype=buf.dtype, device=buf.device)).device
                self._buffers[key] = buf.to(device)
        return self

    def part_components(self, part: Part) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The codes, scales and zero-points of one part (views)."""
        step = part.group * self.record.bits // 8
        a, b = part.first_group, part.first_group + part.groups
        return self.uc_codes[a * step : b * step], self.uc_scales[a:b], self.uc_zeros[a:b]

    def decode_into(self, out: torch.Tensor) -> torch.Tensor:
        """The contract decode (docs/format.md 3.3, 3.5) into ``out`` (the source dtype, this weight's shape)."""
        how = Decoding(
            dtype_name(out.dtype),
            self.record.bits,
            self.record.group_size,
            self.record.exponent,
            self.key,
            self.sign_period,
        )
        if self.parts:  # each part decoded on its own, then placed in its columns
            return reconstruct_parts_into(out, self.uc_codes, self.uc_scales, self.uc_zeros, how, self.parts)
        return reconstruct_into(out, self.uc_codes, self.uc_scales, self.uc_zeros, how)

    def decode(self) -> torch.Tensor:
        return self.decode_into(torch.empty(self.shape, dtype=self.dtype, device=self.uc_codes.device))

    def digest(self, workspace: Workspace | None = None) -> Digest:
        """SHA-256 of the decoded weight's bytes (little-endian, C order): the manifest's per-tensor digest.
        With a workspace the decode reuses its buffer (checking every layer then costs one layer's memory)."""
        device = self.uc_codes.device
        out = workspace.buffer(self.shape, self.dtype, device) if workspace is not None else None
        w = (self.decode_into(out) if out is not None else self.decode()).cpu()  # CPU: no copy
        return Digest(hashlib.sha256(tensor_bytes(w)).hexdigest())

    def extra_repr(self) -> str:
        return f"{tuple(self.shape)}, {self.record.bits} bits, group {self.record.group_size}"


class PackedLinear(torch.nn.Module):
    """A Linear layer serving a packed weight; ``dtype`` is the compute dtype (the source dtype by default),
    ``mode`` how the product is computed (the load decides it per layer: ``kernels.layer_mode``)."""

    def __init__(
        self,
        weight: PackedWeight,
        bias: torch.Tensor | None,
        workspace: Workspace,
        *,
        compute_dtype: torch.dtype | None = None,
        cache: bool = False,
        mode: Mode = Mode.REFERENCE,
    ) -> None:
        super().__init__()
        self.out_features, self.in_features = int(weight.shape[0]), int(weight.shape[1])
        self.weight = weight
        self.bias = torch.nn.Parameter(bias, requires_grad=False) if bias is not None else None
        self.workspace = workspace
        self.compute_dtype = compute_dtype or weight.dtype
        self.cache = cache
        self.mode = mode
        self._cached: torch.Tensor | None = None
        self._native: tuple[tuple[int, ...], NativeWeight] | None = None

    def native(self) -> NativeWeight:
        """The native kernels' view of the packed buffers (made again if a buffer was replaced)."""
        w = self.weight
        key = (id(w.uc_codes), id(w.uc_scales), id(w.uc_zeros))
        if self._native is None or self._native[0] != key:
            self._native = (key, NativeWeight(w))
        return self._native[1]

    def _forward_native(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            raise UsageError(f"mode {self.mode.value} serves inference only; load with mode reference for gradients")
        if x.device.type != "cpu":
            raise UsageError(f"mode {self.mode.value} runs on CPU, the input is on {x.device}; use mode reference")
        return self.native().matmul(x, self.mode, self.compute_dtype, self.bias)

    def dense_weight(self) -> torch.Tensor:
        """The decoded weight for this call: the cached one, or the shared buffer (valid until the next decode)."""
        if self._cached is not None:
            return self._cached
        stats = self.workspace.stats
        t0 = time.perf_counter() if stats.enabled else 0.0
        if self.cache or torch.is_grad_enabled():
            w = self.weight.decode()  # a tensor of its own: kept, or referenced by autograd
        else:
            w = self.weight.decode_into(
                self.workspace.buffer(self.weight.shape, self.weight.dtype, self.weight.uc_codes.device)
            )
        if w.dtype != self.compute_dtype:
            w = w.to(self.compute_dtype)
        if stats.enabled:
            _sync(w)
            stats.decode_s += time.perf_counter() - t0
            stats.decodes += 1
        if self.cache:
            self._cached = w
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stats = self.workspace.stats
        if self.mode is not Mode.REFERENCE:
            if not stats.enabled:
                return self._forward_native(x)
            t0 = time.perf_counter()
            y = self._forward_native(x)
            stats.matmul_s += time.perf_counter() - t0
            return y
        w = self.dense_weight()
        if not stats.enabled:
            return F.linear(x, w, self.bias)
        t0 = time.perf_counter()
        y = F.linear(x, w, self.bias)
        _sync(y)
        stats.matmul_s += time.perf_counter() - t0
        return y

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}, mode={self.mode.value}"


def tensor_bytes(t: torch.Tensor) -> memoryview:
    """A contiguous CPU tensor's bytes, without copying (what its manifest digest is taken over)."""
    arr: Any = t.reshape(-1).view(torch.uint8).numpy()
    return memoryview(arr)


def release_freed_memory() -> None:
    """Give memory freed by load-time temporaries back to the OS (glibc keeps freed heap pages otherwise,
    which would show as resident memory the model does not use); a no-op elsewhere."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    except OSError:
        return


def _sync(t: torch.Tensor) -> None:
    if t.is_cuda:
        torch.cuda.synchronize(t.device)


def packed_bytes(model: torch.nn.Module) -> tuple[int, int, int]:
    """(bytes of the packed components, bytes the same weights take in their source dtype, weights) over the
    model's PackedWeights: the resident memory the packing saves, measured from the buffers themselves."""
    packed = dense = weights = 0
    for m in model.modules():
        if isinstance(m, PackedWeight):
            packed += sum(b.numel() * b.element_size() for b in (m.uc_codes, m.uc_scales, m.uc_zeros))
            dense += m.shape.numel() * torch.empty((), dtype=m.dtype).element_size()
            weights += m.shape.numel()
    return packed, dense, weights
