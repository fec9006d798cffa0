"""Serving verified packs: the loader never returns a byte it did not hash and match against a trust anchor.

* ``loader``  ``load_verified``: a full-precision state dict of exactly the hashed bytes
* ``model``   ``load_model``: a transformers module whose quantized Linear layers stay packed
* ``packed``  PackedWeight / PackedLinear: the contract decode in every forward
* ``build``   the model skeleton from config.json, parameters on meta
* ``hf``      transformers' quantizer plugin (``import uc_attest.hf``)
"""

from .loader import load_verified

__all__ = ["load_verified"]
