"""The native exact quantizer (``_quantize.c``) over a whole tensor: the groups split into runs of whole groups
between the process's threads (``core.threads``), the same bytes as :func:`quantize.quantize_tensor`'s torch
path whatever the split (tests/unit/test_quantize_native.py compares them bit for bit).

Used for CPU packs when the extension is compiled; ``UC_ATTEST_QUANTIZER=torch`` forces the torch reference.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.threads import budget, pool
from ..errors import UnsupportedTensor
from .scheme import FEEDBACK_SEARCH

try:
    from . import _quantize as _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - not compiled
    _native = None

if TYPE_CHECKING:
    import torch

    from .scheme import Part, Scheme

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


def _source(flat: torch.Tensor) -> tuple[memoryview, int, int]:
    """A flattened CPU tensor as the C quantizer reads it: its bytes, its dtype code, its length."""
    import torch

    code = native_dtype(flat)
    assert code is not None
    return flat.contiguous().view(torch.uint8).numpy().data, code, flat.numel()


def part_range(name: str, flat: torch.Tensor, scheme: Scheme, period: int) -> float:
    """The largest group range (hi - lo, rotated when the scheme rotates) of a flattened part, as
    ``quantize._part_range`` computes it; UnsupportedTensor on NaN or infinity."""
    from .rotation import sign_key

    assert _native is not None
    src, code, n = _source(flat)
    g = scheme.group_size
    key = sign_key(name) if scheme.rotated else 0
    runs = _runs(-(-n // g), 1)
    ranges = list(
        pool().map(lambda r: _native.group_ranges(src, code, n, g, r[0], r[1], scheme.rotated, key, period), runs)
    )
    if not all(finite for _, finite in ranges):
        raise UnsupportedTensor(f"tensor {name!r}: contains NaN or infinity; cannot quantize", tensor=name)
    return max((r for r, _ in ranges), default=0.0)


def feedback_matrices(name: str, scheme: Scheme, part: Part, moments: torch.Tensor) -> bytes:
    """ldlq.py's rotated_hessian + feedback_matrix of one part's moments, natively (the same at every width; a
    feedback block of several groups, ``uc-rht-ldlq/3``, included)."""
    from .rotation import sign_key

    assert _native is not None
    key = sign_key(name) if scheme.rotated else 0
    m: bytes = _native.feedback_matrices(
        moments.contiguous().numpy().tobytes(), part.block, scheme.group_size, key, part.period
    )
    return m


def quantize_part(
    name: str, flat: torch.Tensor, scheme: Scheme, part: Part, matrices: bytes | None, exponent: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Packed codes, fp16 scales and zero-points of one flattened part (F32, F16 or BF16 on CPU), as
    ``quantize._quantize_part`` gives them, with error feedback through the part's :func:`feedback_matrices`
    when given."""
    import torch

    from .rotation import sign_key

    assert _native is not None
    src, code, n = _source(flat)
    g, bits, period = scheme.group_size, scheme.bits_for(name), part.period
    n_groups = -(-n // g)
    key = sign_key(name) if scheme.rotated else 0
    row_groups = max(1, period // g)
    fb = part.block // g if matrices is not None and part.block > g else 1  # groups per feedback block
    grid, refit = FEEDBACK_SEARCH if matrices is not None else (scheme.clip_grid, scheme.refit_rounds)
    grid_bytes = np.asarray(grid, dtype=np.float64).tobytes()
    m = matrices
    codes = np.empty(n_groups * g * bits // 8, dtype=np.uint8)
    scales = np.empty(n_groups, dtype=np.uint16)
    zeros = np.empty(n_groups, dtype=np.uint8)
    per_group = g * bits // 8

    def run(r: tuple[int, int]) -> None:
        a, b = r
        out = (codes[a * per_group : b * per_group].data, scales[a:b].data, zeros[a:b].data)
        _native.quantize_groups(
            src,
            code,
            n,
            g,
            a,
            b,
            scheme.rotated,
            key,
            period,
            bits,
            exponent,
            grid_bytes,
            refit,
            m,
            row_groups,
            fb,
            *out,
        )

    list(pool().map(run, _runs(n_groups, fb)))
    return torch.from_numpy(codes), torch.from_numpy(scales.view(np.float16)), torch.from_numpy(zeros)
