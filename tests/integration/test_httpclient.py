"""The one HTTP policy (uc_attest/core/httpclient.py) against real servers on 127.0.0.1: credentials never follow a
redirect to another origin (nor come back), a peer trickling bytes is cut off at the total deadline, a
Content-Length over the cap is refused before the body is read, redirects are bounded, and nothing from the
environment but proxies is used (.netrc, cookies), and TLS trusts OpenSSL's default store."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.http_apps import App, Handler, Server, reply
from uc_attest.core.httpclient import MAX_REDIRECTS, Refused, TooLarge, Unreachable, read_body, send, session
from uc_attest.core.netio import Deadline

TOKEN = "Bearer tok-123"


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """A socket server on 127.0.0.1 handing each connection (request read) to ``answer``, one thread each."""
    stop = threading.Event()
    socks: list[socket.socket] = []

    def start(answer: Callable[[socket.socket], None]) -> str:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        srv.settimeout(0.1)
        socks.append(srv)

        def one(conn: socket.socket) -> None:
            with conn:
                try:
                    conn.recv(65536)
                    answer(conn)
                except OSError:
                    pass

        def loop() -> None:
            while not stop.is_set():
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                threading.Thread(target=one, args=(conn,), daemon=True).start()

        threading.Thread(target=loop, daemon=True).start()
        return f"http://127.0.0.1:{srv.getsockname()[1]}"

    yield start
    stop.set()
    for s in socks:
        s.close()


# -- credentials and redirects -------------------------------------------------------------------------------------
def test_credentials_are_not_forwarded_to_another_origin_nor_back(serve: Callable[[App], Server]) -> None:
    """A -> B (another port) -> A: B gets no Authorization, and neither does A once the chain has left it."""

    def a_app(h: Handler) -> None:
        if h.path == "/back":
            return reply(h, 200, b"ok")
        return reply(h, 307, headers={"Location": f"{b.url}/x"})

    b = serve(lambda h: reply(h, 302, headers={"Location": f"{a.url}/back"}))
    a = serve(a_app)
    with send(session(), "GET", f"{a.url}/start", timeout=5, authorization=TOKEN) as resp:
        assert resp.status_code == 200 and read_body(resp, 10, Deadline(5)) == b"ok"
    assert [(p, h.get("Authorization")) for _m, p, h, _b in a.seen] == [("/start", TOKEN), ("/back", None)]
    assert [(p, h.get("Authorization")) for _m, p, h, _b in b.seen] == [("/x", None)]


def test_credentials_follow_a_redirect_on_the_same_origin(serve: Callable[[App], Server]) -> None:
    a = serve(lambda h: reply(h, 200) if h.path == "/there" else reply(h, 301, headers={"Location": "/there"}))
    send(session(), "HEAD", f"{a.url}/here", timeout=5, headers={"Authorization": TOKEN}).close()
    assert [(m, p, h.get("Authorization")) for m, p, h, _b in a.seen] == [("HEAD", "/here", TOKEN),
                                                                          ("HEAD", "/there", TOKEN)]  # fmt: skip


def test_a_post_redirected_with_303_is_a_get_without_its_body_and_307_is_not_followed(
    serve: Callable[[App], Server],
) -> None:
    target = serve(lambda h: reply(h, 200))
    a = serve(lambda h: reply(h, 303 if h.path == "/303" else 307, headers={"Location": f"{target.url}/t"}))
    s = session()
    send(s, "POST", f"{a.url}/303", timeout=5, data=b"{}", headers={"Content-Type": "application/json"}).close()
    (method, _p, headers, body), = target.seen  # fmt: skip
    assert method == "GET" and body == b"" and "Content-Type" not in headers
    with send(s, "POST", f"{a.url}/307", timeout=5, data=b"{}") as resp:
        assert resp.status_code == 307 and len(target.seen) == 1


def test_redirects_are_bounded_and_other_schemes_refused(serve: Callable[[App], Server]) -> None:
    loop = serve(lambda h: reply(h, 302, headers={"Location": h.path + "x"}))
    with pytest.raises(Refused, match=f"more than {MAX_REDIRECTS} redirects"):
        send(session(), "GET", f"{loop.url}/", timeout=5)
    assert len(loop.seen) == MAX_REDIRECTS + 1
    local = serve(lambda h: reply(h, 302, headers={"Location": "file:///etc/passwd"}))
    with pytest.raises(Refused, match="file:///etc/passwd.* refused: only http\\(s\\) redirects are followed"):
        send(session(), "GET", local.url, timeout=5)


def test_a_location_two_parsers_read_as_two_hosts_is_refused_and_gets_no_credentials(
    serve: Callable[[App], Server],
) -> None:
    """``http://evil\\@origin/``: the stdlib reads the origin's host, urllib3 (which connects) reads evil's; the
    credentials must not go there, so such a redirect is refused (found by an outside review of this policy)."""
    evil = serve(lambda h: reply(h, 200, b"got it"))
    a = serve(lambda h: reply(h, 302, headers={"Location": f"http://{evil.host}\\@{a.host}/x"}))
    with pytest.raises(Refused, match="not a valid URL"):
        send(session(), "GET", f"{a.url}/start", timeout=5, authorization=TOKEN)
    assert evil.seen == []


# -- reading an answer ---------------------------------------------------------------------------------------------
def test_a_trickling_answer_is_cut_off_at_the_total_deadline(
    raw_server: Callable[[Callable[[socket.socket], None]], str],
) -> None:
    """One byte every 50 ms, far inside the 5 s read timeout: only the total deadline (0.5 s) ends it."""

    def trickle(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        for _ in range(1000):
            conn.sendall(b" ")
            time.sleep(0.05)

    url = raw_server(trickle)
    t0 = time.monotonic()
    with send(session(), "GET", url, timeout=5) as resp, pytest.raises(Unreachable, match="trickling"):
        read_body(resp, 1 << 20, Deadline(0.5, what=url))
    assert time.monotonic() - t0 < 2.5


def test_a_content_length_over_the_cap_is_refused_before_the_body_is_read(
    raw_server: Callable[[Callable[[socket.socket], None]], str],
) -> None:
    """The peer announces 1 GiB and sends nothing: reading would wait for the 5 s timeout; the refusal is at once."""

    def announce(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (1 << 30))
        time.sleep(6)

    url = raw_server(announce)
    t0 = time.monotonic()
    with send(session(), "GET", url, timeout=5) as resp, pytest.raises(TooLarge, match="Content-Length 1073741824"):
        read_body(resp, 1 << 20, Deadline(30))
    assert time.monotonic() - t0 < 2


def test_an_answer_over_the_cap_without_a_length_reads_one_byte_more_and_stops(
    raw_server: Callable[[Callable[[socket.socket], None]], str],
) -> None:
    url = raw_server(lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 5000))
    with send(session(), "GET", url, timeout=5) as resp, pytest.raises(TooLarge):
        read_body(resp, 100, Deadline(5))


# -- the environment -------------------------------------------------------------------------------------------------
def test_netrc_and_cookies_are_not_used(serve: Callable[[App], Server], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login me password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    a = serve(lambda h: reply(h, 200, headers={"Set-Cookie": "session=abc; Path=/"}))
    s = session()
    for _ in range(2):
        send(s, "GET", f"{a.url}/x", timeout=5).close()
    assert [(h.get("Authorization"), h.get("Cookie")) for _m, _p, h, _b in a.seen] == [(None, None)] * 2


def test_proxies_come_from_the_environment_as_before(serve: Callable[[App], Server],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """http_proxy is used (urllib did so too) and no_proxy bypasses it."""
    proxy = serve(lambda h: reply(h, 200, b"via proxy"))
    origin_server = serve(lambda h: reply(h, 200, b"direct"))
    monkeypatch.setenv("http_proxy", proxy.url)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    with send(session(), "GET", f"{origin_server.url}/a", timeout=5) as resp:
        assert read_body(resp, 100, Deadline(5)) == b"via proxy"
    assert proxy.seen[0][1] == f"{origin_server.url}/a"  # the absolute form a proxy is asked with
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with send(session(), "GET", f"{origin_server.url}/b", timeout=5) as resp:
        assert read_body(resp, 100, Deadline(5)) == b"direct"


# -- TLS -----------------------------------------------------------------------------------------------------------
@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    """An https server on 127.0.0.1 redirecting every request to plain http, with a self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))  # fmt: skip
    pem = tmp_path / "cert.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))  # fmt: skip
    server = Server(lambda h: reply(h, 302, headers={"Location": f"http://127.0.0.1:1{h.path}"}))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pem, tmp_path / "key.pem")
    server.httpd.socket = ctx.wrap_socket(server.httpd.socket, server_side=True)
    yield server, pem
    server.close()


def test_tls_trusts_openssls_store_and_is_never_downgraded(tls_server: tuple[Server, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    server, pem = tls_server
    url = server.url.replace("http://", "https://") + "/blob"
    with pytest.raises(Unreachable, match="CERTIFICATE_VERIFY_FAILED"):  # not in the store: refused
        send(session(), "GET", url, timeout=5)
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))  # OpenSSL's default store, as urllib trusted it
    with pytest.raises(Refused, match="https is not followed to http"):
        send(session(), "GET", url, timeout=5, authorization=TOKEN)
    assert [h.get("Authorization") for _m, _p, h, _b in server.seen] == [TOKEN]
