"""Where no C compiler built the native modules, the fallbacks give the same bytes: a pack written with the
torch quantizer is the native pack, byte for byte, and the NumPy decoder verifies it."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_model

PACK = "import sys, uc_attest as uc; uc.write_pack(sys.argv[1], sys.argv[2], device='cpu', calibration=None)"


def test_the_torch_quantizer_writes_the_native_pack_byte_for_byte(tmp_path: Path) -> None:
    src = make_model(tmp_path / "src")
    for name, env in (("native", {}), ("torch", {"UC_ATTEST_QUANTIZER": "torch"})):
        r = subprocess.run([sys.executable, "-c", PACK, str(src), str(tmp_path / name)], capture_output=True,
                           text=True, env={**os.environ, **env}, timeout=600, check=False)  # fmt: skip
        assert r.returncode == 0, r.stderr
    same = filecmp.dircmp(tmp_path / "native", tmp_path / "torch")
    assert not same.diff_files and not same.left_only and not same.right_only
    for f in same.common_files:
        assert (tmp_path / "native" / f).read_bytes() == (tmp_path / "torch" / f).read_bytes(), f
    # verified by the NumPy decoder (no C module at all)
    check = ("import sys, uc_attest as uc; from uc_attest.quant import decode, native_decode;"
             "decode._native = None; native_decode._native = None;"
             "assert uc.check_pack(sys.argv[1]).ok")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", check, str(tmp_path / "torch")], capture_output=True, text=True,
                       timeout=600, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
