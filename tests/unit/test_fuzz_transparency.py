"""Property-based fuzzing of the transparency parsers and the instance's TSA request parser.

Targets and the one error each documents (never another exception, a hang or a crash):

* signed notes and checkpoints (``transparency/checkpoint.py``: ``parse_note``, ``Checkpoint.parse``,
  ``parse_vkey``, ``open_note``) -> :class:`NoteError`;
* tiles (``transparency/tiles.py``: ``split_tile``, ``decode_bundle``) -> :class:`LogMisbehaved`;
  ``parse_tile_path`` -> ``ValueError``; ``TileClient`` over a log answering arbitrary bytes ->
  LogMisbehaved or LogUnreachable;
* RFC 3161 timestamp queries (``instance/tsa.py``: ``timestamp``) -> :class:`TSAError` (HTTP 400), or a
  granted TimeStampResp for a well-formed query.

``UC_FUZZ_EXAMPLES`` sets the examples per target (default 200).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os

from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from uc_attest.errors import LogMisbehaved, LogUnreachable, NoteError
from uc_attest.instance import tsa
from uc_attest.testing.logs import self_signed_cert
from uc_attest.transparency import tiles
from uc_attest.transparency.checkpoint import (
    Checkpoint,
    ed25519_key_id,
    ed25519_verifier,
    open_note,
    parse_note,
    parse_vkey,
    sign_note_ed25519,
)
from uc_attest.transparency.tiles import HASH, WIDTH, TileClient, TileLogKey

FUZZ = settings(
    max_examples=int(os.environ.get("UC_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

KEY = ed25519.Ed25519PrivateKey.generate()
NAME = "log.example/fuzz"
GOOD_NOTE = sign_note_ed25519(Checkpoint(NAME, 7, bytes(32), ("Timestamp: 1",)).text(), NAME, KEY)


def mutated(seed: bytes) -> st.SearchStrategy[bytes]:
    """``seed`` with a few bytes flipped, cut, inserted or deleted (cheap, structure-aware enough)."""

    @st.composite
    def go(draw: st.DrawFn) -> bytes:
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 4))):
            op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "byte"]))
            pos = draw(st.integers(0, max(0, len(data) - 1)))
            if op == "flip" and data:
                data[pos] ^= 1 << draw(st.integers(0, 7))
            elif op == "byte" and data:
                data[pos] = draw(st.integers(0, 255))
            elif op == "cut":
                del data[pos:]
            elif op == "insert":
                data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
            elif op == "delete" and data:
                del data[pos : pos + draw(st.integers(1, 8))]
        return bytes(data)

    return go()


# --- signed notes and checkpoints ------------------------------------------------------------------------

note_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.sampled_from(list("ab\n \u2014+/=0129AZ:\x00\r")), max_size=200),
    mutated(GOOD_NOTE.encode()).map(lambda b: b.decode("utf-8", "replace")),
)


@FUZZ
@given(note=st.one_of(note_text, st.binary(max_size=300), mutated(GOOD_NOTE.encode())))
@example(note="x\n\n\u2014 n \u00e9\n")  # a non-ASCII "base64" signature: was a bare ValueError
@example(note="x\n\n\u2014 n\n AAAAAAAA\n")
@example(note="\ud800\n\n\u2014 n AAAAAAAA\n")  # a lone surrogate: was a UnicodeEncodeError
def test_notes_parse_or_raise_note_error(note: str | bytes) -> None:
    try:
        parsed = parse_note(note)
    except NoteError as exc:
        assert exc.message
        return
    assert parsed.signatures and parsed.text.endswith(b"\n")
    with contextlib.suppress(NoteError):
        open_note(note, [ed25519_verifier(NAME, KEY.public_key())])


@FUZZ
@given(text=st.one_of(st.binary(max_size=200), mutated(Checkpoint(NAME, 7, bytes(32)).text())))
@example(text=b"o\n1\n\xc3\xa9\n")  # a non-ASCII root line: was a bare ValueError
@example(text=b"\xff\n1\nAA==\n")  # not UTF-8: was a UnicodeDecodeError
def test_checkpoints_parse_or_raise_note_error(text: bytes) -> None:
    try:
        cp = Checkpoint.parse(text)
    except NoteError as exc:
        assert exc.message
        return
    assert cp.origin and cp.size >= 0 and Checkpoint.parse(cp.text()) == cp


def _vkey() -> str:
    raw = b"\x01" + KEY.public_key().public_bytes_raw()
    return f"{NAME}+{ed25519_key_id(NAME, KEY.public_key())[:4].hex()}+{base64.b64encode(raw).decode()}"


@FUZZ
@given(vkey=st.one_of(st.text(max_size=120), mutated(_vkey().encode()).map(lambda b: b.decode("latin-1"))))
@example(vkey="n+00000000+\u00e9")
def test_verifier_keys_parse_or_raise_note_error(vkey: str) -> None:
    try:
        v = parse_vkey(vkey)
    except NoteError:
        return
    assert len(v.key_hash) == 4


def test_a_good_note_still_verifies() -> None:
    note = open_note(GOOD_NOTE, [ed25519_verifier(NAME, KEY.public_key())])
    assert Checkpoint.parse(note.text).size == 7
    assert parse_vkey(_vkey()).name == NAME


# --- tiles and entry bundles -----------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=3 * HASH + 5), width=st.integers(1, WIDTH))
def test_tiles_split_or_raise_log_misbehaved(data: bytes, width: int) -> None:
    try:
        hashes = tiles.split_tile(data, width, "t")
    except LogMisbehaved:
        assert len(data) != width * HASH
        return
    assert len(hashes) == width and b"".join(hashes) == data


bundles = st.lists(st.binary(max_size=40), max_size=6).map(tiles.encode_bundle)


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), bundles, bundles.flatmap(mutated)), count=st.integers(0, 8))
@example(data=b"\xff\xff" + b"x" * 10, count=1)  # a length beyond the end
@example(data=b"\x00", count=0)  # cut inside a length prefix
def test_entry_bundles_decode_or_raise_log_misbehaved(data: bytes, count: int) -> None:
    try:
        entries = tiles.decode_bundle(data, count, "b")
    except LogMisbehaved as exc:
        assert exc.message.startswith("b: ")
        return
    assert len(entries) == count and tiles.encode_bundle(entries) == data


@FUZZ
@given(
    path=st.one_of(
        st.text(max_size=40), st.from_regex(r"tile/(entries|[0-9]{1,3})/(x[0-9]{3}/){0,2}[0-9]{3}(\.p/[0-9]{1,4})?\n?")
    )
)
@example(path="tile/0/000\n")  # "$" matched before a final newline
def test_tile_paths_parse_or_raise_value_error(path: str) -> None:
    try:
        level, index, width = tiles.parse_tile_path(path)
    except ValueError:
        return
    assert tiles.tile_path(level, index, width) == path


class _FakeLog(TileClient):
    """A TileClient whose log answers ``body`` (or fails with ``status``) for every path."""

    def __init__(self, body: bytes, status: int | None) -> None:
        key = ed25519.Ed25519PrivateKey.generate()
        super().__init__(TileLogKey("http://log.invalid", key.public_key(), ed25519_key_id(NAME, key.public_key())))
        self.body, self.status = body, status

    def _get(self, path: str, limit: int) -> bytes:
        if self.status is not None:
            raise LogUnreachable("down", status=self.status)
        if len(self.body) > limit:
            raise LogMisbehaved("too long")
        return self.body


@FUZZ
@given(
    body=st.one_of(st.binary(max_size=600), bundles, st.just(GOOD_NOTE.encode())),
    status=st.sampled_from([None, None, 500, 503]),
    size=st.integers(1, 3 * WIDTH),
)
def test_tile_client_over_a_hostile_log_raises_only_log_errors(body: bytes, status: int | None, size: int) -> None:
    client = _FakeLog(body, status)
    for call in (client.checkpoint, lambda: client.tile(0, 0, size), lambda: client.entries(0, size)):
        with contextlib.suppress(LogMisbehaved, LogUnreachable):
            call()


# --- RFC 3161 timestamp queries --------------------------------------------------------------------------

TSA_KEY = ec.generate_private_key(ec.SECP256R1())
TSA_CERT = x509.load_der_x509_certificate(self_signed_cert(TSA_KEY))
GOOD_QUERY = tsp.TimeStampReq(
    {
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": hashlib.sha256(b"x").digest()},
        "nonce": 12345,
        "cert_req": True,
    }
).dump()


@st.composite
def der(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A DER-ish TLV: a random tag, contents (nested TLVs for constructed tags), a length right or wrong."""
    tag = draw(st.sampled_from([0x30, 0x31, 0x02, 0x04, 0x05, 0x06, 0x01, 0x0C, 0x17, 0x18, 0xA0, 0x80, 0x1F]))
    if tag & 0x20 and depth < 3:
        content = b"".join(draw(st.lists(der(depth + 1), max_size=4)))
    else:
        content = draw(st.binary(max_size=24))
    n = len(content) + draw(st.sampled_from([0, 0, 0, -1, 1, 200]))
    length = bytes([n]) if 0 <= n < 0x80 else b"\x82" + max(n, 0).to_bytes(2, "big")
    return bytes([tag]) + length + content


