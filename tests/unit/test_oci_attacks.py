"""What a registry answers, parsed: any bytes, any JSON, any mutation of a valid manifest gives either a parsed
value or the documented error (InvalidInput / RegistryMisbehaved, exit 3) naming the field, never another
exception. ``UC_FUZZ_EXAMPLES=20000`` runs more examples per target (default 200)."""

from __future__ import annotations

import copy
import json
import os
import posixpath
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uc_attest as uc
from uc_attest.core.fsutil import inside
from uc_attest.core.httpclient import Refused, redirect
from uc_attest.oci.artifact import (
    BUNDLE_TYPE,
    EMPTY,
    PACK_TYPE,
    ROLE_ANNOTATION,
    TITLE,
    build_pack,
    bundle_referrer,
    pack_layers,
)
from uc_attest.oci.modelpack import ARTIFACT_TYPE, CONFIG_TYPE, FILEPATH, LayerType
from uc_attest.oci.registry import OCI_INDEX, OCI_MANIFEST, origin, sha256_digest
from uc_attest.oci.schema import (
    Descriptor,
    ImageManifest,
    RegistryMisbehaved,
    parse_index,
    parse_manifest,
    parse_tags,
)

EXAMPLES = int(os.environ.get("UC_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DIGEST = sha256_digest(b"x")
FIELDS = ["mediaType", "digest", "size", "annotations", "artifactType", "layers", "subject", "config", "manifests",
          "schemaVersion", "tags", TITLE, ROLE_ANNOTATION, FILEPATH]  # fmt: skip
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
           | st.sampled_from([DIGEST, "sha256:", PACK_TYPE, BUNDLE_TYPE, ARTIFACT_TYPE, CONFIG_TYPE, LayerType.WEIGHT.value,
                              "release", "../x", "a\x00b", -1, 2**64]))  # fmt: skip
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5),
                           max_leaves=25)  # fmt: skip


def valid_pack() -> dict[str, Any]:
    layers = [{"mediaType": "application/octet-stream", "digest": sha256_digest(name.encode()), "size": 4,
               "annotations": {TITLE: name}} for name in ("uc-manifest.json", "model.safetensors", "sub/x.json")]  # fmt: skip
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": PACK_TYPE, "config": EMPTY,
            "layers": layers, "annotations": {"dev.uc-attest.manifest-root": DIGEST}}  # fmt: skip


def valid_modelpack() -> dict[str, Any]:
    """A pack manifest in the ModelPack layout: file paths in both annotations, the spec's raw layer types."""
    layers = [{"mediaType": kind.value, "digest": sha256_digest(name.encode()), "size": 4,
               "annotations": {TITLE: name, FILEPATH: name}}
              for name, kind in (("uc-manifest.json", LayerType.DOC), ("model.safetensors", LayerType.WEIGHT),
                                 ("sub/x.json", LayerType.WEIGHT_CONFIG))]  # fmt: skip
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": DIGEST, "size": 300}, "layers": layers,
            "annotations": {"dev.uc-attest.manifest-root": DIGEST}}  # fmt: skip


def valid_referrer(subject: str) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_TYPE, "config": EMPTY,
            "layers": [{"mediaType": BUNDLE_TYPE, "digest": DIGEST, "size": 10, "annotations": {TITLE: "p.json"}}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 100},
            "annotations": {ROLE_ANNOTATION: "release"}}  # fmt: skip


def valid_index() -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": 5, "artifactType": BUNDLE_TYPE,
                           "annotations": {ROLE_ANNOTATION: "release"}}]}  # fmt: skip


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated(draw: st.DrawFn, make: Callable[[], dict[str, Any]]) -> bytes:
    """A valid document with 1-3 of its values replaced by any JSON value, or deleted."""
    doc = copy.deepcopy(make())  # never the module's own dicts (EMPTY)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            doc = draw(json_values)
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values)
    return json.dumps(doc).encode()


