"""``uc-attest reconstruct`` writes only what matches the trust anchor: a flipped code byte, an edited config, an
added file or a manifest naming a file outside the output refuse, and nothing is written; without an anchor it is a
usage error unless ``--integrity-only``, which says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RELEASE, _copy, assert_clean_error
from tests.e2e.test_cli import cli
from uc_attest.core.stfile import SafetensorsFile

QUANTIZED = "model.layers.0.self_attn.q_proj.weight"


def _flip_code_byte(pack: Path, tensor: str = QUANTIZED) -> None:
    shard = pack / "model.safetensors"
    with SafetensorsFile(shard) as f:
        info = f.infos[tensor + ".uc_codes"]
        at = f.data_start + info.begin + 3
    data = bytearray(shard.read_bytes())
    data[at] ^= 0x10
    shard.write_bytes(bytes(data))


@pytest.mark.parametrize("anchor", ["none", "manifest", "bundle"])
def test_reconstruct_refuses_a_flipped_code_byte(world: dict[str, Any], tmp_path: Path, anchor: str) -> None:
    pack = _copy(world, tmp_path)
    _flip_code_byte(pack)
    args: list[str | Path] = {
        "none": ["--integrity-only"],
        "manifest": ["--manifest", world["kept"]],
        "bundle": ["--identity", RELEASE, "--instance", world["inst"].dir],  # the bundle beside the pack
    }[anchor]
    r = cli("reconstruct", pack, "-o", tmp_path / "out", *args, "--json")
    assert_clean_error(r, 1, "reconstructed digest differs")
    assert QUANTIZED in {f["subject"] for f in json.loads(r.stdout)["findings"]}
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_reconstruct_refuses_an_edited_config(world: dict[str, Any], tmp_path: Path) -> None:
    pack = _copy(world, tmp_path)
    cfg = json.loads((pack / "config.json").read_text())
    cfg["hidden_size"] = 64
    (pack / "config.json").write_text(json.dumps(cfg))
    assert_clean_error(cli("reconstruct", pack, "-o", tmp_path / "out", "--integrity-only"), 1, "config.json")
    assert not (tmp_path / "out").exists()


def test_reconstruct_refuses_an_added_file(world: dict[str, Any], tmp_path: Path) -> None:
    pack = _copy(world, tmp_path)
    (pack / "tokenizer_config.json").write_text('{"tokenizer_class": "evil"}')
    r = cli("reconstruct", pack, "-o", tmp_path / "out", "--manifest", world["kept"])
    assert_clean_error(r, 1, "tokenizer_config.json")
    assert not (tmp_path / "out").exists()


def test_reconstruct_with_and_without_an_anchor(world: dict[str, Any], tmp_path: Path) -> None:
    # no anchor at all: a usage error saying how to anchor, nothing written (a CI step checking the exit code
    # must not pass a pack anyone could rewrite)
    refused = cli("reconstruct", world["pack"], "-o", tmp_path / "a")
    assert_clean_error(refused, 2, "no trust anchor")
    assert "--integrity-only" in refused.stderr and not (tmp_path / "a").exists()
    plain = cli("reconstruct", world["pack"], "-o", tmp_path / "a", "--integrity-only", "--json")
    assert plain.returncode == 0, plain.stderr
    assert "integrity only" in plain.stderr and "no signer checked" in plain.stderr
    assert json.loads(plain.stdout)["anchored"] is False
    signed = cli("reconstruct", world["pack"], "-o", tmp_path / "b", "--identity", RELEASE,
                 "--instance", world["inst"].dir)  # fmt: skip
    assert signed.returncode == 0 and "integrity only" not in signed.stderr, signed.stderr
    other = cli("reconstruct", world["pack"], "-o", tmp_path / "c", "--identity", "mallory@example.com",
                "--instance", world["inst"].dir)  # fmt: skip
    assert other.returncode == 1 and not (tmp_path / "c").exists()
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_reconstruct_refuses_a_manifest_file_name_that_leaves_the_output(world: dict[str, Any], tmp_path: Path) -> None:
    """A kept manifest naming ``../escape.txt`` must never make reconstruct write outside its output directory."""
    doc = json.loads(world["kept"].read_text())
    doc["files"]["../escape.txt"] = doc["files"]["config.json"]
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(doc))
    r = cli("reconstruct", world["pack"], "-o", tmp_path / "out" / "model", "--manifest", kept, "--json")
    assert r.returncode in (1, 3) and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert not (tmp_path / "out" / "escape.txt").exists() and not (tmp_path / "out" / "model").exists()
