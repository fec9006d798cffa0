"""Serving verified packs: the loader never returns a byte it did not hash and match against a trust anchor.

* ``loader``  ``load_verified``: a full-precision state dict of exactly the hashed bytes
* ``model``   ``load_model``: a transformers module whose quantized Linear layers stay packed
* ``packed``  PackedWeight / PackedLinear: the contract decode in every forward (torch only)
* ``build``   the model skeleton from config.json, parameters on meta
* ``serve``   generate / embed with a loaded model
* ``serving`` Serving: where and how they compute (device, mode, cache), without torch
* ``hf``      transformers' quantizer plugin (``import uc_attest.hf``)

Importing the package imports none of them: ``packed`` runs where only torch is installed (gpu_check).
"""
