"""The C decoder's hashing entry point without NumPy: what ``verify`` needs, so the verify path never imports
NumPy (``decode.py`` keeps the NumPy decoder, the reference and the fallback where the C one is not compiled).
"""

from __future__ import annotations

from dataclasses import dataclass

from .decode_protocol import Hasher

try:
    from . import _decode as _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - not compiled
    _native = None

#: Weights per chunk of :func:`hash_decoded`: 32 k weights, a 64 KB bf16 chunk (below malloc's mmap threshold, so
#: its buffer is reused) that the SHA-256 reads back from L2 right after the decoder wrote it.
HASH_CHUNK_WEIGHTS = 1 << 15
DTYPE_CODES = {"F32": 0, "F16": 1, "BF16": 2}


@dataclass(frozen=True)
class Encoded:
    """One quantized tensor as the decoder takes it (docs/format.md 3.3): ``n`` elements of ``dtype``, groups of
    ``group_size`` codes of ``bits`` bits, the raw fp16 scale bit patterns and u8 zero-points (one per group),
    the tensor exponent, and the rotation (``sign_key`` None: not rotated; ``sign_period`` > 0: row-shared)."""

    n: int
    dtype: str
    bits: int
    group_size: int
    exponent: int
    scales: bytes
    zeros: bytes
    sign_key: int | None = None
    sign_period: int = 0


def available() -> bool:
    return _native is not None


def hash_decoded(hasher: Hasher, codes: bytes | memoryview, enc: Encoded) -> None:
    """Decode ``enc`` (its packed ``codes``) chunk by chunk in C and feed each chunk to ``hasher.update`` while it
    is in cache. ValueError (from the decoder) names what is wrong: a non-finite scale, a short buffer."""
    assert _native is not None
    _native.decode_hash(
        codes,
        enc.scales,
        enc.zeros,
        enc.exponent,
        enc.n,
        enc.group_size,
        enc.bits,
        DTYPE_CODES[enc.dtype],
        enc.sign_key is not None,
        enc.sign_key or 0,
        enc.sign_period,
        hasher,
        max(1, HASH_CHUNK_WEIGHTS // enc.group_size),
    )
