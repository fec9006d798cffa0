"""The instance's HTTP service against hostile clients, over raw sockets on 127.0.0.1.

Each finding of the security review has a test here: invalid Content-Length values are refused before
the body is read (``-1`` used to read until the client closed), chunked bodies are refused, slow clients
are dropped at the request deadline (head or body trickling in), the handler threads stay bounded (excess
connections get 503), and the server (llhttp under our policy), fed arbitrary, mutated or garbage requests
(hypothesis), answers a 4xx or closes, never a 500, a logged exception or a hang; a valid request, followed
by another on the same connection, is read as itself. The server answers a normal request after each.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import uc_attest as uc
from tests.integration.conftest import Running, free_port
from uc_attest.instance.http import InstanceServer

TIMEOUT_S, MAX_CONNECTIONS = 2.0, 8
FUZZ = settings(
    max_examples=int(os.environ.get("UC_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class _Errors(logging.Handler):
    """The errors the server logs (an exception in a connection's thread, a 500)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


SERVER_ERRORS = _Errors()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """An instance with a short request timeout and few connection slots, so that the limits show quickly."""
    root = tmp_path_factory.mktemp("hostile") / "dev"
    state = uc.init_instance(root, free_port())
    server = InstanceServer(uc.load_instance(root), request_timeout=TIMEOUT_S, max_connections=MAX_CONNECTIONS)
    logging.getLogger("uc_attest.instance").addHandler(SERVER_ERRORS)
    yield Running(root, state, server.start(), root / "trust_config.json")
    server.stop()
    logging.getLogger("uc_attest.instance").removeHandler(SERVER_ERRORS)
    assert not SERVER_ERRORS.records, [r.getMessage() for r in SERVER_ERRORS.records]


def connect(inst: Running, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", int(inst.state.port)), timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    out = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            out += chunk
    return out


def status_of(answer: bytes) -> int:
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    assert m is not None, answer[:200]
    return int(m.group(1))


def still_serves(inst: Running) -> None:
    with connect(inst) as s:
        s.sendall(b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_all(s)
    assert status_of(answer) == 200
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["treeSize"] >= 0


def tree_size(inst: Running) -> int:
    with connect(inst) as s:
        s.sendall(b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return int(json.loads(read_all(s).split(b"\r\n\r\n", 1)[1])["treeSize"])


# -- finding 1: Content-Length, chunked bodies --------------------------------------------------------------


@pytest.mark.parametrize(
    ("lengths", "status"),
    [
        (["-1"], 400),  # read "until EOF": 300 MiB past the 8 MiB limit in the review
        (["abc"], 400),
        (["+5"], 400),
        (["0x10"], 400),
        ([""], 400),
        (["5", "6"], 400),  # two different lengths: which one ends the body?
        (["5, 6"], 400),
        ([str((8 << 20) + 1)], 413),
        ([str(10**30)], 400),
    ],
)
def test_invalid_content_length_is_refused_before_the_body(hostile: Running, lengths: list[str], status: int) -> None:
    before = tree_size(hostile)
    head = b"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += b"".join(f"Content-Length: {v}\r\n".encode() for v in lengths) + b"\r\n"
    with connect(hostile, timeout=TIMEOUT_S + 3) as s:
        s.sendall(head + b'{"apiVersion": ')  # a body begins, and the client keeps the connection open
        start = time.monotonic()
        answer = read_all(s)  # the server answers and closes without waiting for (more of) the body
    assert status_of(answer) == status and json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == status
    assert time.monotonic() - start < TIMEOUT_S
    assert tree_size(hostile) == before
    still_serves(hostile)


def test_repeated_content_lengths_are_refused_even_when_equal(hostile: Running) -> None:
    """RFC 9110 8.6 lets a recipient take repeated equal values as one; llhttp refuses them, which no reader
    can take for another framing."""
    with connect(hostile) as s:
        s.sendall(
            b"POST /oidc/dev-token HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n"
            b"Connection: close\r\n\r\n{}"
        )
        answer = read_all(s)
    assert status_of(answer) == 400 and b"Duplicate Content-Length" in answer


@pytest.mark.parametrize(
    ("head", "status", "reason"),
    [
        (b"Transfer-Encoding: chunked\r\n", 411, "send a Content-Length"),
        # the classic smuggling pair, in either order: llhttp refuses both framings at once (RFC 9112 6.1)
        (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400, "Content-Length can't be present"),
        (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400, "can't be present with Content-Length"),
        (b"Transfer-Encoding: gzip, chunked\r\n", 501, "not implemented"),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", 400, "Transfer-Encoding"),  # twice
        (b"Transfer-Encoding: chunked, chunked\r\n", 400, "Transfer-Encoding"),
        (b"Transfer-Encoding: gzip\r\n", 501, "not implemented"),  # no framing at all: never read to EOF
        (b"Transfer-Encoding:  chunked \r\n", 411, "send a Content-Length"),
        (b"Transfer-Encoding: CHUNKED\r\n", 411, "send a Content-Length"),
    ],
)
def test_chunked_requests_are_refused(hostile: Running, head: bytes, status: int, reason: str) -> None:
    before = tree_size(hostile)
    with connect(hostile) as s:
        s.sendall(b"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n5\r\n{}   \r\n0\r\n\r\n")
        answer = read_all(s)
    assert status_of(answer) == status and answer.count(b"HTTP/1.1 ") == 1  # the chunks are not read as a request
    assert reason in json.loads(answer.split(b"\r\n\r\n", 1)[1])["message"]
    assert tree_size(hostile) == before
    still_serves(hostile)


# -- finding 1: slow clients and thread exhaustion ----------------------------------------------------------


def test_slow_clients_are_dropped_and_threads_stay_bounded(hostile: Running) -> None:
    still_serves(hostile)
    baseline = threading.active_count()
    held: list[socket.socket] = []
    try:
        for _ in range(MAX_CONNECTIONS * 4):  # every one sends half a request and stalls
            s = connect(hostile, timeout=TIMEOUT_S + 5)
            s.sendall(b"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            held.append(s)
        time.sleep(0.3)
        assert threading.active_count() <= baseline + MAX_CONNECTIONS
        # beyond the slots: answered 503 at once, not queued
        busy = [s for s in held[MAX_CONNECTIONS + 2 :] if status_of(read_all(s)) == 503]
        assert len(busy) >= MAX_CONNECTIONS * 2
        # the stalled ones are answered 408 and closed after the timeout; the threads are gone
        start = time.monotonic()
        stalled = [status_of(a) for a in map(read_all, held[:MAX_CONNECTIONS]) if a]
        assert time.monotonic() - start < TIMEOUT_S + 2
        assert stalled.count(408) >= MAX_CONNECTIONS - 2
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= baseline
    still_serves(hostile)


def test_over_the_connection_cap_a_client_gets_503_at_once(hostile: Running) -> None:
    """MAX_CONNECTIONS idle connections hold every slot: the next one is answered 503 and closed without a
    thread; once a slot is free, a new connection is served."""
    still_serves(hostile)
    held = [connect(hostile, timeout=TIMEOUT_S + 5) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # every held connection accepted and given its slot
        start = time.monotonic()
        with connect(hostile) as extra:  # answered before it sends anything
            answer = read_all(extra)
        assert time.monotonic() - start < TIMEOUT_S / 2
        assert status_of(answer) == 503 and b"connection: close" in answer.lower()
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == 503
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the closed ones give their slots back
        with connect(hostile) as s:
            s.sendall(b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if status_of(read_all(s)) == 200:
                return
        time.sleep(0.05)
    pytest.fail("no slot was given back")


@pytest.mark.parametrize("slow", ["head", "body"])
def test_a_request_trickling_in_is_dropped_at_the_deadline(hostile: Running, slow: str) -> None:
    """One byte per 0.2 s never leaves the socket idle long, yet the whole request has TIMEOUT_S to arrive,
    whether its head or its body trickles."""
    head = b"POST /oidc/dev-token HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 200 + b"\r\n"
    body = b'{"identity": "' + b"y" * 200 + b'@example.com"}'
    fast, request = (b"", head) if slow == "head" else (head + b"Content-Length: %d\r\n\r\n" % len(body), body)
    start = time.monotonic()
    with connect(hostile) as s:
        with contextlib.suppress(OSError):  # the server may close while bytes still trickle
            s.sendall(fast)
            for byte in request:
                s.sendall(bytes([byte]))
                time.sleep(0.2)
                if time.monotonic() - start > TIMEOUT_S + 3:
                    break
        answer = read_all(s)
    assert status_of(answer) == 408
    assert time.monotonic() - start < TIMEOUT_S + 3
    still_serves(hostile)


def test_an_idle_keep_alive_connection_is_closed_without_an_answer(hostile: Running) -> None:
    with connect(hostile) as s:
        s.sendall(b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(65536)
        assert status_of(first) == 200
        start = time.monotonic()
        rest = read_all(s)
    assert rest == b"" and time.monotonic() - start < TIMEOUT_S + 2


# -- finding 5: the HTTP layer (llhttp under our policy), fuzzed over the live server ------------------------

VALID = [
    b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /rekor-v2/api/v2/log/entries HTTP/1.0\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nnull",
    b"GET /rekor-v2/tile/0/000.p/1 HTTP/1.1\r\nHost: x\r\nX-Obs: \xe9t\xe9 \t\r\n\r\n",
    (
        b"POST /api/v1/timestamp HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\n"
        b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n0\x03\x02\x01\x01"
    ),
]


@st.composite
def mutated_request(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "token"]))
        if op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=6))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 10))]
        elif op == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        else:
            token = draw(
                st.sampled_from(
                    [
                        b"\r\n",
                        b"\n",
                        b" ",
                        b":",
                        b"\r\n\r\n",
                        b"Content-Length: -1\r\n",
                        b"Content-Length: 99999999999999999999\r\n",
                        b"Transfer-Encoding: chunked\r\n",
                        b"\x00",
                        b"\xff",
                        b"HTTP/2.0",
                        b"\t",
                    ]
                )
            )
            data[pos:pos] = token
    return bytes(data)


#: Header names and values that steer framing, protocol switches and the origin checks.
HEADER_NAMES = [b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Expect", b"Upgrade", b"Origin"]
HEADER_NAMES += [b"Sec-Fetch-Site", b"X-A", b"Bad Name", b"", b"\xff"]
HEADER_VALUES = [b"x", b"127.0.0.1", b"0", b"5", b"-1", b"chunked", b"close", b"keep-alive", b"upgrade", b"h2c"]
HEADER_VALUES += [b"100-continue", b"websocket", b"null", b"cross-site", b"", b"a\x00b", b"a\rb", b" \t", b"\xff\xfe"]


@st.composite
def garbage_head(draw: st.DrawFn) -> bytes:
    """A request head assembled from hostile parts: methods, targets and versions the server must refuse,
    the framing headers with hostile values, malformed header lines, odd line ends; then a body (the raw
    bytes come from the other strategies)."""
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"CONNECT", b"OPTIONS", b"PRI", b"G T", b""]))
    target = draw(st.sampled_from([b"/api/v1/log", b"/oidc/dev-token", b"*", b"http://x/api/v1/log", b"x:80"]))
    versions = [b"HTTP/1.1"] * 3 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"http/1.1", b"HTTP/1.1 "]
    version = draw(st.sampled_from(versions))
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"]))
    separator = st.sampled_from([b": ", b": ", b":", b" : ", b""])
    line = st.tuples(st.sampled_from(HEADER_NAMES), separator, st.sampled_from(HEADER_VALUES))
    lines = draw(st.lists(line, max_size=6))
    host = draw(st.sampled_from([b"Host: x" + eol, b""]))
    head = method + b" " + target + b" " + version + eol + host
    head += b"".join(n + sep + v + eol for n, sep, v in lines)
    return head + eol + draw(st.binary(max_size=30))


