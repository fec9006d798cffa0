"""The shards the ranks of a distributed pack write (pack/writer.py ``write_shards``), taken into the pack by rank
0's writer (``WriteOptions.written``): the same pack as one process, and every disagreement between a record and
its file refused with nothing written. The ranks themselves run in tests/integration/test_distributed_pack.py."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uc_attest as uc
from uc_attest.core.digest import Digest
from uc_attest.errors import OperationalError
from uc_attest.pack.writer import ShardsWritten, SourceDigests, WriteOptions, WrittenShard, write_pack, write_shards

FUZZ = settings(
    max_examples=int(os.environ.get("UC_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _shards(src: Path, into: Path, known: SourceDigests | None = None) -> ShardsWritten:
    """Every shard of ``src`` written into ``into`` as the ranks write them (one process plays every rank)."""
    into.mkdir()
    recs = write_shards(src, into, uc.DEFAULT_SCHEME, "cpu", WriteOptions(known=known), lambda _s: True)
    return ShardsWritten(into, {r.name: r for r in recs})


def _pack(src: Path, out: Path, written: ShardsWritten | None, known: SourceDigests | None = None) -> uc.PackResult:
    return write_pack(src, out, uc.DEFAULT_SCHEME, "cpu", WriteOptions(written=written, known=known))


def test_shards_written_apart_make_the_one_process_pack(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    src = model_factory(shards=3)
    one = _pack(src, tmp_path / "one", None)
    many = _pack(src, tmp_path / "many", _shards(src, tmp_path / "scratch"))
    assert many.manifest.root == one.manifest.root
    assert many.manifest.to_json() == one.manifest.to_json()
    for f in sorted((tmp_path / "one").rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (tmp_path / "many" / f.relative_to(tmp_path / "one")).read_bytes(), f.name
    assert list((tmp_path / "scratch").iterdir()) == []  # every file moved into the pack


def _flip_byte(w: ShardsWritten, shard: str) -> None:
    path = w.directory / shard
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))


def _reorder(w: ShardsWritten, shard: str) -> None:
    rec = w.shards[shard]
    w.shards[shard] = replace(rec, entries=list(reversed(rec.entries)))


def _drop_entry(w: ShardsWritten, shard: str) -> None:
    rec = w.shards[shard]
    w.shards[shard] = replace(rec, entries=rec.entries[1:])


def _other_file(w: ShardsWritten, shard: str) -> None:
    rec = w.shards[shard]
    w.shards[shard] = replace(rec, entries=[replace(e, file="other.safetensors") for e in rec.entries])


def _link(w: ShardsWritten, shard: str) -> None:
    path = w.directory / shard
    target = w.directory / "elsewhere.safetensors"
    path.rename(target)
    path.symlink_to(target)


def _gone(w: ShardsWritten, shard: str) -> None:
    (w.directory / shard).unlink()


def _digest(w: ShardsWritten, shard: str) -> None:
    rec = w.shards[shard]
    w.shards[shard] = replace(rec, digest=Digest("0" * 64))


def _other_width(w: ShardsWritten, shard: str) -> None:
    rec = w.shards[shard]
    i = next(i for i, e in enumerate(rec.entries) if e.quant is not None)
    e = rec.entries[i]
    assert e.quant is not None
    entries = list(rec.entries)
    entries[i] = replace(e, quant=replace(e.quant, bits=e.quant.bits + 1))  # made under another allocation
    w.shards[shard] = replace(rec, entries=entries)


def _changed_copy(w: ShardsWritten, shard: str) -> None:
    rec = w.shards[shard]
    i = next(i for i, e in enumerate(rec.entries) if e.quant is None)
    entries = list(rec.entries)
    entries[i] = replace(entries[i], digest=Digest("2" * 64))  # a tensor stored unchanged, recorded changed
    w.shards[shard] = replace(rec, entries=entries)


@pytest.mark.parametrize(
    ("tamper", "match"),
    [
        (_other_width, "does not list the source shard's tensors"),
        (_changed_copy, "changes a tensor it stores unchanged"),
        (_flip_byte, "does not hash to its record"),
        (_digest, "does not hash to its record"),
        (_reorder, "does not list the source shard's tensors"),
        (_drop_entry, "does not list the source shard's tensors"),
        (_other_file, "does not list the source shard's tensors"),
        (_link, "is missing"),
        (_gone, "is missing"),
    ],
)
def test_a_shard_that_disagrees_with_its_record_is_refused_with_nothing_written(
    model_factory: Callable[..., Path], tmp_path: Path, tamper: Callable[[ShardsWritten, str], None], match: str
) -> None:
    src = model_factory(shards=3)
    written = _shards(src, tmp_path / "scratch")
    shard = sorted(written.shards)[1]
    tamper(written, shard)
    with pytest.raises(OperationalError, match=rf"^{shard}: the shard a rank wrote {match}") as exc:
        _pack(src, tmp_path / "out", written)
    assert exc.value.exit_code == 4
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # no partial pack left


def test_a_record_of_other_source_digests_is_refused(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    """Rank 0 knows every source digest the ranks took (the exchange before writing): a record that names others
    — a rank that read another source — is refused."""
    src = model_factory(shards=2)
    one = _pack(src, tmp_path / "one", None)
    known = SourceDigests(dict(one.manifest.source_files), {e.name: e.source_digest for e in one.manifest.tensors})
    for field in ("file", "tensor"):
        written = _shards(src, tmp_path / f"scratch-{field}", known)
        shard = min(written.shards)
        rec = written.shards[shard]
        bad = Digest("1" * 64)
        written.shards[shard] = (
            replace(rec, source_digest=bad)
            if field == "file"
            else replace(rec, entries=[replace(rec.entries[0], source_digest=bad), *rec.entries[1:]])
        )
        with pytest.raises(OperationalError, match="records other source digests"):
            _pack(src, tmp_path / f"out-{field}", written, known)
        assert not (tmp_path / f"out-{field}").exists()


def test_a_shard_record_round_trips_through_json(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    written = _shards(model_factory(shards=2), tmp_path / "scratch")
    for rec in written.shards.values():
        assert WrittenShard.from_dict(json.loads(json.dumps(rec.to_dict())), "rank 1") == rec


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


def _valid_record() -> dict[str, Any]:
    entry = {"name": "w", "dtype": "BF16", "shape": [2, 2], "digest": "a" * 64, "source_digest": "b" * 64,
             "file": "model.safetensors", "quant": None}  # fmt: skip
    return {"name": "model.safetensors", "entries": [entry], "digest": "c" * 64, "source_digest": "d" * 64}


@FUZZ
@given(
    st.one_of(
        _JSON,
        st.builds(lambda k, v: {**_valid_record(), k: v}, st.sampled_from(list(_valid_record())), _JSON),
        st.builds(
            lambda k, v: {**_valid_record(), "entries": [{**_valid_record()["entries"][0], k: v}]},
            st.sampled_from(list(_valid_record()["entries"][0])),
            _JSON,
        ),
    )
)
def test_any_record_a_rank_sends_parses_or_is_one_operational_error(value: Any) -> None:
    """What another rank sends is data: a record, or OperationalError naming the rank, never another exception."""
    try:
        rec = WrittenShard.from_dict(value, "rank 2")
    except OperationalError as exc:
        assert str(exc).startswith("rank 2: ") and "\n" not in str(exc)
        return
    assert isinstance(rec.name, str) and all(isinstance(e.name, str) for e in rec.entries)
