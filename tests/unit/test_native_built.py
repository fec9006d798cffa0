"""The native decoder, quantizer and serving kernels are part of what CI tests: with ``UC_ATTEST_REQUIRE_NATIVE=1`` (set by
``.ci/run``) a build without them fails here instead of every native test skipping silently. Without a
compiler the NumPy decoder and the torch quantizer give the same bytes (tests/e2e/test_native_fallback.py)."""

from __future__ import annotations

import os

import pytest


@pytest.mark.skipif(os.environ.get("UC_ATTEST_REQUIRE_NATIVE") != "1", reason="UC_ATTEST_REQUIRE_NATIVE is not 1")
def test_every_native_module_is_built_from_its_current_source() -> None:
    from pathlib import Path

    from uc_attest.quant import _decode, _quantize  # type: ignore[attr-defined]
    from uc_attest.runtime import _serve  # type: ignore[attr-defined]

    for mod in (_decode, _quantize, _serve):
        assert "scalar" in mod.supported_isas()
        # an optional extension that fails to compile leaves the last build in place: never older than its source
        so = Path(mod.__file__)
        source = so.with_name(so.name.split(".")[0] + ".c")
        assert so.stat().st_mtime >= source.stat().st_mtime, f"{so.name} is older than {source.name}: rebuild failed?"
