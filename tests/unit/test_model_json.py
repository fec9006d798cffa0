"""A model directory's JSON files (config.json, tokenizer_config.json) as the strict reader takes them: one open,
checked on the descriptor — a FIFO swapped in never hangs it, a device is never read to the end, an oversized or
deeply nested file is refused naming the file; a symlinked file (a hub cache's layout) is followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from uc_attest import source
from uc_attest.errors import MalformedModel
from uc_attest.source import is_causal, read_json_object


def test_a_fifo_or_a_device_is_refused_without_hanging(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "config.json")
    with pytest.raises(MalformedModel, match="config.json"):
        read_json_object(tmp_path / "config.json", "config.json")
    with pytest.raises(MalformedModel, match="config.json"):
        read_json_object(Path("/dev/zero"), "config.json")


def test_oversized_nested_or_not_json_is_refused_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "config.json"
    monkeypatch.setattr(source, "MAX_JSON_BYTES", 100)
    p.write_text('{"a": "' + "x" * 200 + '"}')
    with pytest.raises(MalformedModel, match="larger than"):
        read_json_object(p, "config.json")
    monkeypatch.setattr(source, "MAX_JSON_BYTES", 1 << 20)
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(MalformedModel, match="not valid JSON|must be a JSON object"):
        read_json_object(p, "config.json")
    p.write_bytes(b"\xff\xfe{}")
    with pytest.raises(MalformedModel, match="not valid JSON"):
        read_json_object(p, "config.json")
    with pytest.raises(MalformedModel, match="is missing"):
        read_json_object(tmp_path / "absent.json", "absent.json")


def test_a_symlinked_config_is_followed(tmp_path: Path) -> None:
    (tmp_path / "blob").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (tmp_path / "config.json").symlink_to(tmp_path / "blob")
    assert is_causal(read_json_object(tmp_path / "config.json", "config.json"))


@pytest.mark.parametrize(
    ("archs", "causal"),
    [(["LlamaForCausalLM"], True), (["GPT2LMHeadModel"], True), (["BertModel"], False), ([], False),
     ("LlamaForCausalLM", False), (None, False), ([1, "X"], False)],
)  # fmt: skip
def test_is_causal_reads_only_a_list_of_architectures(archs: object, causal: bool) -> None:
    assert is_causal({"architectures": archs}) is causal