@st.composite
def query_with_odd_fields(draw: st.DrawFn) -> bytes:
    """A TimeStampReq whose version and imprint are right, followed by arbitrary TLVs (policy, nonce, certReq,
    extensions, or junk): asn1crypto parses those only when they are read."""
    good = tsp.TimeStampReq.load(GOOD_QUERY)
    head = good["version"].dump() + good["message_imprint"].dump()
    tail = b"".join(draw(st.lists(st.one_of(der(), der().map(lambda t: b"\xa0" + t[1:])), max_size=3)))
    content = head + tail
    return b"\x30\x82" + len(content).to_bytes(2, "big") + content


@FUZZ
@given(query=st.one_of(st.binary(max_size=120), der(), mutated(GOOD_QUERY), query_with_odd_fields()))
@example(query=b"")
@example(query=bytes.fromhex("3003020101"))
@example(  # extensions that do not parse: a ValueError past the parse, an HTTP 500 before the fix
    query=b"\x30\x3b"
    + bytes.fromhex("020101")
    + tsp.TimeStampReq.load(GOOD_QUERY)["message_imprint"].dump()
    + bytes.fromhex("a0033001" + "00")
)
def test_timestamp_queries_answer_or_raise_tsa_error(query: bytes) -> None:
    try:
        reply = tsa.timestamp(query, TSA_KEY, TSA_CERT)
    except tsa.TSAError as exc:
        assert str(exc)
        return
    resp = tsp.TimeStampResp.load(reply)
    assert resp["status"]["status"].native == "granted"


def test_a_good_query_is_granted() -> None:
    resp = tsp.TimeStampResp.load(tsa.timestamp(GOOD_QUERY, TSA_KEY, TSA_CERT))
    assert resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed["nonce"].native == 12345
