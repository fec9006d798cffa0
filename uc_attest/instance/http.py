"""HTTP service of the embedded instance on 127.0.0.1 (stdlib ThreadingHTTPServer).

Why the standard library: the instance is a single-user, loopback-only dev/air-gap service;
ThreadingHTTPServer is a real HTTP/1.1 server with no extra dependency, and correctness lives
in the log store (serialized, durable appends), not in the web framework. Endpoints follow
Fulcio v2 and Rekor v1 REST shapes; every error is a JSON body with a 4xx/5xx status and
nothing is appended on error.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import OperationalError, UsageError
from ..transparency.checkpoint import sign_note
from . import log_v2, tsa
from .ca import CSRError, check_csr, issue_leaf
from .log_v1 import EntryError, canonicalize
from .log_v2 import TileLog
from .oidc import TokenError, mint_token, verify_token
from .state import DEV_LABEL, HOST, LOG_DB, TSA_PATH, V2_PREFIX, InstanceState
from .store import LogStore, StoredEntry

MAX_BODY = 8 << 20  # bytes; larger requests get 413 (public Rekor's limit is far lower, ~100 KB)
log = logging.getLogger("uc_attest.instance")


class _Headers(dict[str, str]):
    """Request headers by lower-case name (the first of repeated ones, as ``HTTPMessage.get`` answers)."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


MAX_HEADERS, MAX_LINE = 100, 65536


def _read_headers(rfile: Any) -> _Headers:
    """The header block of a request up to its blank line; ValueError when a line or the block is too long."""
    out, last = _Headers(), ""
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise ValueError("header line too long")
        if line in (b"\r\n", b"\n", b""):
            return out
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t") and last:  # an obsolete folded continuation line
            out[last] += " " + text.strip()
            continue
        name, sep, value = text.partition(":")
        if not sep:
            continue  # not a header line: ignored, as the email parser does
        last = name.strip().lower()
        out.setdefault(last, value.strip())
    raise ValueError(f"more than {MAX_HEADERS} headers")


class _Server(ThreadingHTTPServer):
    """One thread per connection; a listen backlog for many clients connecting at once (the default 5
    resets connections under a burst of clients)."""

    request_queue_size = 256
    daemon_threads = True


@dataclass(frozen=True)
class Raw:
    """A response that is not JSON: its bytes and content type."""

    data: bytes
    content_type: str


class HTTPError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def open_log(state: InstanceState) -> LogStore:
    key = state.log_key

    def sign(data: bytes) -> bytes:
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    return LogStore(
        state.root / LOG_DB, state.origin, state.log_id, sign, lambda text: sign_note(text, state.log_name, key)
    )


