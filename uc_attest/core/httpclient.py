"""The one HTTP policy of the registry, Rekor v1 and tile-log clients, over ``requests``.

* Environment: proxies from ``http_proxy`` / ``https_proxy`` / ``no_proxy`` (as urllib read them before), nothing
  else: no ``.netrc`` credentials, no ``REQUESTS_CA_BUNDLE``, no cookies. TLS trusts OpenSSL's default store (the
  system's, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), falling back to requests' own bundle where there is none.
* No automatic retries (the log clients retry what is transient themselves), one connection per request
  (``Connection: close``), bytes as served (``Accept-Encoding: identity``: digests are over what arrives).
* Redirects are followed here, not by requests: 301, 302, 303, 307 and 308, at most :data:`MAX_REDIRECTS`; GET and
  HEAD keep their method, POST follows 301-303 as a GET without its body, anything else is not followed (the
  caller sees the 3xx). Only http(s) targets, never https to http. Credentials (the ``Authorization`` header) go
  only to the origin (scheme, host, port) of the URL asked for: once a redirect leaves it they are dropped for
  good, so storage a registry redirects to (S3, a CDN) never sees them.
* Every request has a connect and a read timeout; a body is read in pieces of one socket read each within a total
  :class:`~uc_attest.core.netio.Deadline` (a peer trickling bytes is cut off), never past its cap, and a
  ``Content-Length`` over the cap is refused before any of the body is read.

Failures are :class:`HttpError` subclasses with one-line messages; each client maps them to its own errors.
"""

from __future__ import annotations

import http.cookiejar
import ssl
import urllib.parse
from collections.abc import Iterator
from http import HTTPMethod
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from .netio import Deadline, read_piece

if TYPE_CHECKING:  # imported where first used: a verification that asks no log never loads them (~40 ms)
    import requests

#: Redirects followed one after another before the answer is refused (urllib's limit, kept).
MAX_REDIRECTS = 10
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CONTENT_HEADERS = frozenset({"content-length", "content-type"})  # dropped with the body on a redirect

Body = bytes | memoryview | BinaryIO | None


class HttpError(Exception):
    """An HTTP exchange that gave no usable answer; the message is one line."""


class Unreachable(HttpError):
    """No usable answer: refused, timed out, reset, a malformed or cut HTTP answer, a body past its deadline."""


class Refused(HttpError):
    """A redirect this policy does not follow: another scheme, https to http, too many, a target that cannot be
    sent."""


class BadURL(HttpError):
    """A URL asked for (not a redirect's) that cannot be sent."""


class TooLarge(HttpError):
    """A body over its cap (announced by its Content-Length, or read)."""


def origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL: what decides whether credentials may be sent there; None if unparseable,
    or if the stdlib's parser and urllib3's (the one requests connects with) read it differently — e.g.
    ``http://evil\\@registry/`` is registry to one and evil to the other."""
    from urllib3.util import parse_url

    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
        connects = parse_url(url)
    except ValueError:  # urllib3's LocationParseError is a ValueError
        return None
    ours = (parts.scheme.lower(), (parts.hostname or "").lower(), port)
    theirs = ((connects.scheme or "").lower(), (connects.host or "").lower().strip("[]"), connects.port or port)
    return ours if theirs == ours else None


