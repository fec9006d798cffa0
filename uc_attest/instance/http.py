"""HTTP service of the embedded instance on 127.0.0.1: the server, its threads, start and stop.

What it stands on: h11, a well-kept sans-IO implementation, reads every request (request line, headers,
Content-Length framing, pipelining: a fresh parser per request, fed what arrived after the last one), so that
the code here parses nothing; answers have one fixed form whose every header byte is ours (:func:`_frame`:
a status line and five headers; h11's event machinery cost 25-40 us an answer, the log's load goal cannot
spare it), keep-alive decided as h11 decides it (:func:`_keep_alive`); plain sockets and one thread per
connection carry the bytes. Why no web framework: the instance is a
single-user, loopback-only dev/air-gap service; correctness lives in the log store (serialized, durable
appends), not in the web layer. The pieces: :mod:`.request` admits a parsed request (version, target,
body limit), :mod:`.routes` maps it to an endpoint of :class:`~.routes.Instance`, and this module serves
connections, bounded so that no client can exhaust the process:

* one thread per connection, at most ``max_connections`` at once; a connection beyond that is answered
  503 at once and closed, never queued in the process;
* a whole request (head and body) must arrive within ``request_timeout`` seconds, however slowly its bytes
  trickle in (a deadline, not a per-read timeout), and an idle keep-alive connection is closed after it;
  a request head still incomplete after :data:`~.request.MAX_HEAD` bytes gets 431 (h11's
  ``max_incomplete_event_size``);
* a request that h11 or :func:`~.request.admit` refuses is answered with its 4xx status and the connection
  closed, before any of a refused body is read;
* what a web page could make a browser send is answered 403 (:func:`check_origin`): a Host that is not the
  served address (DNS rebinding) and a cross-origin request (``Origin``, ``Sec-Fetch-Site``). The clients
  of the instance (sigstore-python, the sigstore CLI, sigstore-js on Node, uc-attest) send
  ``Host: 127.0.0.1:PORT`` and no Origin.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import selectors
import socket
import threading
import time
from email.utils import formatdate
from http import HTTPStatus

import h11

from ..errors import OperationalError, UsageError
from .request import MAX_BODY, MAX_HEAD, HTTPError, Request, admit
from .routes import Instance, Raw, dispatch, open_log
from .state import HOST, InstanceState

__all__ = ["MAX_BODY", "HTTPError", "Instance", "InstanceServer", "Raw", "check_origin", "open_log"]

#: Seconds a whole request may take to arrive (and an idle keep-alive connection may wait).
REQUEST_TIMEOUT_S = 30.0
#: Connections served at once; more are answered 503.
MAX_CONNECTIONS = 128
#: Pending connections the kernel holds for a burst of clients (a backlog of 5 resets some under a burst).
BACKLOG = 256
RECV_SIZE = 65536
log = logging.getLogger("uc_attest.instance")


#: The names of the served address a client may put in Host (and an Origin): the server listens on 127.0.0.1
#: only, but a client may name it ``localhost`` or, having resolved that to ::1 first, ``[::1]``.
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
#: Sec-Fetch-Site values of a request that a browser made for a page of this very origin, or for no page.
_OWN_FETCH_SITES = ("same-origin", "none")


@functools.lru_cache(maxsize=8)
def _served_names(port: int) -> tuple[frozenset[str], frozenset[str]]:
    """The Host values and the Origins of the instance served on ``port`` (computed once, asked per request)."""
    authorities = {f"{name}:{port}" for name in LOOPBACK_NAMES} | (set(LOOPBACK_NAMES) if port == 80 else set())
    return frozenset(authorities), frozenset(f"http://{a}" for a in authorities)


def check_origin(req: Request, port: int) -> None:
    """Refuse (403) a request that a web page made a browser send to the instance on ``port``.

    * DNS rebinding: a page's host name made to resolve to 127.0.0.1 is a same-origin page to the browser,
      which sends ``Host: that-name:PORT``; only the served address's names are accepted in Host.
      A Host with no port is the browser's form only for port 80: it is refused on port 80, or with a
      browser's headers (Origin, Sec-Fetch-*: a port forwarded from 80); otherwise it cannot come from a
      browser and is ignored, as a missing Host is (HTTP/1.0 only: h11 refuses an HTTP/1.1 request without).
    * Cross-origin requests, e.g. a ``text/plain`` POST, which a browser sends without a preflight: refused
      when ``Origin`` is not the served origin (``null`` included) or ``Sec-Fetch-Site`` says another origin.
    """
    authorities, origins = _served_names(port)
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
    if origin is not None and origin.lower() not in origins:
        raise HTTPError(
            HTTPStatus.FORBIDDEN,
            f"cross-origin request from Origin {origin[:100]!r} refused: the instance serves only its own "
            f"origin, http://127.0.0.1:{port}",
        )
    site = req.headers.get("sec-fetch-site")
    if site is not None and site.lower() not in _OWN_FETCH_SITES:
        raise HTTPError(HTTPStatus.FORBIDDEN, f"cross-origin browser request (Sec-Fetch-Site: {site[:40]}) refused")


def _error(exc: HTTPError) -> Raw:
    return Raw(json.dumps({"code": int(exc.status), "message": exc.message}).encode(), "application/json")


class _Date:
    """The Date header's value, formatted once a second (not once an answer)."""

    second, value = -1, b""

    @classmethod
    def now(cls) -> bytes:
        t = int(time.time())
        if t != cls.second:
            cls.second, cls.value = t, formatdate(t, usegmt=True).encode()
        return cls.value


