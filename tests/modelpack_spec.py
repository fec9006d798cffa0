"""What the CNCF ModelPack specification (github.com/modelpack/model-spec) requires of an artifact, written here
from the spec itself, independently of uc_attest/oci/modelpack.py: its media-type and annotation constants, a
JSON schema of the model config built from its required fields, and the checks of a manifest + config pair."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import SHARED

# specs-go/v1/mediatype.go (ArtifactTypeModelManifest, MediaTypeModelConfig, MediaTypeModel*)
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"  # docs/spec.md: mediaType MUST be this
ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.cncf.model.config.v1+json"
LAYER_MEDIA_TYPES = frozenset(f"application/vnd.cncf.model.{kind}.v1.{form}"
                              for kind in ("weight", "weight.config", "doc", "code", "dataset")
                              for form in ("raw", "tar", "tar+gzip", "tar+zstd"))  # fmt: skip
# specs-go/v1/annotations.go (AnnotationFilepath)
FILEPATH = "org.cncf.model.filepath"
# docs/config.md, config.precision: the values the spec lists (several are comma-separated)
PRECISIONS = frozenset({"float32", "float64", "float16", "bfloat16", "float8_e4m3", "float8_e5m2", "complex32",
                        "complex64", "complex128", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                        "uint64", "bool"})  # fmt: skip
# docs/config.md, config.paramSize: <count with at most one decimal><one scale letter Q/T/B/M/K, any case>
PARAM_SIZE = re.compile(r"^[0-9]+(\.[0-9])?[QqTtBbMmKk]$")

_STRINGS = {"type": "array", "items": {"type": "string"}}
# The model config's schema, from the required fields and types of docs/config.md and schema/config-schema.json
# (descriptor, config and modelfs REQUIRED; modelfs.type "layers" and modelfs.diffIds REQUIRED; nothing else).
CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["descriptor", "config", "modelfs"],
    "additionalProperties": False,
    "properties": {
        "descriptor": {"type": "object", "additionalProperties": False, "properties": {
            "createdAt": {"type": "string", "format": "date-time"}, "authors": _STRINGS, "vendor": {"type": "string"},
            "family": {"type": "string"}, "name": {"type": "string", "minLength": 1}, "version": {"type": "string"},
            "title": {"type": "string"}, "description": {"type": "string"}, "docURL": {"type": "string"},
            "sourceURL": {"type": "string"}, "datasetsURL": _STRINGS, "revision": {"type": "string"},
            "licenses": _STRINGS}},
        "config": {"type": "object", "additionalProperties": False, "properties": {
            "architecture": {"type": "string"}, "format": {"type": "string"}, "paramSize": {"type": "string"},
            "precision": {"type": "string"}, "quantization": {"type": "string"}, "capabilities": {"type": "object"}}},
        "modelfs": {"type": "object", "additionalProperties": False, "required": ["type", "diffIds"], "properties": {
            "type": {"type": "string", "enum": ["layers"]},
            "diffIds": {"type": "array", "minItems": 1, "items": {"type": "string"}}}},
    },
}  # fmt: skip


def shared_config_schema() -> dict[str, Any]:
    """The spec's own schema/config-schema.json from ../shared/vectors, or skip saying where it was looked for."""
    candidates = sorted((SHARED / "vectors").glob("*model*spec*/**/config-schema.json")) + sorted(
        (SHARED / "vectors").glob("modelpack*/**/config-schema.json"))  # fmt: skip
    if not candidates:
        pytest.skip(f"no ModelPack schema (config-schema.json) under {SHARED / 'vectors'}: the spec's own schema "
                    "is not vendored there; the schema built from its required fields still ran")  # fmt: skip
    return json.loads(Path(candidates[0]).read_text())


def check_modelpack(manifest_raw: bytes, config_raw: bytes, schema: dict[str, Any] = CONFIG_SCHEMA) -> dict[str, Any]:
    """Assert that a manifest and its config blob are a ModelPack artifact as the spec describes; the config."""
    manifest = json.loads(manifest_raw)
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MANIFEST_MEDIA_TYPE
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    assert manifest["config"]["size"] == len(config_raw)
    config = json.loads(config_raw)
    jsonschema.validate(config, schema, format_checker=jsonschema.FormatChecker())
    layers = manifest["layers"]
    assert layers and all(layer["mediaType"] in LAYER_MEDIA_TYPES for layer in layers)
    assert all(layer["annotations"][FILEPATH] for layer in layers)
    assert config["modelfs"]["diffIds"] == [layer["digest"] for layer in layers]  # raw layers: DiffID = digest
    if "precision" in config["config"]:
        assert set(config["config"]["precision"].split(",")) <= PRECISIONS
    if "paramSize" in config["config"]:
        assert PARAM_SIZE.match(config["config"]["paramSize"])
    return config