def oneline(exc: BaseException) -> str:
    """``Type: text`` of the innermost cause requests and urllib3 wrap, on one line, bounded."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in reversed(exc.args) if isinstance(a, BaseException)), exc.__cause__)
        if inner is None:
            break
        exc = inner
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text[:200]}"


def _clip(url: str, limit: int = 200) -> str:
    text = repr(url)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _system_trust() -> str | bool:
    """OpenSSL's default CA file or directory (what urllib trusted); True (requests' bundle) where there is none."""
    paths = ssl.get_default_verify_paths()
    return paths.cafile or paths.capath or True


def session() -> requests.Session:
    """A session with the policy of this module (see the module doc); use it through :func:`send`."""
    import requests
    from requests.adapters import HTTPAdapter

    s = requests.Session()
    s.trust_env = False  # no .netrc, no REQUESTS_CA_BUNDLE; proxies are read per request by send()
    s.verify = _system_trust()
    s.headers.update({"User-Agent": "uc-attest", "Accept-Encoding": "identity", "Connection": "close"})
    s.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))  # none kept, none sent
    for prefix in ("http://", "https://"):
        s.mount(prefix, HTTPAdapter(max_retries=0))
    return s


def _once(
    s: requests.Session, method: str, url: str, data: Body, headers: dict[str, str], timeout: float
) -> requests.Response:
    """One request, no redirect followed; ValueError for a URL that cannot be sent, Unreachable otherwise."""
    import requests
    import urllib3

    try:
        return s.request(
            method,
            url,
            data=data,
            headers=headers,
            timeout=(timeout, timeout),
            allow_redirects=False,
            stream=True,
            proxies=requests.utils.get_environ_proxies(url),
        )
    except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema):
        raise
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise Unreachable(oneline(exc)) from None


class Hop(NamedTuple):
    """The request a redirect leads to."""

    method: str
    url: str
    authorization: str | None


def redirect(method: str, url: str, code: int, location: str | None, authorization: str | None) -> Hop | None:
    """The request that answer ``code`` (Location ``location``) to ``method url`` leads to under this policy: None
    when it is not followed (not a redirect, no Location, a method that is not redirected), Refused when it is
    refused (another scheme, https to http); the credentials only while the origin stays the same."""
    if code not in REDIRECTS or not location:
        return None
    try:
        target = urllib.parse.urljoin(url, location)
        scheme = urllib.parse.urlsplit(target).scheme.lower()
    except ValueError:  # an unclosed or invalid IPv6 bracket, ...: urllib's parser refuses it
        raise Refused(f"HTTP {code} redirect to {_clip(location)} refused: not a valid URL") from None
    if scheme not in ("http", "https"):
        raise Refused(f"HTTP {code} redirect to {_clip(target)} refused: only http(s) redirects are followed")
    if origin(target) is None:
        raise Refused(f"HTTP {code} redirect to {_clip(target)} refused: not a valid URL")
    if scheme == "http" and urllib.parse.urlsplit(url).scheme.lower() == "https":
        raise Refused(f"HTTP {code} redirect to {_clip(target)} refused: https is not followed to http")
    if method not in (HTTPMethod.GET, HTTPMethod.HEAD) and not (method == HTTPMethod.POST and code in (301, 302, 303)):
        return None  # the caller sees the 3xx
    again = HTTPMethod.HEAD if method == HTTPMethod.HEAD else HTTPMethod.GET
    return Hop(again, target, authorization if origin(target) == origin(url) else None)


def send(
    s: requests.Session,
    method: str,
    url: str,
    *,
    timeout: float,
    data: Body = None,
    headers: dict[str, str] | None = None,
    authorization: str | None = None,
) -> requests.Response:
    """The answer to ``method url`` after the redirects :func:`redirect` follows (at most MAX_REDIRECTS), its body
    not yet read (read it with :func:`read_body` or :func:`stream`; close it). ``authorization`` (or an
    Authorization header) is sent to ``url``'s origin only: once a redirect leaves it, never again.
    Unreachable, Refused (a redirect), BadURL (``url`` itself)."""
    hop_headers = {k: v for k, v in (headers or {}).items() if k.lower() != "authorization"}
    given = [v for k, v in (headers or {}).items() if k.lower() == "authorization"]
    authorization = authorization or (given[0] if given else None)  # under the same rule, wherever it was given
    for hop in range(MAX_REDIRECTS + 1):
        credentials = {"Authorization": authorization} if authorization else {}
        try:
            resp = _once(s, method, url, data, {**hop_headers, **credentials}, timeout)
        except ValueError as exc:  # requests' InvalidURL and friends, a control character in the URL
            if hop:
                raise Refused(f"redirect to {_clip(url)} refused: {oneline(exc)}") from None
            raise BadURL(f"{_clip(url)}: {oneline(exc)}") from None
        try:
            nxt = redirect(method, url, resp.status_code, resp.headers.get("Location"), authorization)
        except Refused:
            resp.close()
            raise
        if nxt is None:
            return resp
        resp.close()
        if hop == MAX_REDIRECTS:
            raise Refused(f"HTTP {resp.status_code} redirect refused: more than {MAX_REDIRECTS} redirects")
        if nxt.method != method or data is not None:  # the body is not sent again, nor its headers
            data = None
            hop_headers = {k: v for k, v in hop_headers.items() if k.lower() not in _CONTENT_HEADERS}
        method, url, authorization = nxt
    raise AssertionError("unreachable")


def content_length(resp: requests.Response) -> int | None:
    """The body length the answer announces (None: not announced, or not a number)."""
    length = getattr(resp.raw, "length_remaining", None)
    return length if isinstance(length, int) else None


def stream(resp: requests.Response, limit: int, deadline: Deadline) -> Iterator[bytes]:
    """The body in pieces of at most one socket read each, ``limit + 1`` bytes at most in all (one more than
    allowed: the caller says "too large"), within ``deadline``; Unreachable when the exchange breaks (cut short,
    malformed chunks, timeout) or outlasts the deadline."""
    import requests
    import urllib3

    got = 0
    while got <= limit:
        try:
            piece = read_piece(resp.raw, limit + 1 - got, deadline)
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError, ValueError) as exc:
            raise Unreachable(oneline(exc)) from None
        if not piece:
            return
        got += len(piece)
        yield piece


def read_body(resp: requests.Response, limit: int, deadline: Deadline) -> bytes:
    """The whole body, at most ``limit`` bytes: TooLarge when its Content-Length says more (nothing read) or
    more arrives; Unreachable as :func:`stream`."""
    announced = content_length(resp)
    if announced is not None and announced > limit:
        raise TooLarge(f"Content-Length {announced} is over the limit of {limit} bytes")
    data = b"".join(stream(resp, limit, deadline))
    if len(data) > limit:
        raise TooLarge(f"more than the limit of {limit} bytes")
    return data


def peek(resp: requests.Response, n: int, seconds: float = 5.0) -> bytes:
    """Up to the first ``n`` bytes of the body, for an error message; what arrived if the exchange breaks."""
    out = b""
    try:
        for piece in stream(resp, n, Deadline(seconds, what="error detail")):
            out += piece
    except HttpError:
        pass
    return out[:n]
