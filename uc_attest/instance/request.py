"""The instance's HTTP/1.x request parser: strict about what decides where a request ends.

A request is a request line (``METHOD /path HTTP/1.0|1.1``), at most :data:`MAX_HEADERS` header lines of
at most :data:`MAX_LINE` bytes, a blank line, then a body of exactly ``Content-Length`` bytes. What would
let two readers disagree on the body's end is refused before any of the body is read: a Content-Length
that is not a plain decimal (``-1``, ``+5``, ``0x10``, empty), repeated with different values, or above
the body limit (413), and any ``Transfer-Encoding`` (411: chunked bodies are not accepted). Every refusal
is a :class:`HTTPError` carrying its 4xx/5xx status; the parser never raises anything else for bad
input (an I/O error or timeout of the socket propagates as ``OSError``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import BinaryIO

#: Largest request body read; larger declared lengths get 413 before the body is read.
MAX_BODY = 8 << 20
MAX_HEADERS, MAX_LINE = 100, 65536
METHODS = ("GET", "POST")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token (method, header name)
_DIGITS = re.compile(r"[0-9]{1,19}")
_TARGET = re.compile(r"/[\x21-\x7e]*")  # origin-form, visible ASCII only


class HTTPError(Exception):
    """A request the server refuses; ``status`` is the answer (the connection is closed after it)."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Request:
    """A parsed request: method, target (path and query), version, headers by lower-case name (the first
    of repeated ones), and whether the connection stays open after the answer."""

    method: str
    target: str
    version: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    keep_alive: bool = True
    content_length: int = 0

    @property
    def expects_continue(self) -> bool:
        return self.version == "HTTP/1.1" and self.headers.get("expect", "").lower() == "100-continue"


def _line(rfile: BinaryIO, too_long: HTTPStatus) -> bytes:
    line = rfile.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise HTTPError(too_long, "line too long")
    return line


def read_head(rfile: BinaryIO) -> Request | None:
    """The request line and headers (not the body); None at a clean end of stream before a request."""
    line = _line(rfile, HTTPStatus.REQUEST_URI_TOO_LONG)
    if line in (b"\r\n", b"\n"):  # one empty line before a request is tolerated (RFC 9112 2.2)
        line = _line(rfile, HTTPStatus.REQUEST_URI_TOO_LONG)
    if not line:
        return None
    request_line = line.decode("iso-8859-1").rstrip("\r\n")
    words = request_line.split(" ")
    if len(words) == 3 and words[2].startswith("HTTP/") and words[2] >= "HTTP/2":
        raise HTTPError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"unsupported version {words[2][:20]!r}")
    if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1") or not _TOKEN.fullmatch(words[0]):
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad request line {request_line[:100]!r}")
    method, target, version = words
    if not _TARGET.fullmatch(target):
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad request target {target[:100]!r}")
    if target.startswith("//"):
        target = "/" + target.lstrip("/")  # as the stdlib does (gh-87389)
    req = Request(method, target, version)
    lengths = _read_headers(rfile, req.headers)
    connection = req.headers.get("connection", "").lower()
    req.keep_alive = connection == "keep-alive" if version == "HTTP/1.0" else connection != "close"
    if "transfer-encoding" in req.headers:
        raise HTTPError(HTTPStatus.LENGTH_REQUIRED, "Transfer-Encoding is not accepted: send a Content-Length")
    req.content_length = _content_length(lengths)
    if method not in METHODS:
        raise HTTPError(HTTPStatus.NOT_IMPLEMENTED, f"unsupported method {method[:20]!r}")
    return req


def _read_headers(rfile: BinaryIO, out: dict[str, str]) -> list[str]:
    """Fill ``out`` from the header block up to its blank line; every Content-Length value seen."""
    lengths: list[str] = []
    last = ""
    for _ in range(MAX_HEADERS + 1):
        line = _line(rfile, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)
        if line in (b"\r\n", b"\n"):
            return lengths
        if not line.endswith(b"\n"):
            raise HTTPError(HTTPStatus.BAD_REQUEST, "header block cut short")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if "\r" in text or "\x00" in text:  # a bare CR or a NUL inside a line: read differently by others
            raise HTTPError(HTTPStatus.BAD_REQUEST, "control character in a header line")
        if text[:1] in (" ", "\t"):  # an obsolete folded continuation line (RFC 9112 5.2)
            if not last or last == "content-length":
                raise HTTPError(HTTPStatus.BAD_REQUEST, "a folded line with no header to continue")
            out[last] += " " + text.strip()
            continue
        name, sep, value = text.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"malformed header line {text[:60]!r}")
        last, value = name.lower(), value.strip(" \t")
        if last == "content-length":
            lengths.extend(v.strip(" \t") for v in value.split(","))
        out.setdefault(last, value)
    raise HTTPError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, f"more than {MAX_HEADERS} headers")


def _content_length(values: list[str]) -> int:
    if not values:
        return 0
    if any(not _DIGITS.fullmatch(v) for v in values) or len(set(values)) != 1:
        raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad Content-Length {', '.join(values)[:60]!r}")
    n = int(values[0])
    if n > MAX_BODY:
        raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {MAX_BODY} bytes")
    return n


def read_body(rfile: BinaryIO, req: Request) -> None:
    """Read exactly the declared body into ``req.body``; 400 if the stream ends first."""
    body = rfile.read(req.content_length) if req.content_length else b""
    if len(body) != req.content_length:
        raise HTTPError(HTTPStatus.BAD_REQUEST, "request body shorter than its Content-Length")
    req.body = bytes(body)


def parse(rfile: BinaryIO) -> Request | None:
    """A whole request (head and body) from ``rfile``; None at a clean end of stream."""
    req = read_head(rfile)
    if req is not None:
        read_body(rfile, req)
    return req