class Instance:
    """The service logic, independent of HTTP plumbing."""

    def __init__(self, state: InstanceState) -> None:
        self.state = state
        self.log = open_log(state)
        self.log2: TileLog | None = None
        if state.v2 is not None:
            self.log2 = TileLog(state.root / LOG_DB, state.origin_v2, state.log_name, state.v2.log_key, state.log_id_v2)

    # -- TSA (RFC 3161) ------------------------------------------------------------------------------------------
    def timestamp(self, content_type: str, body: bytes) -> Raw:
        if self.state.v2 is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, "this instance has no timestamp authority (made before it)")
        if content_type.split(";")[0].strip() != "application/timestamp-query":
            raise HTTPError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "expected Content-Type application/timestamp-query")
        try:
            reply = tsa.timestamp(body, self.state.v2.tsa_key, self.state.v2.tsa_cert)
        except tsa.TSAError as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"timestamp request: {exc}") from None
        return Raw(reply, "application/timestamp-reply")

    # -- Rekor v2 ------------------------------------------------------------------------------------------------
    def create_entry_v2(self, body: Any) -> dict[str, Any]:
        if self.log2 is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, "this instance has no Rekor v2 log (made before it)")
        try:
            canonical = log_v2.canonicalize(body)
        except log_v2.EntryV2Error as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        got = self.log2.submit(canonical)

        def b64(b: bytes) -> str:
            return base64.b64encode(b).decode()

        return {
            "logIndex": str(got.index),
            "logId": {"keyId": b64(self.state.log_id_v2)},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
            "inclusionProof": {
                "logIndex": str(got.index),
                "rootHash": b64(got.root),
                "treeSize": str(got.size),
                "hashes": [b64(h) for h in got.proof],
                "checkpoint": {"envelope": got.note},
            },
            "canonicalizedBody": b64(canonical),
        }

    def tiles(self, path: str) -> Raw:
        if self.log2 is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, "this instance has no Rekor v2 log")
        if path == "checkpoint":
            return Raw(self.log2.checkpoint.encode(), "text/plain; charset=utf-8")
        data = self.log2.tile(path)
        if data is None:
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no tile {path}")
        return Raw(data, "application/octet-stream")

    # -- Fulcio --------------------------------------------------------------------------------------------------
    def signing_cert(self, headers: dict[str, str], body: Any) -> dict[str, Any]:
        auth = headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            raise HTTPError(HTTPStatus.UNAUTHORIZED, "missing bearer identity token")
        try:
            identity = verify_token(auth[7:].strip(), self.state.oidc_key.public_key(), self.state.issuer)
        except TokenError as exc:
            raise HTTPError(HTTPStatus.UNAUTHORIZED, str(exc)) from None
        csr_b64 = body.get("certificateSigningRequest") if isinstance(body, dict) else None
        try:
            key = check_csr(base64.b64decode(csr_b64 or "", validate=True))
        except (CSRError, ValueError) as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"certificateSigningRequest: {exc}") from None
        leaf = issue_leaf(self.state, key, identity)
        chain = [
            c.public_bytes(serialization.Encoding.PEM).decode()
            for c in (leaf, self.state.ca_intermediate, self.state.ca_root)
        ]
        return {"signedCertificateEmbeddedSct": {"chain": {"certificates": chain}}}

    # -- Rekor ---------------------------------------------------------------------------------------------------
    def entry_json(self, e: StoredEntry) -> dict[str, Any]:
        tree, st = self.log.snapshot()
        size, note = st.size, st.note
        proof = tree.inclusion_proof(e.index, size)
        return {
            e.uuid: {
                "body": base64.b64encode(e.body).decode(),
                "integratedTime": e.integrated_time,
                "logID": self.state.log_id.hex(),
                "logIndex": e.index,
                "verification": {
                    "signedEntryTimestamp": base64.b64encode(e.set_sig).decode(),
                    "inclusionProof": {
                        "logIndex": e.index,
                        "treeSize": size,
                        "rootHash": st.root.hex(),
                        "hashes": [h.hex() for h in proof],
                        "checkpoint": note,
                    },
                },
                **self._attestation(e.index),
            }
        }

    def _attestation(self, index: int) -> dict[str, Any]:
        data = self.log.attestation(index)
        return {} if data is None else {"attestation": {"data": base64.b64encode(data).decode()}}

    def create_entry(self, body: Any) -> tuple[HTTPStatus, dict[str, Any]]:
        try:
            canonical = canonicalize(body)
        except EntryError as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        entry, new = self.log.append(canonical.body, canonical.kind, canonical.index_keys, canonical.attestation)
        if not new:
            raise HTTPError(HTTPStatus.CONFLICT, f"an equivalent entry already exists in the log: {entry.uuid}")
        return HTTPStatus.CREATED, self.entry_json(entry)

    def get_entry(self, uuid: str | None = None, index: int | None = None) -> dict[str, Any]:
        idx = self.log.find_uuid(uuid) if uuid is not None else index
        if idx is None or not 0 <= idx < self.log.state.size:
            raise HTTPError(HTTPStatus.NOT_FOUND, "entry not found")
        return self.entry_json(self.log.get(idx))

    def log_info(self) -> dict[str, Any]:
        st = self.log.state
        return {
            "rootHash": st.root.hex(),
            "treeSize": st.size,
            "signedTreeHead": st.note,
            "treeID": self.state.origin.rsplit(" ", 1)[-1],
        }

    def consistency(self, query: dict[str, list[str]]) -> dict[str, Any]:
        try:
            first, last = int(query["firstSize"][0]), int(query.get("lastSize", [str(self.log.state.size)])[0])
            proof = self.log.consistency(first, last)
        except (KeyError, ValueError) as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, f"firstSize/lastSize: {exc}") from None
        tree, _ = self.log.snapshot()
        return {"rootHash": tree.root(last).hex(), "hashes": [h.hex() for h in proof]}

    def retrieve(self, body: Any) -> list[dict[str, Any]]:
        if not isinstance(body, dict):
            raise HTTPError(HTTPStatus.BAD_REQUEST, "expected a JSON object")
        out = []
        for uuid in body.get("entryUUIDs") or []:
            idx = self.log.find_uuid(str(uuid))
            if idx is not None:
                out.append(self.entry_json(self.log.get(idx)))
        for i in body.get("logIndexes") or []:
            if isinstance(i, int) and 0 <= i < self.log.state.size:
                out.append(self.entry_json(self.log.get(i)))
        return out

    def index_retrieve(self, body: Any) -> list[str]:
        if not isinstance(body, dict) or not isinstance(body.get("hash"), str):
            raise HTTPError(HTTPStatus.BAD_REQUEST, 'expected {"hash": "sha256:<hex>"}')
        return [self.log.get(i).uuid for i in self.log.search(body["hash"].lower())]

    # -- dev OIDC --------------------------------------------------------------------------------------------------
    def discovery(self) -> dict[str, Any]:
        base = f"{self.state.url}/oidc"
        return {
            "issuer": self.state.issuer,
            "authorization_endpoint": f"{base}/auth",
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "x-uc-attest": DEV_LABEL,
        }

    def dev_token(self, identity: str) -> dict[str, Any]:
        if not identity:
            raise HTTPError(HTTPStatus.BAD_REQUEST, "identity is required")
        tok = mint_token(self.state.oidc_key, self.state.issuer, identity)
        return {"access_token": tok, "id_token": tok, "token_type": "Bearer", "warning": DEV_LABEL}


