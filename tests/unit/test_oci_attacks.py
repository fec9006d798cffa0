"""What a registry answers, parsed: any bytes, any JSON, any mutation of a valid manifest gives either a parsed
value or the documented error (InvalidInput / RegistryMisbehaved, exit 3) naming the field, never another
exception. ``UC_FUZZ_EXAMPLES=20000`` runs more examples per target (default 200)."""

from __future__ import annotations

import copy
import json
import os
import posixpath
import unicodedata
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import uc_attest as uc
from uc_attest.oci.artifact import BUNDLE_TYPE, EMPTY, PACK_TYPE, ROLE_ANNOTATION, TITLE, bundle_referrer, pack_layers
from uc_attest.oci.registry import OCI_INDEX, OCI_MANIFEST, _Redirects, origin, sha256_digest
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
          "schemaVersion", "tags", TITLE, ROLE_ANNOTATION]  # fmt: skip
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
           | st.sampled_from([DIGEST, "sha256:", PACK_TYPE, BUNDLE_TYPE, "release", "../x", "a\x00b", -1, 2**64]))  # fmt: skip
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5),
                           max_leaves=25)  # fmt: skip


def valid_pack() -> dict[str, Any]:
    layers = [{"mediaType": "application/octet-stream", "digest": sha256_digest(name.encode()), "size": 4,
               "annotations": {TITLE: name}} for name in ("uc-manifest.json", "model.safetensors", "sub/x.json")]  # fmt: skip
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": PACK_TYPE, "config": EMPTY,
            "layers": layers, "annotations": {"dev.uc-attest.manifest-root": DIGEST}}  # fmt: skip


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
    assert len(set(names)) == len(names) and "uc-manifest.json" in names
    for rel in names:  # a name that is written is a plain relative path inside the output directory
        assert posixpath.normpath(rel) == rel and not rel.startswith("/") and ".." not in rel.split("/")
        assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in rel) and "\\" not in rel


@FUZZ
@given(st.one_of(mutated(valid_pack), documents))
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


def _redirected(src: str, dst: str) -> urllib.request.Request | None:
    req = urllib.request.Request(src, headers={"Authorization": "Basic c2VjcmV0"})
    return _Redirects().redirect_request(req, None, 307, "Temporary Redirect", {}, dst)


@pytest.mark.parametrize(("dst", "keeps"), [("http://127.0.0.1:5000/other", True), ("http://127.0.0.1:5001/x", False),
                                            ("https://127.0.0.1:5000/x", False), ("http://localhost:5000/x", False),
                                            ("http://s3.example.com/x", False)])  # fmt: skip
def test_credentials_stay_on_their_origin(dst: str, keeps: bool) -> None:
    new = _redirected("http://127.0.0.1:5000/v2/r/blobs/sha256:00", dst)
    assert new is not None and new.has_header("Authorization") is keeps
    assert (origin("http://127.0.0.1:5000/a") == origin(dst)) is keeps
