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
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..core.stfile import TensorInfo
from ..errors import OperationalError, UsageError
from .ldlq import blocks_to_matrices
from .measure import Candidate, Energy, measure, raw_bytes, reference
from .measure import damage as _damage
from .quantize import QuantizedTensor, prepare, quantize_tensor
from .scheme import Scheme, check_budget

#: The committed int16 moments of a tensor, or None (``calibration.Calibration`` is one).
Moments = Callable[[str, tuple[int, ...]], torch.Tensor | None]

#: name -> (weights, [(bits, damage)] in ascending bits): what the choice is made over.
Curves = dict[str, tuple[int, list[tuple[int, Fraction]]]]


class Candidates(Protocol):
    """Where measured candidates are kept for the writer (:class:`CandidateStore`, or a distributed pack's
    shared directory, ``pack/parts.py``)."""

    def put(self, name: str, c: Candidate) -> None: ...
    def get(self, name: str, bits: int) -> Candidate | None: ...
    def discard(self, name: str, bits: int) -> None: ...
    def close(self) -> None: ...


METHOD = "uc-alloc/2"  # /1 counted zero-points at code width; /2 counts the bytes stored (u8)
#: /2 with each tensor's damage weighed by its layer's measured output sensitivity (calibration/collect.py).
METHOD_OUTPUT = "uc-alloc/3"


def src_names(source_dir: Path, scheme: Scheme) -> list[str]:
    """The names of the tensors ``scheme`` quantizes in a model directory."""
    from ..source import ModelSource

    src = ModelSource(Path(source_dir))
    try:
        return [t.name for t in src.tensors if scheme.applies_to(t.name, t.info.dtype, t.info.shape)]
    finally:
        src.close()


def _output_weights(names: list[str], sensitivity: dict[str, float] | None) -> dict[str, Fraction]:
    """Each quantized tensor's output sensitivity rounded to 8 significant bits (a choice that does not hang on
    the last bits of a float sum), or {} (the damages stay relative errors) unless every tensor has one."""
    if not sensitivity or any(n not in sensitivity for n in names):
        return {}
    out = {}
    for n in names:
        m, e = math.frexp(sensitivity[n])
        out[n] = Fraction(math.ldexp(round(m * 256), e - 8))  # an integer below 2^9 times a power of two: exact
    return out


def stored_bits(n: int, bits: int, g: int) -> int:
    """Bits a tensor of ``n`` weights takes on disk at ``bits``: codes of the padded groups, an fp16 scale and
    a u8 zero-point per group (docs/format.md: what the shards hold, so the budget is what is stored)."""
    return -(-n // g) * (g * bits + 16 + 8)


def damage(original: torch.Tensor, recon: torch.Tensor, h: torch.Tensor | None, w: int) -> Fraction:
    """The moments-weighted relative error of ``recon`` (module docstring), exactly."""
    dtype = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[original.dtype]
    energy = Energy(tuple(original.shape), h, w)
    return _damage(original, raw_bytes(recon.to(original.dtype)), dtype, energy, reference(original, dtype, energy))


def _energy(scheme: Scheme, shape: tuple[int, ...], m16: torch.Tensor | None) -> Energy:
    """The moments-weighted energy of a tensor from its committed moments (per row-aligned part), or the identity."""
    if m16 is None:
        return Energy(shape, None, 0)
    parts = scheme.parts(shape)
    split = scheme.split_moments(shape, m16)
    return Energy.of_parts(
        shape, [(p.col0, p.cols, blocks_to_matrices(m, p.block), p.block) for p, m in zip(parts, split, strict=True)]
    )


class CandidateStore:
    """Measured candidates kept for the writer: in memory up to ``limit`` bytes of components, beyond that
    spilled to files in a scratch directory (so an 8 B model's two widths never sit in memory at once)."""

    def __init__(self, limit: int | None = None, scratch: Path | None = None) -> None:
        self.limit = default_limit() if limit is None else limit
        self._scratch_parent = scratch
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self._mem: dict[tuple[str, int], Candidate] = {}
        self._disk: dict[tuple[str, int], tuple[Candidate, Path]] = {}
        self.held = 0

    def put(self, name: str, c: Candidate) -> None:
        key = (name, c.q.bits)
        if self.held + c.nbytes <= self.limit:
            self._mem[key] = c
            self.held += c.nbytes
            return
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="uc-candidates-", dir=self._scratch_parent)
        path = Path(self._scratch.name) / f"{len(self._disk)}.npy"
        q = c.q
        parts = [q.codes.numpy(), q.scales.view(torch.uint16).numpy().view(np.uint8), q.zeros.numpy()]
        np.save(path, np.concatenate(parts))
        empty = replace(q, codes=torch.empty(0, dtype=torch.uint8))
        self._disk[key] = (replace(c, q=empty), path)

    def get(self, name: str, bits: int) -> Candidate | None:
        key = (name, bits)
        if key in self._mem:
            return self._mem[key]
        if key not in self._disk:
            return None
        c, path = self._disk[key]
        flat = torch.from_numpy(np.load(path))
        groups = c.q.scales.numel()
        codes, rest = flat[: flat.numel() - 3 * groups], flat[flat.numel() - 3 * groups :]
        scales = rest[: 2 * groups].view(torch.float16)
        return replace(c, q=replace(c.q, codes=codes, scales=scales, zeros=rest[2 * groups :].clone()))

    def discard(self, name: str, bits: int) -> None:
        c = self._mem.pop((name, bits), None)
        if c is not None:
            self.held -= c.nbytes
        spilled = self._disk.pop((name, bits), None)
        if spilled is not None:
            spilled[1].unlink(missing_ok=True)

    def close(self) -> None:
        self._mem.clear()
        self._disk.clear()
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None


