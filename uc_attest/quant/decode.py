"""Host decoder of the reconstruction contract in NumPy (no torch): the fast verify path.

Same formula as :mod:`uc_attest.quant.reconstruct` (docs/format.md 3.3), computed per
block of rows so memory stays bounded:

    w = to_dtype( fp32(q - z) * S ),   S = fp32(s16) * 2**e   (exact: S is s16 shifted)

``(q - z) * S`` equals ``((q - z) * s16) * 2**e`` exactly because both are the exact
product (at most 19 significant bits, normal binary32 range). fp32 -> bf16 is round to
nearest even on the bit pattern; fp32 -> fp16 is NumPy's correctly rounded cast.
A C implementation of the same steps (``_decode.c``: scalar, AVX2 and AVX-512 paths chosen at run time,
tested bit for bit against this one) is used when it was compiled; :func:`hash_decoded` decodes a whole tensor
chunk by chunk straight into a hash so each chunk is hashed while it is still in cache.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

try:  # the optional C decoder (same contract, ~10-50x faster); see _decode.c
    from . import _decode as _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - not compiled (e.g. PYTHONPATH=. on a machine without a build)
    _native = None

from .decode_protocol import Decoding, Hasher
from .native_decode import HASH_CHUNK_WEIGHTS
from .rotation import decode_shift, fwht_numpy, signs_numpy
from .scheme import Part

_BF16_ROUND = np.uint32(0x7FFF)
_OUT = {"F32": (0, np.float32), "F16": (1, np.float16), "BF16": (2, np.uint16)}


def native_available() -> bool:
    return _native is not None


def native_isas() -> list[str]:
    """The C decoder's paths this CPU can run (best last), or [] when it is not compiled."""
    return list(_native.supported_isas()) if _native is not None else []


def native_isa() -> str | None:
    """The path the C decoder uses now (the best the CPU has, or ``UC_ATTEST_DECODE_ISA`` at import)."""
    return str(_native.get_isa()) if _native is not None else None


def set_native_isa(name: str) -> None:
    """Force the C decoder's path: ``scalar``, ``avx2`` or ``avx512`` (ValueError if the CPU lacks it)."""
    if _native is None:
        raise RuntimeError("the C decoder is not compiled")
    _native.set_isa(name)


def unpack_codes_np(packed: npt.NDArray[np.uint8], bits: int) -> npt.NDArray[np.uint8]:
    """Inverse of the bit packing of docs/format.md 3.2 (8 codes per ``bits`` bytes)."""
    b = packed.reshape(-1, bits)
    out = np.empty((b.shape[0], 8), dtype=np.uint8)
    mask = (1 << bits) - 1
    for k in range(8):
        j, sh = divmod(bits * k, 8)
        c = b[:, j] >> np.uint8(sh)
        if sh + bits > 8:
            c = c | (b[:, j + 1] << np.uint8(8 - sh))
        np.bitwise_and(c, mask, out=out[:, k])
    return out.reshape(-1)


def fp32_to_bf16_bits(v: npt.NDArray[np.float32]) -> npt.NDArray[np.uint16]:
    """Round to nearest even on the bit pattern (inputs are finite by construction)."""
    u = v.view(np.uint32)
    u += ((u >> np.uint32(16)) & np.uint32(1)) + _BF16_ROUND
    return (u >> np.uint32(16)).astype(np.uint16)


def decode_rows(
    codes: npt.NDArray[np.uint8],
    scales: npt.NDArray[np.float16],
    zeros: npt.NDArray[np.uint8],
    how: Decoding,
    n_cols: int,
    first_group: int = 0,
    *,
    native: bool = True,
) -> npt.NDArray[np.generic]:
    """Decode a block of rows: ``codes`` packed for ``rows * G * g`` codes, ``scales``/``zeros`` [rows, G].

    Returns a [rows, n_cols] array whose bytes are the tensor's little-endian bytes
    (uint16 bit patterns for BF16). Uses the C decoder when it is compiled and ``native``.
    ``how.sign_period`` > 0: row-shared signs (element index taken modulo it; rotation.py).
    """
    dtype, bits, group_size, exponent = how.dtype, how.bits, how.group_size, how.exponent
    sign_key, sign_period = how.sign_key, how.sign_period
    if dtype not in _OUT:
        raise ValueError(f"unsupported reconstruction dtype {dtype}")
    rows, groups = scales.shape
    if native and _native is not None:
        code, np_dtype = _OUT[dtype]
        out = np.empty((rows, n_cols), dtype=np_dtype)
        _native.decode(
            np.ascontiguousarray(codes),
            np.ascontiguousarray(scales).view(np.uint16),
            np.ascontiguousarray(zeros),
            exponent,
            rows,
            n_cols,
            group_size,
            bits,
            code,
            out,
            sign_key is not None,
            sign_key or 0,
            first_group,
            sign_period,
        )
        return out
    q = unpack_codes_np(codes, bits).reshape(rows, groups, group_size)
    shift = decode_shift(group_size) if sign_key is not None else 0
    s = scales.astype(np.float32) * np.float32(math.ldexp(1.0, exponent + shift))
    if sign_key is None:
        v = q.astype(np.float32)
        v -= zeros.astype(np.float32)[..., None]  # exact: small integers
    else:
        vi = q.astype(np.int32) - zeros.astype(np.int32)[..., None]
        v = fwht_numpy(vi).astype(np.float32)  # exact integers below 2^13
    v *= s[..., None]
    if sign_key is not None:
        v *= signs_numpy(sign_key, first_group * group_size, rows * groups * group_size, sign_period).reshape(v.shape)
    flat = v.reshape(rows, groups * group_size)[:, :n_cols]
    if dtype == "F32":
        return np.ascontiguousarray(flat)
    if dtype == "F16":
        return flat.astype(np.float16)
    return fp32_to_bf16_bits(np.ascontiguousarray(flat))


