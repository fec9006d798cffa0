"""A small verifying client of the OCI distribution API (v1.1) over HTTP(S).

HTTP is ``requests`` with the policy of :mod:`uc_attest.core.httpclient` (redirects, credentials kept on their
origin, timeouts, a total deadline and a size cap per answer). Why not a client library (PyPI ``oras``): it
leaves digest checking of pulled blobs and the referrers tag-schema fallback to the caller (docs/oci.md); what
we need is a few hundred lines of the spec — blobs (HEAD, monolithic upload, streamed download checked against
the descriptor), manifests, the referrers API with its fallback, and the two auth flows registries use (Basic,
and Bearer tokens from the realm the registry names). Credentials: ``UC_ATTEST_REGISTRY_USERNAME`` /
``UC_ATTEST_REGISTRY_PASSWORD``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import mmap
import os
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ..core.httpclient import (
    BadURL,
    Refused,
    TooLarge,
    Unreachable,
    origin,
    peek,
    read_body,
    send,
    session,
    stream,
)
from ..core.netio import Deadline
from ..errors import Finding, OperationalError, RegistryMisbehaved, RegistryUnreachable, UsageError, VerificationFailed
from .schema import (
    DIGEST,
    MAX_MANIFEST,
    Descriptor,
    parse_index,
    parse_json,
    short,
)

if TYPE_CHECKING:
    import requests

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
#: An RFC 6750 bearer token (b64token): nothing that could end or extend the Authorization header.
_TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
_REF = re.compile(
    r"^oci://(?P<host>[^/]+)/(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
#: A manifest, tag list or error answer must be complete within this; a blob gets it plus one second per
#: BLOB_MIN_RATE bytes received (a slow honest registry still delivers; a peer trickling bytes is cut off).
ANSWER_DEADLINE_S, BLOB_MIN_RATE = 60.0, 256 << 10


@dataclass(frozen=True)
class Reference:
    """``oci://HOST[:PORT]/REPO[:TAG][@sha256:HEX]``."""

    host: str
    repo: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, text: str) -> Reference:
        m = _REF.match(text)
        if not m:
            raise UsageError(f"{text!r}: not an OCI reference (oci://HOST[:PORT]/REPO[:TAG][@sha256:HEX])")
        return cls(m["host"], m["repo"], m["tag"], m["digest"])

    @property
    def loopback(self) -> bool:
        host = self.host.rsplit(":", 1)[0].strip("[]") if not self.host.startswith("[") else self.host[1:].split("]")[0]
        return is_loopback(host)

    def __str__(self) -> str:
        return (
            f"oci://{self.host}/{self.repo}"
            + (f":{self.tag}" if self.tag else "")
            + (f"@{self.digest}" if self.digest else "")
        )


