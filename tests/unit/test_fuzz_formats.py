"""The suite as an attacker: property-based fuzzing of every parser of untrusted bytes.

Targets: the safetensors reader (``core/stfile.py``: arbitrary bytes, mutated headers, mutated third-party
fixtures), the pack reader (``pack/reader.py``: mutated shard headers of a real pack), the manifest codec
(``manifest.py``), the SLSA release claim (``claims/slsa.py``) and the OMS v1.0 statement (``claims/oms.py``).
The property everywhere: a parsed value, or one documented :class:`InvalidInput` (exit code 3) with a
one-line message; never another exception, a hang, or an allocation the input's size does not justify.

``UC_FUZZ_EXAMPLES`` sets the examples per target (default 200).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import mmap
import os
import struct
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import make_model, shared_path
from uc_attest.claims.oms import build_oms, parse_oms
from uc_attest.claims.slsa import BuildInfo, build_statement, parse_release
from uc_attest.claims.statement import Statement, Subject
from uc_attest.core import stfile
from uc_attest.core.stfile import DTYPE_BITS, SafetensorsFile, StreamedFile, encode_header
from uc_attest.errors import InvalidInput, MalformedBundle, MalformedPack, MalformedSafetensors
from uc_attest.manifest import Manifest
from uc_attest.pack.layout import MANIFEST_NAME, META_SCHEME, META_TENSORS, MOMENTS_SUFFIX
from uc_attest.pack.reader import Pack

FUZZ = settings(
    max_examples=int(os.environ.get("UC_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _one_line(exc: InvalidInput) -> None:
    assert exc.message and "\n" not in exc.message and len(exc.message) < 4096, exc.message[:4096]


# --- strategies -----------------------------------------------------------------------------------------

HUGE = [0, 1, -1, 2**31, 2**53 + 1, 2**60, 2**63, 2**64 - 1, 2**64, -(2**64), 10**40]
ODD_TEXT = ["", "\ud800", "\udfff x", "sha256:" + "g" * 64, "sha256:" + "A" * 64, "a" * 63, "0" * 65, "../etc",
            "/abs", "a\\b", "x\x00y", "\n", "F32", "uc-pack/1", "NaN"]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(ODD_TEXT),
)
json_values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8) | st.sampled_from(ODD_TEXT), c, max_size=4),
    max_leaves=12,
)


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _copy(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


@st.composite
def mutated(draw: st.DrawFn, base: Any, rounds: int = 3) -> Any:
    """``base`` (JSON) with a few of: a value replaced, a key or item dropped, duplicated or added, a value nested."""
    obj = _copy(base)
    for _ in range(draw(st.integers(1, rounds))):
        path = draw(st.sampled_from(_paths(obj)))
        op = draw(st.sampled_from(["replace", "drop", "add", "dup", "nest", "retype"]))
        if not path:
            if op == "replace":
                obj = draw(json_values)
            continue
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        key, cur = path[-1], parent[path[-1]]
        if op == "replace":
            parent[key] = draw(json_values)
        elif op == "drop":
            del parent[key]
        elif op == "add" and isinstance(cur, dict):
            cur[draw(st.text(max_size=6) | st.sampled_from(ODD_TEXT))] = draw(json_values)
        elif op == "dup" and isinstance(cur, list) and cur:
            cur.append(_copy(cur[draw(st.integers(0, len(cur) - 1))]))
        elif op == "nest":
            parent[key] = [cur] if draw(st.booleans()) else {"x": cur}
        elif op == "retype":
            parent[key] = draw(st.sampled_from([str(cur), [cur], None, True, 1.5, 2**64, -1]))
    return obj


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()  # ensure_ascii: lone surrogates travel as \\ud800 escapes


DEEP = b"[" * 200_000 + b"]" * 200_000


# --- safetensors ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _read_st(path: Path) -> dict[str, bytes] | MalformedSafetensors:
    """Read every tensor through both readers; they must agree. The bytes by name, or the error."""
    try:
        with SafetensorsFile(path) as f:
            out = {name: bytes(f.raw(name)) for name in f.names}
            for name, data in out.items():
                assert f.pread(name) == data and len(data) == f.infos[name].end - f.infos[name].begin
    except MalformedSafetensors as exc:
        _one_line(exc)
        assert path.name in exc.message
        with pytest.raises(MalformedSafetensors) as streamed:
            StreamedFile(path).close()
        assert streamed.value.kind == exc.kind
        return exc
    s = StreamedFile(path)
    for name in s.order:
        s.skip(name)
    s.finish()
    return out


def _check_st(path: Path, data: bytes) -> dict[str, bytes] | MalformedSafetensors:
    path.write_bytes(data)
    got = _read_st(path)
    if not isinstance(got, MalformedSafetensors):  # what we accept, the reference (Rust) implementation accepts
        from safetensors import deserialize

        assert {n for n, _ in deserialize(data)} == set(got)  # type: ignore[no-untyped-call]
    return got


def _fixtures() -> list[bytes]:
    try:
        root = shared_path("vectors", "safetensors", "fixtures")
    except pytest.skip.Exception:
        return []
    return [p.read_bytes() for p in sorted(root.glob("*.safetensors"))]


FIXTURES = _fixtures()


@FUZZ
@given(data=st.binary(max_size=300))
@example(data=b"")
@example(data=b"hello, this is a text file\n")
@example(data=struct.pack("<Q", 2) + b"{}")
@example(data=struct.pack("<Q", len(DEEP)) + DEEP)
@example(data=struct.pack("<Q", 2**64 - 1) + b"{}")
def test_stfile_arbitrary_bytes(work: Path, data: bytes) -> None:
    _check_st(work / "any.safetensors", data)


@st.composite
def st_files(draw: st.DrawFn) -> bytes:
    """A safetensors file, valid or with its length prefix, header fields, data length or trailer mutated."""
    n = draw(st.integers(0, 4))
    dims = st.integers(0, 5) | st.sampled_from(HUGE) | st.booleans() | st.just(1.5)
    header: dict[str, Any] = {}
    pos, data = 0, b""
    for i in range(n):
        dtype: Any = draw(st.sampled_from(sorted(DTYPE_BITS)) | st.sampled_from(["f32", "X", "", 3]))
        shape: list[Any] = draw(st.lists(dims, max_size=3))
        try:
            size = stfile.nbytes(dtype, tuple(shape)) if all(isinstance(d, int) and 0 <= d < 64 for d in shape) else 8
        except (KeyError, TypeError):
            size = 8
        offs: Any = [pos, pos + size]
        if draw(st.integers(0, 5)) == 0:
            offs = draw(st.lists(dims, max_size=3) | json_values)
        header[draw(st.text(max_size=4) | st.just(f"t{i}") | st.sampled_from(ODD_TEXT))] = {
            "dtype": dtype, "shape": shape, "data_offsets": offs}  # fmt: skip
        if draw(st.integers(0, 8)) == 0:
            header[f"t{i}"] = draw(mutated(header.get(f"t{i}", {}), 1))
        pos += size
        data += draw(st.binary(min_size=size, max_size=size))
    if draw(st.booleans()):
        header["__metadata__"] = draw(
            st.dictionaries(st.text(max_size=5), st.text(max_size=5) | json_values, max_size=2)
        )
    raw = _dumps(header) if draw(st.booleans()) else json.dumps(header, ensure_ascii=False).encode("utf-8", "replace")
    raw += b" " * draw(st.integers(0, 7))
    length = len(raw)
    if draw(st.integers(0, 3)) == 0:
        length = draw(st.integers(0, 2**64 - 1) | st.integers(max(0, length - 9), length + 9))
    tail = draw(st.just(b"") | st.binary(max_size=9))
    cut = draw(st.just(0) | st.integers(0, 9))
    out = struct.pack("<Q", length) + raw + data + tail
    return out[: len(out) - cut] if cut else out


@FUZZ
@given(data=st_files())
def test_stfile_mutated_headers(work: Path, data: bytes) -> None:
    _check_st(work / "hdr.safetensors", data)


@pytest.mark.skipif(not FIXTURES, reason="../shared/vectors/safetensors not present")
@FUZZ
@given(
    seed=st.sampled_from(FIXTURES or [b""]),
    edits=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255), st.sampled_from(["set", "ins", "del"])),
                   max_size=4),
)  # fmt: skip
def test_stfile_mutated_fixtures(work: Path, seed: bytes, edits: list[tuple[int, int, str]]) -> None:
    buf = bytearray(seed)
    for pos, byte, op in edits:
        i = pos % (len(buf) + 1)
        if op == "set" and i < len(buf):
            buf[i] = byte
        elif op == "ins":
            buf.insert(i, byte)
        elif op == "del" and i < len(buf):
            del buf[i]
    _check_st(work / "fix.safetensors", bytes(buf))


def test_text_file_is_not_a_safetensors_file(work: Path) -> None:
    for text in ("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n", "<!DOCTYPE html>", "hi\n"):
        p = work / "model.safetensors"
        p.write_text(text)
        with pytest.raises(MalformedSafetensors, match="not a safetensors file") as exc:
            SafetensorsFile(p)
        assert exc.value.kind == "NotSafetensors" and "model.safetensors" in exc.value.message
        with pytest.raises(MalformedSafetensors, match="not a safetensors file"):
            StreamedFile(p)


def test_data_beyond_the_file_end_is_refused_before_reading(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[tuple[int, int]] = []
    real = os.pread

    def spy(fd: int, n: int, off: int) -> bytes:
        reads.append((n, off))
        return real(fd, n, off)

    monkeypatch.setattr(os, "pread", spy)
    monkeypatch.setattr(mmap, "mmap", None)  # mapping the data would fail the test
    header = encode_header([("w", "F32", (2**40,))], {})  # 4 TiB of data claimed, 8 present
    p = work / "short.safetensors"
    p.write_bytes(header + b"\0" * 8)
    with pytest.raises(MalformedSafetensors) as exc:
        SafetensorsFile(p)
    assert exc.value.kind == "MetadataIncompleteBuffer"
    assert reads == [(8, 0), (len(header) - 8, 8)]  # the length prefix and the header: no data
    reads.clear()
    p.write_bytes(struct.pack("<Q", 1000) + b"{}")  # header longer than the file
    with pytest.raises(MalformedSafetensors, match="InvalidHeaderLength"):
        SafetensorsFile(p)
    assert reads == [(8, 0)]


@pytest.mark.parametrize(
    "shape", [[2**60], [2**32, 2**32, 0], [2**64 - 1] * 200_000, [2] * 200_000], ids=["2^60", "overflow-then-0",
                                                                                   "many-huge", "many-2"]
)  # fmt: skip
def test_huge_shapes_are_refused_without_allocating_or_hanging(work: Path, shape: list[int]) -> None:
    raw = json.dumps({"w": {"dtype": "F32", "shape": shape, "data_offsets": [0, 8]}}).encode()
    p = work / "huge.safetensors"
    p.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)
    t = time.monotonic()
    with pytest.raises(MalformedSafetensors, match="ValidationOverflow|TensorInvalidInfo"):
        SafetensorsFile(p)
    assert time.monotonic() - t < 5


# --- pack reader ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real pack (rotated scheme with row signs: the decoder's widest path), written once."""
    import uc_attest as uc

    root = tmp_path_factory.mktemp("pack")
    src = make_model(root / "model", cols=128)
    uc.write_pack(
        src,
        root / "pack",
        uc.Scheme(id="uc-rht-ldlq/1", bits=4, group_size=64),
        "cpu",
        calibration=None,
        allocation=None,
    )
    return root / "pack"


