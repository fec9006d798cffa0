"""What the decoders feed their output to (a hashlib object, or anything with ``update``) and what they are told about
a tensor (:class:`Decoding`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...


@dataclass(frozen=True)
class Decoding:
    """How one quantized tensor decodes (docs/format.md 3.3, 3.5): to ``dtype`` (``F32``, ``F16``, ``BF16``), from
    ``bits``-bit codes in groups of ``group_size`` with the tensor ``exponent``; ``sign_key`` the rotation's key
    (None: not rotated) and ``sign_period`` > 0 for row-shared signs (element index modulo it)."""

    dtype: str
    bits: int
    group_size: int
    exponent: int
    sign_key: int | None = None
    sign_period: int = 0
