"""Calibration second moments: the file format (``file``), measuring them with transformers
(``collect``), the text they are measured on (``corpus``), and what ``pack`` does by default (``default``).

A calibration file is a safetensors file with, for each weight tensor name, the float ``[n_cols, n_cols]``
second moments ``E[x xᵀ]`` of that layer's input over calibration tokens (what GPTQ-style tools call H),
or only its g x g diagonal blocks ``[n_cols/g, g, g]`` (all the scheme uses). Any method may produce it,
because it is never re-derived: a pack commits the int16 block form (``quant.ldlq.moments_to_blocks``)
next to the codes, and a rebuild reads it from there.
"""

from .collect import CalibrationUnavailable, collect
from .file import META_KIND, MOMENT_DTYPES, Calibration, write

__all__ = ["META_KIND", "MOMENT_DTYPES", "Calibration", "CalibrationUnavailable", "collect", "write"]