def _shard(pack_dir: Path) -> tuple[dict[str, str], list[tuple[str, str, tuple[int, ...], bytes]]]:
    with SafetensorsFile(pack_dir / "model.safetensors") as f:
        return dict(f.metadata), [(n, f.infos[n].dtype, f.infos[n].shape, bytes(f.raw(n))) for n in f.names]


def _open_pack(root: Path) -> Pack:
    """Open a pack and read every tensor and its moments; only MalformedPack/MalformedSafetensors may escape."""
    with Pack(root) as pk:
        for why in pk.unreadable.values():
            assert why and "\n" not in why
        for name in pk.iter_names():
            try:
                pk.digest(name)
                pk.moments(name)
            except (MalformedPack, MalformedSafetensors) as exc:
                _one_line(exc)
        return pk


@st.composite
def shard_mutations(draw: st.DrawFn, metadata: dict[str, str], tensors: list[Any]) -> bytes:
    md = dict(metadata)
    qmeta, scheme = json.loads(md[META_TENSORS]), json.loads(md[META_SCHEME])
    names = [t[0] for t in tensors]
    ts = list(tensors)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["record", "records", "scheme", "rename", "component", "moments", "bytes", "meta"]))
        if op == "record" and isinstance(qmeta, dict) and qmeta:
            k = draw(st.sampled_from(sorted(qmeta)))
            qmeta[k] = draw(mutated(qmeta[k]))
        elif op == "records":
            qmeta = draw(mutated(qmeta))
        elif op == "scheme":
            scheme = draw(mutated(scheme))
        elif op == "rename" and isinstance(qmeta, dict) and qmeta:
            k = draw(st.sampled_from(sorted(qmeta)))
            qmeta[draw(st.sampled_from(names) | st.text(max_size=6) | st.sampled_from(ODD_TEXT))] = qmeta.pop(k)
        elif op == "component":  # a tensor gets another dtype/shape (with data of the right size)
            i = draw(st.integers(0, len(ts) - 1))
            dtype = draw(st.sampled_from(sorted(DTYPE_BITS)))
            shape = tuple(draw(st.lists(st.integers(0, 70), max_size=3)))
            if (
                stfile.nbytes(dtype, shape) * 8 == DTYPE_BITS[dtype] * _prod(shape)
                and stfile.nbytes(dtype, shape) < 1 << 16
            ):
                ts[i] = (ts[i][0], dtype, shape, b"\x7c" * stfile.nbytes(dtype, shape))
        elif (
            op == "moments" and isinstance(qmeta, dict) and qmeta
        ):  # committed moments claimed, stored (or not) with some dtype and shape
            k = draw(st.sampled_from(sorted(qmeta)))
            if isinstance(qmeta[k], dict):
                qmeta[k]["moments"] = draw(st.sampled_from([1, 0, True, "", *sorted(qmeta)]))
            rows, cols = draw(st.integers(0, 4)), draw(st.sampled_from([0, 1, 2080, 8256]))
            dtype = draw(st.sampled_from(["I16", "U8"]))
            if draw(st.booleans()):
                ts.append((k + MOMENTS_SUFFIX, dtype, (rows, cols), b"\1" * (DTYPE_BITS[dtype] // 8 * rows * cols)))
        elif op == "bytes":  # e.g. a non-finite scale
            i = draw(st.integers(0, len(ts) - 1))
            data = bytearray(ts[i][3])
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.sampled_from([0x7C, 0xFF, 0x00, 0x7E]))
                ts[i] = (*ts[i][:3], bytes(data))
        elif op == "meta":
            md[draw(st.sampled_from(["uc.format", META_SCHEME, META_TENSORS, "x"]))] = draw(
                st.text(max_size=20) | st.sampled_from(["uc-pack/1", "{}", "[]", "null", "1e999", "[" * 5000])
            )
    if META_TENSORS in md and md[META_TENSORS] == metadata[META_TENSORS]:
        md[META_TENSORS] = json.dumps(qmeta)
    if META_SCHEME in md and md[META_SCHEME] == metadata[META_SCHEME]:
        md[META_SCHEME] = json.dumps(scheme)
    seen: set[str] = set()
    ts = [t for t in ts if not (t[0] in seen or seen.add(t[0]))]  # type: ignore[func-returns-value]
    return _encode_st(md, ts)


def _encode_st(metadata: dict[str, str], tensors: list[Any]) -> bytes:
    """A safetensors file (JSON with \\u escapes, so that any name, even a lone surrogate, can be written)."""
    header: dict[str, Any] = {"__metadata__": metadata}
    pos = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + len(data)]}
        pos += len(data)
    raw = _dumps(header)
    return struct.pack("<Q", len(raw)) + raw + b"".join(t[3] for t in tensors)


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@FUZZ
@given(data=st.data())
def test_pack_reader_mutated_shard(pack_dir: Path, work: Path, data: st.DataObject) -> None:
    metadata, tensors = _shard(pack_dir)
    root = work / "mutpack"
    root.mkdir(exist_ok=True)
    shard = data.draw(shard_mutations(metadata, tensors))
    (root / "model.safetensors").write_bytes(shard)
    _open_pack(root)