def is_loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """One repository of one registry, with the auth flow it asks for."""

    def __init__(self, ref: Reference, *, plain_http: bool = False, timeout: float = 60.0) -> None:
        if plain_http and not ref.loopback:
            raise UsageError(
                "{0} is allowed only for loopback addresses, not {host}", option="plain_http", host=ref.host
            )
        self.ref = ref
        self.plain_http = plain_http
        self.base = f"{'http' if plain_http else 'https'}://{ref.host}/v2/{ref.repo}"
        self.origin = origin(self.base)
        self.timeout = timeout
        self._auth: str | None = None
        self._session = session()
        self.uploaded_bytes = 0
        self.uploaded_blobs = 0

    # -- HTTP with the registry's auth flow -----------------------------------------------------------------
    def _credentials(self) -> tuple[str, str] | None:
        user, pw = os.environ.get("UC_ATTEST_REGISTRY_USERNAME"), os.environ.get("UC_ATTEST_REGISTRY_PASSWORD")
        return (user, pw or "") if user else None

    def _login(self, challenge: str, scope: str) -> None:
        creds = self._credentials()
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if creds is None:
                raise OperationalError(
                    f"{self.ref.host}: authentication required for {scope} (Basic): set "
                    "UC_ATTEST_REGISTRY_USERNAME and UC_ATTEST_REGISTRY_PASSWORD"
                )
            self._auth = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            return
        if scheme.lower() != "bearer":
            raise OperationalError(f"{self.ref.host}: unsupported authentication scheme {scheme!r} for {scope}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.get("realm")
        if not realm:
            raise OperationalError(f"{self.ref.host}: Bearer challenge without a realm for {scope}")
        self._check_realm(realm, scope)
        query = urllib.parse.urlencode(
            {k: v for k, v in (("service", fields.get("service")), ("scope", fields.get("scope", scope))) if v}
        )
        basic = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode() if creds else None
        what = f"{self.ref.host}: token request for {scope}"
        url = realm + ("&" if "?" in realm else "?") + query
        try:
            resp = send(self._session, "GET", url, timeout=self.timeout, authorization=basic)
        except (Refused, BadURL) as exc:
            raise RegistryMisbehaved(f"{what}: {exc}") from None
        except Unreachable as exc:
            raise RegistryUnreachable(f"{what} failed: {exc}") from None
        with resp:
            if not 200 <= resp.status_code < 300:
                raise OperationalError(f"{what} failed: HTTP {resp.status_code}")
            body = parse_json(self.read_limited(resp, MAX_MANIFEST, what), f"{what}: answer")
        token = body.get("token") or body.get("access_token")
        if not isinstance(token, str) or not _TOKEN.match(token):
            raise RegistryMisbehaved(f"{what}: the token service gave no usable token (token: {short(token, 40)})")
        self._auth = f"Bearer {token}"

    def _check_realm(self, realm: str, scope: str) -> None:
        """Only an https realm is asked for a token, or an http one on a loopback host with --plain-http: never a
        file:, ftp: or data: URL, never a plain-http service elsewhere (the credentials go there)."""
        try:
            parts = urllib.parse.urlsplit(realm)
            scheme, host, _port = parts.scheme.lower(), parts.hostname, parts.port  # port: ValueError if not a number
        except ValueError:
            scheme, host = "", None
        if not host or not (scheme == "https" or (scheme == "http" and self.plain_http and is_loopback(host))):
            raise RegistryMisbehaved(
                "{host}: Bearer realm {realm} refused for {scope}: only an https realm (or http on a loopback host "
                "with {0}) is followed",
                option="plain_http",
                host=self.ref.host,
                realm=short(realm, 200),
                scope=scope,
            )

    @staticmethod
    def read_limited(resp: requests.Response, limit: int, what: str) -> bytes:
        """At most ``limit`` bytes of a response within ANSWER_DEADLINE_S; RegistryMisbehaved when it announces or
        has more, RegistryUnreachable when the HTTP exchange breaks (truncated, malformed chunked encoding,
        timeout) or outlasts the deadline (a peer trickling bytes)."""
        try:
            return read_body(resp, limit, Deadline(ANSWER_DEADLINE_S, what=what))
        except TooLarge:
            raise RegistryMisbehaved(f"{what}: too large (over the {limit >> 20} MiB limit)") from None
        except Unreachable as exc:
            raise RegistryUnreachable(f"{what}: broken answer: {exc}") from None

    def request(
        self,
        method: str,
        url: str,
        *,
        data: bytes | memoryview | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200,),
        scope: str = "pull",
    ) -> requests.Response:
        """The response (open; the caller reads and closes it) of one request, logging in once on a 401."""
        full_scope = f"repository:{self.ref.repo}:{scope}"
        full_url = url if url.startswith(("http://", "https://")) else self.base + url
        where = f"{self.ref.host}: {method} {short(full_url, 200)}"
        for attempt in (0, 1):
            auth = self._auth if origin(full_url) == self.origin else None  # credentials only to the registry
            try:
                resp = send(
                    self._session,
                    method,
                    full_url,
                    data=data,
                    headers=headers,
                    authorization=auth,
                    timeout=self.timeout,
                )
            except (Refused, BadURL) as exc:
                raise RegistryMisbehaved(f"{where}: {exc}") from None
            except Unreachable as exc:
                raise RegistryUnreachable(f"{where} failed: {exc}") from None
            if resp.status_code == 401:
                resp.close()
                if attempt:
                    raise OperationalError(f"{self.ref.host}: authentication failed for {full_scope}")
                self._login(resp.headers.get("WWW-Authenticate", ""), full_scope)
                if data is not None and not isinstance(data, bytes | memoryview):
                    data.seek(0)  # a file sent again from its start
                continue
            if resp.status_code in ok:
                return resp
            with resp:
                detail = " ".join(peek(resp, 400).decode("utf-8", "replace").split())
            raise OperationalError(f"{where} -> HTTP {resp.status_code} {detail}".rstrip())
        raise AssertionError("unreachable")

    # -- blobs ----------------------------------------------------------------------------------------------
    def has_blob(self, digest: str) -> bool:
        resp = self.request("HEAD", f"/blobs/{digest}", ok=(200, 404))
        resp.close()
        return resp.status_code == 200

    def push_blob(self, digest: str, size: int, source: Path | bytes) -> bool:
        """Upload a blob unless the registry has it; True when bytes were sent."""
        if self.has_blob(digest):
            return False
        resp = self.request("POST", "/blobs/uploads/", data=b"", ok=(202,), scope="pull,push")
        location = resp.headers.get("Location")
        resp.close()
        url = urllib.parse.urljoin(self.base.split("/v2/")[0] + "/", location or "")
        if not location or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise RegistryMisbehaved(
                f"{self.ref.host}: upload session: Location header {short(location)} is not an http(s) URL"
            )
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        if isinstance(source, bytes):
            self.request("PUT", url, data=source, headers=headers, ok=(201,), scope="pull,push").close()
        elif size == 0:
            self.request("PUT", url, data=b"", headers=headers, ok=(201,), scope="pull,push").close()
        else:  # a read-only map: sent in one sendall, not in blocks; the view released before the map closes
            with (
                open(source, "rb") as fh,
                mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm,
                memoryview(mm) as v,
            ):
                self.request("PUT", url, data=v, headers=headers, ok=(201,), scope="pull,push").close()
        self.uploaded_bytes += size
        self.uploaded_blobs += 1
        return True

    def blob_chunks(self, descriptor: Descriptor, what: str) -> Iterator[bytes]:
        """The blob's bytes, streamed; VerificationFailed naming ``what`` when its size or digest is not the
        descriptor's (raised after the last chunk, before the caller commits anything). At most one byte more
        than the descriptor's size is read."""
        digest, size = descriptor.digest, descriptor.size
        h, got = hashlib.sha256(), 0
        where = f"{self.ref.host}: {what}: blob {digest}"
        deadline = Deadline(ANSWER_DEADLINE_S, BLOB_MIN_RATE, where)
        with self.request("GET", f"/blobs/{digest}") as resp:
            try:
                for chunk in stream(resp, size, deadline):
                    got += len(chunk)
                    if got > size:
                        break
                    h.update(chunk)
                    yield chunk
            except Unreachable as exc:
                raise RegistryUnreachable(f"{where}: broken answer: {exc}") from None
        actual = "sha256:" + h.hexdigest()
        if got != size or actual != digest:
            raise VerificationFailed(
                [Finding(what, "blob does not match its descriptor", f"{digest} ({size} B)", f"{actual} ({got} B)")]
            )

    # -- manifests ------------------------------------------------------------------------------------------
    def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        """(bytes, digest, media type) of a manifest by tag or digest; a digest is checked against the bytes."""
        resp = self.request("GET", f"/manifests/{reference}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
        with resp:
            raw = self.read_limited(resp, MAX_MANIFEST, f"{self.ref.host}: manifest {reference}")
            mtype = resp.headers.get("Content-Type", "")
        digest = sha256_digest(raw)
        if DIGEST.match(reference) and digest != reference:
            raise VerificationFailed(
                [Finding(f"manifest {reference}", "served bytes do not match the digest asked for", reference, digest)]
            )
        return raw, digest, mtype

    def find_manifest(self, reference: str) -> bytes | None:
        resp = self.request(
            "GET", f"/manifests/{reference}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}, ok=(200, 404)
        )
        with resp:
            if resp.status_code != 200:
                return None
            return self.read_limited(resp, MAX_MANIFEST, f"{self.ref.host}: manifest {reference}")

    def put_manifest(self, reference: str, raw: bytes, media_type: str) -> tuple[str, bool]:
        """PUT a manifest; (its digest, whether the registry handled its subject — OCI-Subject header)."""
        resp = self.request(
            "PUT",
            f"/manifests/{reference}",
            data=raw,
            headers={"Content-Type": media_type},
            ok=(201,),
            scope="pull,push",
        )
        with resp:
            subject = bool(resp.headers.get("OCI-Subject"))
        return sha256_digest(raw), subject

    def referrers(self, digest: str) -> tuple[Descriptor, ...]:
        """The descriptors of the manifests referring to ``digest``: from the referrers API, or where the
        registry has none, from the ``sha256-<hex>`` tag index (the fallback push maintains)."""
        resp = self.request("GET", f"/referrers/{digest}", headers={"Accept": OCI_INDEX}, ok=(200, 404))
        with resp:
            api = resp.status_code == 200 and resp.headers.get("Content-Type", "").startswith(OCI_INDEX)
            what = f"{self.ref.host}: referrers of {digest}"
            raw = self.read_limited(resp, MAX_MANIFEST, what) if api else self.find_manifest(fallback_tag(digest))
        if raw is None:
            return ()
        return parse_index(raw, what if api else f"{self.ref.host}: tag {fallback_tag(digest)}")


def fallback_tag(digest: str) -> str:
    """The referrers tag schema (OCI distribution 1.1): ``sha256-<hex>``."""
    return digest.replace(":", "-")