documents = (st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode())
             | st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(st.sampled_from(FIELDS), json_values)))  # fmt: skip


def _outcome(fn: Callable[[], Any]) -> Any:
    """The value, or the documented error: a one-line InvalidInput message. Anything else fails the test."""
    try:
        return fn()
    except uc.InvalidInput as exc:
        assert "\n" not in exc.message and exc.exit_code == 3
        return exc


@FUZZ
@given(st.one_of(documents, mutated(valid_pack), mutated(valid_index), mutated(lambda: valid_referrer(DIGEST))))
def test_parse_manifest_and_index_any_input(raw: bytes) -> None:
    m = _outcome(lambda: parse_manifest(raw, "m"))
    assert isinstance(m, ImageManifest | RegistryMisbehaved)
    if isinstance(m, ImageManifest):
        assert all(isinstance(d, Descriptor) and d.size >= 0 and type(d.size) is int for d in m.layers)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in m.annotations.items())
    idx = _outcome(lambda: parse_index(raw, "i"))
    assert isinstance(idx, tuple | RegistryMisbehaved)
    tags = _outcome(lambda: parse_tags(raw, "t"))
    assert isinstance(tags, list | RegistryMisbehaved)


def _check_pack_layers(raw: bytes) -> None:
    files = _outcome(lambda: pack_layers(raw, "oci://h/r manifest"))
    if isinstance(files, uc.InvalidInput):
        return
    names = [rel for rel, _ in files]
    assert "uc-manifest.json" in names
    assert len({unicodedata.normalize("NFC", n).casefold() for n in names}) == len(names)  # distinct on any disk
    for rel in names:  # a name that is written is a plain relative path inside the output directory
        assert posixpath.normpath(rel) == rel and not rel.startswith("/") and ".." not in rel.split("/")
        assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in rel) and "\\" not in rel
        assert inside(Path("/out"), rel).is_relative_to("/out")
    for rel, layer in files:  # the file path and the title, when both are there, agree
        assert rel in (layer.annotations.get(FILEPATH), layer.annotations.get(TITLE))
        assert layer.annotations.get(FILEPATH, rel) == layer.annotations.get(TITLE, rel) == rel


@FUZZ
@given(st.one_of(mutated(valid_pack), mutated(valid_modelpack), documents))
def test_pack_layers_any_manifest(raw: bytes) -> None:
    _check_pack_layers(raw)


@FUZZ
@given(mutated(lambda: valid_referrer(DIGEST)))
def test_bundle_referrer_any_mutation(raw: bytes) -> None:
    got = _outcome(lambda: bundle_referrer(raw, "referrer", DIGEST))
    if isinstance(got, tuple):
        role, layer = got
        assert role in ("release", "validation", "oms") and isinstance(layer, Descriptor)


@FUZZ
@given(mutated(valid_index))
def test_parse_index_any_mutation(raw: bytes) -> None:
    got = _outcome(lambda: parse_index(raw, "referrers"))
    if isinstance(got, tuple):
        assert all(d.digest.startswith("sha256:") and len(d.digest) == 71 for d in got)


@FUZZ
@given(st.text(max_size=40) | st.sampled_from(["a\x00b", "../x", "/etc/passwd", "a//b", "./a", "a/.", "\ud800"]))
def test_any_title(title: str) -> None:
    doc = valid_pack()
    doc["layers"][1]["annotations"][TITLE] = title
    _check_pack_layers(json.dumps(doc).encode())


# -- a layer's file path is untrusted input, in both layouts ------------------------------------------------------
HOSTILE_PARTS = ["..", ".", "", "a", "B", "model.safetensors", "uc-manifest.json", "UC-MANIFEST.JSON", "e\u0301",
                 "\u00e9", "\u212a", "k", "a\x00b", "a\\b", "\n", "~", "x" * 256, "\ud800"]  # fmt: skip
