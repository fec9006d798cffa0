"""How a packed Linear layer computes ``x W^T``: the three serving modes (docs/runtime.md) and the runtime id.

``reference``  decode with torch ops, then ``F.linear``: bit-equal to transformers on ``reconstruct``'s output
               (CPU and CUDA; the mode validations and tests compare against).
``exact``      the native kernel (``_serve.matmul_exact``): every row decoded bit for bit, then one fixed-order
               fp32 dot product per output. The same outputs for every thread count, ISA path and batch.
``fast``       the fused kernel (``_serve.matmul_fast``): the rotation moved onto the activations, quantized to
               15-bit integers (two int8 planes), integer dot products straight from the packed codes (AMX tiles
               for batches where the CPU has them). The same outputs for every thread count and ISA path;
               close to, not equal to, ``exact`` (docs/runtime.md says how close).

A layer the fused kernel cannot take (rows that are not whole groups, or signs not shared across rows) runs
``exact`` and the load says so; without the native module every layer runs ``reference``, said the same way.
"""

from __future__ import annotations

from typing import Any

import torch

from ..core import threads
from ..errors import OperationalError, UsageError
from ..quant.native_decode import DTYPE_CODES
from .modes import KERNEL, Mode, _native, available, isa  # noqa: F401 - kernels.KERNEL/available/isa as before


def default_mode(device: torch.device, cache: bool = False) -> Mode:
    """fast on CPU; reference on other devices, or where decoded weights are to be kept (``cache``)."""
    return Mode.FAST if device.type == "cpu" and not cache else Mode.REFERENCE


def effective_mode(mode: Mode, device: torch.device) -> Mode:
    """The mode a load can run: the native modes need a CPU device; without the native module, reference."""
    if mode is Mode.REFERENCE:
        return mode
    if device.type != "cpu":
        raise UsageError(f"mode {mode.value} runs on CPU; on {device.type} use mode reference")
    return mode if _native is not None else Mode.REFERENCE


#: Levels of the activations each side of zero in ``fast`` (127 * 128: two int8 planes, _serve.c C_MAX).
C_MAX = 16256


def fast_unsupported(shape: torch.Size, group: int, rotated: bool, period: int, bits: int) -> str | None:
    """Why the fused kernel cannot take a weight (None: it can)."""
    k = int(shape[1])
    if k % group:
        return f"rows of {k} weights are not whole groups of {group}"
    if rotated and period != k:
        return "its rotation signs are not shared across rows"
    if ((1 << bits) - 1) * C_MAX * group >= 2**31:
        return f"{bits}-bit codes in groups of {group} overflow the kernel's 32-bit integer sums"
    return None


def layer_mode(mode: Mode, weight: Any) -> tuple[Mode, str | None]:
    """The mode one packed weight is served in, and why it is not the one asked for (None: it is). A weight in
    two row-aligned parts is fast when its first part is (its last columns then run in exact)."""
    if mode is Mode.FAST:
        rec = weight.record
        if weight.parts:
            main = weight.parts[0]
            why = fast_unsupported(
                torch.Size((main.rows, main.cols)), rec.group_size, weight.key is not None, main.period, rec.bits
            )
        else:
            why = fast_unsupported(weight.shape, rec.group_size, weight.key is not None, weight.sign_period, rec.bits)
        if why is not None:
            return Mode.EXACT, why
    return mode, None


