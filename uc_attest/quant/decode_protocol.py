"""What the decoders feed their output to (a hashlib object, or anything with ``update``)."""

from __future__ import annotations

from typing import Protocol


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