hostile_paths = (st.lists(st.sampled_from(HOSTILE_PARTS), min_size=1, max_size=4).map("/".join)
                 | st.sampled_from(["/etc/passwd", "//x", "a/../../b", "./uc-manifest.json", "uc-manifest.json/",
                                    "C:\\x", "..\\x"]) | st.text(max_size=30))  # fmt: skip
maybe_path = st.none() | hostile_paths


def _with_paths(layout: str, title: str | None, filepath: str | None) -> bytes:
    """The valid pack of ``layout`` with its second layer named by ``title`` and ``filepath`` (None: absent)."""
    doc = valid_modelpack() if layout == "modelpack" else valid_pack()
    ann = doc["layers"][1]["annotations"]
    ann.clear()
    ann.update({k: v for k, v in ((TITLE, title), (FILEPATH, filepath)) if v is not None})
    return json.dumps(doc).encode()


@FUZZ
@given(st.sampled_from(["modelpack", "uc-attest-v1"]), maybe_path, maybe_path)
def test_any_title_and_file_path(layout: str, title: str | None, filepath: str | None) -> None:
    """Traversal, absolute paths, duplicates (also up to case and Unicode normalization), a title and a file path
    that disagree: one line naming the annotation; what is accepted is a safe path both annotations agree on."""
    raw = _with_paths(layout, title, filepath)
    _check_pack_layers(raw)
    got = _outcome(lambda: pack_layers(raw, "m"))
    if title is not None and filepath is not None and title != filepath:
        assert isinstance(got, RegistryMisbehaved) and "name different files" in got.message
    elif isinstance(got, list):
        assert got[1][0] == (filepath if filepath is not None else title)


@FUZZ
@given(st.sampled_from(["modelpack", "uc-attest-v1"]),
       st.sampled_from(["uc-manifest.json", "sub/x.json", "sub", "uc-manifest.json/y", "sub/x.json/y"]),
       st.sampled_from([str.upper, str.title, str.lower]))  # fmt: skip
def test_a_path_named_twice_is_refused(layout: str, path: str, case: Callable[[str], str]) -> None:
    """A layer path equal to another one up to case (one file on macOS and Windows), a file where another layer needs
    a directory (``sub``), or a path below a file (``…/y``) is refused, whichever annotation names it."""
    got = _outcome(lambda: pack_layers(_with_paths(layout, case(path), case(path)), "m"))
    assert isinstance(got, RegistryMisbehaved) and "is named twice" in got.message, got


@pytest.mark.parametrize("layout", ["modelpack", "uc-attest-v1"])
def test_unicode_normalization_twins_are_refused(layout: str) -> None:
    """``café.json`` composed (NFC) and decomposed (NFD) are two names in a manifest and one file on macOS."""
    doc = json.loads(_with_paths(layout, "caf\u00e9.json", "caf\u00e9.json"))
    doc["layers"][2]["annotations"] = {TITLE: "cafe\u0301.json", FILEPATH: "cafe\u0301.json"}
    with pytest.raises(RegistryMisbehaved, match=r"layers\[2\]\.annotations\[.*\]: 'cafe\u0301.json' is named twice"):
        pack_layers(json.dumps(doc).encode(), "m")