class NativeWeight:
    """The arguments the native kernels take for one packed weight (views of its buffers, no copies): one tuple,
    or one per row-aligned part (each part's product computed on its columns, the sums added in binary32)."""

    def __init__(self, weight: Any) -> None:
        rec = weight.record
        self.name = weight.name
        self.rows, self.k = int(weight.shape[0]), int(weight.shape[1])
        dtype = DTYPE_CODES[_DTYPE_NAMES[weight.dtype]]

        def args(codes: Any, scales: Any, zeros: Any, rows: int, k: int, period: int) -> tuple[Any, ...]:
            return (  # the kernels' weight tuple (see _serve.c parse_weight)
                codes.numpy(),
                scales.view(torch.int16).numpy(),
                zeros.numpy(),
                rows,
                k,
                rec.group_size,
                rec.bits,
                dtype,
                rec.exponent,
                weight.key is not None,
                weight.key or 0,
                period,
            )

        self.args = args(weight.uc_codes, weight.uc_scales, weight.uc_zeros, self.rows, self.k, weight.sign_period)
        #: (first column, columns, weight tuple, fused kernel possible) per part; () for a weight in one part.
        self.parts: tuple[tuple[int, int, tuple[Any, ...], bool], ...] = tuple(
            (
                p.col0,
                p.cols,
                args(*_components(weight, p), p.rows, p.cols, p.period),
                fast_unsupported(
                    torch.Size((p.rows, p.cols)), rec.group_size, weight.key is not None, p.period, rec.bits
                )
                is None,
            )
            for p in weight.parts
        )

    def matmul(
        self, x: torch.Tensor, mode: Mode, out_dtype: torch.dtype, bias: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``x W^T (+ bias)`` for ``x`` of shape [..., k], in ``out_dtype``: float32, float16 or bfloat16 in and
        out (widened to binary32 exactly, the sums and the bias in binary32, rounded once to ``out_dtype``)."""
        assert _native is not None
        lead = x.shape[:-1]
        if x.dtype not in _DTYPE_NAMES:
            x = x.to(torch.float32)
        x2 = x.reshape(-1, self.k)
        if not x2.is_contiguous():
            x2 = x2.contiguous()
        if self.parts:
            return self._matmul_parts(x2, lead, mode, out_dtype, bias)
        y = torch.empty((*lead, self.rows), dtype=out_dtype)
        if x2.shape[0] == 0:
            return y
        fn = _native.matmul_fast if mode is Mode.FAST else _native.matmul_exact
        try:
            fn(_buffer(x2), _buffer(y), self.args, threads.budget(), None if bias is None else _buffer(bias))
        except MemoryError:
            raise OperationalError(f"out of memory in layer {self.name} ({mode.value})", tensor=self.name) from None
        return y

    def _matmul_parts(
        self, x2: torch.Tensor, lead: torch.Size, mode: Mode, out_dtype: torch.dtype, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """Each part's product in binary32 on its columns (fast where the part allows it), summed in part order,
        then the bias, then one rounding to ``out_dtype``: the same value for any thread count."""
        if x2.shape[0] == 0:
            return torch.empty((*lead, self.rows), dtype=out_dtype)
        total: torch.Tensor | None = None
        try:
            for col0, cols, args, fusable in self.parts:
                xp = x2[:, col0 : col0 + cols].contiguous()
                y = torch.empty((x2.shape[0], self.rows), dtype=torch.float32)
                fn = _native.matmul_fast if mode is Mode.FAST and fusable else _native.matmul_exact
                fn(_buffer(xp), _buffer(y), args, threads.budget(), None)
                total = y if total is None else total.add_(y)
        except MemoryError:
            raise OperationalError(f"out of memory in layer {self.name} ({mode.value})", tensor=self.name) from None
        assert total is not None
        if bias is not None:
            total.add_(bias.to(torch.float32))
        return total.to(out_dtype).reshape(*lead, self.rows)


def _components(weight: Any, part: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    codes, scales, zeros = weight.part_components(part)
    return codes, scales, zeros


def _buffer(t: torch.Tensor) -> Any:
    """A CPU tensor's memory as the kernels read it (bfloat16 as its 16-bit patterns), without a copy."""
    return t.view(torch.int16).numpy() if t.dtype == torch.bfloat16 else t.numpy()


_DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}


def set_isa(name: str) -> None:
    """Force a native path (tests, benchmarks): scalar, avx2, avx512 or amx, where the CPU has it."""
    if _native is None:
        raise UsageError("the native serving kernels are not built")
    _native.set_isa(name)


def supported_isas() -> list[str]:
    return list(_native.supported_isas()) if _native is not None else []
