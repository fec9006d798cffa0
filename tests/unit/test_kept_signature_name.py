"""A pack keeps its source's OMS signature under one name: a manifest naming another file is malformed.

Found by an outside review: a rebuild copies the kept signature from the pack into the rebuilt pack under the
name the pack's manifest gives; naming ``config.json`` there made the rebuild copy the pack's own (tampered)
config over the rebuilt one, so a config the source does not produce passed; a name in a subdirectory crashed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import uc_attest as uc
from tests.conftest import make_model
from uc_attest.errors import MalformedPack
from uc_attest.manifest import SOURCE_SIGNATURE_NAME
from uc_attest.verify.api import check_rebuild


def _record(file: str, digest: str) -> dict[str, str]:
    zero = "sha256:" + "0" * 64
    return {
        "file": file,
        "sha256": digest,
        "method": "key",
        "identity": zero,
        "issuer": "",
        "model": "src",
        "root": zero,
    }


def _packed(tmp_path: Path) -> tuple[Path, Path]:
    src = make_model(tmp_path / "src")
    uc.run_pack(uc.PackRequest.uncalibrated(src, tmp_path / "pack"))
    return src, tmp_path / "pack"


@pytest.mark.parametrize("name", ["config.json", "sub/sig.json", "../outside.sig", "model.safetensors"])
def test_a_kept_signature_under_another_name_is_refused(tmp_path: Path, name: str) -> None:
    src, pack = _packed(tmp_path)
    cfg = pack / "config.json"
    doc = json.loads(cfg.read_text())
    doc["rope_scaling"] = {"type": "not what the source makes"}
    cfg.write_text(json.dumps(doc))
    digest = "sha256:" + hashlib.sha256(cfg.read_bytes()).hexdigest()
    m = json.loads((pack / "uc-manifest.json").read_text())
    m["files"]["config.json"] = digest
    m["source_signature"] = _record(name, digest)
    (pack / "uc-manifest.json").write_text(json.dumps(m))
    with pytest.raises(MalformedPack, match="source_signature.file"):
        check_rebuild(pack, src, device="cpu")


def test_the_writers_name_is_the_one_accepted() -> None:
    from uc_attest.manifest import SourceSignature

    rec = SourceSignature.from_dict(_record(SOURCE_SIGNATURE_NAME, "sha256:" + "1" * 64), "m.json")
    assert rec.file == SOURCE_SIGNATURE_NAME