def _frame(status: HTTPStatus, body: Raw, *, close: bool = False, head: bool = False) -> bytes:
    """The whole answer: a status line and five headers, every byte of them ours (no text of the request reaches
    a header), then the body (none for a HEAD request: ``head``). h11 reads the requests; framing an answer of
    this fixed form needs no parser, and costs a tenth of h11's event machinery per answer."""
    lines = [
        b"HTTP/1.1 %d %s" % (status.value, status.phrase.encode("ascii")),
        b"Server: uc-attest-instance",
        b"Date: " + _Date.now(),
        b"Content-Type: " + body.content_type.encode("ascii"),
        b"Content-Length: %d" % len(body.data),
    ]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head else body.data)


def _keep_alive(event: h11.Request) -> bool:
    """Whether the connection stays open after this request (RFC 9112 9.3, as h11 decides it): HTTP/1.1 without
    a ``close`` token in any Connection header."""
    if event.http_version != b"1.1":
        return False
    return not any(
        b"close" in (token.strip().lower() for token in value.split(b","))
        for name, value in event.headers
        if name == b"connection"
    )


class _Connection:
    """Serves the requests of one connection in turn (keep-alive) until it closes, fails or is refused."""

    def __init__(self, server: InstanceServer, sock: socket.socket, client: str) -> None:
        self.server, self.sock, self.client = server, sock, client
        self.conn = _parser()
        self.begun = False  # whether a byte of the current request has arrived
        self.head_request = False  # whether the current request is a HEAD (refused: 501, answered without a body)
        self.keep_alive = False  # whether the current request lets the connection serve another

    def serve(self) -> None:
        # one write per answer, and no wait for the client's delayed ACK between answers
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                req = self._read_request(time.monotonic() + self.server.request_timeout)
            except HTTPError as exc:
                self._refuse(exc)
                return
            except TimeoutError:
                if self.begun:  # say why the request is dropped (an idle connection just closes)
                    self._refuse(HTTPError(HTTPStatus.REQUEST_TIMEOUT, "request not received in time"))
                return
            except OSError:
                return
            keep = self.keep_alive
            if req is None or not self._answer(req, close=not keep) or not keep:
                return
            leftover, closed = self.conn.trailing_data  # a pipelined request's first bytes, or the client's EOF
            self.conn = _parser()
            if leftover:
                self.conn.receive_data(leftover)
            if closed:
                self.conn.receive_data(b"")

    def _read_request(self, deadline: float) -> Request | None:
        """The next whole request, admitted (head and body) by ``deadline``; None if the client closed first."""
        self.begun, self.head_request = bool(self.conn.trailing_data[0]), False  # begun: pipelined bytes read
        try:
            if not self.begun:
                self._receive(deadline)  # (h11 has nothing to parse yet)
            head = self._next_event(deadline)
            if not isinstance(head, h11.Request):
                return None  # ConnectionClosed, between requests
            self.head_request, self.keep_alive = head.method == b"HEAD", _keep_alive(head)
            req = admit(head)
            check_origin(req, self.server.port)
            if self.conn.they_are_waiting_for_100_continue and req.content_length:
                self._write(self.conn.send(h11.InformationalResponse(status_code=100, headers=[])))
            body = bytearray()
            while isinstance(event := self._next_event(deadline), h11.Data):
                body += event.data
            req.body = bytes(body)  # event is EndOfMessage: h11 framed exactly Content-Length bytes
            return req
        except h11.RemoteProtocolError as exc:
            raise HTTPError(HTTPStatus(exc.error_status_hint), f"malformed request: {str(exc)[:200]}") from None

    def _next_event(self, deadline: float) -> h11.Event:
        """h11's next event, receiving as needed; each receive bounded by what is left until ``deadline``."""
        while not isinstance(event := self.conn.next_event(), h11.Event):
            if event is h11.PAUSED:  # a protocol switch (Upgrade) is pending: not spoken here
                raise HTTPError(HTTPStatus.BAD_REQUEST, "protocol switch not supported")
            self._receive(deadline)
        return event

    def _receive(self, deadline: float) -> None:
        """Hand h11 what the client sends next, waiting no later than ``deadline``."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request not received in time")
        self.sock.settimeout(left)
        data = self.sock.recv(RECV_SIZE)
        self.begun = self.begun or bool(data)
        self.conn.receive_data(data)  # b"": the client closed its side

    def _answer(self, req: Request, *, close: bool) -> bool:
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
        if log.isEnabledFor(logging.INFO):  # a disabled log costs no formatting of its arguments
            log.info('%s "%s %s %s" %d', self.client, req.method, req.target[:200], req.version, status)
        return self._write(_frame(status, body, close=close))

    def _write(self, data: bytes) -> bool:
        try:
            self.sock.settimeout(self.server.request_timeout)
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def _refuse(self, exc: HTTPError) -> None:
        """Answer ``exc`` and close; discard (a bounded amount of) what the client still sends, so that the
        close does not reset the connection before it reads the answer."""
        log.info("%s refused: %d %s", self.client, exc.status, exc.message)
        if not self._write(_frame(exc.status, _error(exc), close=True, head=self.head_request)):
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(0.5)
            end, left = time.monotonic() + 1.0, 1 << 20
            while left > 0 and time.monotonic() < end and (chunk := self.sock.recv(min(left, RECV_SIZE))):
                left -= len(chunk)


def _parser() -> h11.Connection:
    """h11 reading one request (the next one gets a fresh parser, fed what arrived after this one)."""
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)


def _busy() -> bytes:
    exc = HTTPError(HTTPStatus.SERVICE_UNAVAILABLE, "too many connections; retry later")
    return _frame(exc.status, _error(exc), close=True)


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
        self.request_timeout = request_timeout
        try:
            self.listener = socket.create_server((HOST, state.port), backlog=BACKLOG)  # SO_REUSEADDR on POSIX
        except OSError as exc:
            self.instance.log.close()
            if self.instance.log2 is not None:
                self.instance.log2.close()
            raise OperationalError(f"cannot serve on {HOST}:{state.port}: {exc.strerror}", port=state.port) from None
        self.listener.setblocking(False)  # accept only what the selector saw arrive; a client gone since is skipped
        self.port: int = self.listener.getsockname()[1]
        self._slots = threading.BoundedSemaphore(max_connections)
        self._wake_r, self._wake_w = socket.socketpair()  # stop() wakes the accept loop through it
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()

    def start(self) -> InstanceServer:
        self._stopped.clear()  # a stop() right after start() waits for the loop it starts
        threading.Thread(target=self.serve_forever, name="instance-accept", daemon=True).start()
        return self

    def serve_forever(self) -> None:
        """Accept connections until :meth:`stop`: each served in its own thread while a slot is free."""
        self._stopped.clear()
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.listener, selectors.EVENT_READ)
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._stopping.is_set():
                    if any(key.fileobj is self.listener for key, _ in selector.select()):
                        self._accept()
        finally:
            self._stopped.set()

    def _accept(self) -> None:
        try:
            sock, address = self.listener.accept()
        except OSError:  # the client went away before it was accepted
            return
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                sock.setblocking(False)
                sock.send(_busy())  # a fresh socket's send buffer takes it whole
            sock.close()
            return
        threading.Thread(target=self._serve, args=(sock, address[0]), daemon=True).start()

    def _serve(self, sock: socket.socket, client: str) -> None:
        try:
            _Connection(self, sock, client).serve()
        except Exception:
            log.exception("connection from %s failed", client)
        finally:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            sock.close()
            self._slots.release()

    def stop(self) -> None:
        """Stop accepting (connections being served finish on their own) and close the log."""
        self._stopping.set()
        self._wake_w.send(b"\0")
        self._stopped.wait()
        for sock in (self.listener, self._wake_r, self._wake_w):
            sock.close()
        self.instance.log.close()
        if self.instance.log2 is not None:
            self.instance.log2.close()
