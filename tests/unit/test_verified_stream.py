"""The one verified tensor stream (``pack/verified.py``) that the check, the export and the loaders read a pack
through: a tensor is yielded only once its digest matched, every difference is a typed finding."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from tests.unit.test_pack import Q, _alter_codes, _pack, _rewrite_shard
from uc_attest.errors import Finding, FindingKind
from uc_attest.manifest import TensorEntry
from uc_attest.pack.reader import Pack
from uc_attest.pack.verified import Block, Verified, verified_tensors

BIAS = "model.layers.1.mlp.down_proj.bias"


def _keeper(kept: dict[str, bytearray]) -> Callable[[TensorEntry], Callable[[Block], object]]:
    def keep(e: TensorEntry) -> Callable[[Block], object]:
        kept[e.name] = bytearray()
        return kept[e.name].extend

    return keep


def test_every_tensor_is_yielded_with_the_bytes_that_were_hashed(
    model_factory: Callable[..., Path], tmp_path: Path
) -> None:
    res = _pack(model_factory(shards=2), tmp_path / "p")
    kept: dict[str, bytearray] = {}
    with Pack(tmp_path / "p") as pack:
        outcomes = list(verified_tensors(pack, res.manifest, _keeper(kept)))
        order = [(pack.tensors[e.name].shard, e.name) for e in res.manifest.tensors]
    assert all(isinstance(o, Verified) for o in outcomes)
    assert [(o.entry.file, o.entry.name) for o in outcomes if isinstance(o, Verified)] == sorted(order)
    for e in res.manifest.tensors:  # what the sink received is what the manifest's digest is of
        assert hashlib.sha256(kept[e.name]).hexdigest() == e.digest.hex


def _tamper(t: dict[str, torch.Tensor]) -> None:
    _alter_codes(t)
    del t[BIAS]
    t["extra.weight"] = torch.zeros(2)


def test_findings_are_typed_and_keep_their_text(bf16_model: Path, tmp_path: Path) -> None:
    res = _pack(bf16_model, tmp_path / "p")
    _rewrite_shard(tmp_path / "p" / "model.safetensors", _tamper)
    with Pack(tmp_path / "p") as pack:
        serial = list(verified_tensors(pack, res.manifest, _keeper({})))
        with ThreadPoolExecutor(2) as ex:
            parallel = list(verified_tensors(pack, res.manifest, pool=ex, moments=True))
    assert serial == parallel  # the same outcomes in the same order, hashed in parallel or streamed to a sink
    found = {o.subject: o for o in serial if isinstance(o, Finding)}
    assert {s: (f.kind, f.problem) for s, f in found.items()} == {
        Q.format(0): (FindingKind.DIGEST_DIFFERS, "reconstructed digest differs"),
        BIAS: (FindingKind.MISSING_TENSOR, "missing from pack"),
        "extra.weight": (FindingKind.ADDED_TENSOR, "not in manifest (added tensor)"),
    }
    assert found["extra.weight"].actual == f"sha256:{hashlib.sha256(bytes(8)).hexdigest()}"  # named by its digest
    verified = {o.entry.name for o in serial if isinstance(o, Verified)}
    assert verified == {e.name for e in res.manifest.tensors} - {Q.format(0), BIAS}


def test_a_sink_gets_blocks_in_order_so_never_from_a_pool(bf16_model: Path, tmp_path: Path) -> None:
    res = _pack(bf16_model, tmp_path / "p")
    with Pack(tmp_path / "p") as pack, ThreadPoolExecutor(2) as ex, pytest.raises(AssertionError):
        next(verified_tensors(pack, res.manifest, _keeper({}), pool=ex))


def test_a_finding_kind_owns_its_text_and_stays_out_of_the_json() -> None:
    f = FindingKind.CANNOT_RECONSTRUCT.at("w", why="non-finite scale")
    assert (f.kind, f.problem) == (FindingKind.CANNOT_RECONSTRUCT, "cannot reconstruct: non-finite scale")
    assert f.to_dict() == {"subject": "w", "problem": "cannot reconstruct: non-finite scale"}
    assert f == Finding("w", "cannot reconstruct: non-finite scale")  # the kind is not part of equality