@pytest.mark.parametrize(("layout", "title", "filepath", "match"), [
    ("modelpack", None, "../../etc/cron.d/x", r"annotations\['org.cncf.model.filepath'\]: unsafe or missing file name"),
    ("modelpack", None, "/etc/passwd", "unsafe or missing file name '/etc/passwd'"),
    ("modelpack", "../x", None, r"annotations\['org.opencontainers.image.title'\]: unsafe"),
    ("uc-attest-v1", None, "a/./b", r"annotations\['org.cncf.model.filepath'\]: unsafe"),
    ("modelpack", None, None, r"annotations\['org.cncf.model.filepath'\]: unsafe or missing file name None"),
    ("uc-attest-v1", None, None, r"annotations\['org.opencontainers.image.title'\]: unsafe or missing"),
    ("modelpack", "model.safetensors", "other.safetensors", "'model.safetensors' and .* 'other.safetensors' name"),
    ("uc-attest-v1", "model.safetensors", "../model.safetensors", "name different files"),
    ("modelpack", "uc-manifest.json", "uc-manifest.json", "'uc-manifest.json' is named twice"),
    ("modelpack", None, "Uc-Manifest.JSON", "is named twice \\(up to case"),
    ("uc-attest-v1", "sub/x.json/y", None, "as a file and a directory"),
    # outside review (issue 34): 2,000 directories passed, and pull recursed past Python's limit making them
    ("modelpack", None, "a/" * 2000 + "b", r"filepath'\]: 'a/a/.* is 2001 components deep"),
    ("uc-attest-v1", "a/" * 64 + "b", None, r"title'\]: .* is 65 components deep \(directories nested at most 63"),
    # 63 directories of 255 bytes passed both checks and failed at open past PATH_MAX: exit 4, not the registry's
    ("modelpack", None, ("d" * 255 + "/") * 16 + "x", r"filepath'\]: .* is 4097 bytes long \(at most 1024\)"),
    ("modelpack", None, ("é" * 127 + "/") * 4 + "abcde", r"is 1025 bytes long"),
])  # fmt: skip
def test_unsafe_file_paths_one_line(layout: str, title: str | None, filepath: str | None, match: str) -> None:
    with pytest.raises(RegistryMisbehaved, match=match) as exc:
        pack_layers(_with_paths(layout, title, filepath), "m")
    assert "\n" not in exc.value.message and exc.value.exit_code == 3


