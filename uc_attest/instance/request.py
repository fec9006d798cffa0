"""What the instance admits of a request: the policy applied to a request head that h11 has parsed.

h11 (a well-kept sans-IO HTTP/1.1 implementation) reads the bytes: request line, headers, Content-Length
framing, keep-alive and pipelining. It refuses (400) what would let two readers disagree on where a request
ends: a Content-Length that is not plain decimal or repeated with different values, a missing Host in
HTTP/1.1 or a repeated one, a bare CR or NUL in a header; it refuses a Transfer-Encoding other than chunked
(501) and a head still incomplete after :data:`MAX_HEAD` bytes (431). :func:`admit` then refuses, before
any of the body is read, what this server does not take: a version other than HTTP/1.0 and 1.1 (505), more
than :data:`MAX_HEADERS` headers (431), a target that is not a path (400), any Transfer-Encoding (411: send
a Content-Length), a body over :data:`MAX_BODY` (413) and a method other than GET and POST (501). Every
refusal is an :class:`HTTPError` carrying its status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus

import h11

#: Largest request body read; larger declared lengths get 413 before the body is read.
MAX_BODY = 8 << 20
#: Bytes of an incomplete request head (request line and headers) h11 buffers before it answers 431
#: (``max_incomplete_event_size``), so no head over MAX_HEAD plus one read of the socket is taken.
MAX_HEAD = 16 << 10
MAX_HEADERS = 100
METHODS = ("GET", "POST")
VERSIONS = (b"1.0", b"1.1")


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


def admit(event: h11.Request) -> Request:
    """The request of a head h11 parsed, or HTTPError for what this server refuses (see the module's doc)."""
    if event.http_version not in VERSIONS:
        version = event.http_version.decode("ascii")
        raise HTTPError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"unsupported version HTTP/{version}")
    if len(event.headers) > MAX_HEADERS:
        raise HTTPError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"more than {MAX_HEADERS} headers")
    # h11 has checked the method is a token and the target visible ASCII; headers are lower-cased names
    target = event.target.decode("ascii")
    if not target.startswith("/"):  # absolute-form, authority-form, asterisk-form
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad request target {target[:100]!r}: expected a path")
    if target.startswith("//"):
        target = "/" + target.lstrip("/")  # as the stdlib does (gh-87389)
    req = Request(event.method.decode("ascii"), target, "HTTP/" + event.http_version.decode("ascii"))
    for name, value in event.headers:
        req.headers.setdefault(name.decode("ascii"), value.decode("iso-8859-1"))
    if "transfer-encoding" in req.headers:
        raise HTTPError(HTTPStatus.LENGTH_REQUIRED, "Transfer-Encoding is not accepted: send a Content-Length")
    req.content_length = int(req.headers.get("content-length", "0"))  # h11 checked it: 1 to 20 digits
    if req.content_length > MAX_BODY:
        raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {MAX_BODY} bytes")
    if req.method not in METHODS:
        raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, f"unsupported method {req.method[:20]!r}")
    return req