def test_pack_reader_valid_pack_reads(pack_dir: Path) -> None:
    pk = _open_pack(pack_dir)
    assert not pk.unreadable and len(pk.tensors) == 9


@pytest.mark.parametrize("shape", [[2**31, 2**31], [2**64 - 1] * 100_000, [2**64]], ids=["2^62", "many-huge", "2^64"])
def test_pack_record_with_a_huge_shape_is_refused_without_allocating(
    pack_dir: Path, work: Path, shape: list[int]
) -> None:
    metadata, tensors = _shard(pack_dir)
    qmeta = json.loads(metadata[META_TENSORS])
    name = min(qmeta)
    qmeta[name]["shape"] = shape
    root = work / "hugepack"
    root.mkdir(exist_ok=True)
    head = encode_header([(n, d, s) for n, d, s, _ in tensors], {**metadata, META_TENSORS: json.dumps(qmeta)})
    (root / "model.safetensors").write_bytes(head + b"".join(t[3] for t in tensors))
    t = time.monotonic()
    with Pack(root) as pk:
        if "model.safetensors" in pk.unreadable:
            assert "shape" in pk.unreadable["model.safetensors"]
        else:
            with pytest.raises(MalformedPack, match=name):
                pk.digest(name)
    assert time.monotonic() - t < 5


