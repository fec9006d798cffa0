"""The instance's endpoints: their logic (:class:`Instance`) and the route table that maps a method and a
path pattern to each (:data:`ROUTES`, read by :func:`dispatch`).

Endpoints follow Fulcio v2, Rekor v1 and v2, RFC 3161 and C2SP tlog-tiles shapes; every error is an
:class:`HTTPError` (answered as a JSON body with its 4xx/5xx status) and nothing is appended on error.
A pattern is a path, or a path whose segments may be ``{name}`` (one segment) or, last, ``{name*}`` (the
rest of the path).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..transparency.checkpoint import sign_note
from . import log_v2, tsa
from .ca import CSRError, check_csr, issue_leaf
from .log_v1 import EntryError, canonicalize
from .log_v2 import TileLog
from .oidc import TokenError, mint_token, verify_token
from .request import HTTPError, Request
from .state import DEV_LABEL, LOG_DB, TSA_PATH, V2_PREFIX, InstanceState
from .store import UUID_RE, LogStore, StoredEntry


@dataclass(frozen=True)
class Raw:
    """A response that is not JSON: its bytes and content type."""

    data: bytes
    content_type: str


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
            got = self.log2.submit(canonical)
        except log_v2.EntryV2Error as exc:
            raise HTTPError(HTTPStatus.BAD_REQUEST, str(exc)) from None

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
        if uuid is not None:
            _check_uuid(uuid)
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
        uuids, indexes = body.get("entryUUIDs") or [], body.get("logIndexes") or []
        if not isinstance(uuids, list) or not all(isinstance(u, str) for u in uuids):
            raise HTTPError(HTTPStatus.BAD_REQUEST, "entryUUIDs must be a list of entry UUID strings")
        if not isinstance(indexes, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in indexes):
            raise HTTPError(HTTPStatus.BAD_REQUEST, "logIndexes must be a list of integers")
        out = []
        for uuid in uuids:
            _check_uuid(uuid)
            idx = self.log.find_uuid(uuid)
            if idx is not None:
                out.append(self.entry_json(self.log.get(idx)))
        for i in indexes:
            if 0 <= i < self.log.state.size:
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


def _check_uuid(uuid: str) -> None:
    """400 for what is not a Rekor v1 entry UUID (it would never name an entry)."""
    if not UUID_RE.fullmatch(uuid):
        raise HTTPError(
            HTTPStatus.BAD_REQUEST,
            f"entry UUID {uuid[:100]!r} is not 64 hex digits (the leaf hash) or 80 (tree ID and leaf hash)",
        )


@dataclass(frozen=True)
class Call:
    """One routed request: the request, its query, and the path parameters its pattern captured."""

    request: Request
    query: dict[str, list[str]]
    params: dict[str, str]

    def header(self, name: str) -> str:
        return self.request.headers.get(name.lower(), "")

    def body(self) -> Any:
        """The body as JSON (a form when sent as one); {} when empty."""
        raw = self.request.body
        if "application/x-www-form-urlencoded" in self.header("Content-Type"):
            try:
                return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
            except UnicodeDecodeError:
                raise HTTPError(HTTPStatus.BAD_REQUEST, "form body is not UTF-8") from None
        try:
            return json.loads(raw) if raw else {}
        except (ValueError, RecursionError):
            raise HTTPError(HTTPStatus.BAD_REQUEST, "request body is not JSON") from None

    def body_object(self) -> dict[str, Any]:
        body = self.body()
        if not isinstance(body, dict):
            raise HTTPError(HTTPStatus.BAD_REQUEST, "expected a JSON object")
        return body


#: What a handler answers: a JSON-able value, :class:`Raw` bytes, or (status, either of them).
Handler = Callable[[Instance, Call], Any]


def _public_key(inst: Instance, call: Call) -> tuple[HTTPStatus, bytes]:
    pem = inst.state.log_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return HTTPStatus.OK, pem


def _entry_by_index(inst: Instance, call: Call) -> dict[str, Any]:
    try:
        index = int(call.query["logIndex"][0])
    except (KeyError, ValueError):
        raise HTTPError(HTTPStatus.BAD_REQUEST, "logIndex query parameter required") from None
    return inst.get_entry(index=index)


ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", TSA_PATH): lambda inst, c: inst.timestamp(c.header("Content-Type"), c.request.body),
    ("POST", f"{V2_PREFIX}/api/v2/log/entries"): lambda inst, c: inst.create_entry_v2(c.body()),
    ("GET", f"{V2_PREFIX}/{{path*}}"): lambda inst, c: inst.tiles(c.params["path"]),
    ("POST", "/api/v2/signingCert"): lambda inst, c: inst.signing_cert(c.request.headers, c.body()),
    ("POST", "/api/v1/log/entries"): lambda inst, c: inst.create_entry(c.body()),
    ("GET", "/api/v1/log"): lambda inst, c: inst.log_info(),
    ("GET", "/api/v1/log/publicKey"): _public_key,
    ("GET", "/api/v1/log/proof"): lambda inst, c: inst.consistency(c.query),
    ("GET", "/api/v1/log/entries"): _entry_by_index,
    ("GET", "/api/v1/log/entries/{uuid}"): lambda inst, c: inst.get_entry(uuid=c.params["uuid"]),
    ("POST", "/api/v1/log/entries/retrieve"): lambda inst, c: inst.retrieve(c.body()),
    ("POST", "/api/v1/index/retrieve"): lambda inst, c: inst.index_retrieve(c.body()),
    ("GET", "/oidc/.well-known/openid-configuration"): lambda inst, c: inst.discovery(),
    ("GET", "/oidc/dev-token"): lambda inst, c: inst.dev_token(c.query.get("identity", [""])[0]),
    ("POST", "/oidc/dev-token"): lambda inst, c: inst.dev_token(str(c.body_object().get("identity", ""))),
}


def _compile(pattern: str) -> re.Pattern[str]:
    def segment(seg: str) -> str:
        if seg.startswith("{") and seg.endswith("*}"):
            return f"(?P<{seg[1:-2]}>.+)"
        if seg.startswith("{") and seg.endswith("}"):
            return f"(?P<{seg[1:-1]}>[^/]+)"
        return re.escape(seg)

    return re.compile("/".join(segment(seg) for seg in pattern.split("/")))


_EXACT = {key: h for key, h in ROUTES.items() if "{" not in key[1]}
_PATTERNS = [(method, _compile(p), h) for (method, p), h in ROUTES.items() if "{" in p]


def route(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    """The handler for ``method`` and ``path`` (trailing slashes ignored) and the parameters it captured."""
    path = path.rstrip("/")
    exact = _EXACT.get((method, path))
    if exact is not None:
        return exact, {}
    for m, pattern, handler in _PATTERNS:
        match = pattern.fullmatch(path) if m == method else None
        if match is not None:
            return handler, match.groupdict()
    raise HTTPError(HTTPStatus.NOT_FOUND, f"no route for {method} {path[:200]}")


def dispatch(inst: Instance, request: Request) -> tuple[HTTPStatus, Raw]:
    """Answer ``request``: (status, bytes and content type). HTTPError for a refusal; anything else is a bug."""
    url = urllib.parse.urlsplit(request.target)
    handler, params = route(request.method, url.path)
    out = handler(inst, Call(request, urllib.parse.parse_qs(url.query), params))
    status = HTTPStatus.OK
    if isinstance(out, tuple):
        status, out = out
    if isinstance(out, Raw):
        return status, out
    if isinstance(out, bytes):
        return status, Raw(out, "application/json")
    return status, Raw(json.dumps(out).encode(), "application/json")
