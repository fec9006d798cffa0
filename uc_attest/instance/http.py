"""HTTP service of the embedded instance on 127.0.0.1: the server, its threads, start and stop.

What it stands on: llhttp, Node's HTTP/1.x parser, through httptools (MagicStack's binding, the parser under
uvicorn), reads every request in its strict mode (request line, headers, Content-Length framing, keep-alive,
pipelining: one parser per connection, whose callbacks queue each whole request), so that the code here
parses nothing; answers have one fixed form whose every header byte is ours (:func:`_frame`: a status line and
five headers); plain sockets and one thread per connection carry the bytes. (h11 served before it: its
pure-Python events cost ~45 us a request, a tenth of the server's time per log entry, where llhttp takes 2 us,
callbacks included.) Why no web framework: the instance is a single-user, loopback-only dev/air-gap service;
correctness lives in the log store (serialized, durable appends), not in the web layer. The pieces:
:mod:`.request` admits a parsed request (version, Host, target, framing, body limit), :mod:`.routes` maps it
to an endpoint of :class:`~.routes.Instance`, and this module serves connections, bounded so that no client
can exhaust the process:

* one thread per connection, at most ``max_connections`` at once; a connection beyond that is answered
  503 at once and closed, never queued in the process;
* a whole request (head and body) must arrive within ``request_timeout`` seconds, however slowly its bytes
  trickle in (a deadline, not a per-read timeout), and an idle keep-alive connection is closed after it;
  a request head over :data:`~.request.MAX_HEAD` bytes gets 431, counted while it arrives (so no more than
  that and one read of the socket is held) and measured once complete;
* a request that llhttp or :func:`~.request.admit` refuses is answered with its 4xx status and the connection
  closed, before any of a refused body is read: the head is admitted in llhttp's callback the moment it is
  complete, and a refusal stops the parser there; requests pipelined before it are answered first;
* keep-alive (RFC 9112 9.3): an HTTP/1.1 request without a ``close`` token in Connection keeps the
  connection; an HTTP/1.0 one closes it (its ``keep-alive`` is not honoured). ``Expect: 100-continue`` gets
  the interim 100 once the head is admitted, while no byte of the body has come; a protocol switch
  (``Upgrade``) is never made: the request is answered in HTTP/1.1 and the connection closed (with a body:
  400);
* what a web page could make a browser send is answered 403 (:func:`check_origin`): a Host that is not the
  served address (DNS rebinding) and a cross-origin request (``Origin``, ``Sec-Fetch-Site``). The clients
  of the instance (sigstore-python, the sigstore CLI, sigstore-js on Node, uc-attest) send
  ``Host: 127.0.0.1:PORT`` and no Origin.
"""

from __future__ import annotations

import collections
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

