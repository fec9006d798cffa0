"""The instance's HTTP service against hostile clients, over raw sockets on 127.0.0.1.

Each finding of the security review has a test here: invalid Content-Length values are refused before
the body is read (``-1`` used to read until the client closed), chunked bodies are refused, slow clients
are dropped after the request timeout, the handler threads stay bounded (excess connections get 503),
and the request parser, fed arbitrary or mutated requests (hypothesis), answers a 4xx or parses, never a
500, an exception or a hang. The server answers a normal request after each.
"""

from __future__ import annotations

import contextlib
import io
import json
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
from uc_attest.instance import request as parser
from uc_attest.instance.http import InstanceServer

TIMEOUT_S, MAX_CONNECTIONS = 2.0, 8
FUZZ = settings(
    max_examples=int(os.environ.get("UC_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """An instance with a short request timeout and few connection slots, so that the limits show quickly."""
    root = tmp_path_factory.mktemp("hostile") / "dev"
    state = uc.init_instance(root, free_port())
    server = InstanceServer(uc.load_instance(root), request_timeout=TIMEOUT_S, max_connections=MAX_CONNECTIONS)
    yield Running(root, state, server.start(), root / "trust_config.json")
    server.stop()


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
        s.sendall(b"GET /api/v1/log HTTP/1.1\r\nConnection: close\r\n\r\n")
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


def test_repeated_equal_content_lengths_are_one_length(hostile: Running) -> None:
    with connect(hostile) as s:
        s.sendall(
            b"POST /oidc/dev-token HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        )
        assert status_of(read_all(s)) == 400  # parsed: {} has no identity


@pytest.mark.parametrize(
    "head",
    [
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",  # the classic smuggling pair
        b"Transfer-Encoding: gzip, chunked\r\n",
    ],
)
def test_chunked_requests_are_refused(hostile: Running, head: bytes) -> None:
    before = tree_size(hostile)
    with connect(hostile) as s:
        s.sendall(b"POST /api/v1/log/entries HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n5\r\n{}   \r\n0\r\n\r\n")
        answer = read_all(s)
    assert status_of(answer) == 411 and answer.count(b"HTTP/1.1 ") == 1  # the chunks are not read as a request
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
            s.sendall(b"POST /api/v1/log/entries HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
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


def test_a_request_trickling_in_is_dropped_at_the_deadline(hostile: Running) -> None:
    """One byte per 0.2 s never leaves the socket idle long, yet the whole request has TIMEOUT_S to arrive."""
    request = b"GET /api/v1/log HTTP/1.1\r\n" + b"X-Slow: " + b"y" * 200 + b"\r\n\r\n"
    start = time.monotonic()
    with connect(hostile) as s:
        with contextlib.suppress(OSError):  # the server may close while bytes still trickle
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
        s.sendall(b"GET /api/v1/log HTTP/1.1\r\n\r\n")
        first = s.recv(65536)
        assert status_of(first) == 200
        start = time.monotonic()
        rest = read_all(s)
    assert rest == b"" and time.monotonic() - start < TIMEOUT_S + 2


# -- finding 5: the request parser, fuzzed -----------------------------------------------------------------

VALID = [
    b"GET /api/v1/log HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/v1/log/entries HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /rekor-v2/api/v2/log/entries HTTP/1.0\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\nnull",
    b"GET /rekor-v2/tile/0/000.p/1 HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n",
    (
        b"POST /api/v1/timestamp HTTP/1.1\r\nContent-Type: application/timestamp-query\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n0\x03\x02\x01\x01"
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


requests = st.one_of(st.binary(max_size=300), mutated_request())


@FUZZ
@given(data=requests)
@example(data=b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n")
@example(data=b"GET / HTTP/1.1\r\n: empty name\r\n\r\n")
@example(data=b"GET / HTTP/1.1\r\n no header to fold\r\n\r\n")
@example(data=b"GET / HTTP/1.1\r\nHost: x")  # cut inside the header block
def test_the_parser_parses_or_answers_4xx(data: bytes) -> None:
    stream = io.BytesIO(data)
    try:
        req = parser.parse(stream)
    except parser.HTTPError as exc:
        assert 400 <= exc.status < 600 and exc.status != 500 and exc.message
        return
    if req is None:
        return
    assert req.method in parser.METHODS and req.target.startswith("/")
    assert len(req.body) == req.content_length <= parser.MAX_BODY
    # what follows the request was not read: it is the next request on the connection
    consumed = stream.tell()
    assert data[consumed - len(req.body) : consumed] == req.body


@FUZZ
@given(
    path=st.from_regex(r"(/[a-z0-9._-]{1,8}){0,4}/?", fullmatch=True).map(lambda p: p or "/"),
    headers=st.dictionaries(
        st.from_regex(r"X-[A-Za-z0-9-]{1,10}", fullmatch=True),
        st.from_regex(r"[ -~]{0,20}", fullmatch=True).map(str.strip),
        max_size=5,
    ),
    body=st.binary(max_size=200),
    tail=st.binary(max_size=20),
)
def test_a_valid_request_parses_to_itself(path: str, headers: dict[str, str], body: bytes, tail: bytes) -> None:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    data = f"POST {path} HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body
    stream = io.BytesIO(data + tail)
    req = parser.parse(stream)
    assert req is not None and (req.method, req.target, req.body) == ("POST", path, body)
    first: dict[str, str] = {}
    for k, v in headers.items():  # by lower-case name, the first of repeated ones ("X-a" and "x-A")
        first.setdefault(k.lower(), v)
    assert all(req.headers[k] == v for k, v in first.items())
    assert stream.read() == tail


def _exchange(inst: Running, data: bytes) -> bytes:
    with connect(inst, timeout=TIMEOUT_S + 3) as s:
        with contextlib.suppress(OSError):
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)  # the client is done: the server sees the end of the stream
        return read_all(s)


@FUZZ
@given(data=requests)
def test_the_server_answers_hostile_bytes_with_4xx_or_closes(hostile: Running, data: bytes) -> None:
    answer = _exchange(hostile, data)
    statuses = [int(m) for m in re.findall(rb"(?:^|\r\n\r\n|})HTTP/1\.1 (\d{3}) ", answer)]
    assert 500 not in statuses, answer[:300]
    if answer:
        assert statuses, answer[:300]


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