def _handler(inst: Instance) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "uc-attest-instance"
        protocol_version = "HTTP/1.1"
        # headers and body are two writes: without TCP_NODELAY the body waits for the client's delayed ACK
        # (~40 ms per request on a keep-alive connection)
        disable_nagle_algorithm = True

        def parse_request(self) -> bool:
            """The request line and headers, as the stdlib parses them for HTTP/1.0 and 1.1 but without the
            email package (which took a quarter of the server's time per request under load)."""
            self.command = None  # type: ignore[assignment]
            self.request_version = "HTTP/1.0"  # errors below are answered with a status line (no HTTP/0.9)
            self.close_connection = True
            self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")  # type: ignore[attr-defined]
            words = self.requestline.split()
            if len(words) != 3 or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
                if len(words) == 3 and words[2].startswith("HTTP/") and words[2] >= "HTTP/2":
                    self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"unsupported version {words[2]!r}")
                else:
                    self.send_error(HTTPStatus.BAD_REQUEST, f"bad request line {self.requestline[:100]!r}")
                return False
            self.command, self.path, self.request_version = words
            self.close_connection = self.request_version != "HTTP/1.1"
            if self.path.startswith("//"):
                self.path = "/" + self.path.lstrip("/")  # as the stdlib does (gh-87389)
            try:
                self.headers = _read_headers(self.rfile)  # type: ignore[assignment]
            except ValueError as exc:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, str(exc))
                return False
            conntype = self.headers.get("Connection", "").lower()
            if conntype == "close":
                self.close_connection = True
            elif conntype == "keep-alive":
                self.close_connection = False
            if self.headers.get("Expect", "").lower() == "100-continue" and self.request_version == "HTTP/1.1":
                return self.handle_expect_100()
            return True

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s %s", self.address_string(), format % args)

        def _send(self, status: HTTPStatus, obj: Any, content_type: str = "application/json") -> None:
            if isinstance(obj, Raw):
                obj, content_type = obj.data, obj.content_type
            data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _raw_body(self) -> bytes:
            try:
                n = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                raise HTTPError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
            if n > MAX_BODY:
                raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {MAX_BODY} bytes")
            return bytes(self.rfile.read(n))

        def _body(self) -> Any:
            raw = self._raw_body()
            if "application/x-www-form-urlencoded" in self.headers.get("Content-Type", ""):
                return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
            try:
                return json.loads(raw) if raw else {}
            except ValueError:
                raise HTTPError(HTTPStatus.BAD_REQUEST, "request body is not JSON") from None

        def _dispatch(self, method: str) -> None:
            url = urllib.parse.urlsplit(self.path)
            path, query = url.path.rstrip("/"), urllib.parse.parse_qs(url.query)
            try:
                status, out = HTTPStatus.OK, self._route(method, path, query)
                if isinstance(out, tuple):
                    status, out = out
                self._send(status, out)
            except HTTPError as exc:
                if exc.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
                    self.close_connection = True
                self._send(exc.status, {"code": int(exc.status), "message": exc.message})
            except Exception as exc:
                log.exception("internal error")
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"code": 500, "message": f"internal error: {exc}"})

        def _route(self, method: str, path: str, query: dict[str, list[str]]) -> Any:
            if method == "POST" and path == TSA_PATH:
                return inst.timestamp(self.headers.get("Content-Type", ""), self._raw_body())
            if method == "POST" and path == f"{V2_PREFIX}/api/v2/log/entries":
                return inst.create_entry_v2(self._body())
            if method == "GET" and path.startswith(V2_PREFIX + "/"):
                return inst.tiles(path[len(V2_PREFIX) + 1 :])
            if method == "POST" and path == "/api/v2/signingCert":
                return inst.signing_cert({k.lower(): v for k, v in self.headers.items()}, self._body())
            if method == "POST" and path == "/api/v1/log/entries":
                return inst.create_entry(self._body())
            if method == "GET" and path == "/api/v1/log":
                return inst.log_info()
            if method == "GET" and path == "/api/v1/log/publicKey":
                pem = inst.state.log_key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                return HTTPStatus.OK, pem
            if method == "GET" and path == "/api/v1/log/proof":
                return inst.consistency(query)
            if method == "GET" and path == "/api/v1/log/entries":
                try:
                    return inst.get_entry(index=int(query["logIndex"][0]))
                except (KeyError, ValueError):
                    raise HTTPError(HTTPStatus.BAD_REQUEST, "logIndex query parameter required") from None
            if method == "GET" and path.startswith("/api/v1/log/entries/"):
                return inst.get_entry(uuid=path.rsplit("/", 1)[-1])
            if method == "POST" and path == "/api/v1/log/entries/retrieve":
                return inst.retrieve(self._body())
            if method == "POST" and path == "/api/v1/index/retrieve":
                return inst.index_retrieve(self._body())
            if method == "GET" and path == "/oidc/.well-known/openid-configuration":
                return inst.discovery()
            if path == "/oidc/dev-token":
                identity = query.get("identity", [""])[0] if method == "GET" else str(self._body().get("identity", ""))
                return inst.dev_token(identity)
            raise HTTPError(HTTPStatus.NOT_FOUND, f"no route for {method} {path}")

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

    return Handler


class InstanceServer:
    """The running service; ``start()`` serves in a background thread, ``serve_forever()`` in the caller."""

    def __init__(self, state: InstanceState, port: int | None = None, *, move: bool = False) -> None:
        """Serve on the port the trust config names. Another ``port`` is refused (no client would find the
        server) unless ``move``: the instance's URL and trust config then follow the new port."""
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
            self.httpd = _Server((HOST, state.port), _handler(self.instance))
        except OSError as exc:
            self.instance.log.close()
            raise OperationalError(f"cannot serve on {HOST}:{state.port}: {exc.strerror}", port=state.port) from None
        self.httpd.daemon_threads = True
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