def test_pack_reader_text_file_named_safetensors(work: Path) -> None:
    root = work / "textpack"
    root.mkdir(exist_ok=True)
    (root / "model.safetensors").write_text("this is not a model\n")
    with Pack(root) as pk:
        assert "not a safetensors file" in pk.unreadable["model.safetensors"]


# --- manifest -------------------------------------------------------------------------------------------


def _check_manifest(data: bytes) -> None:
    try:
        m = Manifest.from_json(data, "uc-manifest.json")
    except MalformedPack as exc:
        _one_line(exc)
        return
    again = Manifest.from_json(m.to_json(), "again")  # what was accepted can be written and read back
    assert again.to_json() == m.to_json() and again.root == m.root


@FUZZ
@given(data=st.binary(max_size=200) | json_values.map(_dumps))
@example(data=DEEP)
@example(data=b'{"format": "uc-manifest/1", "scheme": {}, "tensors": [], "root": 1e999}')
@example(data=b"\xff\xfe{")
def test_manifest_arbitrary(data: bytes) -> None:
    _check_manifest(data)


@FUZZ
@given(data=st.data())
def test_manifest_mutated(pack_dir: Path, data: st.DataObject) -> None:
    base = json.loads((pack_dir / MANIFEST_NAME).read_bytes())
    base.setdefault("calibration", {"method": "self-sampled", "params": {"seed": 0}, "tool": "t"})
    base.setdefault("source_signature", {"file": "model.sig", "sha256": "sha256:" + "0" * 64, "method": "key",
                                         "identity": "i", "issuer": "", "model": "m", "root": "sha256:" + "1" * 64,
                                         "signed_at": 1})  # fmt: skip
    obj = data.draw(mutated(base, 4))
    if isinstance(obj, dict) and data.draw(st.booleans()):  # keep the root consistent, to reach the end
        try:
            Manifest.from_json(_dumps({**obj, "root": None}), "x")
        except MalformedPack as exc:  # "... does not match its entries (sha256:...)"
            obj["root"] = exc.message.rsplit("(", 1)[-1].rstrip(")") if exc.data.get("field") == "root" else None
    _check_manifest(_dumps(obj))


