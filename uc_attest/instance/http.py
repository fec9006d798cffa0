"""HTTP service of the embedded instance on 127.0.0.1: the server, its threads, start and stop.

Why no web framework: the instance is a single-user, loopback-only dev/air-gap service; correctness lives
in the log store (serialized, durable appends), not in the web framework. The pieces: :mod:`.request`
parses a request strictly (request line, headers, Content-Length, body limit), :mod:`.routes` maps it to an
endpoint of :class:`~.routes.Instance`, and this module serves connections, bounded so that no client can
exhaust the process:

* one thread per connection, at most ``max_connections`` at once; a connection beyond that is answered
  503 at once and closed, never queued in the process;
* a whole request (head and body) must arrive within ``request_timeout`` seconds, however slowly its bytes
  trickle in (a deadline, not a per-read timeout), and an idle keep-alive connection is closed after it;
* a request the parser refuses is answered with its 4xx status and the connection closed, before any
  of a refused body is read;
* what a web page could make a browser send is answered 403 (:func:`check_origin`): a Host that is not the
  served address (DNS rebinding) and a cross-origin request (``Origin``, ``Sec-Fetch-Site``). The clients
  of the instance (sigstore-python, the sigstore CLI, sigstore-js on Node, uc-attest) send
  ``Host: 127.0.0.1:PORT`` and no Origin.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import socketserver
import threading
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from ..errors import OperationalError, UsageError
from .request import MAX_BODY, HTTPError, Request, read_body, read_head
from .routes import Instance, Raw, dispatch, open_log
from .state import HOST, InstanceState

__all__ = ["MAX_BODY", "HTTPError", "Instance", "InstanceServer", "Raw", "check_origin", "open_log"]

#: Seconds a whole request may take to arrive (and an idle keep-alive connection may wait).
REQUEST_TIMEOUT_S = 30.0
#: Connections served at once; more are answered 503.
MAX_CONNECTIONS = 128
log = logging.getLogger("uc_attest.instance")


class _DeadlineReader(io.RawIOBase):
    """A socket's bytes, each read bounded by what is left until ``deadline`` (time.monotonic())."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.deadline, self.received = sock, 0.0, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request not received in time")
        self.sock.settimeout(left)
        n = self.sock.recv_into(buffer)
        self.received += n
        return n


#: The names of the served address a client may put in Host (and an Origin): the server listens on 127.0.0.1
#: only, but a client may name it ``localhost`` or, having resolved that to ::1 first, ``[::1]``.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
#: Sec-Fetch-Site values of a request that a browser made for a page of this very origin, or for no page.
_OWN_FETCH_SITES = ("same-origin", "none")


def check_origin(req: Request, port: int) -> None:
    """Refuse (403) a request that a web page made a browser send to the instance on ``port``.

    * DNS rebinding: a page's host name made to resolve to 127.0.0.1 is a same-origin page to the browser,
      which sends ``Host: that-name:PORT``; only the served address's names are accepted in Host.
      A Host with no port is the browser's form only for port 80: it is refused on port 80, or with a
      browser's headers (Origin, Sec-Fetch-*: a port forwarded from 80); otherwise it cannot come from a
      browser and is ignored, as a missing Host is (HTTP/1.0 and raw clients).
    * Cross-origin requests, e.g. a ``text/plain`` POST, which a browser sends without a preflight: refused
      when ``Origin`` is not the served origin (``null`` included) or ``Sec-Fetch-Site`` says another origin.
    """
    authorities = {f"{name}:{port}" for name in LOOPBACK_NAMES} | (set(LOOPBACK_NAMES) if port == 80 else set())
    from_browser = "origin" in req.headers or any(name.startswith("sec-fetch-") for name in req.headers)
    host = req.headers.get("host")
    if host is not None and host.lower() not in authorities:
        has_port = ":" in host.rsplit("]", 1)[-1]
        if has_port or port == 80 or from_browser:
            raise HTTPError(
                HTTPStatus.FORBIDDEN,
                f"Host {host[:100]!r} is not this instance's address (127.0.0.1:{port}, localhost:{port} or "
                f"[::1]:{port}): refused, as a browser sends it for a DNS-rebinding page",
            )
    origin = req.headers.get("origin")
    if origin is not None and origin.lower() not in {f"http://{a}" for a in authorities}:
        raise HTTPError(
            HTTPStatus.FORBIDDEN,
            f"cross-origin request from Origin {origin[:100]!r} refused: the instance serves only its own "
            f"origin, http://127.0.0.1:{port}",
        )
    site = req.headers.get("sec-fetch-site")
    if site is not None and site.lower() not in _OWN_FETCH_SITES:
        raise HTTPError(HTTPStatus.FORBIDDEN, f"cross-origin browser request (Sec-Fetch-Site: {site[:40]}) refused")


