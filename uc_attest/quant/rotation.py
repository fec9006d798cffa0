"""Group-local randomized Hadamard rotation (scheme ``uc-rht-clip/1``), exact in reconstruction.

Encoder: ``y = H_g · (D ⊙ x) · 2^-⌊k/2⌋`` per group (g = 2^k), in float64 with a fixed
butterfly order (pinned rounding). Decoder: ``x̂ = D ⊙ H_g(q - z) · s16 · 2^(e + ⌊k/2⌋ - k)``:
the Hadamard transform of small integers is exact in int32, and H·H = g·I makes the inverse a
power of two, so reconstruction stays one rounding (docs/format.md 3.5).
Signs D: bit (i mod 64) of SplitMix64(key + i div 64) for padded element i, key = SHA-256 of the
tensor name (integer arithmetic only): different for every group, the same on every machine.
Schemes with row-shared signs (``uc-rht-ldlq/1``) use index ``i mod n_cols`` instead of ``i``, so
every row sees the same rotation and one rotated Hessian serves all rows (ldlq.py).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch and NumPy are imported where used: the verify path (the C decoder) needs neither
    import numpy as np
    import numpy.typing as npt
    import torch

SIGN_DOMAIN = b"uc-rht/1:"


def _stack(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.stack((a + b, a - b), dim=-2)


_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_U64 = (1 << 64) - 1


@lru_cache(maxsize=4096)
def sign_key(name: str) -> int:
    """Per-tensor key: the first 8 bytes (little-endian) of SHA-256("uc-rht/1:" || name)."""
    return int.from_bytes(hashlib.sha256(SIGN_DOMAIN + name.encode()).digest()[:8], "little")


def _mix_py(x: int) -> int:
    x &= _U64
    x = ((x ^ (x >> 30)) * _M1) & _U64
    x = ((x ^ (x >> 27)) * _M2) & _U64
    return x ^ (x >> 31)


def sign_of(key: int, index: int) -> int:
    """Reference (pure Python) sign of padded element ``index``: bit ``index % 64`` of
    SplitMix64(key + index // 64) — one 64-bit hash serves 64 consecutive elements."""
    return -1 if (_mix_py(key + index // 64) >> (index % 64)) & 1 else 1


def signs_numpy(key: int, start: int, count: int, period: int = 0) -> npt.NDArray[np.float32]:
    """Signs of padded elements [start, start + count) as float32 ±1 (uint64 wraparound arithmetic).

    ``period`` > 0: element i takes the sign of index ``i mod period`` (row-shared signs)."""
    import numpy as np

    if period:
        idx = np.arange(start, start + count, dtype=np.int64) % period
        return signs_numpy(key, 0, period)[idx]
    w0, w1 = start // 64, (start + count + 63) // 64
    with np.errstate(over="ignore"):
        x = np.arange(w0, w1, dtype=np.uint64) + np.uint64(key)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(_M1)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(_M2)
        x ^= x >> np.uint64(31)
    bits = np.unpackbits(x.astype("<u8").view(np.uint8), bitorder="little")
    off = start - w0 * 64
    return np.where(bits[off : off + count], np.float32(-1.0), np.float32(1.0))


def signs_torch(
    key: int, start: int, count: int, device: torch.device | str, dtype: torch.dtype, period: int = 0
) -> torch.Tensor:
    """The same signs with torch int64 (two's complement wraparound; logical shifts by masking)."""
    import torch

    if period:
        row = _row_signs(key, period).to(device=device, dtype=dtype)
        if start % period == 0 and count % period == 0:
            return row.repeat(count // period)
        idx = torch.arange(start, start + count, dtype=torch.int64, device=device) % period
        return row[idx]

    def srl(v: torch.Tensor, k: int) -> torch.Tensor:
        return (v >> k) & ((1 << (64 - k)) - 1)

    def signed(u: int) -> int:
        u &= _U64
        return u - (1 << 64) if u >= 1 << 63 else u

    w0, w1 = start // 64, (start + count + 63) // 64
    x = torch.arange(w0, w1, dtype=torch.int64, device=device) + signed(key)
    x = (x ^ srl(x, 30)) * signed(_M1)
    x = (x ^ srl(x, 27)) * signed(_M2)
    x = x ^ srl(x, 31)
    bits = ((x.unsqueeze(-1) >> torch.arange(64, device=device)) & 1).reshape(-1)
    off = start - w0 * 64
    return torch.where(bits[off : off + count] == 1, -1.0, 1.0).to(dtype)


@lru_cache(maxsize=64)
def _row_signs(key: int, period: int) -> torch.Tensor:
    """One row of row-shared signs (CPU float32 ±1), cached: every block of a tensor reuses it."""
    import torch

    return signs_torch(key, 0, period, "cpu", torch.float32)


def log2_exact(g: int) -> int:
    k = g.bit_length() - 1
    if 1 << k != g:
        raise ValueError(f"rotation needs a power-of-two group size, got {g}")
    return k


def _fwht(x: Any, stack: Any) -> Any:
    """Unnormalized Walsh-Hadamard transform over the last dim, butterfly order h = 1, 2, 4, ..."""
    g = x.shape[-1]
    lead = x.shape[:-1]
    h = 1
    while h < g:
        v = x.reshape(*lead, g // (2 * h), 2, h)
        x = stack(v[..., 0, :], v[..., 1, :]).reshape(*lead, g)
        h *= 2
    return x


def fwht_torch(x: torch.Tensor) -> torch.Tensor:
    """The transform in torch (any dtype, any device)."""
    return _fwht(x, _stack)  # type: ignore[no-any-return]


@lru_cache(maxsize=32)
def _hadamard(g: int, device: str) -> torch.Tensor:
    """The g x g Sylvester Hadamard matrix (entries ±1) in float32: ``x @ H`` is :func:`fwht_torch` of x."""
    import torch

    h = torch.ones((1, 1), dtype=torch.float32)
    while h.shape[0] < g:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h.to(device)


def inverse_rotation(v: torch.Tensor, key: int, first_group: int, period: int = 0) -> torch.Tensor:
    """The decoder's D ⊙ H(q - z) for integer groups ``v`` [nb, g] (any dtype holding small integers),
    starting at group ``first_group``; returns float32.

    H(q - z) is the decoder's one matmul (DESIGN §3 allows integer matmuls whose partial sums stay exact):
    operands are integers, |q - z| <= 2^bits - 1, entries of H are ±1, so every product has at most 8
    significant bits and every partial sum is bounded by (2^bits - 1) * g < 2^13 (the scheme's
    bits + log2 g <= 13): exact in binary32 whatever the summation order, blocking, FMA or TF32 (8-bit
    integers survive TF32's 10-bit significand). The signs multiply afterwards, as the contract says: a
    zero times -1 is -0 (folding D into H would give +0 and change those bytes)."""
    import torch

    nb, g = v.shape
    out = torch.matmul(v.to(torch.float32), _hadamard(g, str(v.device)))
    return out * signs_torch(key, first_group * g, nb * g, v.device, torch.float32, period).reshape(nb, g)


def fwht_numpy(x: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
    """The same transform in NumPy (integers: exact)."""
    import numpy as np

    return _fwht(x, lambda a, b: np.stack((a + b, a - b), axis=-2))  # type: ignore[no-any-return]


def rotate(y: torch.Tensor, key: int, first_group: int, period: int = 0) -> torch.Tensor:
    """Encoder side on float64 groups [nb, g] starting at group ``first_group``: H (D ⊙ y) 2^-⌊k/2⌋."""
    nb, g = y.shape
    k = log2_exact(g)
    d = signs_torch(key, first_group * g, nb * g, y.device, y.dtype, period).reshape(nb, g)
    return fwht_torch(y * d) * (2.0 ** -(k // 2))


def decode_shift(g: int) -> int:
    """The power of two of the inverse: ⌊k/2⌋ - k."""
    k = log2_exact(g)
    return k // 2 - k