# --- SLSA release claims --------------------------------------------------------------------------------


def _statement(doc: Any) -> Statement:
    """A Statement as ``Statement.parse`` gives it once the in-toto structure is valid (subjects typed)."""
    subjects = doc.get("subject") if isinstance(doc, dict) else None
    subs = tuple(
        Subject(str(s.get("name", "")), {str(k): str(v).lower() for k, v in s.get("digest", {}).items()})
        for s in (subjects if isinstance(subjects, list) else [])
        if isinstance(s, dict) and isinstance(s.get("digest", {}), dict)
    )
    d = doc if isinstance(doc, dict) else {}
    return Statement(_dumps(doc), d, str(d.get("predicateType", "")), subs)


@pytest.fixture(scope="module")
def release_doc(pack_dir: Path) -> dict[str, Any]:
    data = (pack_dir / MANIFEST_NAME).read_bytes()
    m = Manifest.from_json(data, "m")
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    info = BuildInfo("https://builder", "model", "https://src", "cpu", {"python": "3"}, t, t, "run-1")
    doc = build_statement(m, data, info)
    doc["predicate"]["buildDefinition"]["resolvedDependencies"].insert(0, {
        "name": "oms:model", "digest": {"sha256": "2" * 64}, "annotations": {"openssfModelSigning": {
            "method": "sigstore", "identity": "me", "issuer": "https://issuer", "signedAt": "2026-01-01T00:00:00Z",
            "signature": {"name": "model.sig", "sha256": "3" * 64}}}})  # fmt: skip
    doc["predicate"]["buildDefinition"]["externalParameters"]["calibration"] = {
        "method": "self-sampled", "params": {}, "tool": "t"}  # fmt: skip
    parse_release(_statement(doc))  # the seed itself parses
    return doc