def hash_decoded(
    hasher: Hasher,
    codes: npt.NDArray[np.uint8] | bytes,
    scales: npt.NDArray[np.float16],
    zeros: npt.NDArray[np.uint8],
    how: Decoding,
    n: int,
    *,
    native: bool = True,
    chunk_weights: int = HASH_CHUNK_WEIGHTS,
) -> None:
    """Feed the bytes of a whole decoded tensor (``n`` elements, flattened; ``scales``/``zeros`` 1-D over its
    groups) to ``hasher.update`` in chunks: exactly the bytes :func:`decode_rows` returns, never all at once."""
    dtype, bits, group_size, exponent = how.dtype, how.bits, how.group_size, how.exponent
    if dtype not in _OUT:
        raise ValueError(f"unsupported reconstruction dtype {dtype}")
    chunk_groups = max(1, chunk_weights // group_size)
    if native and _native is not None:  # one C call: decode and hash alternate chunk by chunk outside the GIL
        _native.decode_hash(
            codes,
            np.ascontiguousarray(scales).view(np.uint16),
            np.ascontiguousarray(zeros),
            exponent,
            n,
            group_size,
            bits,
            _OUT[dtype][0],
            how.sign_key is not None,
            how.sign_key or 0,
            how.sign_period,
            hasher,
            chunk_groups,
        )
        return
    flat = np.frombuffer(codes, dtype=np.uint8)
    step = group_size * bits // 8
    chunk_groups = max(chunk_groups, (16 << 20) // (group_size * 4))  # NumPy: larger blocks amortise the calls
    for g0 in range(0, len(scales), chunk_groups):
        g1 = min(len(scales), g0 + chunk_groups)
        out = decode_rows(
            flat[g0 * step : g1 * step],
            scales[None, g0:g1],
            zeros[None, g0:g1],
            how,
            min(n, g1 * group_size) - g0 * group_size,
            g0,
            native=False,
        )
        hasher.update(out.reshape(-1).view(np.uint8).data)


def decode_part_rows(
    codes: npt.NDArray[np.uint8],
    scales: npt.NDArray[np.float16],
    zeros: npt.NDArray[np.uint8],
    how: Decoding,
    part: Part,
    r0: int,
    r1: int,
    *,
    native: bool = True,
) -> npt.NDArray[np.generic]:
    """Rows ``r0..r1`` of one part ([r1 - r0, part.cols]) of a tensor whose components (all its parts' groups, 1-D)
    are ``codes``/``scales``/``zeros``: the groups covering those rows are decoded and the rows cut out of them.
    The part's group size and sign period replace ``how``'s."""
    g = part.group
    step = g * how.bits // 8
    e0, e1 = r0 * part.cols, r1 * part.cols
    g0, g1 = e0 // g, -(-e1 // g)
    a, b = part.first_group + g0, part.first_group + g1
    count = min(part.n, g1 * g) - g0 * g
    flat = decode_rows(
        codes[a * step : b * step],
        scales[None, a:b],
        zeros[None, a:b],
        Decoding(how.dtype, how.bits, g, how.exponent, how.sign_key, part.period),
        count,
        g0,
        native=native,
    )
    return flat.reshape(-1)[e0 - g0 * g : e1 - g0 * g].reshape(r1 - r0, part.cols)


def decode_parts_rows(
    codes: npt.NDArray[np.uint8],
    scales: npt.NDArray[np.float16],
    zeros: npt.NDArray[np.uint8],
    how: Decoding,
    parts: tuple[Part, ...],
    r0: int,
    r1: int,
    *,
    native: bool = True,
) -> npt.NDArray[np.generic]:
    """Rows ``r0..r1`` of a tensor stored in row-aligned parts (``Scheme.parts``), [r1 - r0, columns]; each part's
    group size and sign period replace ``how``'s."""
    blocks = [decode_part_rows(codes, scales, zeros, how, p, r0, r1, native=native) for p in parts]
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
