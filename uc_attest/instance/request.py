"""What the instance admits of a request: the policy applied to a request head that llhttp has parsed.

llhttp (Node's HTTP/1.x parser, through MagicStack's httptools binding, the parser under uvicorn) reads the
bytes in its strict mode: request line, headers, Content-Length framing, keep-alive and pipelining. It
refuses what would let two readers disagree on where a request ends: a Content-Length that is not plain
decimal, repeated (even with the same value) or sent with a Transfer-Encoding, a Transfer-Encoding it cannot
frame, a bare CR or LF or a NUL in the head, a folded header line (obs-fold, which RFC 9112 5.2 lets a server
refuse), a method it does not know, a target with a space or a control character. :func:`admit` then
refuses, before any of the body is read, what this server does not take: a version other than HTTP/1.0 and
1.1 (505; a request line without a version, HTTP/0.9, 400), more than :data:`MAX_HEADERS` headers or a head
over :data:`MAX_HEAD` bytes (431), an HTTP/1.1 request without Host or any request with two (400, RFC 9112
3.2), a target that is not a path (400), any Transfer-Encoding (chunked: 411, send a Content-Length; another
coding: 501), a body over :data:`MAX_BODY` (413) and a method other than GET and POST (501). Every refusal is
an :class:`HTTPError` carrying its status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus

#: Largest request body read; larger declared lengths get 413 before the body is read.
MAX_BODY = 8 << 20
#: Bytes of a request head (request line and headers) over which it is answered 431: once it is complete
#: (:func:`admit`), and while it still arrives (the server counts the bytes of each read, a head that began
#: within a read after the previous request's end from the next read), so no head over MAX_HEAD plus one read
#: of the socket is taken.
MAX_HEAD = 16 << 10
MAX_HEADERS = 100
METHODS = ("GET", "POST")
VERSIONS = ("1.0", "1.1")
#: Optional whitespace (RFC 9110 5.6.3) that llhttp leaves at the end of a header value.
_OWS = b" \t"


class HTTPError(Exception):
    """A request the server refuses; ``status`` is the answer."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Request:
    """An admitted request: method, target (path and query), version, headers by lower-case name (the first
    of repeated ones), and the body once read."""

    method: str
    target: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_length: int = 0


def admit(method: bytes, target: bytes, version: str, fields: list[tuple[bytes, bytes]]) -> Request:
    """The request of a head llhttp parsed (its method, target, version such as ``"1.1"`` and header fields in
    order), or HTTPError for what this server refuses (see the module's doc)."""
    if version not in VERSIONS:
        if version == "0.9":  # llhttp's reading of a request line without a version, or an explicit HTTP/0.9
            raise HTTPError(HTTPStatus.BAD_REQUEST, "HTTP/0.9 (a request line without a version) is not spoken")
        raise HTTPError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"unsupported version HTTP/{version}")
    if len(fields) > MAX_HEADERS:
        raise HTTPError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"more than {MAX_HEADERS} headers")
    # the head's size, delimiters counted at their least (a head that arrived whole in one read is counted here)
    if len(method) + len(target) + sum(len(name) + len(value) + 3 for name, value in fields) + 14 > MAX_HEAD:
        raise HTTPError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"request head over {MAX_HEAD} bytes")
    # llhttp has checked the method is one it knows, the target has no space or control byte, the names are
    # tokens (ASCII) and the values hold no CR, LF or NUL; a value's other bytes are ISO-8859-1 (obs-text)
    path = target.decode("latin-1")
    if not path.startswith("/") or not path.isascii():  # absolute-form, authority-form, asterisk-form
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad request target {path[:100]!r}: expected a path")
    if path.startswith("//"):
        path = "/" + path.lstrip("/")  # as the stdlib does (gh-87389)
    req = Request(method.decode("ascii"), path, "HTTP/" + version)
    headers, hosts = req.headers, 0
    for name, value in fields:
        key = name.decode("latin-1").lower()
        hosts += key == "host"
        headers.setdefault(key, value.rstrip(_OWS).decode("latin-1"))
    if hosts > 1:
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"{hosts} Host headers: a request has at most one")
    if hosts == 0 and version == "1.1":
        raise HTTPError(HTTPStatus.BAD_REQUEST, "an HTTP/1.1 request without Host")
    if "transfer-encoding" in headers:
        if headers["transfer-encoding"].lower() == "chunked":
            raise HTTPError(HTTPStatus.LENGTH_REQUIRED, "Transfer-Encoding is not accepted: send a Content-Length")
        raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, "a transfer coding other than chunked is not implemented")
    req.content_length = int(headers.get("content-length", "0"))  # llhttp checked it: digits, once, < 2**64
    if req.content_length > MAX_BODY:
        raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {MAX_BODY} bytes")
    if req.method not in METHODS:
        raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, f"unsupported method {req.method[:20]!r}")
    return req
