"""A pack's artifact in the CNCF ModelPack layout, built without a registry: which file gets which media type,
the model config checked against the spec (tests/modelpack_spec.py), one digest per pack, and the
uc-attest-v1 layout still built on request. No ModelPack tool installs here (modctl and KitOps are Go
binaries; PyPI's ``kitops`` only wraps the ``kit`` binary), so the spec's schema and constants are the check."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import uc_attest as uc
from tests.conftest import make_model
from tests.modelpack_spec import CONFIG_SCHEMA, FILEPATH, LAYER_MEDIA_TYPES, check_modelpack, shared_config_schema
from uc_attest.oci.artifact import EMPTY, PACK_TYPE, TITLE, BuiltPack, Layout, build_pack, pack_layers
from uc_attest.oci.modelpack import LayerType, layer_type, param_size


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("modelpack")
    out = root / "pack"
    uc.write_pack(make_model(root / "src", shards=2), out, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    return out


@pytest.fixture(scope="module")
def built(pack: Path) -> BuiltPack:
    return build_pack(pack)


def test_every_pack_file_is_a_raw_layer_of_the_spec_with_its_path(built: BuiltPack, pack: Path) -> None:
    manifest = json.loads(built.manifest)
    got = {layer["annotations"][FILEPATH]: layer["mediaType"] for layer in manifest["layers"]}
    assert got == {
        "config.json": "application/vnd.cncf.model.weight.config.v1.raw",
        "model-00001-of-00002.safetensors": "application/vnd.cncf.model.weight.v1.raw",
        "model-00002-of-00002.safetensors": "application/vnd.cncf.model.weight.v1.raw",
        "tokenizer.json": "application/vnd.cncf.model.weight.config.v1.raw",
        "uc-manifest.json": "application/vnd.cncf.model.doc.v1.raw",
    }
    assert set(got.values()) <= LAYER_MEDIA_TYPES
    assert all(layer["annotations"] == {FILEPATH: layer["annotations"][TITLE], TITLE: layer["annotations"][FILEPATH]}
               for layer in manifest["layers"])  # fmt: skip
    assert [rel for rel, _ in pack_layers(built.manifest, "m")] == sorted(got)


def test_the_config_is_a_modelpack_config(built: BuiltPack, pack: Path) -> None:
    config = check_modelpack(built.manifest, built.config, CONFIG_SCHEMA)
    m = uc.load_manifest(pack / uc.MANIFEST_NAME)
    assert config["config"] == {"format": "safetensors", "quantization": m.scheme["id"], "precision": "bfloat16",
                                "paramSize": param_size(sum(math.prod(t.shape) for t in m.tensors))}  # fmt: skip
    assert config["descriptor"] == {"family": "llama"}  # config.json's model_type; no createdAt: one digest
    manifest = json.loads(built.manifest)
    assert manifest["annotations"]["dev.uc-attest.manifest-root"] == str(m.root)


def test_the_config_against_the_specs_own_schema(built: BuiltPack) -> None:
    check_modelpack(built.manifest, built.config, shared_config_schema())


def test_one_pack_one_digest_and_the_old_layout_on_request(built: BuiltPack, pack: Path) -> None:
    assert build_pack(pack).manifest == built.manifest
    old = build_pack(pack, Layout.UC_ATTEST_V1)
    body = json.loads(old.manifest)
    assert body["artifactType"] == PACK_TYPE and body["config"] == EMPTY and old.config == b"{}"
    assert [x["digest"] for x in body["layers"]] == [f.digest for f in built.files]
    assert all(set(x["annotations"]) == {TITLE} for x in body["layers"])
    assert [r for r, _ in pack_layers(old.manifest, "m")] == [r for r, _ in pack_layers(built.manifest, "m")]


def test_a_file_the_manifest_does_not_record_is_refused(pack: Path, built: BuiltPack) -> None:
    (pack / "extra.txt").write_text("not in the manifest")
    try:
        with pytest.raises(uc.InvalidInput, match="extra.txt: not the file the pack's manifest records"):
            build_pack(pack)
    finally:
        (pack / "extra.txt").unlink()


@pytest.mark.parametrize(("rel", "kind"), [("uc-manifest.json", LayerType.DOC), ("uc-source.model.sig", LayerType.DOC),
                                           ("model.safetensors", LayerType.WEIGHT), ("sub/x.SAFETENSORS", LayerType.WEIGHT),
                                           ("model.safetensors.index.json", LayerType.WEIGHT_CONFIG),
                                           ("tokenizer.model", LayerType.WEIGHT_CONFIG),
                                           ("chat_template.jinja", LayerType.WEIGHT_CONFIG),
                                           ("README.md", LayerType.DOC), ("LICENSE", LayerType.DOC),
                                           ("modeling.py", LayerType.CODE), ("weights.unknown", LayerType.DOC)])  # fmt: skip
def test_layer_type(rel: str, kind: LayerType) -> None:
    assert layer_type(rel) is kind


@pytest.mark.parametrize(("count", "text"), [(1000, "1K"), (30_512, "30.5K"), (999_960, "1M"), (1_040_000, "1M"),
                                             (6_700_000_000, "6.7B"), (8 * 10**9, "8B"), (1_050_000_000_000, "1.1T")])  # fmt: skip
def test_param_size(count: int, text: str) -> None:
    assert param_size(count) == text
