"""The native decoder and quantizer are part of what CI tests: with ``UC_ATTEST_REQUIRE_NATIVE=1`` (set by
``.ci/run``) a build without them fails here instead of every native test skipping silently. Without a
compiler the NumPy decoder and the torch quantizer give the same bytes (tests/e2e/test_native_fallback.py)."""

from __future__ import annotations

import os

import pytest


@pytest.mark.skipif(os.environ.get("UC_ATTEST_REQUIRE_NATIVE") != "1", reason="UC_ATTEST_REQUIRE_NATIVE is not 1")
def test_both_native_modules_are_built() -> None:
    from uc_attest.quant import _decode, _quantize  # type: ignore[attr-defined]

    assert "scalar" in _decode.supported_isas() and "scalar" in _quantize.supported_isas()
