"""verify's online log check through a log that fails the way a real network or a hostile log does: a transient
error (503, 429) is "unreachable", retried, and skipped unless the policy requires the check (then operational,
exit 4, not a denial); an answer that is not the log's is "misbehaving" and denied."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RELEASE
from tests.e2e.test_cli import cli
from tests.integration.conftest import Running


class _Proxy:
    """A log in front of the real one that fails the way a real network or a hostile log does."""

    def __init__(self, upstream: str) -> None:
        self.mode, self.hits = "pass", 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_a: object) -> None:
                return None

            def do_GET(self) -> None:
                proxy.hits += 1
                if proxy.mode in ("503", "429"):
                    self._send(int(proxy.mode), b'{"message": "try later"}')
                elif proxy.mode == "garbage":
                    self._send(200, b"<html>this is not a log</html>")
                else:
                    with urllib.request.urlopen(upstream + self.path, timeout=10) as up:
                        self._send(up.status, up.read())

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def proxied(world: dict[str, Any]) -> Iterator[tuple[_Proxy, Path]]:
    inst: Running = world["inst"]
    proxy = _Proxy(inst.url)
    tc = json.loads(inst.trust_config_path.read_text())
    for t in tc["trustedRoot"]["tlogs"]:
        t["baseUrl"] = t["baseUrl"].replace(inst.url, proxy.url)  # Rekor v2 keeps its path prefix
    path = world["root"] / "proxied-trust.json"
    path.write_text(json.dumps(tc))
    yield proxy, path
    proxy.httpd.shutdown()


def _policy(world: dict[str, Any], trust: Path, required: bool) -> Path:
    p = world["root"] / f"policy-{required}.yaml"
    p.write_text(
        f"version: 1\nname: log test\ntrust:\n  trust_config: {trust}\nsigners:\n  release:\n"
        f"    - issuer: {world['inst'].issuer}\n      identity: {RELEASE}\n"
        f"release:\n  require_online_log_check: {str(required).lower()}\n"
    )
    return p


def _log_online(out: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in out["checks"] if c["rule"] == "log.online")


@pytest.mark.parametrize("status", ["503", "429"])
def test_transient_log_errors_are_unreachable_not_a_split_view(
    world: dict[str, Any], proxied: tuple[_Proxy, Path], status: str
) -> None:
    proxy, trust = proxied
    proxy.mode, proxy.hits = status, 0
    r = cli("verify", world["pack"], "--policy", _policy(world, trust, False), "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 0, r.stdout  # not required by the policy: skipped, and said so
    check = _log_online(out)
    assert check["skipped"] and "unreachable" in check["detail"] and "split view" not in json.dumps(check)
    assert proxy.hits > 1  # retried before giving up
    required = cli("verify", world["pack"], "--policy", _policy(world, trust, True), "--json")
    assert required.returncode == 4, required.stdout  # operational, not "denied"
    assert "unreachable" in _log_online(json.loads(required.stdout))["detail"]


def test_a_log_answering_garbage_is_misbehaving_and_denied(world: dict[str, Any], proxied: tuple[_Proxy, Path]) -> None:
    proxy, trust = proxied
    proxy.mode = "garbage"
    r = cli("verify", world["pack"], "--policy", _policy(world, trust, False), "--json")
    assert r.returncode == 1, r.stdout
    check = _log_online(json.loads(r.stdout))
    # Rekor v2 (the default) reads the checkpoint first: garbage there does not verify with the log key
    assert not check["ok"] and not check.get("skipped")
    assert "not JSON" in check["detail"] or "does not verify" in check["detail"], check
    proxy.mode = "pass"
    assert cli("verify", world["pack"], "--policy", _policy(world, trust, True)).returncode == 0
