"""The native exact quantizer (``_quantize.c``) over a whole tensor: the groups split into runs of whole groups
between the process's threads (``core.threads``), the same bytes as :func:`quantize.quantize_tensor`'s torch
path whatever the split (tests/unit/test_quantize_native.py compares them bit for bit).

Used for CPU packs when the extension is compiled; ``UC_ATTEST_QUANTIZER=torch`` forces the torch reference.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.threads import budget, pool
from ..errors import UnsupportedTensor
from .scheme import EXP_RANGE, FEEDBACK_SEARCH

try:
    from . import _quantize as _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - not compiled
    _native = None

if TYPE_CHECKING:
    import torch

    from .quantize import QuantizedTensor
    from .scheme import Scheme

#: Groups per run handed to one thread (128 k weights at g = 128): small enough to balance, large enough that
#: the call overhead is noise.
RUN_GROUPS = 1024


def available() -> bool:
    """The native quantizer is compiled and not switched off (``UC_ATTEST_QUANTIZER=torch``)."""
    return _native is not None and os.environ.get("UC_ATTEST_QUANTIZER", "") != "torch"


def module() -> Any:
    """The compiled module (callers check :func:`available` first)."""
    assert _native is not None
    return _native


def _runs(n_groups: int, unit: int) -> list[tuple[int, int]]:
    """Runs of whole groups (multiples of ``unit``), about RUN_GROUPS each, at least one per thread."""
    per = max(unit, min(RUN_GROUPS, -(-n_groups // budget())))
    per = -(-per // unit) * unit
    return [(a, min(n_groups, a + per)) for a in range(0, n_groups, per)]


def native_dtype(w: torch.Tensor) -> int | None:
    """The source dtype code the native quantizer reads (F32 0, F16 1, BF16 2), or None (torch path)."""
    import torch

    return {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}.get(w.dtype)


def quantize_native(
    name: str,
    w: torch.Tensor,
    dtype: str,
    scheme: Scheme,
    moments: torch.Tensor | None,
) -> QuantizedTensor:
    """Quantize the CPU tensor ``w`` (F32, F16 or BF16) as ``quantize_tensor`` does (``dtype`` is recorded), with
    error feedback through its committed ``moments`` (checked by the caller) when given."""
    import torch

    from .quantize import QuantizedTensor, tensor_exponent
    from .rotation import sign_key

    assert _native is not None
    g, bits = scheme.group_size, scheme.bits_for(name)
    shape = tuple(w.shape)
    n = math.prod(shape)
    n_groups = -(-n // g)
    period = scheme.sign_period(shape)
    key = sign_key(name) if scheme.rotated else 0
    row_groups = max(1, period // g)
    code = native_dtype(w)
    assert code is not None
    src = w.contiguous().reshape(-1).view(torch.uint8).numpy().data
    runs = _runs(n_groups, 1)
    ranges = list(
        pool().map(lambda r: _native.group_ranges(src, code, n, g, r[0], r[1], scheme.rotated, key, period), runs)
    )
    if not all(finite for _, finite in ranges):
        raise UnsupportedTensor(f"tensor {name!r}: contains NaN or infinity; cannot quantize", tensor=name)
    qmax = (1 << bits) - 1
    exponent = tensor_exponent(max(r for r, _ in ranges), qmax)
    if not EXP_RANGE[0] <= exponent <= EXP_RANGE[1]:
        raise UnsupportedTensor(f"tensor {name!r}: magnitude out of range (scale exponent {exponent})", tensor=name)
    grid, refit = FEEDBACK_SEARCH if moments is not None else (scheme.clip_grid, scheme.refit_rounds)
    grid_bytes = np.asarray(grid, dtype=np.float64).tobytes()
    m = None
    if moments is not None:  # ldlq.py rotated_hessian + feedback_matrix, natively
        block = scheme.moment_block(shape)
        m = _native.feedback_matrices(moments.contiguous().numpy().tobytes(), block, g, sign_key(name), period)
    codes = np.empty(n_groups * g * bits // 8, dtype=np.uint8)
    scales = np.empty(n_groups, dtype=np.uint16)
    zeros = np.empty(n_groups, dtype=np.uint8)
    per_group = g * bits // 8

    def run(r: tuple[int, int]) -> None:
        a, b = r
        out = (codes[a * per_group : b * per_group].data, scales[a:b].data, zeros[a:b].data)
        _native.quantize_groups(
            src, code, n, g, a, b, scheme.rotated, key, period, bits, exponent, grid_bytes, refit, m, row_groups, *out
        )

    list(pool().map(run, _runs(n_groups, 1)))
    return QuantizedTensor(
        torch.from_numpy(codes),
        torch.from_numpy(scales.view(np.float16)),
        torch.from_numpy(zeros),
        exponent,
        shape,
        dtype,
        bits,
        scheme.rotated,
        period,
        moments,
    )
