"""A hostile OCI registry on 127.0.0.1 (http.server in a thread, no docker-registry needed): credentials on
redirects, Bearer realms, broken HTTP and malformed manifests. Every attack ends in a documented exit code
and one line naming the field (never exit 70, a traceback or a hang), and no partial output directory."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import uc_attest as uc
from tests.integration.http_apps import App, Handler, Server, reply
from uc_attest.cli import app
from uc_attest.oci.artifact import BUNDLE_TYPE, EMPTY, PACK_TYPE, ROLE_ANNOTATION, TITLE
from uc_attest.oci.modelpack import ARTIFACT_TYPE, CONFIG_TYPE, FILEPATH, LayerType
from uc_attest.oci.registry import OCI_INDEX, OCI_MANIFEST, Reference, Registry, fallback_tag, sha256_digest
from uc_attest.oci.schema import Descriptor

REPO = "models/hostile"
FILES = {"uc-manifest.json": b'{"not": "checked by pull"}', "model.safetensors": bytes(range(256)) * 40}
CREDS = {"UC_ATTEST_REGISTRY_USERNAME": "ci", "UC_ATTEST_REGISTRY_PASSWORD": "s3cret"}
BASIC = "Basic " + base64.b64encode(b"ci:s3cret").decode()


def raw(h: Handler, data: bytes) -> None:
    """Bytes on the wire as they are: a broken HTTP answer."""
    h.wfile.write(data)
    h.wfile.flush()


def layer(name: str, data: bytes, **over: Any) -> dict[str, Any]:
    return {"mediaType": "application/octet-stream", "digest": sha256_digest(data), "size": len(data),
            "annotations": {TITLE: name}, **over}  # fmt: skip


def pack_manifest(layers: Any = None, **over: Any) -> bytes:
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": PACK_TYPE, "config": EMPTY,
            "layers": [layer(n, d) for n, d in FILES.items()] if layers is None else layers, **over}  # fmt: skip
    return json.dumps(body).encode()


def modelpack_manifest(layers: Any = None, **over: Any) -> bytes:
    """A pack in the ModelPack layout (its config blob is not fetched by pull)."""
    config = {"mediaType": CONFIG_TYPE, "digest": sha256_digest(b"{}"), "size": 2}
    mine = [layer(n, d, mediaType=LayerType.DOC.value, annotations={TITLE: n, FILEPATH: n}) for n, d in FILES.items()]
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": ARTIFACT_TYPE, "config": config,
            "layers": mine if layers is None else layers, **over}  # fmt: skip
    return json.dumps(body).encode()


def _mp_layers(name: str = "model.safetensors", **over: Any) -> list[Any]:
    """A ModelPack manifest's layers, the second one changed."""
    first = layer("uc-manifest.json", FILES["uc-manifest.json"], mediaType=LayerType.DOC.value,
                  annotations={FILEPATH: "uc-manifest.json"})  # fmt: skip
    second = {**layer(name, FILES["model.safetensors"], mediaType=LayerType.WEIGHT.value,
                      annotations={FILEPATH: name}), **over}  # fmt: skip
    return [first, second]


class Content:
    """What the hostile registry holds: manifests by tag or digest, blobs by digest, the referrers fallback tag."""

    def __init__(self, manifest: bytes | None = None, referrers: tuple[bytes, ...] = ()) -> None:
        self.manifest = pack_manifest() if manifest is None else manifest
        self.digest = sha256_digest(self.manifest)
        self.manifests: dict[str, bytes] = {"v1": self.manifest, self.digest: self.manifest}
        self.blobs = {sha256_digest(d): d for d in FILES.values()}
        entries = []
        for r in referrers:
            self.manifests[sha256_digest(r)] = r
            entries.append({"mediaType": OCI_MANIFEST, "digest": sha256_digest(r), "size": len(r),
                            "artifactType": BUNDLE_TYPE})  # fmt: skip
        if entries:
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
            self.manifests[fallback_tag(self.digest)] = json.dumps(index).encode()

    def answer(self, h: Handler) -> None:
        """The distribution API as docker-registry 2.8 answers it (no referrers API)."""
        prefix = f"/v2/{REPO}/"
        kind, _, ref = h.path.removeprefix(prefix).partition("/")
        if kind == "manifests" and ref in self.manifests:
            reply(h, 200, self.manifests[ref], {"Content-Type": OCI_MANIFEST})
        elif kind == "blobs" and ref in self.blobs:
            reply(h, 200, self.blobs[ref], {"Content-Type": "application/octet-stream"})
        else:
            reply(h, 404, b'{"errors": [{"code": "NOT_FOUND"}]}')


