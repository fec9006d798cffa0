"""``uc-attest calibrate``: second moments over a calibration text, written as a calibration file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .corpus import read_text_file


def read_calibration_text(path: Path) -> list[str]:
    """The non-empty lines of a calibration text file; exit 3 naming it when empty, binary or not UTF-8."""
    return read_text_file(Path(path)).lines


def calibrate(model_dir: Path, texts: list[str], output: Path, max_length: int = 128) -> dict[str, Any]:
    """Collect the second moments of every linear layer's input over ``texts`` (transformers) and
    write a calibration file; returns a summary."""
    from . import collect, write

    moments = collect(Path(model_dir), texts, max_length)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()
    write(Path(output), moments, f"{len(texts)} texts, sha256 {digest}, max_length {max_length}")
    return {"ok": True, "output": str(output), "tensors": len(moments), "texts": len(texts), "text_sha256": digest}
