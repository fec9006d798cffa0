"""A hostile Rekor v1 log on 127.0.0.1 (issue 21): a broken HTTP exchange is "unreachable" (retried, then
LogUnreachable), a malformed or oversized answer is "misbehaving" (LogMisbehaved) — never a foreign exception."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from uc_attest.errors import LogMisbehaved, LogUnreachable
from uc_attest.transparency import rekor_v1
from uc_attest.transparency.rekor_v1 import LogKey, RekorClient

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
ANSWERS = {
    "garbage status line": b"HELLO\r\n\r\n",
    "body cut short": HEAD + b'Content-Length: 100\r\n\r\n{"a":',
    "malformed chunks": HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "closed at once": b"",
}
MISBEHAVING = {
    "not JSON": HEAD + b"Content-Length: 5\r\n\r\nhello",
    "JSON nested 100k deep": HEAD + b"Content-Length: 200000\r\n\r\n" + b"[" * 100_000 + b"]" * 100_000,
    "answer over the limit": HEAD
    + b"Content-Length: %d\r\n\r\n" % (rekor_v1.MAX_ANSWER + 10)
    + b" " * (rekor_v1.MAX_ANSWER + 10),
}


@pytest.fixture
def hostile() -> Iterator[tuple[socket.socket, list[bytes]]]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    answer: list[bytes] = [b""]
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(answer[0])
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv, answer
    stop.set()
    t.join()
    srv.close()


def _client(srv: socket.socket) -> RekorClient:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return RekorClient(LogKey(f"http://127.0.0.1:{srv.getsockname()[1]}", key, b"\0" * 32), timeout=2.0)


@pytest.mark.parametrize("case", sorted(ANSWERS))
def test_a_broken_exchange_is_unreachable(hostile: tuple[socket.socket, list[bytes]], case: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(rekor_v1, "BACKOFF_S", 0.0)
    hostile[1][0] = ANSWERS[case]
    with pytest.raises(LogUnreachable):
        _client(hostile[0]).checkpoint()


@pytest.mark.parametrize("case", sorted(MISBEHAVING))
def test_a_malformed_answer_is_misbehaving(hostile: tuple[socket.socket, list[bytes]], case: str) -> None:
    hostile[1][0] = MISBEHAVING[case]
    with pytest.raises(LogMisbehaved):
        _client(hostile[0]).checkpoint()
