"""Digest value type, streaming SHA-256 and RFC 8785 canonical JSON."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

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


def sha256_stream(f: BinaryIO) -> Digest:
    """Stream an open binary file through SHA-256 (hashlib releases the GIL on large chunks)."""
    h = hashlib.sha256()
    while chunk := f.read(_CHUNK):
        h.update(chunk)
    return Digest(h.hexdigest())


def sha256_file(path: Path) -> Digest:
    """Stream a file through SHA-256 (a path the caller chose, not one read from a document: see
    ``core.fsutil.inside``)."""
    with open(path, "rb") as f:
        return sha256_stream(f)


def _jcs(value: Any, out: list[str]) -> None:
    if value is None or isinstance(value, bool):
        out.append(json.dumps(value))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _jcs(v, out)
        out.append("]")
    elif isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("canonical JSON object keys must be strings")
        out.append("{")
        for i, k in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            if i:
                out.append(",")
            out.append(json.dumps(k, ensure_ascii=False))
            out.append(":")
            _jcs(value[k], out)
        out.append("}")
    else:  # floats are deliberately unsupported: digests never depend on float formatting
        raise TypeError(f"canonical JSON does not encode {type(value).__name__} values")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical encoding of null, bools, integers, strings, arrays and objects.

    Keys are sorted by UTF-16 code units, no whitespace, UTF-8, JSON string escaping as
    RFC 8785 requires. Floats are refused. Tested against the ``rfc8785`` package.
    """
    out: list[str] = []
    _jcs(value, out)
    return "".join(out).encode("utf-8")