def cli_pull(ref: str, out: Path, code: int, *needles: str) -> str:
    """``uc-attest pull`` in-process: the exit code, one error line with the needles, no partial output."""
    r = CliRunner().invoke(app, ["pull", ref, "-o", str(out), "--plain-http"])
    text = r.output
    assert r.exit_code == code, text
    assert "Traceback" not in text and "internal error" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    for n in needles:
        assert n in errors[0], text
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*")), list(out.parent.iterdir())
    return errors[0]


def pulled_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


# -- 1. credentials never follow a redirect to another origin ------------------------------------------------------
def test_blob_redirect_to_another_origin_drops_basic_credentials(serve: Callable[[App], Server], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    content = Content()
    storage = serve(lambda h: reply(h, 200, content.blobs[h.path.split("?")[0].rsplit("/", 1)[1]]))

    def registry_app(h: Handler) -> None:
        if h.headers.get("Authorization") != BASIC:
            return reply(h, 401, b"{}", {"WWW-Authenticate": 'Basic realm="hostile"'})
        if h.path.startswith("/same-origin/"):  # a same-origin redirect target: credentials may go there
            return reply(h, 200, content.blobs[h.path.rsplit("/", 1)[1]])
        if "/blobs/" in h.path:
            digest = h.path.rsplit("/", 1)[1]
            if content.blobs[digest] == FILES["model.safetensors"]:
                return reply(h, 307, headers={"Location": f"http://{storage.host}/s3/{digest}?X-Amz-Signature=x"})
            return reply(h, 302, headers={"Location": f"/same-origin/{digest}"})
        return content.answer(h)

    registry = serve(registry_app)
    res = uc.pull(f"oci://{registry.host}/{REPO}:v1", tmp_path / "out", plain_http=True)
    assert res.digest == content.digest and pulled_files(tmp_path / "out") == FILES
    to_storage = storage.headers_of("/s3/")
    assert to_storage and all("Authorization" not in h for h in to_storage), to_storage
    assert [h.get("Authorization") for h in registry.headers_of("/same-origin/")] == [BASIC]


def test_bearer_token_is_not_sent_to_the_blob_storage_origin(serve: Callable[[App], Server], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The Bearer flow end to end (realm on loopback with --plain-http), and the token stays with the registry."""
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    content = Content()
    storage = serve(lambda h: reply(h, 200, content.blobs[h.path.split("?")[0].rsplit("/", 1)[1]]))
    tokens = serve(lambda h: reply(h, 200, b'{"token": "tok-123.abc"}') if h.headers.get("Authorization") == BASIC
                   else reply(h, 401, b"{}"))  # fmt: skip

    def registry_app(h: Handler) -> None:
        if h.headers.get("Authorization") != "Bearer tok-123.abc":
            challenge = f'Bearer realm="http://{tokens.host}/token",service="hostile",scope="repository:{REPO}:pull"'
            return reply(h, 401, b"{}", {"WWW-Authenticate": challenge})
        if "/blobs/" in h.path:
            return reply(h, 302, headers={"Location": f"http://{storage.host}/blob/{h.path.rsplit('/', 1)[1]}"})
        return content.answer(h)

    registry = serve(registry_app)
    uc.pull(f"oci://{registry.host}/{REPO}@{content.digest}", tmp_path / "out", plain_http=True)
    assert pulled_files(tmp_path / "out") == FILES
    (token_request,) = tokens.seen
    assert token_request[1] == f"/token?service=hostile&scope=repository%3A{REPO.replace('/', '%2F')}%3Apull"
    assert storage.seen and all("Authorization" not in h for _m, _p, h, _b in storage.seen)


def test_upload_location_on_another_origin_gets_no_credentials(serve: Callable[[App], Server],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    elsewhere = serve(lambda h: reply(h, 201))

    def registry_app(h: Handler) -> None:
        if h.headers.get("Authorization") != BASIC:
            return reply(h, 401, b"{}", {"WWW-Authenticate": 'Basic realm="hostile"'})
        if h.command == "HEAD":
            return reply(h, 404)
        return reply(h, 202, headers={"Location": f"http://{elsewhere.host}/upload/1"})

    registry = serve(registry_app)
    reg = Registry(Reference.parse(f"oci://{registry.host}/{REPO}"), plain_http=True)
    assert reg.push_blob(sha256_digest(b"abc"), 3, b"abc")
    assert elsewhere.seen and all("Authorization" not in h for _m, _p, h, _b in elsewhere.seen)


# -- 2. Bearer realms and redirects: http(s) only ------------------------------------------------------------------
def test_bearer_realm_on_the_local_disk_is_refused(serve: Callable[[App], Server], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    local = tmp_path / "local-secret.json"  # what urllib would read and send as the token
    local.write_text('{"token": "read-from-local-disk"}')
    registry = serve(lambda h: reply(h, 401, b"{}", {"WWW-Authenticate": f'Bearer realm="file://{local}",'
                                                                        'service="x",scope="repository:x:pull"'}))  # fmt: skip
    cli_pull(f"oci://{registry.host}/{REPO}:v1", tmp_path / "out", 3, "Bearer realm", f"file://{local}", "refused")
    assert all("read-from-local-disk" not in json.dumps(h) for _m, _p, h, _b in registry.seen)


@pytest.mark.parametrize("realm", ["ftp://127.0.0.1/token", "data:,{}", "http://registry.example.com/token",
                                   "https://", "token", "http://127.0.0.1:notaport/x"])  # fmt: skip
def test_other_realms_are_refused(realm: str, serve: Callable[[App], Server], tmp_path: Path) -> None:
    registry = serve(lambda h: reply(h, 401, b"{}", {"WWW-Authenticate": f'Bearer realm="{realm}"'}))
    with pytest.raises(uc.InvalidInput, match="Bearer realm .* refused"):
        uc.pull(f"oci://{registry.host}/{REPO}:v1", tmp_path / "out", plain_http=True)


def test_plain_http_realm_needs_plain_http() -> None:
    reg = Registry(Reference.parse("oci://127.0.0.1:5000/x"))
    with pytest.raises(uc.InvalidInput, match="refused"):
        reg._check_realm("http://127.0.0.1:5001/token", "repository:x:pull")
    reg._check_realm("https://auth.example.com/token", "repository:x:pull")


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/blob", "data:,hello"])
def test_redirect_to_another_scheme_is_refused(target: str, serve: Callable[[App], Server], tmp_path: Path) -> None:
    content = Content()
    registry = serve(
        lambda h: reply(h, 302, headers={"Location": target}) if "/blobs/" in h.path else content.answer(h)
    )
    cli_pull(f"oci://{registry.host}/{REPO}:v1", tmp_path / "out", 3, "redirect", "refused")


def test_token_service_answer_is_checked(serve: Callable[[App], Server], tmp_path: Path) -> None:
    tokens = serve(lambda h: reply(h, 200, b'{"token": "x\\r\\nX-Injected: 1"}'))
    registry = serve(lambda h: reply(h, 401, b"{}", {"WWW-Authenticate": f'Bearer realm="http://{tokens.host}/t"'}))
    cli_pull(f"oci://{registry.host}/{REPO}:v1", tmp_path / "out", 3, "no usable token")


# -- 3. broken HTTP: exit 4, one line ------------------------------------------------------------------------------
BROKEN = {
    "bad chunked encoding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz-not-hex\r\nabc\r\n",
    "truncated chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\nabc",
    "truncated body": b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\nabc",
    "garbage status line": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "status not a number": b"HTTP/1.1 abc OK\r\n\r\n",
    "header line too long": b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n",
    "too many headers": b"HTTP/1.1 200 OK\r\n" + b"X-A: 1\r\n" * 200 + b"\r\n",
    "closed without answer": b"",
}


@pytest.mark.parametrize("where", ["manifest", "blob"])
@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_http_answers_are_operational_errors(name: str, where: str, serve: Callable[[App], Server],
                                                    tmp_path: Path) -> None:  # fmt: skip
    content = Content()

    def registry_app(h: Handler) -> None:
        if (where == "manifest" and "/manifests/" in h.path) or (where == "blob" and "/blobs/" in h.path):
            return raw(h, BROKEN[name])
        return content.answer(h)

    registry = serve(registry_app)
    cli_pull(f"oci://{registry.host}/{REPO}@{content.digest}", tmp_path / "out", 4, registry.host)


# -- 3. malformed manifests: exit 3 naming the field ---------------------------------------------------------------
def _layers(**over: Any) -> list[Any]:
    return [layer("uc-manifest.json", FILES["uc-manifest.json"]), layer("model.safetensors", FILES["model.safetensors"],
                                                                        **over)]  # fmt: skip


MALFORMED: dict[str, tuple[bytes, str]] = {
    "NUL in title": (pack_manifest(_layers(annotations={TITLE: "model\x00.safetensors"})), TITLE),
    "dot-dot title": (pack_manifest(_layers(annotations={TITLE: "../escape"})), TITLE),
    "newline title": (pack_manifest(_layers(annotations={TITLE: "a\nb"})), TITLE),
    "backslash title": (pack_manifest(_layers(annotations={TITLE: "a\\b"})), TITLE),
    "title not a string": (pack_manifest(_layers(annotations={TITLE: 7})), TITLE),
    "duplicate title": (pack_manifest(_layers(annotations={TITLE: "uc-manifest.json"})), TITLE),
    "file and directory": (pack_manifest(_layers(annotations={TITLE: "uc-manifest.json/x"})), TITLE),
    "size missing": (pack_manifest([layer("uc-manifest.json", FILES["uc-manifest.json"], size=None)]), "size"),
    "size abc": (pack_manifest(_layers(size="abc")), "layers[1].size"),
    "size negative": (pack_manifest(_layers(size=-1)), "layers[1].size"),
    "size bool": (pack_manifest(_layers(size=True)), "layers[1].size"),
    "size float": (pack_manifest(_layers(size=float(len(FILES["model.safetensors"])))), "layers[1].size"),
    "digest not sha256": (pack_manifest(_layers(digest="md5:abc")), "layers[1].digest"),
    "annotations a list": (pack_manifest(_layers(annotations=["x"])), "layers[1].annotations"),
    "manifest annotations a list": (pack_manifest(annotations=[TITLE]), "annotations"),
    "layers an object": (pack_manifest(layers={"a": 1}), "layers"),
    "layer a string": (pack_manifest(layers=["sha256:00"]), "layers[0]"),
    "subject a string": (pack_manifest(subject="sha256:" + "0" * 64), "subject"),
    "artifactType a list": (pack_manifest(artifactType=[PACK_TYPE]), "artifactType"),
    "deeply nested JSON": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "deeply nested field": (
        pack_manifest(config={"x": 1}).replace(b"1}", b"[" * 99_999 + b"]" * 99_999 + b"}"),
        "nested too deeply",
    ),
    "not UTF-8": (b'{"layers": "\xff"}', "not JSON"),
    "modelpack: title and filepath disagree": (
        modelpack_manifest(_mp_layers(annotations={FILEPATH: "model.safetensors", TITLE: "other.safetensors"})),
        "name different files",
    ),
    "modelpack: dot-dot filepath": (modelpack_manifest(_mp_layers("../escape")), FILEPATH),
    "modelpack: absolute filepath": (modelpack_manifest(_mp_layers("/etc/passwd")), FILEPATH),
    "modelpack: case-folded duplicate": (modelpack_manifest(_mp_layers("UC-Manifest.json")), "named twice"),
    "modelpack: no file path": (modelpack_manifest(_mp_layers(annotations={})), FILEPATH),
    "modelpack: tar layer": (
        modelpack_manifest(_mp_layers(mediaType="application/vnd.cncf.model.weight.v1.tar")),
        "not an unarchived ModelPack layer type",
    ),
    "modelpack: image config": (modelpack_manifest(config=EMPTY), "config.mediaType"),
    # outside review (issue 34): a path of 2,000 directories passed every check, then making its directories
    # recursed past Python's limit (RecursionError: exit 70, a traceback)
    "2,000 directories in a title": (pack_manifest(_layers(annotations={TITLE: "a/" * 2000 + "b"})), "directories"),
    "modelpack: 2,000 directories in a filepath": (modelpack_manifest(_mp_layers("a/" * 2000 + "b")), FILEPATH),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_pack_manifest_is_invalid_input(name: str, serve: Callable[[App], Server], tmp_path: Path) -> None:
    manifest, field = MALFORMED[name]
    content = Content(manifest)
    registry = serve(content.answer)
    cli_pull(f"oci://{registry.host}/{REPO}@{content.digest}", tmp_path / "out", 3, field)


def test_manifest_over_4_mib_is_too_large_not_a_digest_mismatch(serve: Callable[[App], Server],
                                                                tmp_path: Path) -> None:  # fmt: skip
    content = Content(pack_manifest(annotations={"pad": "x" * (5 << 20)}))
    registry = serve(content.answer)
    cli_pull(f"oci://{registry.host}/{REPO}@{content.digest}", tmp_path / "out", 3, "too large", "4 MiB")


# -- referrers -----------------------------------------------------------------------------------------------------
def referrer(to: str, layers: list[Any], **over: Any) -> bytes:
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_TYPE, "config": EMPTY,
            "layers": layers, "subject": {"mediaType": OCI_MANIFEST, "digest": to, "size": 1},
            "annotations": {ROLE_ANNOTATION: "release"}, **over}  # fmt: skip
    return json.dumps(body).encode()


PACK_DIGEST = sha256_digest(pack_manifest())
BUNDLE = layer("pack.sigstore.json", FILES["uc-manifest.json"])


def test_referrer_bundle_is_pulled_beside_the_pack(serve: Callable[[App], Server], tmp_path: Path) -> None:
    content = Content(referrers=(referrer(PACK_DIGEST, [BUNDLE]),))
    registry = serve(content.answer)
    res = uc.pull(f"oci://{registry.host}/{REPO}:v1", tmp_path / "out", plain_http=True)
    assert res.bundles == [str(tmp_path / "out.sigstore.json")]
    assert (tmp_path / "out.sigstore.json").read_bytes() == FILES["uc-manifest.json"]


BAD_REFERRERS: dict[str, tuple[bytes, str]] = {
    "two layers": (referrer(PACK_DIGEST, [BUNDLE, BUNDLE]), "exactly one layer"),
    "no layer": (referrer(PACK_DIGEST, []), "exactly one layer"),
    "subject a string": (referrer(PACK_DIGEST, [BUNDLE], subject=PACK_DIGEST), "subject"),
    "annotations a list": (referrer(PACK_DIGEST, [BUNDLE], annotations=["release"]), "annotations"),
    "layer size abc": (referrer(PACK_DIGEST, [{**BUNDLE, "size": "abc"}]), "layers[0].size"),
    "bundle over 16 MiB": (referrer(PACK_DIGEST, [{**BUNDLE, "size": 1 << 40}]), "16 MiB"),
}


@pytest.mark.parametrize("name", sorted(BAD_REFERRERS))
def test_malformed_referrer_fails_the_pull_and_leaves_nothing(name: str, serve: Callable[[App], Server],
                                                               tmp_path: Path) -> None:  # fmt: skip
    manifest, field = BAD_REFERRERS[name]
    content = Content(referrers=(manifest,))
    registry = serve(content.answer)
    cli_pull(f"oci://{registry.host}/{REPO}:v1", tmp_path / "out", 3, field)
    assert not list(tmp_path.glob("out.*"))


@pytest.mark.parametrize("index", [b'{"manifests": "x"}', b'{"manifests": [{"digest": "../../x", "size": 1}]}',
                                   b'{"manifests": [{"mediaType": 1}]}', b"[]"])  # fmt: skip
def test_malformed_referrers_index(index: bytes, serve: Callable[[App], Server], tmp_path: Path) -> None:
    content = Content()
    content.manifests[fallback_tag(content.digest)] = index
    registry = serve(content.answer)
    cli_pull(f"oci://{registry.host}/{REPO}:v1", tmp_path / "out", 3, fallback_tag(content.digest))


def test_tag_list_that_is_not_a_list(serve: Callable[[App], Server]) -> None:
    registry = serve(lambda h: reply(h, 200, b'{"name": "x", "tags": "v1"}'))
    with pytest.raises(uc.InvalidInput, match="tags"):
        uc.list_repository(f"oci://{registry.host}/{REPO}", plain_http=True)


def test_upload_without_location_is_refused(serve: Callable[[App], Server]) -> None:
    registry = serve(lambda h: reply(h, 404) if h.command == "HEAD" else reply(h, 202))
    reg = Registry(Reference.parse(f"oci://{registry.host}/{REPO}"), plain_http=True)
    with pytest.raises(uc.InvalidInput, match="Location"):
        reg.push_blob(sha256_digest(b"abc"), 3, b"abc")


def test_a_registry_that_stalls_times_out(serve: Callable[[App], Server]) -> None:
    """No hang: a registry that stops answering (before the headers, or within a blob) is an OperationalError."""

    def stall(h: Handler) -> None:
        if "/blobs/" in h.path:
            h.send_response(200)
            h.send_header("Content-Length", "100")
            h.end_headers()
            raw(h, b"x")
        time.sleep(1.5)

    registry = serve(stall)
    reg = Registry(Reference.parse(f"oci://{registry.host}/{REPO}"), plain_http=True, timeout=0.3)
    with pytest.raises(uc.OperationalError, match="timed out"):
        reg.get_manifest("v1")
    with pytest.raises(uc.OperationalError, match="timed out"):
        list(reg.blob_chunks(Descriptor("x", sha256_digest(b"x" * 100), 100), "layer x"))
