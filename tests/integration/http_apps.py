"""A recording HTTP server on 127.0.0.1 for the hostile-peer tests of the HTTP clients (registry, logs, the
shared policy): every request answered by an ``App``, each request's method, path, headers and body kept."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = BaseHTTPRequestHandler
App = Callable[[Handler], None]


class Server:
    """http.server on 127.0.0.1 answering every request with ``app``; ``seen``: (method, path, headers, body)."""

    def __init__(self, app: App) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        outer = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.seen.append((self.command, self.path, dict(self.headers.items()), body))
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # an answer refused unread
                    app(self)
                self.close_connection = True

            do_GET = do_HEAD = do_PUT = do_POST = _any  # noqa: N815 - http.server's names

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def headers_of(self, prefix: str) -> list[dict[str, str]]:
        return [h for _m, path, h, _b in self.seen if path.startswith(prefix)]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(h: Handler, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
    """One whole answer, then the connection closes (no body for HEAD)."""
    h.send_response(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.send_header("Connection", "close")
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)
