"""The instance's request reader in process: llhttp (through httptools) under the admission policy of
uc_attest/instance/request.py, fed bytes the way the sockets hand them over.

llhttp reads a connection's bytes in whatever pieces the reads return, and several requests may come in one
read (pipelining): hypothesis cuts streams of valid requests at arbitrary points and requires each request read
as itself, and cuts hostile bytes (mutated and garbage requests) to require the same outcome however they are
cut: the same requests queued, then the same refusal or parse error, and never another exception. The rest
pins the policy that llhttp leaves to the server: keep-alive (RFC 9112 9.3), Host, the head's size, the
transfer codings, Upgrade and ``Expect: 100-continue``. The live server's side is in
tests/integration/test_instance_hostile.py.
"""

from __future__ import annotations

import itertools
import os
from http import HTTPStatus

import httptools
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.integration.test_instance_hostile import garbage_head, mutated_request
from uc_attest.instance.http import _Reader
from uc_attest.instance.request import MAX_HEAD, HTTPError, Request

PORT = 1234
HOST = f"127.0.0.1:{PORT}".encode()
FUZZ = settings(
    max_examples=int(os.environ.get("UC_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

Outcome = tuple[list[tuple[str, str, str, dict[str, str], bytes, bool]], object]


def feed(pieces: list[bytes]) -> tuple[_Reader, object]:
    """Feed ``pieces`` in order, as successive reads; the reader and how the feeding ended: None (every byte
    read), "upgrade", the refusal's status, or llhttp's error."""
    reader = _Reader(PORT)
    try:
        for piece in pieces:
            reader.parser.feed_data(piece)
    except httptools.HttpParserUpgrade:
        return reader, "upgrade"
    except httptools.HttpParserCallbackError:
        assert isinstance(reader.refusal, HTTPError), "a callback failed without refusing: a bug, not the client"
        return reader, int(reader.refusal.status)
    except httptools.HttpParserError as exc:
        return reader, f"llhttp: {exc}"
    return reader, None


def outcome(pieces: list[bytes]) -> Outcome:
    reader, end = feed(pieces)
    return [(r.method, r.target, r.version, r.headers, r.body, keep) for r, keep in reader.ready], end


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(p % (len(data) + 1) for p in points), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@st.composite
def valid_request(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    """A request this server admits, and what it must be read as."""
    method = draw(st.sampled_from(["GET", "POST"]))
    path = draw(st.from_regex(r"/[A-Za-z0-9._~/-]{0,20}(\?[A-Za-z0-9=&%-]{0,12})?", fullmatch=True))
    headers = draw(
        st.dictionaries(
            st.from_regex(r"X-[A-Za-z0-9-]{1,10}", fullmatch=True).map(str.lower),
            st.one_of(
                st.from_regex(r"[!-~]([ -~]{0,20}[!-~])?", fullmatch=True),
                st.text(st.characters(min_codepoint=0x80, max_codepoint=0xFF), min_size=1, max_size=8),
            ),
            max_size=4,
        )
    )
    body = draw(st.binary(max_size=200)) if method == "POST" else b""
    ows = draw(st.sampled_from([b"", b" ", b"\t", b" \t "]))  # optional whitespace around a value
    head = b"%s %s HTTP/1.1\r\nHost:%s%s%s\r\n" % (method.encode(), path.encode(), ows, HOST, ows)
    head += b"".join(b"%s:%s%s%s\r\n" % (k.encode(), ows, v.encode("latin-1"), ows) for k, v in headers.items())
    if body or draw(st.booleans()):
        head += b"Content-Length: %d\r\n" % len(body)
    target = "/" + path.lstrip("/") if path.startswith("//") else path
    return head + b"\r\n" + body, {"method": method, "target": target, "headers": headers, "body": body}


@FUZZ
@given(requests=st.lists(valid_request(), min_size=1, max_size=4), points=st.lists(st.integers(0, 5000), max_size=12))
def test_pipelined_requests_cut_anywhere_are_each_read_as_themselves(
    requests: list[tuple[bytes, dict[str, object]]], points: list[int]
) -> None:
    stream = b"".join(data for data, _ in requests)
    reader, end = feed(cut(stream, points))
    assert end is None and not reader.begun and reader.req is None
    assert len(reader.ready) == len(requests)
    for (req, keep), (_, want) in zip(reader.ready, requests, strict=True):
        assert (req.method, req.target, req.body, keep) == (want["method"], want["target"], want["body"], True)
        assert req.headers["host"] == HOST.decode()  # optional whitespace around a value is not part of it
        assert {k: v for k, v in req.headers.items() if k.startswith("x-")} == want["headers"]


hostile = st.one_of(st.binary(max_size=300), mutated_request(), garbage_head())


@FUZZ
@given(data=hostile, points=st.lists(st.integers(0, 400), max_size=8))
@example(data=b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", points=[30])
@example(
    data=b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nGET / HTTP/1.1\r\n\r\n", points=[9]
)
@example(data=b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\n", points=[5])
@example(data=b"GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", points=[20])
def test_hostile_bytes_end_the_same_however_they_are_cut(data: bytes, points: list[int]) -> None:
    """However the bytes arrive, the same requests are read (each admitted) and the reading ends the same way,
    a refusal with a 4xx or 5xx of what is not spoken, never another exception."""
    whole = outcome([data])
    assert outcome(cut(data, points)) == whole
    end = whole[1]
    assert end is None or end == "upgrade" or str(end).startswith("llhttp: ") or 400 <= int(str(end)) < 506


def test_a_head_over_the_limit_is_refused_even_when_it_arrives_whole() -> None:
    """The server counts the bytes of a head still arriving; one that arrived whole in one read is measured when
    it is complete."""
    line = b"X-Pad: " + b"y" * 200 + b"\r\n"
    head = b"GET / HTTP/1.1\r\nHost: " + HOST + b"\r\n" + line * (MAX_HEAD // len(line) + 1) + b"\r\n"
    assert len(head) > MAX_HEAD
    assert feed([head])[1] == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    fits = b"GET / HTTP/1.1\r\nHost: " + HOST + b"\r\n" + line * (MAX_HEAD // len(line) - 2) + b"\r\n"
    assert len(fits) < MAX_HEAD and feed([fits])[1] is None


@pytest.mark.parametrize(
    ("version", "connection", "keep"),
    [
        (b"1.1", None, True),
        (b"1.1", b"keep-alive", True),
        (b"1.1", b"close", False),
        (b"1.1", b"Close", False),
        (b"1.1", b"keep-alive, close", False),
        (b"1.0", None, False),
        (b"1.0", b"keep-alive", False),  # HTTP/1.0's keep-alive is not honoured: its answer is closed
    ],
)
def test_keep_alive_follows_rfc_9112(version: bytes, connection: bytes | None, keep: bool) -> None:
    head = b"GET / HTTP/" + version + b"\r\nHost: " + HOST + b"\r\n"
    head += b"Connection: " + connection + b"\r\n" if connection else b""
    reader, end = feed([head + b"\r\n"])
    assert end is None and [k for _, k in reader.ready] == [keep]


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400, "without Host"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", 400, "2 Host headers"),
        (b"GET / HTTP/1.0\r\nHost: x\r\nhost: y\r\n\r\n", 400, "2 Host headers"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0"),
        (b"GET /\r\n\r\n", 400, "HTTP/0.9"),
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "expected a path"),
        (b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, "expected a path"),
        (b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", 501, "unsupported method"),
        (b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n", 501, "unsupported method"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 8388609\r\n\r\n", 413, "over 8388608"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411, "Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "transfer coding"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 100 + b"\r\n", 431, "more than 100 headers"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: upgrade\r\nContent-Length: 2\r\n\r\n{}", 400, "Upgrade"),
        (b"GET / HTTP/1.1\r\nHost: evil.example:1234\r\n\r\n", 403, "DNS-rebinding"),
        (b"POST / HTTP/1.1\r\nHost: " + HOST + b"\r\nOrigin: null\r\nContent-Length: 2\r\n\r\n{}", 403, "cross-origin"),
    ],
)  # fmt: skip
def test_a_refused_head_stops_the_parser_before_its_body(data: bytes, status: int, reason: str) -> None:
    """The refusal is raised from the head's callback: nothing of the request is queued, no body byte taken."""
    reader, end = feed([data + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert end == status and not reader.ready and reader.req is None
    assert reader.refusal is not None and reason in reader.refusal.message
    assert reader.head_request == data.startswith(b"HEAD ")  # its refusal is answered without a body


@pytest.mark.parametrize(
    "data",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n",  # obs-fold
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
        b"GET /a\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ],
)
def test_ambiguous_framing_is_refused_by_llhttp(data: bytes) -> None:
    reader, end = feed([data + b"abcde"])
    assert str(end).startswith("llhttp: ") and not reader.ready


def test_an_upgrade_is_read_as_http_and_nothing_after_it() -> None:
    """No protocol switch: the request is answered in HTTP/1.1 with the connection closed, and the bytes after
    its head, another protocol's to llhttp, are not read as a request."""
    data = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n"
    reader, end = feed([data + b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert end == "upgrade" and [(r.target, keep) for r, keep in reader.ready] == [("/", False)]


def test_expect_100_continue_is_due_until_a_body_byte_comes() -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n\r\n"
    reader, _ = feed([head])
    assert reader.continue_due and reader.req is not None and not reader.ready
    reader.parser.feed_data(b"nu")
    assert not reader.continue_due
    reader.parser.feed_data(b"llGET")
    assert [r.body for r, _ in reader.ready] == [b"null"] and reader.begun  # the next request has begun
    assert not feed([head + b"null"])[0].continue_due  # the body came with the head
    assert not feed([head.replace(b"1.1", b"1.0")])[0].continue_due  # HTTP/1.0 has no interim answers
    assert not feed([head.replace(b"4", b"0")])[0].continue_due  # no body to wait for


def test_a_target_and_values_that_arrive_in_pieces_are_whole() -> None:
    data = b"POST /api/v1/log/entries?x=1 HTTP/1.1\r\nHost: " + HOST + b"\r\nX-Long: " + b"v" * 300 + b"\r\n"
    data += b"Content-Length: 3\r\n\r\nabc"
    reader, end = feed([data[i : i + 1] for i in range(len(data))])
    assert end is None
    ((req, keep),) = reader.ready
    assert isinstance(req, Request) and req.target == "/api/v1/log/entries?x=1" and req.body == b"abc" and keep
    assert req.headers["x-long"] == "v" * 300
