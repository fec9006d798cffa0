"""Digest value type, streaming SHA-256 and RFC 8785 canonical JSON."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rfc8785

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_CHUNK = 1 << 22


@dataclass(frozen=True, order=True)
class Digest:
    """A SHA-256 digest written ``sha256:<64 lowercase hex>``."""

    hex: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9a-f]{64}", self.hex):
            raise ValueError(f"not a sha256 hex digest: {self.hex!r}")

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``sha256:<hex>``; raises ValueError on anything else."""
        if not _DIGEST_RE.fullmatch(text):
            raise ValueError(f"not a 'sha256:<hex>' digest: {text!r}")
        return cls(text[7:])

    @classmethod
    def of_bytes(cls, data: bytes | memoryview) -> Digest:
        return cls(hashlib.sha256(data).hexdigest())

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.hex)

    def __str__(self) -> str:
        return f"sha256:{self.hex}"


def sha256_file(path: Path) -> Digest:
    """Stream a file through SHA-256 (hashlib releases the GIL on large chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return Digest(h.hexdigest())


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical encoding: sorted keys, no whitespace, UTF-8."""
    return rfc8785.dumps(value)