def _check_release(doc: Any) -> None:
    try:
        parse_release(_statement(doc))
    except MalformedBundle as exc:
        _one_line(exc)
        assert "unexpected shape" not in exc.message  # typed checks name the field; the safety net never fires


@FUZZ
@given(doc=json_values)
def test_slsa_arbitrary(doc: Any) -> None:
    _check_release(doc)


@FUZZ
@given(data=st.data())
def test_slsa_mutated(release_doc: dict[str, Any], data: st.DataObject) -> None:
    _check_release(data.draw(mutated(release_doc, 4)))


STATEMENT_CRASHES = {
    "surrogate-key-in-subject": b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"a","digest":'
    b'{"sha256":"ab"},"\\ud800":1}],"predicateType":"a","predicate":{}}',
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "multi-line-message": b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"x":1}],"predicateType":"a",'
    b'"predicate":{}}',
}


@pytest.mark.parametrize("payload", list(STATEMENT_CRASHES.values()), ids=list(STATEMENT_CRASHES))
def test_statement_parse_known_crashes(payload: bytes) -> None:
    """Found by this file's fuzzing: protobuf's SystemError, json's RecursionError, multi-line messages."""
    for parse in (Statement.parse, Statement.parse_attestation):
        try:
            parse(payload)
        except MalformedBundle as exc:
            _one_line(exc)


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("runDetails", "byproducts"), {}, "runDetails.byproducts"),
        (("runDetails", "builder"), "me", "runDetails.builder"),
        (("buildDefinition", "externalParameters", "source"), [], "externalParameters.source"),
        (("buildDefinition", "resolvedDependencies", 0, "annotations", "openssfModelSigning", "method"), 1, "method"),
        (
            ("buildDefinition", "resolvedDependencies", 0, "annotations", "openssfModelSigning", "signedAt"),
            "x",
            "signedAt",
        ),
    ],
)
def test_slsa_shape_errors_name_the_field(release_doc: dict[str, Any], path: tuple[Any, ...], value: Any,
                                          field: str) -> None:  # fmt: skip
    doc = _copy(release_doc)
    where = doc["predicate"]
    for k in path[:-1]:
        where = where[k]
    where[path[-1]] = value
    with pytest.raises(MalformedBundle, match=field):
        parse_release(_statement(doc))


def test_slsa_inline_manifest_content_is_checked(release_doc: dict[str, Any]) -> None:
    doc = _copy(release_doc)
    doc["predicate"]["runDetails"]["byproducts"][0]["content"] = base64.b64encode(b"{}").decode()
    with pytest.raises(MalformedBundle, match="content"):
        parse_release(_statement(doc))


# --- OMS v1.0 -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oms_docs() -> list[dict[str, Any]]:
    from uc_attest.claims.oms import Serialization, SerializationMethod

    res = {"config.json": "a" * 64, "model.safetensors": "b" * 64, "sub/x.bin": "c" * 64}
    shards = {"model.safetensors:0:10": "d" * 64, "model.safetensors:10:12": "e" * 64}
    return [
        build_oms("model", res),
        build_oms("model", shards, Serialization(SerializationMethod.SHARDS, "sha256", True, (), 10)),
    ]


