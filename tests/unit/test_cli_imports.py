"""The CLI starts fast (issue 29): ``import uc_attest.cli`` and ``--help`` load no heavy library, and a verify
without a signer (``--integrity-only``, ``--manifest``) loads neither the signature stack nor NumPy nor torch —
each is imported only by the command that uses it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "numpy", "transformers", "sigstore", "cryptography", "pydantic", "yaml", "in_toto_attestation",
         "requests", "markdown_it", "safetensors")  # fmt: skip

PROBE = """
import json, sys
args = json.loads(sys.argv[1])
if args:
    from uc_attest.cli import main
    sys.argv = ["uc-attest", *args]
    try:
        main()
    except SystemExit:
        pass
else:
    import uc_attest.cli
print(json.dumps(sorted(m for m in {heavy} if m in sys.modules)), file=sys.stderr)
"""


def _loaded(*args: str) -> set[str]:
    r = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), json.dumps(args)], capture_output=True,
                       text=True, timeout=300, check=False)  # fmt: skip
    return set(json.loads(r.stderr.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _loaded() == set()


def test_help_loads_no_heavy_library() -> None:
    assert _loaded("--help") == set()
    assert _loaded("verify", "--help") == set()  # typer 0.29 would coerce every option through pydantic


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import uc_attest as uc
    from tests.conftest import make_model

    root = tmp_path_factory.mktemp("imports")
    uc.write_pack(make_model(root / "src"), root / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=None,
                  allocation=None)  # fmt: skip
    return root / "pack"


def test_a_verify_without_a_signer_loads_no_signature_stack_nor_numpy_nor_torch(pack: Path) -> None:
    from uc_attest.quant import native_decode

    if not native_decode.available():
        pytest.skip("the C decoder is not compiled: the NumPy decoder is the fallback")
    for args in (("verify", str(pack), "--integrity-only"), ("verify", str(pack), "--manifest",
                                                              str(pack / "uc-manifest.json"))):  # fmt: skip
        assert _loaded(*args) <= {"pydantic"}, args