import httptools

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
      browser and is ignored, as a missing Host is (HTTP/1.0 only: admit refuses an HTTP/1.1 request without).
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
    a header), then the body (none for a HEAD request: ``head``). llhttp reads the requests; framing an answer
    of this fixed form needs no library (h11's event machinery cost 25-40 us an answer, this 1.3 us)."""
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


#: The interim answer to ``Expect: 100-continue``.
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Reader:
    """llhttp's callbacks on one connection. Each request's head is admitted (:func:`~.request.admit`, then
    :func:`check_origin`) the moment it is complete, before a byte of its body is taken: a refusal is kept in
    ``refusal`` and raised, which stops the parser there. Each whole request is queued in ``ready`` with
    whether the connection may serve another after it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.parser = httptools.HttpRequestParser(self)
        self.ready: collections.deque[tuple[Request, bool]] = collections.deque()
        self.begun = False  # whether a request has begun and is not yet complete
        self.req: Request | None = None  # the admitted request whose body is being read
        self.head_request = False  # whether the current request is a HEAD (refused: 501, answered without a body)
        self.keep_alive = False  # whether the current request lets the connection serve another
        self.continue_due = False  # whether its client waits for 100 Continue before it sends the body
        self.marks = 0  # heads and requests completed so far (where the count of a head's bytes restarts)
        self.refusal: HTTPError | None = None
        self.url, self.fields, self.body = b"", list[tuple[bytes, bytes]](), list[bytes]()

    def on_message_begin(self) -> None:
        self.begun, self.head_request = True, False
        self.url, self.fields, self.body = b"", [], []

    def on_url(self, url: bytes) -> None:
        self.url += url  # a target that arrives in pieces comes in pieces

    def on_header(self, name: bytes, value: bytes) -> None:
        self.fields.append((name, value))

    def on_headers_complete(self) -> None:
        self.marks += 1
        parser = self.parser
        method = parser.get_method()
        self.head_request = method == b"HEAD"
        try:
            req = admit(method, self.url, parser.get_http_version(), self.fields)
            check_origin(req, self.port)
            upgrade = parser.should_upgrade()  # Upgrade with Connection: upgrade (CONNECT is refused by admit)
            if upgrade and req.content_length:  # llhttp would not read the body: the bytes are another protocol's
                raise HTTPError(HTTPStatus.BAD_REQUEST, "protocol switch (Upgrade) not supported")
        except HTTPError as exc:
            self.refusal = exc
            raise
        self.req = req
        self.keep_alive = req.version == "HTTP/1.1" and not upgrade and parser.should_keep_alive()
        self.continue_due = (
            req.content_length > 0
            and req.version == "HTTP/1.1"
            and req.headers.get("expect", "").lower() == "100-continue"
        )

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.continue_due = False  # the body has begun: no interim answer is due

    def on_message_complete(self) -> None:
        req = self.req
        assert req is not None  # on_headers_complete admitted it, or raised and stopped the parser
        req.body = b"".join(self.body)  # llhttp framed exactly Content-Length bytes
        self.ready.append((req, self.keep_alive))
        self.marks += 1
        self.req, self.begun, self.continue_due = None, False, False


class _Connection:
    """Serves the requests of one connection in turn (keep-alive) until it closes, fails or is refused."""

    def __init__(self, server: InstanceServer, sock: socket.socket, client: str) -> None:
        self.server, self.sock, self.client = server, sock, client
        self.reader = _Reader(server.port)
        self.failure: HTTPError | None = None  # why no request after those queued can be read
        self.ended = False  # whether no byte after those received is read (the client's EOF, a protocol switch)
        self.head_bytes = 0  # bytes of the current request's head received so far

    def serve(self) -> None:
        # one write per answer, and no wait for the client's delayed ACK between answers
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            try:
                item = self._read_request(time.monotonic() + self.server.request_timeout)
            except HTTPError as exc:
                self._refuse(exc)
                return
            except TimeoutError:
                if self.reader.begun:  # say why the request is dropped (an idle connection just closes)
                    self._refuse(HTTPError(HTTPStatus.REQUEST_TIMEOUT, "request not received in time"))
                return
            except OSError:
                return
            if item is None:
                return
            req, keep = item
            if not self._answer(req, close=not keep) or not keep:
                return

    def _read_request(self, deadline: float) -> tuple[Request, bool] | None:
        """The next whole request, admitted (head and body) by ``deadline``, and whether the connection may
        serve another after it; None if the client closed between requests."""
        reader = self.reader
        while not reader.ready:  # (a request pipelined behind the last one may have been read with it)
            if self.failure is not None:
                raise self.failure
            if self.ended:
                if reader.begun:
                    raise HTTPError(HTTPStatus.BAD_REQUEST, "malformed request: the connection ended within it")
                return None
            if reader.continue_due:  # every request before this one is answered: the interim 100 is next
                reader.continue_due = False
                self.sock.settimeout(self.server.request_timeout)
                self.sock.sendall(_CONTINUE)
            self._receive(deadline)
        return reader.ready.popleft()

    def _receive(self, deadline: float) -> None:
        """Hand llhttp what the client sends next, waiting no later than ``deadline``."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request not received in time")
        self.sock.settimeout(left)
        data = self.sock.recv(RECV_SIZE)
        if not data:  # the client closed its side
            self.ended = True
            return
        reader, marks = self.reader, self.reader.marks
        try:
            reader.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # after the head of an Upgrade request: not read further
            self.ended = True
        except httptools.HttpParserCallbackError as exc:
            if reader.refusal is None:  # an error of ours in a callback, not the client's: logged by _serve
                raise exc.__context__ or exc from None
            self.failure = reader.refusal
        except httptools.HttpParserError as exc:
            self.failure = HTTPError(HTTPStatus.BAD_REQUEST, f"malformed request: {str(exc)[:200]}")
        # the head's bytes: counted while no head or request completes in a read (one that does restarts the
        # count, and what of it follows that is not counted: a pipelined head gets one read of slack)
        if reader.marks != marks or reader.req is not None:
            self.head_bytes = 0
        else:
            self.head_bytes += len(data)
            if self.head_bytes > MAX_HEAD and self.failure is None:
                self.failure = HTTPError(
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"request head over {MAX_HEAD} bytes"
                )

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
        if not self._write(_frame(exc.status, _error(exc), close=True, head=self.reader.head_request)):
            return
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(0.5)
            end, left = time.monotonic() + 1.0, 1 << 20
            while left > 0 and time.monotonic() < end and (chunk := self.sock.recv(min(left, RECV_SIZE))):
                left -= len(chunk)


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
                    "{path}: its trust config names port {configured}; serving on {requested} would start a "
                    "server no client finds (serve without {0}, or {1:=True} to rewrite the trust config "
                    "for {requested})",
                    option=["port", "move"],
                    path=str(state.root),
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