requests = st.one_of(st.binary(max_size=300), mutated_request(), garbage_head())


def _exchange(inst: Running, data: bytes) -> bytes:
    with connect(inst, timeout=TIMEOUT_S + 3) as s:
        with contextlib.suppress(OSError):
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)  # the client is done: the server sees the end of the stream
        return read_all(s)


@FUZZ
@given(data=requests)
@example(data=b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
@example(data=b"GET / HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n")
@example(data=b"GET / HTTP/1.1\r\n no header to fold\r\n\r\n")
@example(data=b"GET / HTTP/1.1\r\nHost: x")  # cut inside the header block
@example(data=b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")  # cut inside the body
@example(data=b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nGET / HTTP/1.1\r\n\r\n")
@example(data=b"CONNECT x:80 HTTP/1.1\r\nHost: x:80\r\n\r\n")
@example(data=b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # the HTTP/2 preface
@example(data=b"HEAD /api/v1/log HTTP/1.1\r\nHost: x\r\n\r\n")  # refused (501), and its answer has no body
@example(data=b"HEAD /api/v1/log HTTP/0.9\r\n\r\n")
def test_the_server_answers_hostile_bytes_with_4xx_or_closes(hostile: Running, data: bytes) -> None:
    """Whatever the bytes, each answer is a status other than 500 (4xx, 501/505 for what is not spoken, or
    2xx for what is a valid request), nothing is logged as an error, and the server closes before the request
    deadline once the client is done: no wait on bytes that cannot come."""
    errors = len(SERVER_ERRORS.records)
    start = time.monotonic()
    answer = _exchange(hostile, data)
    assert time.monotonic() - start < TIMEOUT_S
    statuses = [int(m) for m in re.findall(rb"(?:^|\r\n\r\n|})HTTP/1\.1 (\d{3}) ", answer)]
    assert 500 not in statuses, answer[:300]
    if answer:
        assert statuses, answer[:300]
    assert len(SERVER_ERRORS.records) == errors, [r.getMessage() for r in SERVER_ERRORS.records]


def answers(data: bytes) -> list[tuple[int, bytes]]:
    """The (status, body) of each response in ``data``, the server's answers on one connection in order."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        assert length is not None, head
        n = int(length.group(1))
        out.append((status_of(head), rest[:n]))
        data = rest[n:]
    return out


@FUZZ
@given(
    path=st.sampled_from(["/oidc/dev-token", "/oidc/dev-token/", "//oidc/dev-token"]),
    headers=st.dictionaries(
        st.from_regex(r"X-[A-Za-z0-9-]{1,10}", fullmatch=True),
        st.from_regex(r"[ -~]{0,20}", fullmatch=True).map(str.strip),
        max_size=5,
    ),
    identity=st.from_regex(r"[a-z0-9.+-]{1,20}@example\.com", fullmatch=True),
    form=st.booleans(),
    cuts=st.lists(st.integers(0, 1000), max_size=3),
)
def test_a_valid_request_is_read_as_itself(
    hostile: Running, path: str, headers: dict[str, str], identity: str, form: bool, cuts: list[int]
) -> None:
    """A request with arbitrary extra headers and a body, followed on the same connection by another, the
    bytes cut at arbitrary points into separate writes (so the server's reads end anywhere: inside the target,
    a header, the body, or within the next request): the body ends exactly at its Content-Length (the token
    names the identity sent) and the next request is read from the byte after it."""
    import urllib.parse

    import jwt

    body = (
        urllib.parse.urlencode({"identity": identity}).encode() if form else json.dumps({"identity": identity}).encode()
    )
    kind = "application/x-www-form-urlencoded" if form else "application/json"
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    first = f"POST {path} HTTP/1.1\r\nHost: x\r\n{head}Content-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
    second = b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    data = first.encode() + body + second
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    with connect(hostile) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for a, b in itertools.pairwise(bounds):
            s.sendall(data[a:b])
            time.sleep(0.002)  # one write, one read of the server (mostly)
        (status, token), (status2, info) = answers(read_all(s))
    assert status == 200, token
    claims = jwt.decode(json.loads(token)["id_token"], options={"verify_signature": False})
    assert claims["sub"] == identity
    assert status2 == 200 and json.loads(info)["treeSize"] >= 0


def test_expect_100_continue(hostile: Running) -> None:
    """The interim 100 comes once the head is admitted, before the body is sent; a refused head gets its
    refusal instead, and the body is never asked for."""
    body = json.dumps({"identity": "c@example.com"}).encode()
    head = b"POST /oidc/dev-token HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\n"
    with connect(hostile) as s:
        s.sendall(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        assert s.recv(65536).startswith(b"HTTP/1.1 100 ")
        s.sendall(body)
        assert status_of(read_all(s)) == 200
    with connect(hostile) as s:
        s.sendall(head + b"Content-Length: %d\r\n\r\n" % ((8 << 20) + 1))
        assert status_of(read_all(s)) == 413


def test_requests_pipelined_behind_a_refused_one_are_not_read(hostile: Running) -> None:
    """Pipelined: the requests before a malformed one are answered, the malformed one gets its 400, and nothing
    after it is read (the entry behind it is not logged)."""
    before = tree_size(hostile)
    good = b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\n\r\n"
    bad = b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
    entry = b"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    with connect(hostile) as s:
        s.sendall(good + good + bad + entry)
        got = answers(read_all(s))
    assert [status for status, _ in got] == [200, 200, 400]
    assert b"Duplicate Content-Length" in got[2][1] and tree_size(hostile) == before


def test_http10_keep_alive_is_not_honoured(hostile: Running) -> None:
    """RFC 9112 9.3: an HTTP/1.0 request closes the connection after its answer (which says so), even with
    ``Connection: keep-alive``; what follows it is not read. An HTTP/1.1 ``close`` token does the same."""
    for first in (
        b"GET /api/v1/log HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Close\r\n\r\n",
    ):
        with connect(hostile) as s:
            s.sendall(first + b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = read_all(s)  # the server closes: read_all returns
        assert answer.count(b"HTTP/1.1 ") == 1 and status_of(answer) == 200
        assert b"\r\nConnection: close\r\n" in answer


def test_a_protocol_switch_is_never_made(hostile: Running) -> None:
    """An Upgrade (h2c, websocket) is answered in HTTP/1.1 without a 101 and the connection closed: the bytes
    after the head, another protocol's to llhttp, are never read as a request; with a body it is refused."""
    before = tree_size(hostile)
    entry = b"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    for upgrade in (
        b"h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA",
        b"websocket\r\nConnection: upgrade",
    ):
        with connect(hostile) as s:
            s.sendall(b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nUpgrade: " + upgrade + b"\r\n\r\n" + entry)
            answer = read_all(s)
        assert answer.count(b"HTTP/1.1 ") == 1 and status_of(answer) == 200 and b"Connection: close" in answer
    with connect(hostile) as s:
        s.sendall(entry.replace(b"\r\nContent", b"\r\nUpgrade: h2c\r\nConnection: upgrade\r\nContent") + entry)
        answer = read_all(s)
    assert answer.count(b"HTTP/1.1 ") == 1 and status_of(answer) == 400 and b"Upgrade" in answer
    assert tree_size(hostile) == before
    still_serves(hostile)


def test_a_head_over_the_limit_gets_431_wherever_it_starts(hostile: Running) -> None:
    """A head over MAX_HEAD bytes is refused 431 whether it arrives alone (counted while it arrives) or
    pipelined behind a request in the same read (measured once whole, if it fits a read; else counted from
    the next read), and whether it arrives in one write or trickles in pieces."""
    good = b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\n\r\n"
    for size in (20_000, 100_000):
        big = b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\nX: " + b"y" * size + b"\r\n\r\n"
        for data, want in ((big, [431]), (good + big, [200, 431]), (good + good + big, [200, 200, 431])):
            with connect(hostile) as s:
                s.sendall(data)
                assert [status for status, _ in answers(read_all(s))] == want, (size, want)
    with connect(hostile) as s:  # trickling: 1 KB per write, no read ever holding the whole head
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with contextlib.suppress(OSError):
            s.sendall(good + b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\n")
            for _ in range(40):
                s.sendall(b"X-Pad: " + b"y" * 1000 + b"\r\n")
                time.sleep(0.002)
        assert [status for status, _ in answers(read_all(s))] == [200, 431]
    still_serves(hostile)


def test_a_request_written_byte_by_byte_is_read_as_itself(hostile: Running) -> None:
    """Every piece of llhttp's reading (method, target, header names and values, body) cut across reads."""
    body = json.dumps({"identity": "bytes@example.com"}).encode()
    data = (
        b"POST /oidc/dev-token?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % (int(hostile.state.port), len(body))
    ) + body
    with connect(hostile) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            s.sendall(data[i : i + 1])
            time.sleep(0.001)
        ((status, token),) = answers(read_all(s))
    assert status == 200 and json.loads(token)["id_token"]


def test_the_server_still_serves_after_the_fuzzing(hostile: Running) -> None:
    still_serves(hostile)


# -- finding 2: an entry too long for an entry bundle --------------------------------------------------------


def _big_entry_request() -> bytes:
    """A valid hashedrekord v0.0.2 request whose certificate (a 70 KB extension) makes the entry > 65535 bytes."""
    import base64
    import datetime as dt
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "big")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.4.1.57264.99"), b"\x04\x83\x01\x11\x70" + b"A" * 70000
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    digest = hashlib.sha256(b"big").digest()
    sig = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    req = {
        "hashedRekordRequestV002": {
            "digest": b64(digest),
            "signature": {
                "content": b64(sig),
                "verifier": {
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "x509Certificate": {"rawBytes": b64(cert.public_bytes(serialization.Encoding.DER))},
                },
            },
        }
    }
    return json.dumps(req).encode()


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return int(r.status), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_an_entry_too_long_for_a_bundle_is_refused_and_the_tiles_still_serve(tmp_path: Path) -> None:
    """Own instance: on a log that took such an entry, its entry bundle answered 500 forever."""
    from uc_attest.testing.logs import hashedrekord_requests
    from uc_attest.transparency.tiles import TileClient, TileTree

    root = tmp_path / "big"
    uc.init_instance(root, free_port())
    server = uc.instance_server(root).start()
    try:
        entries = f"{uc.load_instance(root).url}/rekor-v2/api/v2/log/entries"
        (small,) = hashedrekord_requests(1)
        assert _post(entries, json.dumps(small).encode())[0] in (200, 201)
        status, answer = _post(entries, _big_entry_request())
        assert status == 400 and "65535" in json.loads(answer)["message"]
        time.sleep(0.1)  # past an integration interval: nothing was queued
        (log,) = uc.select_trust(None, root).tile_logs()
        client = TileClient(log)
        cp = client.checkpoint()
        assert cp.size == 1
        assert len(client.entries(0, cp.size)) == 1 and len(client.tile(0, 0, cp.size)) == 1
        assert TileTree(client, cp.size).root() == cp.root
    finally:
        server.stop()