def test_push_refuses_a_file_path_pull_would_refuse(model_factory: Callable[..., Path], tmp_path: Path) -> None:
    """A pack holding a file 1,216 bytes deep pushed, then its pull was refused as the registry's fault (exit 3
    blaming the registry for the project's own artifact): push refuses it first, naming it (found by review)."""
    pack = tmp_path / "pack"
    uc.write_pack(model_factory(), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    deep = pack.joinpath(*(["d" * 200] * 6))
    deep.mkdir(parents=True)
    (deep / "notes.txt").write_text("x")
    with pytest.raises(uc.InvalidInput, match=r"is 1215 bytes long \(at most 1024\): no registry artifact") as exc:
        build_pack(pack)
    assert exc.value.exit_code == 3 and "\n" not in exc.value.message


@pytest.mark.parametrize("layout", ["modelpack", "uc-attest-v1"])
def test_a_path_63_directories_deep_is_pulled(layout: str, tmp_path: Path) -> None:
    """The deepest path a layer may name is still written where pull writes it (its directories made)."""
    for deep in ("d/" * 63 + "model.safetensors", "/".join(c * 204 for c in "defgh")):  # 1,024 bytes
        files = pack_layers(_with_paths(layout, deep, deep), "m")
        assert files[1][0] == deep
        dst = inside(tmp_path, deep)
        dst.parent.mkdir(parents=True)
        dst.write_bytes(b"x")


@pytest.mark.parametrize(("change", "match"), [
    ({"artifactType": "application/vnd.cncf.model.manifest.v2+json"}, "not a uc-attest pack"),
    ({"artifactType": None}, "not a uc-attest pack"),
    ({"config": EMPTY}, "config.mediaType: 'application/vnd.oci.empty.v1\\+json', expected"),
    ({"config": None}, "config.mediaType: none"),
])  # fmt: skip
def test_modelpack_manifest_fields(change: dict[str, Any], match: str) -> None:
    doc = {**valid_modelpack(), **change}
    with pytest.raises(uc.InvalidInput, match=match):
        pack_layers(json.dumps(doc).encode(), "m")


@pytest.mark.parametrize("media", ["application/vnd.cncf.model.weight.v1.tar", "application/vnd.cncf.model.doc.v1.tar+gzip",
                                   "application/octet-stream", "application/vnd.uc-attest.shard.v1+safetensors"])  # fmt: skip
def test_a_modelpack_layer_is_unarchived(media: str) -> None:
    """Pull writes each layer as the file it names: an archive layer would be written unextracted, so it is refused."""
    doc = valid_modelpack()
    doc["layers"][1]["mediaType"] = media
    with pytest.raises(RegistryMisbehaved, match=r"layers\[1\]\.mediaType: .* is not an unarchived ModelPack layer"):
        pack_layers(json.dumps(doc).encode(), "m")
    legacy = valid_pack()
    legacy["layers"][1]["mediaType"] = media  # the old layout typed layers its own way: any type pulls
    assert len(pack_layers(json.dumps(legacy).encode(), "m")) == 3


# -- the specific findings, at unit level ---------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [b"[" * 100_000 + b"]" * 100_000, b'{"layers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                                 b'{"a": ' * 50_000 + b"1" + b"}" * 50_000])  # fmt: skip
def test_deep_nesting_is_invalid_input(raw: bytes) -> None:
    with pytest.raises(RegistryMisbehaved, match="nested too deeply"):
        parse_manifest(raw, "m")


@pytest.mark.parametrize(("size", "ok"), [(0, True), (5, True), (None, False), ("abc", False), ("5", False),
                                          (-1, False), (True, False), (5.0, False), (2**64, False)])  # fmt: skip
def test_descriptor_size(size: Any, ok: bool) -> None:
    d = {"mediaType": "x", "digest": DIGEST, "size": size}
    if ok:
        assert Descriptor.parse(d, "layers[0]").size == size
    else:
        with pytest.raises(RegistryMisbehaved, match=r"layers\[0\]\.size"):
            Descriptor.parse(d, "layers[0]")


def test_annotations_subject_and_layer_count() -> None:
    with pytest.raises(RegistryMisbehaved, match=r"layers\[0\]\.annotations: expected an object"):
        parse_manifest(json.dumps({"layers": [{"mediaType": "x", "digest": DIGEST, "size": 1, "annotations": ["a"]}]})
                       .encode(), "m")  # fmt: skip
    with pytest.raises(RegistryMisbehaved, match="m: subject: expected a descriptor object, got a string"):
        parse_manifest(json.dumps({"subject": DIGEST}).encode(), "m")
    two = valid_referrer(DIGEST)
    two["layers"] *= 2
    with pytest.raises(RegistryMisbehaved, match="exactly one layer, not 2"):
        bundle_referrer(json.dumps(two).encode(), "r", DIGEST)
    assert bundle_referrer(json.dumps(two).encode(), "r", sha256_digest(b"other")) is None  # not ours: ignored


@pytest.mark.parametrize(("dst", "keeps"), [("http://127.0.0.1:5000/other", True), ("/same/origin", True),
                                            ("http://127.0.0.1:5001/x", False), ("https://127.0.0.1:5000/x", False),
                                            ("http://localhost:5000/x", False), ("http://s3.example.com/x", False),
                                            ("HTTP://127.0.0.1:5000/x", True),
                                            ("http://127.0.0.1:80/x", False)])  # fmt: skip
def test_credentials_stay_on_their_origin(dst: str, keeps: bool) -> None:
    new = redirect("GET", "http://127.0.0.1:5000/v2/r/blobs/sha256:00", 307, dst, "Basic c2VjcmV0")
    assert new is not None and (new.authorization == "Basic c2VjcmV0") is keeps
    assert (origin("http://127.0.0.1:5000/a") == origin(new.url)) is keeps


@pytest.mark.parametrize("dst", ["file:///etc/passwd", "ftp://127.0.0.1/x", "data:,x", "javascript:alert(1)"])
def test_redirects_elsewhere_than_http_are_refused(dst: str) -> None:
    with pytest.raises(Refused, match="only http\\(s\\) redirects"):
        redirect("GET", "https://registry.example.com/v2/r/blobs/sha256:00", 302, dst, None)
    with pytest.raises(Refused, match="not a valid URL"):
        redirect("GET", "http://127.0.0.1:5000/a", 302, "http://127.0.0.1:x/", None)


def test_https_is_not_followed_to_http() -> None:
    with pytest.raises(Refused, match="https is not followed to http"):
        redirect("GET", "https://registry.example.com/v2/x", 301, "http://registry.example.com/v2/x", "Bearer t")
    assert redirect("GET", "http://127.0.0.1:5000/v2/x", 301, "https://127.0.0.1:5000/v2/x", None) is not None


@pytest.mark.parametrize("dst", ["http://[::1/", "//[::1/x", "https://[", "http://[zz]/", "http://[::1]x/",
                                 "http://[v1.x]/", "http://[::1]:99999/", "http://\uff3b::1/"])  # fmt: skip
def test_a_malformed_location_is_a_refused_redirect(dst: str) -> None:
    """A Location the URL parser rejects (an unclosed IPv6 bracket raised a bare ValueError out of urljoin: exit
    70 with a traceback) is a redirect refused naming it, as any other bad Location."""
    with pytest.raises(Refused, match="refused: not a valid URL"):
        redirect("GET", "https://registry.example.com/v2/r/blobs/sha256:00", 302, dst, "Bearer t")


_BASES = ["https://registry.example.com/v2/r/blobs/sha256:00", "http://127.0.0.1:5000/a", "http://[::1]:5000/a/b"]
_LOCATION_BITS = st.sampled_from(["http:", "https:", "//", "/", "[", "]", "::1", "@", ":", "%", "?", "#", "\\",
                                  "127.0.0.1", "host", "80", "\x00", "\r\n", " ", "..", "\u2100", "\uff3b", "x"])  # fmt: skip


@FUZZ
@given(st.sampled_from(_BASES), st.sampled_from(["GET", "HEAD", "POST", "PUT"]), st.sampled_from([301, 302, 303, 307, 308]),
       st.lists(_LOCATION_BITS, max_size=12).map("".join) | st.text(max_size=40), st.sampled_from([None, "Bearer t"]))  # fmt: skip
def test_any_location_gives_a_hop_none_or_a_refusal(
    base: str, method: str, code: int, dst: str, auth: str | None
) -> None:
    """Whatever a registry puts in Location, :func:`redirect` returns the next hop, None (not followed) or raises
    Refused, and a hop it returns is http(s), never https to http, and carries credentials only to the origin."""
    try:
        hop = redirect(method, base, code, dst, auth)
    except Refused as exc:
        assert "\n" not in str(exc)  # one line, the Location shown escaped
        return
    if hop is None:
        return
    assert origin(hop.url) is not None and hop.url.split(":", 1)[0].lower() in ("http", "https")
    assert not (base.startswith("https:") and hop.url.lower().startswith("http:"))
    assert hop.authorization is None or origin(hop.url) == origin(base)


@pytest.mark.parametrize(("method", "code", "then"), [("GET", 307, "GET"), ("HEAD", 302, "HEAD"), ("HEAD", 308, "HEAD"),
                                                      ("POST", 303, "GET"), ("POST", 301, "GET"), ("POST", 307, None),
                                                      ("PUT", 302, None), ("PUT", 307, None), ("GET", 300, None),
                                                      ("GET", 304, None)])  # fmt: skip
def test_which_redirects_are_followed_and_how(method: str, code: int, then: str | None) -> None:
    """urllib's rules, kept: GET and HEAD follow every redirect, POST 301-303 only (as a GET), nothing else."""
    new = redirect(method, "http://127.0.0.1:5000/a", code, "/b", None)
    assert (new.method if new else None) == then
    assert redirect("GET", "http://127.0.0.1:5000/a", 302, None, None) is None  # no Location: not followed
