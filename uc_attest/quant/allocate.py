"""Bits where they matter: a measured, deterministic mixed-precision allocation under a bit budget.

For every quantized tensor, its damage at its base width ``b`` and at ``b + 1`` is measured as the
**moments-weighted relative error** of its reconstruction (exact integers, the same on every machine):

    D(Ŵ) = Σ_rows Σ_blocks e_b · H_b · e_bᵀ / Σ_rows Σ_blocks w_b · H_b · w_bᵀ

with ``H_b`` the committed int16 moment blocks of the layer's input (identity without calibration),
``e = round((W - Ŵ)·2^k)`` and ``w = round(W·2^k')`` scaled so their largest magnitude is below 2^7
(every product and partial sum is an integer below 2^53, so float64 BLAS computes it exactly in any
order; Python-int totals, a Fraction). That is the layer's relative output error energy.
Then the budget (bits per quantized weight as stored: codes + fp16 scale + u8 zero-point per group) is spent
greedily on the tensors with the largest ``(D_b - D_{b+1}) / extra bits``, ties by name. The result is
a scheme with one exact-name override per promoted tensor, recorded in the pack (``scheme.allocation``
says how it was chosen): a rebuild reads it and never measures again.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import torch

from ..errors import UsageError
from .ldlq import blocks_to_matrices
from .quantize import quantize_tensor, reconstruction
from .scheme import Scheme

#: The committed int16 moments of a tensor, or None (``calibration.Calibration`` is one).
Moments = Callable[[str, tuple[int, ...]], torch.Tensor | None]

METHOD = "uc-alloc/2"  # /1 counted zero-points at code width; /2 counts the bytes stored (u8)
_LEVEL = 7  # |scaled values| < 2^7: with |H| <= 2^15 and w <= 1024 every partial sum is below 2^49
_CHUNK = 4096  # row-blocks per int64 sum


def stored_bits(n: int, bits: int, g: int) -> int:
    """Bits a tensor of ``n`` weights takes on disk at ``bits``: codes of the padded groups, an fp16 scale and
    a u8 zero-point per group (docs/format.md: what the shards hold, so the budget is what is stored)."""
    return -(-n // g) * (g * bits + 16 + 8)


def _scaled(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """round(x·2^k) as int64 with max |.| < 2^_LEVEL, and k."""
    amax = float(torch.amax(torch.abs(x))) if x.numel() else 0.0
    if amax == 0.0:
        return torch.zeros_like(x, dtype=torch.int64), 0
    k = _LEVEL - 1 - math.frexp(amax)[1]
    return torch.round(x * math.ldexp(1.0, k)).to(torch.int64), k


def _energy(v: torch.Tensor, h: torch.Tensor | None, w: int) -> int:
    """Σ over rows and w-wide blocks of v_b H_b v_bᵀ, exactly (v int64 [rows, cols]; h int64 [cols/w, w, w])."""
    total = 0
    if h is None:
        flat = v.reshape(-1)
        step = _CHUNK * 64
        for i in range(0, flat.numel(), step):
            c = flat[i : i + step]
            total += int((c * c).to(torch.int64).sum())
        return total
    rows, cols = v.shape
    blocks = v.to(torch.float64).reshape(rows, cols // w, w).transpose(0, 1).contiguous()  # [nb, rows, w]
    hf = h.to(torch.float64)
    for r in range(0, rows, _CHUNK):
        b = blocks[:, r : r + _CHUNK]
        per = (torch.bmm(b, hf) * b).to(torch.int64)  # integers below 2^39 each, exact in float64
        total += int(per.to(torch.int64).sum())
    return total


def damage(original: torch.Tensor, recon: torch.Tensor, h: torch.Tensor | None, w: int) -> Fraction:
    """The moments-weighted relative error of ``recon`` (module docstring), exactly."""
    orig = original.to(torch.float64).reshape(-1, original.shape[-1])
    err, ke = _scaled(orig - recon.to(torch.float64).reshape(orig.shape))
    ref, kw = _scaled(orig)
    den = _energy(ref, h, w)
    if den == 0:
        return Fraction(0)
    return Fraction(_energy(err, h, w) * 4**kw, den * 4**ke)


def allocate_bits(
    source_dir: Path,
    scheme: Scheme,
    budget: float,
    moments: Moments | None,
    device: torch.device | str = "cpu",
    *,
    floor: bool = False,
    strict: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> Scheme:
    """``scheme`` with the measured allocation under ``budget`` bits per quantized weight (module docstring).

    Each tensor may take its base width ``b``, ``b + 1`` and (``floor``) ``b - 1``: every tensor starts at
    its lowest width and the budget buys, one step at a time, the step with the largest damage reduction per
    extra bit (ties by name) — the usual marginal-analysis allocation over measured rate-distortion points.
    A budget below what the lowest widths take is a UsageError, or (``strict=False``, the CLI's default
    budget) no allocation at all. ``progress(name, weights)`` after each tensor is measured."""
    from ..source import ModelSource

    dev = torch.device(device)
    g = scheme.group_size
    src = ModelSource(Path(source_dir))
    curves: dict[str, tuple[int, list[tuple[int, Fraction]]]] = {}  # name -> (n, [(bits, damage)] ascending)
    try:
        for shard, tensors in src.by_shard():
            f = src.file(shard)
            for st in tensors:
                info = st.info
                if not scheme.applies_to(info.name, info.dtype, info.shape):
                    continue
                b = scheme.bits_for(info.name)
                widths = [w for w in (b - 1 if floor else b, b, b + 1) if w >= 2 and _at(scheme, w) is not None]
                m16 = moments(info.name, info.shape) if moments is not None else None
                w = scheme.moment_block(info.shape) if m16 is not None else 0
                h = blocks_to_matrices(m16, w) if m16 is not None else None
                x = f.tensor(info.name)
                points = []
                for bits in sorted(set(widths)):
                    sc = _at(scheme, bits)
                    assert sc is not None
                    q = quantize_tensor(info.name, x, info.dtype, sc, dev, m16)
                    points.append((bits, damage(x, reconstruction(info.name, q, g, x), h, w)))
                curves[info.name] = (math.prod(info.shape), points)
                if progress is not None:
                    progress(info.name, curves[info.name][0])
    finally:
        src.close()
    if not curves:
        return scheme
    total_n = used = 0
    for n, pts in curves.values():
        total_n += n
        used += stored_bits(n, pts[0][0], g)
    level = dict.fromkeys(curves, 0)
    allowed = math.floor(budget * total_n)
    if used > allowed and not strict:
        return scheme
    if used > allowed:
        raise UsageError(f"--bits-budget {budget}: the lowest widths alone take {used / total_n:.3f} bits per weight")
    while True:
        best: tuple[Fraction, str, int] | None = None
        for name, (n, pts) in sorted(curves.items()):
            i = level[name]
            if i + 1 >= len(pts):
                continue
            extra = stored_bits(n, pts[i + 1][0], g) - stored_bits(n, pts[i][0], g)
            gain = (pts[i][1] - pts[i + 1][1]) / extra
            if used + extra <= allowed and gain > 0 and (best is None or gain > best[0]):
                best = (gain, name, extra)
        if best is None:
            break
        level[best[1]] += 1
        used += best[2]
    chosen = {name: curves[name][1][i][0] for name, i in level.items()}
    changed = sorted((name, bits) for name, bits in chosen.items() if bits != scheme.bits_for(name))
    overrides = tuple((glob.escape(name), bits) for name, bits in changed) + scheme.bits_overrides
    counts = {k: list(chosen.values()).count(k) for k in sorted(set(chosen.values()))}
    record = (
        ("bpw", f"{used / total_n:.4f}"),
        ("budget", f"{budget:.3f}"),
        ("method", METHOD),
        ("widths", ",".join(f"{k}:{v}" for k, v in counts.items())),
    )
    return replace(scheme, bits_overrides=overrides, allocation=record)


def _at(scheme: Scheme, bits: int) -> Scheme | None:
    """The scheme at ``bits`` for every tensor, or None where that width is not allowed."""
    try:
        return replace(scheme, bits=bits, bits_overrides=())
    except UsageError:
        return None
