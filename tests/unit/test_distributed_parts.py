"""The distributed pack's inputs from other ranks: part files in the shared directory and JSON messages.

Rank 0 writes the pack from part files other processes wrote; a part that is torn, mutated, foreign or
malformed must be refused with one line (MalformedPack/MalformedSafetensors, exit 3) — never reach a pack,
never raise anything but a uc-attest error. Messages are JSON (never pickles); malformed curves are an
OperationalError.
"""

from __future__ import annotations

import contextlib
import json
import struct
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uc_attest.core.digest import Digest
from uc_attest.errors import OperationalError, UcAttestError
from uc_attest.pack.distributed import _encode, _merge
from uc_attest.pack.parts import PartStore
from uc_attest.quant.measure import measure
from uc_attest.quant.quantize import quantize_tensor
from uc_attest.quant.scheme import DEFAULT_SCHEME

NAME = "model.layers.0.mlp.up_proj.weight"


@pytest.fixture(scope="module")
def part(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A real candidate's part file (and its bytes): a 64 x 256 bf16 tensor at the default scheme."""
    torch.manual_seed(3)
    x = (torch.randn(64, 256) * 0.02).to(torch.bfloat16)
    c = measure(NAME, x, quantize_tensor(NAME, x, "BF16", DEFAULT_SCHEME, torch.device("cpu"), None), 128)
    c = type(c)(c.q, c.digest, c.err_ppm, Fraction(7, 3))
    root = tmp_path_factory.mktemp("parts")
    store = PartStore(root, DEFAULT_SCHEME)
    store.put(NAME, c)
    (path,) = root.iterdir()
    got = store.get(NAME, c.q.bits)
    assert got is not None and got.digest == c.digest and got.damage == Fraction(7, 3)
    assert torch.equal(got.q.codes, c.q.codes) and torch.equal(got.q.scales, c.q.scales)
    return path, path.read_bytes()


def _get(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    PartStore(path.parent, DEFAULT_SCHEME).get(NAME, 5)


def _header(data: bytes) -> tuple[dict[str, object], bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _with_header(header: dict[str, object], body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _with_record(data: bytes, field: str, value: object) -> bytes:
    """The part file ``data`` with one field of its candidate record replaced."""
    header, body = _header(data)
    meta = header["__metadata__"]
    assert isinstance(meta, dict)
    record = json.loads(meta["uc.candidate"])
    record[field] = value
    meta["uc.candidate"] = json.dumps(record)
    return _with_header(header, body)


def test_a_flipped_code_byte_is_refused(part: tuple[Path, bytes], tmp_path: Path) -> None:
    path, data = part
    hostile = bytearray(data)
    hostile[-200] ^= 0x10  # inside the components
    with pytest.raises(UcAttestError, match="does not decode to the digest|not a quantized part"):
        _get(tmp_path / path.name, bytes(hostile))


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "model.other.weight"), ("bits", 6), ("digest", "sha256:" + "0" * 64), ("dtype", "F64"),
     ("rotated", "yes"), ("exponent", "x"), ("damage", [1, 0]), ("parts", [{"col0": 0}]),
     # found by an outside review: values that crashed or were taken
     ("exponent", 2**40), ("err_ppm", -5), ("damage", "73"), ("damage", [7, 3, 9]), ("damage", [-7, 3]),
     ("shape", [64.9, 256.2]), ("shape", [-64, -256]), ("shape", [2**40]), ("shape", [True, 256]),
     ("sign_period", 2**70), ("shape", [128, 256])],
)  # fmt: skip
def test_a_mutated_record_is_refused(part: tuple[Path, bytes], tmp_path: Path, field: str, value: object) -> None:
    path, data = part
    with pytest.raises(UcAttestError):
        _get(tmp_path / path.name, _with_record(data, field, value))


def test_a_missing_part_is_none_and_a_foreign_tensor_set_is_refused(part: tuple[Path, bytes], tmp_path: Path) -> None:
    path, data = part
    assert PartStore(tmp_path, DEFAULT_SCHEME).get(NAME, 5) is None
    header, body = _header(data)
    header["extra"] = {"dtype": "U8", "shape": [0], "data_offsets": [len(body), len(body)]}
    with pytest.raises(UcAttestError, match="tensors"):
        _get(tmp_path / path.name, _with_header(header, body))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_damage_to_a_part_is_a_clean_refusal(part: tuple[Path, bytes], tmp_path: Path, data: st.DataObject) -> None:
    """Truncations, byte flips and random bytes: the part is refused with a uc-attest error or (a flip in a
    byte no field reads, e.g. header padding) still decodes to its digest — never another exception."""
    path, raw = part
    kind = data.draw(st.sampled_from(["truncate", "flip", "random"]))
    if kind == "truncate":
        hostile = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif kind == "flip":
        i = data.draw(st.integers(0, len(raw) - 1))
        hostile = raw[:i] + bytes([raw[i] ^ data.draw(st.integers(1, 255))]) + raw[i + 1 :]
    else:
        hostile = data.draw(st.binary(max_size=512))
    with contextlib.suppress(UcAttestError):
        _get(tmp_path / path.name, hostile)


def test_curves_round_trip_and_malformed_messages_are_refused() -> None:
    curves = {"a": (10, [(5, Fraction(3, 7)), (6, Fraction(1, 9))]), "b": (4, [(5, Fraction(0, 1))])}
    one, two = _encode({"a": curves["a"]}, "uc-alloc/3"), _encode({"b": curves["b"]}, "uc-alloc/3")
    assert _merge([json.loads(json.dumps(one)), json.loads(json.dumps(two))]) == (curves, "uc-alloc/3")
    for bad in ([one, one], [one, _encode({}, "uc-alloc/2")], [{"curves": {}}], [{"method": "m", "curves": {"a": 3}}],
                [{"method": "m", "curves": {"a": [1, [[5, 1, 0]]]}}], ["not a dict"],
                # found by an outside review: crashed here or later in choose()
                [{"method": "m", "curves": {"a": [float("inf"), [[5, 1, 2]]]}}],
                [{"method": "m", "curves": {"a": [100, []]}}], [{"method": "m", "curves": {"a": [0, [[5, 1, 2]]]}}],
                [{"method": "m", "curves": {"a": [10, [[4, 5, 1], [4, 1, 1]]]}}],
                [{"method": "m", "curves": {"a": [10.7, [[True, 1.9, -3]]]}}]):  # fmt: skip
        with pytest.raises(OperationalError):
            _merge(bad)


def test_out_of_memory_names_the_tensor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rank out of memory (MemoryError, or torch's on a device) says which tensor it was quantizing: exit 4."""
    from uc_attest.pack import writer
    from uc_attest.quant import allocate
    from uc_attest.testing.synth import write_synth_model

    src = write_synth_model(tmp_path / "src", hidden=128, inter=256, layers=1, vocab=64)

    def no_memory(name: str, *_a: object, **_k: object) -> None:
        if name.endswith("mlp.up_proj.weight"):
            raise torch.OutOfMemoryError("CUDA out of memory")
        raise MemoryError

    monkeypatch.setattr(writer, "quantize_tensor", no_memory)
    monkeypatch.setattr(allocate, "quantize_tensor", no_memory)
    store = PartStore(tmp_path, DEFAULT_SCHEME)
    only_up = lambda n: n.endswith("mlp.up_proj.weight")
    with pytest.raises(OperationalError, match=r"out of memory quantizing model\.layers\.0\.mlp\.up_proj\.weight") as e:
        writer.quantize_into(store, src, DEFAULT_SCHEME, "cpu", None, only_up)
    assert e.value.exit_code == 4
    with pytest.raises(OperationalError, match=r"out of memory quantizing model\.layers\.0\.mlp\.down_proj\.weight"):
        allocate.measure_curves(src, DEFAULT_SCHEME, None, "cpu", store, select=lambda n: "down_proj" in n)


def test_source_digests_from_the_ranks_merge_and_malformed_ones_are_refused() -> None:
    from uc_attest.pack.distributed import _merge_digests

    a, b = "a" * 64, "b" * 64
    got = _merge_digests([{"files": {"s1": a}, "tensors": {"t": b}}, {"files": {"s2": b}, "tensors": {}}])
    assert got.files == {"s1": Digest(a), "s2": Digest(b)} and got.tensors == {"t": Digest(b)}
    for bad in ([{"files": {"s1": a}, "tensors": {}}, {"files": {"s1": a}, "tensors": {}}],  # hashed twice
                [{"files": {"s1": "sha256:" + a}, "tensors": {}}], [{"files": {"s1": "A" * 64}, "tensors": {}}],
                [{"files": {}}], [{"files": [], "tensors": {}}], [None]):  # fmt: skip
        with pytest.raises(OperationalError):
            _merge_digests(bad)


def test_components_of_another_size_than_the_record_gives_are_refused(part: tuple[Path, bytes], tmp_path: Path) -> None:
    """Extra code bytes, 2-D codes, extra scales: the digest still matched once (the decoder reads what the record
    says), and the pack written from it failed its own check; now the part is refused (outside review)."""
    path, data = part
    header, body = _header(data)
    for change in ("codes_longer", "codes_2d", "scales_longer"):
        h = json.loads(json.dumps(header))
        extra = b""
        if change == "codes_longer":
            h["codes"]["shape"] = [h["codes"]["shape"][0] + 16]
            extra = bytes(16)
            _shift(h, "codes", 16)
        elif change == "codes_2d":
            n = h["codes"]["shape"][0]
            h["codes"]["shape"] = [2, n // 2]
        else:
            h["scales"]["shape"] = [h["scales"]["shape"][0] + 1]
            extra = bytes(2)
            _shift(h, "scales", 2)
        with pytest.raises(UcAttestError):
            _get(tmp_path / path.name, _with_header(h, _insert(body, header, change, extra)))


def _shift(h: dict[str, object], name: str, by: int) -> None:
    """Grow tensor ``name`` by ``by`` bytes in the header, moving every tensor after it."""
    end = h[name]["data_offsets"][1]  # type: ignore[index]
    for k, v in h.items():
        if k != "__metadata__" and isinstance(v, dict):
            a, b = v["data_offsets"]
            if k == name:
                v["data_offsets"] = [a, b + by]
            elif a >= end:
                v["data_offsets"] = [a + by, b + by]


def _insert(body: bytes, header: dict[str, object], change: str, extra: bytes) -> bytes:
    if not extra:
        return body
    name = "codes" if change == "codes_longer" else "scales"
    end = header[name]["data_offsets"][1]  # type: ignore[index]
    return body[:end] + extra + body[end:]


@pytest.mark.parametrize(
    "sent",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"\xff\xfe", b"{not json"],
)
def test_a_message_from_another_rank_that_is_not_json_stops_the_pack(
    sent: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What another rank sends is data: nested deeper than the parser recurses (an uncaught RecursionError was exit
    70 with a traceback), not UTF-8 or not JSON, it is an OperationalError naming the rank, never another exception."""
    import torch.distributed as dist

    from uc_attest.pack.world import Group, World

    def all_gather(outs: list[torch.Tensor], mine: torch.Tensor) -> None:  # rank 1 sends ``sent``
        if mine.dtype == torch.int64:
            outs[0].copy_(mine)
            outs[1].fill_(len(sent))
            return
        outs[0].copy_(mine)
        outs[1][: len(sent)] = torch.frombuffer(bytearray(sent), dtype=torch.uint8)

    monkeypatch.setattr(dist, "all_gather", all_gather)
    with pytest.raises(OperationalError, match="rank 1 sent a message that is not JSON") as exc:
        Group(World(0, 2)).gather({"failed": False})
    assert exc.value.exit_code == 4


@pytest.mark.parametrize(
    ("other", "field"),
    [({"id": "uc-rtn/1"}, "scheme"), ({"id": "uc-rht-clip/1"}, "scheme"), ({"group_size": 64}, "group")],
)
def test_a_part_made_under_another_scheme_is_refused(tmp_path: Path, other: dict[str, object], field: str) -> None:
    """A rank started with another --scheme or --group-size writes parts that decode to their own digests: they
    were taken into a pack of the scheme rank 0 assembles (uc-rtn/1 or uc-rht-clip/1 parts in a uc-rht-ldlq/2
    pack). Now the part is refused naming it and the field that differs (outside review, issue 34)."""
    from dataclasses import replace

    torch.manual_seed(3)
    x = (torch.randn(64, 256) * 0.02).to(torch.bfloat16)
    scheme = replace(DEFAULT_SCHEME, **other)  # type: ignore[arg-type]
    c = measure(NAME, x, quantize_tensor(NAME, x, "BF16", scheme, torch.device("cpu"), None), scheme.group_size)
    PartStore(tmp_path, scheme).put(NAME, c)
    assert PartStore(tmp_path, scheme).get(NAME, c.q.bits) is not None  # its own scheme takes it
    with pytest.raises(UcAttestError, match=rf"not a quantized part of '{NAME}': made under another scheme: its "
                                            rf"record's {field} is") as exc:  # fmt: skip
        PartStore(tmp_path, DEFAULT_SCHEME).get(NAME, c.q.bits)
    assert exc.value.exit_code == 3 and str(tmp_path) in exc.value.message


@pytest.mark.parametrize(
    ("field", "value"),
    [("scheme", "uc-rtn/1"), ("scheme", None), ("scheme", ["uc-rht-ldlq/2"]), ("group", 64), ("group", 128.0),
     ("group", 2**70), ("rotated", False), ("sign_period", 0), ("parts", [])],
)  # fmt: skip
def test_a_record_that_disagrees_with_the_scheme_is_refused_naming_the_field(
    part: tuple[Path, bytes], tmp_path: Path, field: str, value: object
) -> None:
    path, data = part
    with pytest.raises(UcAttestError, match=f"its record's {field} is|malformed record") as exc:
        _get(tmp_path / path.name, _with_record(data, field, value))
    assert exc.value.exit_code == 3 and "\n" not in exc.value.message


def test_a_record_of_20000_parts_gives_a_one_line_message_of_bounded_length(
    part: tuple[Path, bytes], tmp_path: Path
) -> None:
    path, data = part
    parts = json.loads(_header(data)[0]["__metadata__"]["uc.candidate"])["parts"]  # type: ignore[index]
    with pytest.raises(UcAttestError) as exc:
        _get(tmp_path / path.name, _with_record(data, "parts", [dict(parts[0]) if parts else {"col0": 0}] * 20000))
    assert exc.value.exit_code == 3 and len(exc.value.message) < 1000, len(exc.value.message)


@pytest.mark.parametrize(("dtype", "shape"), [("BF16", (128, 128)), ("F16", (64, 256)), ("BF16", (64, 128, 2))])
def test_a_part_of_another_shape_or_dtype_than_the_source_tensor_is_refused(
    part: tuple[Path, bytes], tmp_path: Path, dtype: str, shape: tuple[int, ...]
) -> None:
    """A part that checks out on its own (its record, components and digest agree) but was made from another tensor
    than the source's (another shape, another dtype) is refused by the writer, naming the tensor."""
    from uc_attest.core.stfile import TensorInfo
    from uc_attest.errors import MalformedPack
    from uc_attest.pack.writer import _candidate, _Job

    (tmp_path / part[0].name).write_bytes(part[1])
    job = _Job(DEFAULT_SCHEME, torch.device("cpu"), None, lambda *_: None, prepared=PartStore(tmp_path, DEFAULT_SCHEME))
    info = TensorInfo(NAME, dtype, shape, 0, 0)
    with pytest.raises(MalformedPack, match="quantized part of 'model.layers.0.mlp.up_proj.weight' is BF16"):
        _candidate(None, info, job)  # type: ignore[arg-type]
    assert _candidate(None, TensorInfo(NAME, "BF16", (64, 256), 0, 0), job).digest  # type: ignore[arg-type]
