"""The default calibration text does not depend on what the process imported before (CLI vs script)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from uc_attest import read_calibration_text
from uc_attest.errors import InvalidInput

DIGEST = ("import hashlib; from uc_attest.calibration.corpus import calibration_sentences as c; "
          "print(hashlib.sha256('\\n'.join(c()).encode()).hexdigest(), len(c()))")  # fmt: skip


def test_the_same_text_whatever_was_imported_before() -> None:
    plain = subprocess.run([sys.executable, "-c", DIGEST], capture_output=True, text=True, check=True).stdout
    loaded = subprocess.run([sys.executable, "-c", "import importlib.util, importlib.metadata, email.mime.text, "
                             "xml.etree.ElementTree, uc_attest.cli.app, transformers, sigstore.verify, uc_attest.evidence.oms; " + DIGEST],
                            capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert plain == loaded and int(plain.split()[1]) > 300


def test_a_bad_text_file_names_itself(tmp_path: object) -> None:
    from pathlib import Path

    p = Path(str(tmp_path)) / "t.txt"
    p.write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        read_calibration_text(p)
    p.write_text("one\n\ntwo\n")
    assert read_calibration_text(p) == ["one", "two"]
