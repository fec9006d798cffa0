"""A small verifying client of the OCI distribution API (v1.1) over plain HTTP(S), standard library only.

Why not a client library: PyPI ``oras`` needs ``requests`` and leaves digest checking of pulled blobs
and the referrers tag-schema fallback to the caller; what we need is ~200 lines of the spec — blobs
(HEAD, monolithic upload, streamed download checked against the descriptor), manifests, the referrers
API with its fallback, and the two auth flows registries use (Basic, and Bearer tokens from the realm
the registry names). Credentials: ``UC_ATTEST_REGISTRY_USERNAME`` / ``UC_ATTEST_REGISTRY_PASSWORD``.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import mmap
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import Finding, InvalidInput, OperationalError, UsageError, VerificationFailed

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_REF = re.compile(r"^oci://(?P<host>[^/]+)/(?P<repo>[a-z0-9]+(?:[._/-][a-z0-9]+)*)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
                  r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")  # fmt: skip
CHUNK = 1 << 20


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
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return (
            f"oci://{self.host}/{self.repo}"
            + (f":{self.tag}" if self.tag else "")
            + (f"@{self.digest}" if self.digest else "")
        )


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """One repository of one registry, with the auth flow it asks for."""

    def __init__(self, ref: Reference, *, plain_http: bool = False, timeout: float = 60.0) -> None:
        if plain_http and not ref.loopback:
            raise UsageError(f"--plain-http is allowed only for loopback addresses, not {ref.host}")
        self.ref = ref
        self.base = f"{'http' if plain_http else 'https'}://{ref.host}/v2/{ref.repo}"
        self.timeout = timeout
        self._auth: str | None = None
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
                raise OperationalError(f"{self.ref.host}: authentication required for {scope} (Basic): set "
                                       "UC_ATTEST_REGISTRY_USERNAME and UC_ATTEST_REGISTRY_PASSWORD")  # fmt: skip
            self._auth = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            return
        if scheme.lower() != "bearer":
            raise OperationalError(f"{self.ref.host}: unsupported authentication scheme {scheme!r} for {scope}")
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        realm = fields.get("realm")
        if not realm:
            raise OperationalError(f"{self.ref.host}: Bearer challenge without a realm for {scope}")
        query = urllib.parse.urlencode({k: v for k, v in (("service", fields.get("service")),
                                                          ("scope", fields.get("scope", scope))) if v})  # fmt: skip
        req = urllib.request.Request(f"{realm}?{query}")
        if creds is not None:
            req.add_header("Authorization", "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = json.loads(resp.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise OperationalError(f"{self.ref.host}: token request for {scope} failed: {exc}") from None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise OperationalError(f"{self.ref.host}: the token service gave no token for {scope}")
        self._auth = f"Bearer {token}"

    def request(self, method: str, url: str, *, data: bytes | memoryview | BinaryIO | None = None, headers: dict[str, str] | None = None,
                ok: tuple[int, ...] = (200,), scope: str = "pull") -> Any:  # fmt: skip
        """The response (open; the caller reads and closes it) of one request, logging in once on a 401."""
        full_scope = f"repository:{self.ref.repo}:{scope}"
        for attempt in (0, 1):
            req = urllib.request.Request(url if url.startswith("http") else self.base + url, data=data, method=method)
            for k, v in (headers or {}).items():
                req.add_header(k, v)
            if self._auth:
                req.add_header("Authorization", self._auth)
            try:
                resp = urllib.request.urlopen(req, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                if exc.code == 401 and attempt == 0:
                    self._login(exc.headers.get("WWW-Authenticate", ""), full_scope)
                    if hasattr(data, "seek"):
                        data.seek(0)  # type: ignore[union-attr]
                    continue
                if exc.code == 401:
                    raise OperationalError(f"{self.ref.host}: authentication failed for {full_scope}") from None
                if exc.code in ok:
                    return exc
                detail = exc.read(400).decode("utf-8", "replace").strip()
                raise OperationalError(
                    f"{self.ref.host}: {method} {req.full_url} -> HTTP {exc.code} {detail}"
                ) from None
            except (urllib.error.URLError, OSError) as exc:
                raise OperationalError(f"{self.ref.host}: {method} {req.full_url} failed: {exc}") from None
            if resp.status not in ok:
                resp.close()
                raise OperationalError(f"{self.ref.host}: {method} {req.full_url} -> HTTP {resp.status}")
            return resp
        raise AssertionError("unreachable")

    # -- blobs ----------------------------------------------------------------------------------------------
    def has_blob(self, digest: str) -> bool:
        resp = self.request("HEAD", f"/blobs/{digest}", ok=(200, 404))
        resp.close()
        return _status(resp) == 200

    def push_blob(self, digest: str, size: int, source: Path | bytes) -> bool:
        """Upload a blob unless the registry has it; True when bytes were sent."""
        if self.has_blob(digest):
            return False
        resp = self.request("POST", "/blobs/uploads/", data=b"", ok=(202,), scope="pull,push")
        location = resp.headers["Location"]
        resp.close()
        url = urllib.parse.urljoin(self.base.split("/v2/")[0] + "/", location)
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        if isinstance(source, bytes):
            self.request("PUT", url, data=source, headers=headers, ok=(201,), scope="pull,push").close()
        elif size == 0:
            self.request("PUT", url, data=b"", headers=headers, ok=(201,), scope="pull,push").close()
        else:  # a read-only map: sent in one sendall, not in http.client's 8 KiB blocks
            with open(source, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                self.request("PUT", url, data=memoryview(mm), headers=headers, ok=(201,), scope="pull,push").close()
        self.uploaded_bytes += size
        self.uploaded_blobs += 1
        return True

    def blob_chunks(self, descriptor: dict[str, Any], what: str) -> Iterator[bytes]:
        """The blob's bytes, streamed; VerificationFailed naming ``what`` when its size or digest is not the
        descriptor's (raised after the last chunk, before the caller commits anything)."""
        digest, size = str(descriptor["digest"]), int(descriptor["size"])
        h, got = hashlib.sha256(), 0
        with self.request("GET", f"/blobs/{digest}") as resp:
            while True:
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                got += len(chunk)
                if got > size:
                    break
                h.update(chunk)
                yield chunk
        actual = "sha256:" + h.hexdigest()
        if got != size or actual != digest:
            raise VerificationFailed([Finding(what, "blob does not match its descriptor", f"{digest} ({size} B)",
                                              f"{actual} ({got} B)")])  # fmt: skip

    # -- manifests ------------------------------------------------------------------------------------------
    def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        """(bytes, digest, media type) of a manifest by tag or digest; a digest is checked against the bytes."""
        resp = self.request("GET", f"/manifests/{reference}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
        with resp:
            raw = resp.read(4 << 20)
            mtype = resp.headers.get("Content-Type", "")
        digest = sha256_digest(raw)
        if _DIGEST.match(reference) and digest != reference:
            raise VerificationFailed([Finding(f"manifest {reference}", "served bytes do not match the digest asked for",
                                              reference, digest)])  # fmt: skip
        return raw, digest, mtype

    def find_manifest(self, reference: str) -> bytes | None:
        resp = self.request("GET", f"/manifests/{reference}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"},
                            ok=(200, 404))  # fmt: skip
        with resp:
            return resp.read(4 << 20) if _status(resp) == 200 else None

    def put_manifest(self, reference: str, raw: bytes, media_type: str) -> tuple[str, bool]:
        """PUT a manifest; (its digest, whether the registry handled its subject — OCI-Subject header)."""
        resp = self.request("PUT", f"/manifests/{reference}", data=raw, headers={"Content-Type": media_type},
                            ok=(201,), scope="pull,push")  # fmt: skip
        with resp:
            subject = bool(resp.headers.get("OCI-Subject"))
        return sha256_digest(raw), subject

    def referrers(self, digest: str) -> list[dict[str, Any]]:
        """The descriptors of the manifests referring to ``digest``: from the referrers API, or where the
        registry has none, from the ``sha256-<hex>`` tag index (the fallback push maintains)."""
        resp = self.request("GET", f"/referrers/{digest}", headers={"Accept": OCI_INDEX}, ok=(200, 404))
        with resp:
            api = _status(resp) == 200 and resp.headers.get("Content-Type", "").startswith(OCI_INDEX)
            raw = resp.read(4 << 20) if api else self.find_manifest(fallback_tag(digest))
        if raw is None:
            return []
        entries = parse_json(raw, f"referrers of {digest}").get("manifests", [])
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def _status(resp: Any) -> int:
    code = getattr(resp, "status", None) or getattr(resp, "code", None)
    return int(code) if code is not None else 0


def fallback_tag(digest: str) -> str:
    """The referrers tag schema (OCI distribution 1.1): ``sha256-<hex>``."""
    return digest.replace(":", "-")


def parse_json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(f"{what}: not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidInput(f"{what}: not a JSON object")
    return obj
