"""Strict safetensors reader: the 38 third-party fixtures, and the writer's exact bytes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import shared_path
from uc_attest.core.stfile import OutTensor, SafetensorsFile, out_tensor, write_safetensors
from uc_attest.errors import MalformedSafetensors


def _cases() -> list[dict[str, str]]:
    try:
        root = shared_path("vectors", "safetensors")
    except pytest.skip.Exception:
        return []
    return json.loads((root / "expectations.json").read_text())["cases"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: Path(c["file"]).stem)
def test_fixture_reads_correctly_or_fails_with_the_named_rule(case: dict[str, str]) -> None:
    path = shared_path("vectors", "safetensors", case["file"])
    expect = case["expect"]
    try:
        with SafetensorsFile(path) as f:
            for name in f.names:
                try:
                    t = f.tensor(name)
                except MalformedSafetensors as exc:
                    assert exc.kind == "UnsupportedDtype"  # e.g. F4: bytes readable, not loadable as torch
                    continue
                assert tuple(t.shape) == f.infos[name].shape
        got = "ok"
    except MalformedSafetensors as exc:
        got = exc.kind
        assert path.name in exc.message  # the message names the file
    if expect.startswith("reject"):
        assert got != "ok"
    elif expect.startswith("ok"):
        assert got == "ok"
    else:
        assert got == expect


def test_fixture_set_is_complete() -> None:
    if not _cases():
        pytest.skip("../shared not present")
    assert len(_cases()) == 38


def test_writer_bytes_are_pinned_and_readable_by_safetensors(tmp_path: Path) -> None:
    a = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    b = torch.tensor([1, 2, 3], dtype=torch.uint8)
    buf = io.BytesIO()
    write_safetensors(buf, [out_tensor("a", a), out_tensor("b", b)], {"k": "v"})
    data = buf.getvalue()
    header = (
        b'{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},'
        b'"b":{"dtype":"U8","shape":[3],"data_offsets":[24,27]}}'
    )
    header += b" " * (-len(header) % 8)
    assert data == len(header).to_bytes(8, "little") + header + a.numpy().tobytes() + b.numpy().tobytes()
    p = tmp_path / "x.safetensors"
    p.write_bytes(data)
    loaded = load_file(str(p))
    assert torch.equal(loaded["a"], a) and torch.equal(loaded["b"], b)
    with SafetensorsFile(p) as f:
        assert f.metadata == {"k": "v"} and torch.equal(f.tensor("a"), a)


def test_writer_rejects_size_mismatch() -> None:
    with pytest.raises(ValueError, match="'x'"):
        write_safetensors(io.BytesIO(), [OutTensor("x", "F32", (2,), b"\0" * 4)], {})
