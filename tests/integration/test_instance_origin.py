"""The embedded instance refuses browser-driven requests and answers malformed entry UUIDs with a 4xx.

Issue 28 (low findings): a web page could reach the loopback instance and mint dev OIDC tokens, through DNS
rebinding (its own host name resolving to 127.0.0.1: the request carries ``Host: evil.example:PORT``) or
through a cross-origin ``text/plain`` POST (no preflight; it carries ``Origin`` and ``Sec-Fetch-Site``).
The instance now answers 403 to a Host that is not its own address and to a cross-origin browser request,
while the clients that use it (urllib, http.client, requests as in sigstore-python, Node's fetch as in
sigstore-js) send ``Host: 127.0.0.1:PORT`` and no Origin and keep working. A non-hex 64- or 80-character
entry UUID in a Rekor v1 route used to answer 500 with a traceback; it is now a 400 with the reason.
Everything over raw sockets against a running instance.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import urllib.request
from typing import Any

import pytest

from tests.integration.conftest import Running


def exchange(inst: Running, head: str, body: bytes = b"") -> tuple[int, Any]:
    """Send one request (``head``: request line and headers, without the blank line); status and JSON body."""
    data = head.rstrip("\r\n").encode("latin-1") + b"\r\n"
    if body:
        data += f"Content-Length: {len(body)}\r\n".encode()
    data += b"Connection: close\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", int(inst.state.port)), timeout=10) as s:
        s.sendall(data)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in rest else b""
    try:
        parsed: Any = json.loads(payload)
    except ValueError:
        parsed = payload
    return int(status_line.split(b" ")[1]), parsed


def port(inst: Running) -> int:
    return int(inst.state.port)


# -- malformed entry UUIDs in Rekor v1 routes ---------------------------------------------------------------


@pytest.mark.parametrize(
    "uuid",
    [
        "z" * 64,
        "g" + "0" * 63,
        "0" * 62 + "+1",
        "ab" * 31,  # neither 64 nor 80 digits
        "x" * 80,
        "0" * 16 + "q" * 64,
        "q" * 16 + "0" * 64,
        "%zz" + "0" * 61,
    ],
)
def test_a_malformed_entry_uuid_is_a_400_with_the_reason(instance_v1: Running, uuid: str) -> None:
    status, body = exchange(
        instance_v1, f"GET /api/v1/log/entries/{uuid} HTTP/1.1\r\nHost: 127.0.0.1:{port(instance_v1)}"
    )
    assert status == 400, body
    assert "uuid" in body["message"].lower() and "hex" in body["message"], body


def test_an_absent_well_formed_uuid_is_a_404(instance_v1: Running) -> None:
    for uuid in ("ab" * 32, "0123456789abcdef" + "cd" * 32, "AB" * 32):
        status, body = exchange(
            instance_v1, f"GET /api/v1/log/entries/{uuid} HTTP/1.1\r\nHost: 127.0.0.1:{port(instance_v1)}"
        )
        assert status == 404, body


@pytest.mark.parametrize(
    "payload",
    [
        {"entryUUIDs": ["z" * 64, "y" * 80]},
        {"entryUUIDs": "z" * 64},
        {"entryUUIDs": 5},
        {"entryUUIDs": [5, None]},
        {"logIndexes": 5},
        {"logIndexes": "0"},
    ],
)
def test_retrieve_with_malformed_uuids_or_indexes_is_never_a_500(instance_v1: Running, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    status, answer = exchange(
        instance_v1,
        f"POST /api/v1/log/entries/retrieve HTTP/1.1\r\nHost: 127.0.0.1:{port(instance_v1)}\r\n"
        "Content-Type: application/json",
        body,
    )
    assert status in (200, 400), answer
    assert status == 400 or answer == [], answer


# -- Host and Origin ----------------------------------------------------------------------------------------

TOKEN_GET = "GET /oidc/dev-token?identity=attacker%40example.com HTTP/1.1"
TOKEN_POST = "POST /oidc/dev-token HTTP/1.1"
IDENTITY = json.dumps({"identity": "attacker@example.com"}).encode()


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:{p}",
        "127.0.0.1:{q}",
        "localhost:{q}",
        "127.0.0.2:{p}",
        "[::1]:{q}",
        "127.0.0.1.evil.example:{p}",
        "localhost.:{p}",
        "0.0.0.0:{p}",
        "127.0.0.1:{p}:{p}",
        "127.0.0.1:0{p}",
        "user@127.0.0.1:{p}",
    ],
)
def test_a_foreign_host_header_is_refused(instance: Running, host: str) -> None:
    """DNS rebinding: the page's own name (and port) in Host, whatever the address it resolved to."""
    h = host.format(p=port(instance), q=port(instance) + 1)
    status, body = exchange(instance, f"{TOKEN_GET}\r\nHost: {h}")
    assert status == 403 and "Host" in body["message"], body
    status, body = exchange(instance, f"{TOKEN_POST}\r\nHost: {h}\r\nContent-Type: text/plain", IDENTITY)
    assert status == 403 and "token" not in json.dumps(body), body


