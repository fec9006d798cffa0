"""Error feedback from committed second moments (scheme ``uc-rht-ldlq/1``): deterministic LDLQ.

With the second moments ``S = E[x xᵀ]`` of a layer's input, the output error of a row is
``e S eᵀ`` rather than ``e eᵀ``. LDLQ (QuIP; equivalent to GPTQ) quantizes the columns of a
group in order and feeds each error forward: with ``H = M Δ Mᵀ`` (M unit upper triangular),
``q_k = Q(u_k + Σ_{i<k} e_i M_ik)``, ``e_i = u_i - (q_i - z)``, ``u = y / s``.
Every step is exact or pinned, so codes are the same bytes on every machine:

1. the committed moments are int16 g x g diagonal blocks (``moments_to_blocks``: each block scaled
   so its largest diagonal entry is 32767); they are rotated into the quantization domain exactly
   (integer sign flips and Walsh-Hadamard on both sides, int64) and damped by the integer
   ``⌊trace / (100 g)⌋ + 1``;
2. ``M`` by elimination from the last column in float64 with elementwise ``* - /`` in a fixed
   order (no BLAS, nothing to reassociate or contract), then rounded to 2^-16 fixed point;
3. the feedback sums are integers (``u`` and ``e`` in 2^-12 fixed point) whose magnitudes are
   bounded below 2^53 by clamping, so every partial sum is exact and any summation order — a
   BLAS batched matmul on any CPU or GPU — gives the same value (docs/format.md 3.6).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .rotation import fwht_torch, signs_torch
from .scheme import WIDE_MAX

#: Largest diagonal entry of a committed moment block.
MOMENT_MAX = 32767
#: Fractional bits of u and e, and of M.
F_U, F_M = 12, 16
#: Clamps that keep every feedback sum exact: |u| <= 2^21 so |e| < 2^22, |M| <= 2^20, and a group's
#: sum of g <= 1024 products stays below 2^52.
U_LIM, M_LIM = float(1 << 21), float(1 << 20)
#: The clamp of M in feedback blocks wider than 1024 columns (``uc-rht-ldlq/3``, at most 2048): sums of up to 2047
#: products of |e| < 2^22 and |M| <= 2^19 stay below 2^52.
M_LIM_WIDE = float(1 << 19)
#: Widest block the native elimination takes (``_quantize.c`` MAX_BLOCK, the widest feedback block; wider: the
#: torch loop).
MAX_BLOCK = WIDE_MAX
#: Columns per batched matmul; any value gives identical codes (the sums are exact).
SUB_BLOCK = 16


def moments_to_blocks(h: torch.Tensor, g: int) -> torch.Tensor:
    """Committed form of second moments given as the full [n, n] matrix or as its g x g diagonal
    blocks [n/g, g, g]: int16 [n/g, g(g+1)/2], the upper triangles (row-major) of the blocks, each
    scaled so its largest diagonal entry is 32767 (the scale of a block does not change the
    feedback). A block with no energy is all zeros."""
    h = h.to(torch.float64)
    if h.dim() == 2:
        nb = h.shape[0] // g
        idx = torch.arange(nb)
        h = h.reshape(nb, g, nb, g)[idx, :, idx, :]  # [nb, g, g]
    dmax = torch.diagonal(h, dim1=-2, dim2=-1).amax(-1)
    ok = dmax > 0
    factor = torch.where(ok, torch.div(torch.full_like(dmax, float(MOMENT_MAX)), torch.where(ok, dmax, 1.0)), 0.0)
    scaled = torch.clamp(torch.round(h * factor[:, None, None]), -MOMENT_MAX, MOMENT_MAX)
    iu = torch.triu_indices(g, g)
    return scaled[:, iu[0], iu[1]].to(torch.int16)


def blocks_to_matrices(m16: torch.Tensor, g: int) -> torch.Tensor:
    """int16 [nb, g(g+1)/2] upper triangles -> symmetric int64 [nb, g, g]."""
    nb = m16.shape[0]
    iu = torch.triu_indices(g, g, device=m16.device)
    full = torch.zeros((nb, g, g), dtype=torch.int64, device=m16.device)
    full[:, iu[0], iu[1]] = m16.to(torch.int64)
    full[:, iu[1], iu[0]] = m16.to(torch.int64)
    return full


def rotated_hessian(m16: torch.Tensor, g: int, key: int, period: int) -> torch.Tensor:
    """Damped moment blocks in the rotated domain, exact int64 [nb, g, g]: H D S D H + λ I.

    Blocks narrower than g (a group holds g / width whole rows of the same input) are repeated
    along the diagonal: the rows' errors are independent."""
    width = int((math.isqrt(8 * m16.shape[1] + 1) - 1) // 2)
    s = blocks_to_matrices(m16, width)
    if width < g:  # g/width copies of the one block along the diagonal
        rep = torch.zeros((1, g, g), dtype=s.dtype, device=s.device)
        for r in range(0, g, width):
            rep[0, r : r + width, r : r + width] = s[0]
        s = rep
    nb, w = s.shape[0], s.shape[-1]
    d = signs_torch(key, 0, nb * w, s.device, torch.int64, period).reshape(nb, w)  # the row-shared signs
    a = s * d[:, :, None] * d[:, None, :]
    a = _had_g(_had_g(a, g).transpose(-1, -2), g)  # Had·A·Had per group (both symmetric), |·| < 2^36
    lam = torch.diagonal(a, dim1=-2, dim2=-1).to(torch.int64).sum(-1) // (100 * w) + 1
    if w > g:  # uc-rht-ldlq/3: at least g·⌊√w⌋, about twice the spectral norm of the int16 rounding (≈ 0.58·√w,
        lam = torch.clamp(lam, min=g * math.isqrt(w))  # times g for the unnormalized rotation): a near-singular
        # block (a pooler fed fewer tokens than it has inputs) rounds to an indefinite one, and its feedback explodes
    return a + torch.diag_embed(lam[:, None].expand(nb, w))


def _had_g(a: torch.Tensor, g: int) -> torch.Tensor:
    """The Walsh-Hadamard transform of each g-wide group of the last dimension (a feedback block of several groups
    is rotated group by group, as its weights are)."""
    return fwht_torch(a.reshape(*a.shape[:-1], a.shape[-1] // g, g)).reshape(a.shape)


def feedback_matrix(h: torch.Tensor, native: bool = True) -> torch.Tensor:
    """Fixed-point M (2^-16, strictly upper) of ``H = M Δ Mᵀ`` for int64 blocks [nb, g, g].

    Elimination from the last column, float64, elementwise ops only (pinned rounding). Pivots
    are Schur complements of a matrix damped by λ >= 1, so at least 1; the clamp only guards."""
    lim = M_LIM if h.shape[-1] <= 1024 else M_LIM_WIDE
    module = _native() if native else None
    if module is not None and h.device.type == "cpu" and h.shape[0] and h.shape[-1] <= MAX_BLOCK:  # the same
        # elementwise operations in the same order, in C
        out = module.eliminate(h.to(torch.float64).contiguous().numpy().tobytes(), h.shape[-1], lim)
        return torch.frombuffer(bytearray(out), dtype=torch.float64).reshape(h.shape)
    a = h.to(torch.float64)  # exact: |h| < 2^53
    m = torch.zeros_like(a)
    for k in range(a.shape[-1] - 1, 0, -1):
        col = torch.div(a[:, :k, k], torch.clamp(a[:, k, k : k + 1], min=1.0))
        m[:, :k, k] = col
        a[:, :k, :k] -= col[:, :, None] * a[:, k : k + 1, :k]
    m = torch.where(torch.isnan(m), 0.0, m)  # an indefinite block (hostile moments) may eliminate to NaN: no feedback
    return torch.clamp(torch.round(m * float(1 << F_M)), -lim, lim)


def _native() -> Any:
    """The native quantizer module when it is built (its ``eliminate`` is this module's elimination in C)."""
    from . import native

    return native.module() if native.available() else None


def feedback_codes(
    y: torch.Tensor, s: torch.Tensor, z: torch.Tensor, m_fx: torch.Tensor, qmax: int, sub_block: int = SUB_BLOCK
) -> torch.Tensor:
    """Codes of rotated groups ``y`` [rows, nb, g] with scales ``s`` and zero-points ``z`` [rows, nb]
    (float64), errors fed forward through ``m_fx`` [nb, g, g]; returns uint8 [rows, nb, g].

    In units of 2^-(F_U+F_M): ``q_k = clamp(⌊(u_k 2^F_M + z 2^(F_U+F_M) + half + Σ e_i M_ik) / 2^(F_U+F_M)⌋)``
    with ``e_i = u_i - (q_i - z) 2^F_U``; every value is an integer below 2^53 (exact in float64). ``s`` and ``z``
    may also be given per column ([rows, nb, g]: a feedback block of several groups)."""
    one, shift = float(1 << F_U), float(1 << F_M)
    inv = 1.0 / (one * shift)
    s3, z3 = (s, z) if s.dim() == 3 else (s[..., None], z[..., None])
    u = torch.clamp(torch.round(torch.div(y, s3) * one), -U_LIM, U_LIM).permute(1, 0, 2)  # [nb, rows, g]
    uz = (u + z3.permute(1, 0, 2) * one).contiguous()  # e_k = uz_k - q_k 2^F_U
    base = uz * shift + one * shift / 2  # target without the feedback sum
    err = torch.empty_like(uz)
    g = y.shape[-1]
    for t0 in range(0, g, sub_block):
        t1 = min(g, t0 + sub_block)
        tgt = base[:, :, t0:t1]
        tgt = tgt + torch.bmm(err[:, :, :t0], m_fx[:, :t0, t0:t1]) if t0 else tgt.clone()
        for k in range(t0, t1):
            qk = torch.floor(tgt[:, :, k - t0 : k - t0 + 1] * inv).clamp_(0, qmax)
            ek = torch.sub(uz[:, :, k : k + 1], qk, alpha=one)
            err[:, :, k : k + 1] = ek
            if k + 1 < t1:  # rank-1 update of this sub-block's targets (exact integers: any FMA is harmless)
                tgt[:, :, k + 1 - t0 :].addcmul_(ek, m_fx[:, None, k, k + 1 : t1])
    codes = torch.sub(uz, err) * (1.0 / one)  # exact: q = (uz - e) / 2^F_U
    return codes.permute(1, 0, 2).to(torch.uint8)
