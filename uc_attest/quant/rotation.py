"""Group-local randomized Hadamard rotation (scheme ``uc-rht-clip/1``), exact in reconstruction.

Encoder: ``y = H_g · (D ⊙ x) · 2^-⌊k/2⌋`` per group (g = 2^k), in float64 with a fixed
butterfly order (pinned rounding). Decoder: ``x̂ = D ⊙ H_g(q - z) · s16 · 2^(e + ⌊k/2⌋ - k)``:
the Hadamard transform of small integers is exact in int32, and H·H = g·I makes the inverse a
power of two, so reconstruction stays one rounding (docs/format.md 3.6).
Signs D are bits of SHA-256 in counter mode over the tensor name: the same on every machine.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # torch is imported lazily: the verify path (NumPy/C decoders) must not need it
    import torch

SIGN_DOMAIN = b"uc-rht/1:"


def _stack(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.stack((a + b, a - b), dim=-2)


@lru_cache(maxsize=4096)
def sign_bits(name: str, g: int) -> tuple[int, ...]:
    """g values in {+1, -1}: bit j of SHA-256(domain || name || ":" || counter) stream (1 -> -1)."""
    out: list[int] = []
    counter = 0
    while len(out) < g:
        block = hashlib.sha256(SIGN_DOMAIN + name.encode() + b":" + counter.to_bytes(8, "big")).digest()
        for byte in block:
            for bit in range(8):
                out.append(-1 if (byte >> bit) & 1 else 1)
        counter += 1
    return tuple(out[:g])


def log2_exact(g: int) -> int:
    k = g.bit_length() - 1
    if 1 << k != g:
        raise ValueError(f"rotation needs a power-of-two group size, got {g}")
    return k


def fwht_torch(x: torch.Tensor) -> torch.Tensor:
    """Unnormalized Walsh-Hadamard transform over the last dim, fixed butterfly order (any dtype/device)."""
    g = x.shape[-1]
    lead = x.shape[:-1]
    h = 1
    while h < g:
        v = x.reshape(*lead, g // (2 * h), 2, h)
        a, b = v[..., 0, :], v[..., 1, :]
        x = _stack(a, b).reshape(*lead, g)
        h *= 2
    return x


def fwht_numpy(x: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """The same transform in NumPy (integers: exact)."""
    g = x.shape[-1]
    lead = x.shape[:-1]
    h = 1
    while h < g:
        v = x.reshape(*lead, g // (2 * h), 2, h)
        a, b = v[..., 0, :], v[..., 1, :]
        x = np.stack((a + b, a - b), axis=-2).reshape(*lead, g)
        h *= 2
    return x


def rotate(y: torch.Tensor, name: str) -> torch.Tensor:
    """Encoder side on float64 groups [..., g]: H (D ⊙ y) 2^-⌊k/2⌋ (every step IEEE-pinned)."""
    import torch

    g = y.shape[-1]
    k = log2_exact(g)
    d = torch.tensor(sign_bits(name, g), dtype=torch.float64, device=y.device)
    return fwht_torch(y * d) * (2.0 ** -(k // 2))


def decode_shift(g: int) -> int:
    """The power of two of the inverse: ⌊k/2⌋ - k."""
    k = log2_exact(g)
    return k // 2 - k
