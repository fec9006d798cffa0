"""A peer that trickles bytes (issue 32): one byte at a time, always just inside the per-read timeout, so a socket
timeout alone never fires. Every HTTP answer uc-attest reads — a Rekor v1 answer, a tile, a registry manifest,
a blob — has a total deadline (uc_attest/core/netio.py) and is cut off at it; an honest slow blob still arrives.
The server is a real socket on 127.0.0.1; each client call runs under a watchdog, so a missing deadline fails the
test instead of hanging it."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from uc_attest.core.netio import Deadline, read_within
from uc_attest.errors import LogUnreachable, RegistryUnreachable
from uc_attest.oci.registry import Reference, Registry
from uc_attest.transparency import rekor_v1
from uc_attest.transparency.rekor_v1 import LogKey, RekorClient
from uc_attest.transparency.tiles import TileClient, TileLogKey

STEP_S = 0.05  # one byte per step: far inside every per-read timeout below


@pytest.fixture
def trickler() -> Iterator[tuple[int, list[int]]]:
    """An HTTP server announcing ``length[0]`` bytes and sending them one per STEP_S (a thread per connection)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    length = [10**6]
    stop = threading.Event()

    def one(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % length[0]
                )
                for _ in range(length[0]):
                    if stop.is_set():
                        return
                    conn.sendall(b" ")
                    time.sleep(STEP_S)
            except OSError:
                return

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1], length
    stop.set()
    t.join()
    srv.close()


def _within(seconds: float, call: Callable[[], Any]) -> BaseException | None:
    """What ``call`` raised, failing the test when it is still running after ``seconds`` (no deadline)."""
    out: list[BaseException | None] = [None]

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out[0] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still reading a trickle after {seconds} s: no total deadline"
    return out[0]


def test_a_rekor_log_that_trickles_is_unreachable_at_the_deadline(
    trickler: tuple[int, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rekor_v1, "BACKOFF_S", 0.0)
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    client = RekorClient(LogKey(f"http://127.0.0.1:{trickler[0]}", key, b"\0" * 32), timeout=2.0, deadline=0.5)
    exc = _within(15, client.checkpoint)
    assert isinstance(exc, LogUnreachable) and "trickling" in exc.message, exc


def test_a_tile_log_that_trickles_is_unreachable_at_the_deadline(
    trickler: tuple[int, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rekor_v1, "BACKOFF_S", 0.0)
    log = TileLogKey(f"http://127.0.0.1:{trickler[0]}", None, b"\0" * 32)
    client = TileClient(log, timeout=2.0, deadline=0.5)
    exc = _within(15, lambda: client._get("checkpoint", 1 << 20))
    assert isinstance(exc, LogUnreachable) and "trickling" in exc.message, exc


def test_a_registry_answer_that_trickles_is_unreachable_at_the_deadline(
    trickler: tuple[int, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from uc_attest.oci import registry

    monkeypatch.setattr(registry, "ANSWER_DEADLINE_S", 0.5)
    reg = Registry(Reference.parse(f"oci://127.0.0.1:{trickler[0]}/m"), plain_http=True, timeout=2.0)
    exc = _within(15, lambda: reg.get_manifest("latest"))
    assert isinstance(exc, RegistryUnreachable) and "trickling" in str(exc) and "manifest latest" in str(exc), exc


def test_a_slow_but_steady_answer_within_its_rate_arrives(trickler: tuple[int, list[int]]) -> None:
    """The deadline of a blob grows with what arrives: 40 bytes at 20 B/s pass a 0.3 s base with a 10 B/s floor."""
    trickler[1][0] = 40
    conn = http.client.HTTPConnection("127.0.0.1", trickler[0], timeout=2.0)
    conn.request("GET", "/blob")
    resp = conn.getresponse()
    got = read_within(resp, 1000, Deadline(0.3, min_rate=10.0, what="blob"))
    conn.close()
    assert got == b" " * 40
