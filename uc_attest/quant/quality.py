"""Per-tensor quality record: relative squared error in parts per million, computed exactly.

``rel_err_ppm = floor(1e6 · Σ round(((w - ŵ)·2^(16-E))²) / Σ round((w·2^(16-E))²))`` with E the
binary exponent of max|w|: float64 elementwise products, int64 sums, integer division — the
same number on every machine, so it can live in the (signed) manifest.
"""

from __future__ import annotations

import math

import torch

CHUNK = 1 << 22


def _isum(t: torch.Tensor) -> int:
    if t.is_floating_point():
        raise TypeError("only integer sums are allowed on the determinism path")
    return int(t.to(torch.int64).sum())


def relative_error_ppm(original: torch.Tensor, recon: torch.Tensor) -> int:
    """Exact relative squared error of ``recon`` vs ``original`` (same shape), in ppm."""
    w = original.reshape(-1)
    r = recon.reshape(-1)
    absmax = float(torch.amax(torch.abs(w.to(torch.float64)))) if w.numel() else 0.0
    if absmax == 0.0:
        return 0
    scale = math.ldexp(1.0, 16 - math.frexp(absmax)[1])
    num = den = 0
    for s in range(0, w.numel(), CHUNK):
        a = w[s : s + CHUNK].to(torch.float64) * scale
        d = a - r[s : s + CHUNK].to(torch.float64) * scale
        num += _isum(torch.round(d * d).to(torch.int64))
        den += _isum(torch.round(a * a).to(torch.int64))
    return (num * 1_000_000) // den if den else 0