def _check_oms(doc: Any) -> None:
    try:
        parse_oms(_statement(doc))
    except InvalidInput as exc:  # MalformedBundle, or InvalidInput naming a path
        _one_line(exc)


@FUZZ
@given(doc=json_values)
def test_oms_arbitrary(doc: Any) -> None:
    _check_oms(doc)


@FUZZ
@given(data=st.data())
def test_oms_mutated(oms_docs: list[dict[str, Any]], data: st.DataObject) -> None:
    _check_oms(data.draw(mutated(data.draw(st.sampled_from(oms_docs)), 4)))


def test_oms_odd_length_digest_is_refused(oms_docs: list[dict[str, Any]]) -> None:
    doc = _copy(oms_docs[0])
    doc["predicate"]["resources"][0]["digest"] = "abc"
    with pytest.raises(MalformedBundle, match="digest"):
        parse_oms(_statement(doc))


# -- the validation claim and its runtime (claims/validation.py, issue 30) -------------------------------------

VALIDATION_DOC: dict[str, Any] = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": "uc-attest:reconstruction", "digest": {"sha256": "1" * 64}}],
    "predicateType": "https://github.com/uc-attest/uc-attest/validation/v1",
    "predicate": {"manifestRoot": "sha256:" + "1" * 64, "evaluationSet": "e", "metrics": {"m": 1.0},
                  "runtime": {"kind": "uc-attest", "mode": "fast", "kernel": "uc-serve/2", "isa": "avx512",
                              "version": "0.1.0"}},
}  # fmt: skip


def _check_validation(doc: Any) -> None:
    from uc_attest.claims.validation import Runtime, parse_validation

    try:
        claim = parse_validation(_statement(doc))
    except MalformedBundle as exc:
        _one_line(exc)
        return
    assert (claim.runtime is None) or isinstance(claim.runtime, Runtime)
    assert claim.runtime is None or claim.runtime_error is None  # unreadable: said, never taken as none
    if claim.runtime is not None:
        assert Runtime.from_json(claim.runtime.to_json(), "r") == claim.runtime


@FUZZ
@given(data=st.data())
def test_validation_mutated(data: st.DataObject) -> None:
    _check_validation(data.draw(mutated(VALIDATION_DOC, 4)))


@FUZZ
@given(obj=json_values)
def test_a_runtime_is_read_or_refused_naming_its_field(obj: Any) -> None:
    from uc_attest.claims.validation import Runtime

    try:
        rt = Runtime.from_json(obj, "runtime")
    except ValueError as exc:
        assert str(exc).startswith("runtime") and "\n" not in str(exc)
        return
    assert rt.kind in ("uc-attest", "external") and "\n" not in rt.id


def test_an_unreadable_runtime_is_said_not_dropped() -> None:
    from uc_attest.claims.validation import parse_validation

    doc = json.loads(json.dumps(VALIDATION_DOC))
    assert parse_validation(_statement(doc)).runtime is not None
    doc["predicate"]["runtime"] = {"kind": "uc-attest", "mode": 5}
    claim = parse_validation(_statement(doc))
    assert claim.runtime is None and claim.runtime_error and "runtime.mode" in claim.runtime_error


def test_a_signed_non_finite_metric_is_missing_to_every_threshold() -> None:
    """Statements signed before the fix (or by another tool) may carry NaN: the claim leaves it out, so a
    threshold on that metric finds it missing and the rule denies."""
    import datetime as dt

    from uc_attest.claims.statement import Statement
    from uc_attest.claims.validation import ValidationReport, build_validation_statement, parse_validation
    from uc_attest.core.digest import Digest

    report = ValidationReport("holdout", {"gap": math.nan, "acc": 0.9, "loss": math.inf}, b"{}", "m.json")
    stmt = build_validation_statement(Digest("ab" * 32), report, dt.datetime.now(dt.UTC))
    claim = parse_validation(Statement.parse(json.dumps(stmt).encode()))
    assert claim.metrics == {"acc": 0.9}