def default_limit() -> int:
    """Components held in memory before spilling: an eighth of the machine's memory, at most 4 GiB."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 8 << 30
    return min(4 << 30, ram // 8)


@dataclass
class Allocation:
    """The allocated scheme and the measured candidate of every tensor at its chosen width (for the writer)."""

    scheme: Scheme
    chosen: CandidateStore = field(default_factory=CandidateStore)


def allocate(
    source_dir: Path,
    scheme: Scheme,
    budget: float,
    moments: Moments | None,
    device: torch.device | str = "cpu",
    *,
    strict: bool = True,
    progress: Callable[[str, int], None] | None = None,
    store: CandidateStore | None = None,
) -> Allocation:
    """``scheme`` with the measured allocation under ``budget`` bits per quantized weight (module docstring).

    Each tensor may take its base width ``b`` or ``b + 1`` (``measure_curves(floor=True)``: ``b - 1`` too);
    it starts at its lowest width and the budget buys, one step at a time, the step with the largest damage reduction per
    extra bit (ties by name) — the usual marginal-analysis allocation over measured rate-distortion points.
    Each tensor is quantized once per width; the chosen width's components, digest and quality record are kept
    (``Allocation.chosen``), so the pack writes them as they were measured. A budget below what the lowest
    widths take is a UsageError, or (``strict=False``, the CLI's default budget) no allocation at all.
    ``progress(name, weights)`` after each tensor is measured."""
    store = store if store is not None else CandidateStore()
    curves, method = measure_curves(source_dir, scheme, moments, device, store, progress=progress)
    return Allocation(choose(scheme, budget, strict, curves, store, method), store)


def measure_curves(
    source_dir: Path,
    scheme: Scheme,
    moments: Moments | None,
    device: torch.device | str,
    store: Candidates,
    *,
    floor: bool = False,
    progress: Callable[[str, int], None] | None = None,
    select: Callable[[str], bool] | None = None,
) -> tuple[Curves, str]:
    """Each quantized tensor (``select``: those it accepts) at each width it may take, measured and kept in
    ``store``: the curves :func:`choose` decides over, and the allocation method they were measured for."""
    from ..source import ModelSource

    dev = torch.device(device)
    src = ModelSource(Path(source_dir))
    curves: Curves = {}
    weights = _output_weights(src_names(source_dir, scheme), getattr(moments, "sensitivity", None))
    try:
        for shard, tensors in src.by_shard():
            f = src.file(shard)
            for st in tensors:
                info = st.info
                if not scheme.applies_to(info.name, info.dtype, info.shape):
                    continue
                if select is not None and not select(info.name):
                    continue
                b = scheme.bits_for(info.name)
                widths = [w for w in (b - 1 if floor else b, b, b + 1) if w >= 2 and _at(scheme, w) is not None]
                try:
                    points = _measure_widths(info, f.tensor(info.name), scheme, widths, moments, dev, store)
                except (MemoryError, torch.OutOfMemoryError):
                    raise OperationalError(f"out of memory quantizing {info.name}", tensor=info.name) from None
                points = [(bits, d * weights.get(info.name, 1)) for bits, d in points]
                curves[info.name] = (math.prod(info.shape), points)
                if progress is not None:
                    progress(info.name, curves[info.name][0])
    except BaseException:
        store.close()
        raise
    finally:
        src.close()
    return curves, METHOD_OUTPUT if weights else METHOD


def _measure_widths(
    info: TensorInfo,
    x: torch.Tensor,
    scheme: Scheme,
    widths: list[int],
    moments: Moments | None,
    dev: torch.device,
    store: Candidates,
) -> list[tuple[int, Fraction]]:
    """One tensor at each width, measured and kept in ``store``: (bits, damage) in ascending bits."""
    m16 = moments(info.name, info.shape) if moments is not None else None
    energy = _energy(scheme, tuple(info.shape), m16)
    ref = reference(x, info.dtype, energy)
    prep = prepare(info.name, x, scheme, dev, m16)  # pass 1 and the feedback matrices: once per tensor
    points = []
    for bits in sorted(set(widths)):
        sc = _at(scheme, bits)
        assert sc is not None
        q: QuantizedTensor = quantize_tensor(info.name, x, info.dtype, sc, dev, m16, prep)
        c = measure(info.name, x, q, scheme.group_size, energy, ref)
        assert c.damage is not None
        store.put(info.name, c)
        points.append((bits, c.damage))
    return points


def choose(
    scheme: Scheme,
    budget: float,
    strict: bool,
    curves: Curves,
    store: Candidates,
    method: str = "",
) -> Scheme:
    """The greedy choice over the measured curves (any order: the result depends on their values alone); the
    candidates not chosen are dropped from ``store``."""
    if not curves:
        return scheme
    g = scheme.group_size
    total_n = used = 0
    for n, pts in curves.values():
        total_n += n
        used += stored_bits(n, pts[0][0], g)
    check_budget(budget)
    allowed = math.floor(budget * total_n)
    if used > allowed and not strict:  # no allocation: every tensor at its base width
        _keep_only(store, curves, {name: scheme.bits_for(name) for name in curves})
        return scheme
    if used > allowed:
        store.close()
        raise UsageError(
            "{0:={budget}}: the lowest widths alone take {bpw:.3f} bits per weight",
            option="budget",
            budget=budget,
            bpw=used / total_n,
        )
    chosen, used = _greedy(curves, g, used, allowed)
    _keep_only(store, curves, chosen)
    return _with_widths(scheme, chosen, budget, used / total_n, method)


def _greedy(curves: Curves, g: int, used: int, allowed: int) -> tuple[dict[str, int], int]:
    """From the lowest widths (``used`` bits), one width up at a time for the tensor of the highest damage saved
    per stored bit that still fits ``allowed`` (ties: the first name): each tensor's width, and the bits used."""
    level = dict.fromkeys(curves, 0)
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
    return {name: curves[name][1][i][0] for name, i in level.items()}, used


def _keep_only(store: Candidates, curves: Curves, chosen: dict[str, int]) -> None:
    """Drop from ``store`` every measured candidate but each tensor's ``chosen`` width."""
    for name, (_n, pts) in curves.items():
        for bits, _d in pts:
            if bits != chosen[name]:
                store.discard(name, bits)


def _with_widths(scheme: Scheme, chosen: dict[str, int], budget: float, bpw: float, method: str) -> Scheme:
    """``scheme`` with the ``chosen`` widths as its bit overrides and the allocation's record."""
    changed = sorted((name, bits) for name, bits in chosen.items() if bits != scheme.bits_for(name))
    overrides = tuple((glob.escape(name), bits) for name, bits in changed) + scheme.bits_overrides
    counts = {k: list(chosen.values()).count(k) for k in sorted(set(chosen.values()))}
    record = (
        ("bpw", f"{bpw:.4f}"),
        ("budget", f"{budget:.3f}"),
        ("method", method or METHOD),
        ("widths", ",".join(f"{k}:{v}" for k, v in counts.items())),
    )
    return replace(scheme, bits_overrides=overrides, allocation=record)


def allocate_bits(
    source_dir: Path,
    scheme: Scheme,
    budget: float,
    moments: Moments | None,
    device: torch.device | str = "cpu",
    *,
    strict: bool = True,
    progress: Callable[[str, int], None] | None = None,
) -> Scheme:
    """:func:`allocate`'s scheme alone (the candidates dropped)."""
    a = allocate(source_dir, scheme, budget, moments, device, strict=strict, progress=progress)
    a.chosen.close()
    return a.scheme


def _at(scheme: Scheme, bits: int) -> Scheme | None:
    """The scheme at ``bits`` for every tensor, or None where that width is not allowed."""
    try:
        return replace(scheme, bits=bits, bits_overrides=())
    except UsageError:
        return None