def test_a_rebinding_page_on_a_default_port_name_is_refused(instance: Running) -> None:
    """A port-less Host naming another host, with a browser's fetch metadata (a rebinding page reached through a
    port forwarded from 80): refused."""
    status, body = exchange(instance, f"{TOKEN_GET}\r\nHost: evil.example\r\nSec-Fetch-Site: same-origin")
    assert status == 403, body
    status, body = exchange(instance, f"{TOKEN_GET}\r\nHost: evil.example\r\nOrigin: http://evil.example")
    assert status == 403, body


@pytest.mark.parametrize("host", ["127.0.0.1:{p}", "localhost:{p}", "LOCALHOST:{p}", "[::1]:{p}", None])
def test_the_served_address_is_accepted(instance: Running, host: str | None) -> None:
    """No Host at all: an HTTP/1.0 request (HTTP/1.1 requires one, and admit refuses a 1.1 request without)."""
    if host is None:
        head = TOKEN_GET.replace("HTTP/1.1", "HTTP/1.0")
    else:
        head = f"{TOKEN_GET}\r\nHost: {host.format(p=port(instance))}"
    status, body = exchange(instance, head)
    assert status == 200 and body["id_token"], body


@pytest.mark.parametrize(
    "headers",
    [
        "Origin: http://evil.example",
        "Origin: null",  # a sandboxed frame, a file: page, a redirect
        "Origin: http://127.0.0.1:{q}",  # another service on the same machine
        "Origin: https://127.0.0.1:{p}",
        "Origin: http://127.0.0.1:{p}.evil.example",
        "Sec-Fetch-Site: cross-site",
        "Sec-Fetch-Site: same-site",  # e.g. a page on localhost:another-port
        "Origin: http://evil.example\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors",
    ],
)
def test_a_cross_origin_browser_request_is_refused(instance: Running, headers: str) -> None:
    """The simple-request CSRF: a text/plain POST needs no preflight, but it carries Origin / Sec-Fetch-Site."""
    extra = headers.format(p=port(instance), q=port(instance) + 1)
    host = f"Host: 127.0.0.1:{port(instance)}"
    status, body = exchange(instance, f"{TOKEN_POST}\r\n{host}\r\n{extra}\r\nContent-Type: text/plain", IDENTITY)
    assert status == 403 and "token" not in json.dumps(body), body
    assert "Origin" in body["message"] or "Sec-Fetch-Site" in body["message"], body
    status, body = exchange(instance, f"{TOKEN_GET}\r\n{host}\r\n{extra}")
    assert status == 403, body


@pytest.mark.parametrize(
    "headers",
    [
        "Origin: http://127.0.0.1:{p}",
        "Origin: http://localhost:{p}",
        "Origin: http://[::1]:{p}",
        "Sec-Fetch-Site: same-origin",
        "Sec-Fetch-Site: none",  # typed in the address bar
    ],
)
def test_a_same_origin_request_is_accepted(instance: Running, headers: str) -> None:
    extra = headers.format(p=port(instance))
    status, body = exchange(
        instance,
        f"{TOKEN_POST}\r\nHost: 127.0.0.1:{port(instance)}\r\n{extra}\r\nContent-Type: application/json",
        IDENTITY,
    )
    assert status == 200 and body["id_token"], body


def test_the_project_clients_and_requests_still_work(instance: Running) -> None:
    with urllib.request.urlopen(f"{instance.url}/api/v1/log", timeout=10) as r:
        assert r.status == 200
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port(instance), timeout=10)
    conn.request("POST", "/oidc/dev-token", IDENTITY, {"Content-Type": "application/json"})
    assert conn.getresponse().status == 200
    conn.close()
    requests = pytest.importorskip("requests")  # what sigstore-python speaks
    r = requests.post(f"{instance.url}/oidc/dev-token", json={"identity": "a@example.com"}, timeout=10)
    assert r.status_code == 200 and r.json()["id_token"]
    assert instance.token("a@example.com")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_fetch_still_works(instance: Running) -> None:
    """sigstore-js runs on Node's fetch (undici), which sends Host and no Origin."""
    script = (
        "(async () => {"
        f"const a = await fetch({instance.url + '/api/v1/log'!r});"
        f"const b = await fetch({instance.url + '/oidc/dev-token'!r}, {{method: 'POST',"
        " headers: {'Content-Type': 'application/json'}, body: JSON.stringify({identity: 'n@example.com'})});"
        "console.log(a.status, b.status);"
        "})().catch(e => { console.error(e); process.exit(1); });"
    )
    try:
        out = subprocess.run(["node", "-e", script], check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:  # pragma: no cover - a broken node install
        pytest.skip(f"node did not run: {exc}")
    if out.returncode != 0 and "fetch is not defined" in out.stderr:
        pytest.skip("this node has no fetch")
    assert out.returncode == 0, out.stderr[-1000:]
    assert out.stdout.split() == ["200", "200"]