def _response(status: HTTPStatus, body: Raw, *, close: bool) -> bytes:
    head = [
        f"HTTP/1.1 {status.value} {status.phrase}",
        "Server: uc-attest-instance",
        f"Date: {formatdate(usegmt=True)}",
        f"Content-Type: {body.content_type}",
        f"Content-Length: {len(body.data)}",
        *(["Connection: close"] if close else []),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body.data


def _error(exc: HTTPError) -> Raw:
    return Raw(json.dumps({"code": int(exc.status), "message": exc.message}).encode(), "application/json")


class _Handler(socketserver.BaseRequestHandler):
    """Serves the requests of one connection in turn (HTTP/1.1 keep-alive) until it closes or fails."""

    server: _Server
    request: socket.socket

    def handle(self) -> None:
        sock = self.request
        # one write per answer, and no wait for the client's delayed ACK between answers
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = _DeadlineReader(sock)
        rfile = io.BufferedReader(reader)
        while True:
            reader.deadline, reader.received = time.monotonic() + self.server.request_timeout, 0
            try:
                req = read_head(rfile)
                if req is None:
                    return
                check_origin(req, self.server.server_address[1])
                if req.expects_continue and req.content_length:
                    self._write(b"HTTP/1.1 100 Continue\r\n\r\n")
                read_body(rfile, req)
            except HTTPError as exc:
                self._refuse(exc)
                return
            except TimeoutError:
                if reader.received:  # a request had begun: say why it is dropped (an idle connection just closes)
                    self._refuse(HTTPError(HTTPStatus.REQUEST_TIMEOUT, "request not received in time"))
                return
            except OSError:
                return
            if not self._answer(req) or not req.keep_alive:
                return

    def _answer(self, req: Request) -> bool:
        try:
            status, body = dispatch(self.server.instance, req)
        except HTTPError as exc:
            status, body = exc.status, _error(exc)
        except Exception as exc:
            log.exception("internal error")
            status, body = (
                HTTPStatus.INTERNAL_SERVER_ERROR,
                _error(HTTPError(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {exc}")),
            )
        log.info('%s "%s %s %s" %d', self.client_address[0], req.method, req.target[:200], req.version, status)
        return self._write(_response(status, body, close=not req.keep_alive))

    def _write(self, data: bytes) -> bool:
        try:
            self.request.settimeout(self.server.request_timeout)
            self.request.sendall(data)
        except OSError:
            return False
        return True

    def _refuse(self, exc: HTTPError) -> None:
        """Answer ``exc`` and close; discard (a bounded amount of) what the client still sends, so that the
        close does not reset the connection before it reads the answer."""
        log.info("%s refused: %d %s", self.client_address[0], exc.status, exc.message)
        if not self._write(_response(exc.status, _error(exc), close=True)):
            return
        try:
            self.request.shutdown(socket.SHUT_WR)
            self.request.settimeout(0.5)
            end, left = time.monotonic() + 1.0, 1 << 20
            while left > 0 and time.monotonic() < end and (chunk := self.request.recv(min(left, 65536))):
                left -= len(chunk)
        except OSError:
            pass


_BUSY = _response(
    HTTPStatus.SERVICE_UNAVAILABLE,
    _error(HTTPError(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections; retry later")),
    close=True,
)


class _Server(socketserver.TCPServer):
    """A thread per connection, at most ``max_connections`` threads; a listen backlog for bursts of clients
    (the default 5 resets connections under a burst)."""

    allow_reuse_address = True
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], instance: Instance, request_timeout: float, max_connections: int
    ) -> None:
        self.instance, self.request_timeout = instance, request_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.setblocking(False)
                request.send(_BUSY)  # a fresh socket's send buffer takes it whole
            except OSError:
                pass
            self.shutdown_request(request)
            return
        threading.Thread(target=self._serve, args=(request, client_address), daemon=True).start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            log.exception("connection from %s failed", client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()


class InstanceServer:
    """The running service; ``start()`` serves in a background thread, ``serve_forever()`` in the caller."""

    def __init__(
        self,
        state: InstanceState,
        port: int | None = None,
        *,
        move: bool = False,
        request_timeout: float = REQUEST_TIMEOUT_S,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        """Serve on the port the trust config names. Another ``port`` is refused (no client would find the
        server) unless ``move``: the instance's URL and trust config then follow the new port.
        ``request_timeout`` and ``max_connections`` bound what clients can hold (see the module's doc)."""
        if port is not None and port != state.port:
            if not move:
                raise UsageError(
                    f"{state.root}: its trust config names port {state.port}; serving on {port} would start a "
                    f"server no client finds (serve without --port, or --move-to-port to rewrite the trust config "
                    f"for {port})",
                    configured=state.port,
                    requested=port,
                )
            state = state.moved_to(port)
        self.instance = Instance(state)
        try:
            self.httpd = _Server((HOST, state.port), self.instance, request_timeout, max_connections)
        except OSError as exc:
            self.instance.log.close()
            if self.instance.log2 is not None:
                self.instance.log2.close()
            raise OperationalError(f"cannot serve on {HOST}:{state.port}: {exc.strerror}", port=state.port) from None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> InstanceServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.instance.log.close()
        if self.instance.log2 is not None:
            self.instance.log2.close()
