"""The calibration file: read it (validated) for packing, write it.

A calibration file is a safetensors file with, for each weight tensor name, the float
``[n_cols, n_cols]`` second moments ``E[x xᵀ]`` of that layer's input over calibration tokens
(what GPTQ-style tools call H), or only its g x g diagonal blocks ``[n_cols/g, g, g]`` (all the
scheme uses; much smaller for wide layers). Any method may produce it — :func:`collect` runs a
transformers model over text — because it is not re-derived: a pack commits the int16 block
form (``quant.ldlq.moments_to_blocks``) next to the codes, and a rebuild reads it from there.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import torch

from ..core.fsutil import atomic_write_bytes
from ..core.stfile import OutTensor, SafetensorsFile, tensor_bytes, write_safetensors
from ..errors import InvalidInput, UsageError
from ..quant.ldlq import moments_to_blocks
from ..quant.scheme import FLOAT_DTYPES, Scheme

MOMENT_DTYPES = ("F64", *FLOAT_DTYPES)
META_KIND = "uc.calibration"
#: Optional metadata: each layer's output sensitivity (``collect.output_sensitivity``), a JSON object
#: {weight name: non-negative finite number} that the allocation weighs each layer's damage by.
META_SENSITIVITY = "uc.sensitivity"


class Calibration:
    """A calibration file opened for packing: ``cal(name, shape)`` is the committed int16 form
    of that tensor's moments, or None when the file has none for it."""

    def __init__(self, path: Path, scheme: Scheme) -> None:
        self.path = Path(path)
        if not scheme.row_signs:
            raise UsageError(
                "{0} needs a feedback scheme (uc-rht-ldlq/2, /3 or /1), not {scheme}",
                option="calibration",
                scheme=scheme.id,
            )
        self.scheme = scheme
        self.file = SafetensorsFile(self.path)
        self.sensitivity = _sensitivity(self.path, self.file.metadata.get(META_SENSITIVITY))
        for info in self.file.infos.values():
            square = len(info.shape) == 2 and info.shape[0] == info.shape[1]
            blocks = len(info.shape) == 3 and info.shape[1] == info.shape[2] > 0  # [ceil(n/w), w, w]: padded input
            if info.dtype not in MOMENT_DTYPES or not (square or blocks):
                raise InvalidInput(
                    f"{self.path}: tensor {info.name!r}: moments must be a square float matrix or "
                    f"[n/w, w, w] blocks, got {info.dtype}{list(info.shape)}",
                    path=str(self.path),
                    tensor=info.name,
                )

    def __call__(self, name: str, shape: tuple[int, ...]) -> torch.Tensor | None:
        info = self.file.infos.get(name)
        if info is None:
            return None
        where = f"{self.path}: tensor {name!r}"
        cols, g = shape[-1], self.scheme.group_size
        split = self.scheme.split_column(shape)
        width = info.shape[0] * info.shape[1] if len(info.shape) == 3 else info.shape[0]
        b = info.shape[1]
        padded = split and len(info.shape) == 3 and width == -(-cols // b) * b  # blocks of the zero-padded input
        if width != cols and not padded:
            raise InvalidInput(
                f"{where}: moments are {list(info.shape)} but the weight has rows of {cols}",
                path=str(self.path),
                tensor=name,
            )
        block = self.scheme.moment_block(shape)
        if not block:
            raise UsageError(
                "{path}: tensor {tensor!r}: rows of {cols} are neither a multiple nor a divisor of the group size "
                "{group_size}, nor m·{group_size} + a divisor of it; drop this tensor from the calibration file or "
                "choose another {0}",
                option="group_size",
                path=str(self.path),
                tensor=name,
                cols=cols,
                group_size=g,
            )
        if len(info.shape) == 3 and block != info.shape[1]:
            raise InvalidInput(
                f"{where}: moments given as blocks of {info.shape[1]} columns, but the scheme feeds errors back over "
                f"blocks of {block}: give the full [n, n] matrix or [n/{block}, {block}, {block}] blocks",
                path=str(self.path),
            )
        h = self.file.tensor(name).to(torch.float64)
        if not bool(torch.isfinite(h).all()):
            raise InvalidInput(f"{where}: moments contain NaN or infinity", path=str(self.path), tensor=name)
        if bool((torch.diagonal(h, dim1=-2, dim2=-1) < 0).any()):
            raise InvalidInput(
                f"{where}: negative diagonal entry (not second moments)", path=str(self.path), tensor=name
            )
        _check_second_moments(h, where, self.path)
        if not split:
            return moments_to_blocks(h, block)
        blocks = _part_blocks(h, cols, split, self.scheme.parts(shape)[0].block)
        parts = self.scheme.parts(shape)
        return torch.cat([moments_to_blocks(b, p.block).reshape(-1) for p, b in zip(parts, blocks, strict=True)])

    def check_names(self, model_dir: Path) -> None:
        """Every entry must name a tensor of the model that the scheme quantizes (catches typos and
        excluded tensors before any work is spent)."""
        from ..source import ModelSource

        src = ModelSource(model_dir)
        try:
            quantized = {t.name for t in src.tensors if self.scheme.applies_to(t.name, t.info.dtype, t.info.shape)}
        finally:
            src.close()
        unused = sorted(set(self.file.infos) - quantized)
        if unused:
            raise UsageError(
                f"{self.path}: {len(unused)} entries name no quantized tensor of {model_dir} (first: {unused[0]!r})"
            )

    def close(self) -> None:
        self.file.close()


def _check_second_moments(h: torch.Tensor, where: str, path: Path) -> None:
    """Second moments satisfy |E[x_i x_j]| <= sqrt(E[x_i²] E[x_j²]) (Cauchy-Schwarz; float32 rounding allowed): a
    matrix that breaks it is not what a calibration measures, and its feedback would be garbage (or NaN)."""
    d = torch.sqrt(torch.clamp(torch.diagonal(h, dim1=-2, dim2=-1), min=0.0))
    bound = d[..., :, None] * d[..., None, :] * (1 + 1e-3) + 1e-30
    bad = torch.nonzero(h.abs() > bound)
    if bad.numel():
        at = [int(v) for v in bad[0]]
        raise InvalidInput(
            f"{where}: moments are not second moments (|E[x_i x_j]| > sqrt(E[x_i²] E[x_j²]) at {at})", path=str(path)
        )


def _part_blocks(h: torch.Tensor, cols: int, split: int, g: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The moments of a tensor in two row-aligned parts, per part: the g x g diagonal blocks of its first
    ``split`` columns [split/g, g, g], and the t x t block of its last t = cols - split [1, t, t]; ``h`` the full
    [cols, cols] matrix or the [ceil(cols/g), g, g] blocks of the input zero-padded to whole groups."""
    m, t = split // g, cols - split
    if h.dim() == 2:
        idx = torch.arange(m)
        return h[:split, :split].reshape(m, g, m, g)[idx, :, idx, :], h[split:, split:].reshape(1, t, t)
    return h[:m], h[m:, :t, :t]


def _sensitivity(path: Path, text: str | None) -> dict[str, float]:
    """The ``uc.sensitivity`` metadata of a calibration file, checked: {name: finite number >= 0}."""
    if text is None:
        return {}
    try:
        value = json.loads(text, parse_constant=lambda c: float("nan"))
    except (ValueError, RecursionError):
        value = None
    ok = isinstance(value, dict) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0 for v in value.values()
    )
    if not ok:
        raise InvalidInput(
            f"{path}: metadata {META_SENSITIVITY} must be a JSON object of finite non-negative numbers",
            path=str(path),
        )
    return {str(k): float(v) for k, v in value.items()}


def write(
    path: Path, moments: dict[str, torch.Tensor], description: str, sensitivity: dict[str, float] | None = None
) -> None:
    """Write a calibration file (float32 moments, and the layers' output sensitivity when measured) atomically."""
    outs = [
        OutTensor(k, "F32", tuple(v.shape), tensor_bytes(v.to(torch.float32).contiguous())) for k, v in moments.items()
    ]
    buf = io.BytesIO()
    meta = {META_KIND: description}
    if sensitivity:
        meta[META_SENSITIVITY] = json.dumps(sensitivity, sort_keys=True)
    write_safetensors(buf, outs, meta)
    atomic_write_bytes(Path(path), buf.getvalue())
