"""The CNCF ModelPack layout of a pack (github.com/modelpack/model-spec: docs/spec.md, docs/config.md,
docs/annotations.md, specs-go/v1): the media types, the file path annotation and the model config blob.

Every pack file is one unarchived (``.raw``) layer: modctl, KitOps and Docker model-runner pick a codec from
the ``.raw`` / ``.tar`` suffix and refuse media types outside the spec, so uc-attest's own files travel as
documentation layers. The config names no creation time: one pack is one digest everywhere.
"""

from __future__ import annotations

import json
import math
import posixpath
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..core.digest import canonical_json
from ..manifest import Manifest
from ..pack.layout import MANIFEST_NAME

#: specs-go/v1/mediatype.go: ArtifactTypeModelManifest, MediaTypeModelConfig.
ARTIFACT_TYPE = "application/vnd.cncf.model.manifest.v1+json"
CONFIG_TYPE = "application/vnd.cncf.model.config.v1+json"
#: specs-go/v1/annotations.go: AnnotationFilepath, the layer's file path (modctl extracts the layer there).
FILEPATH = "org.cncf.model.filepath"
#: docs/config.md: ``format`` names the weight file format; ``modelfs.type`` is always "layers".
FORMAT = "safetensors"


class LayerType(StrEnum):
    """The unarchived layer media types of the spec (specs-go/v1/mediatype.go, ``Media Type Model*Raw``)."""

    WEIGHT = "application/vnd.cncf.model.weight.v1.raw"
    WEIGHT_CONFIG = "application/vnd.cncf.model.weight.config.v1.raw"
    DOC = "application/vnd.cncf.model.doc.v1.raw"
    CODE = "application/vnd.cncf.model.code.v1.raw"
    DATASET = "application/vnd.cncf.model.dataset.v1.raw"


_WEIGHTS = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_WEIGHT_CONFIG = (".json", ".model", ".txt", ".tiktoken", ".jinja")
_CODE = (".py", ".sh")
#: uc-attest's own files (its manifest; a signed source's OMS signature, evidence/oms.py SOURCE_SIGNATURE_NAME).
_OWN = (MANIFEST_NAME, "uc-source.model.sig")


def layer_type(rel: str) -> LayerType:
    """The layer media type of a pack file: shards are weights; config.json, the shard index, tokenizer and
    generation files are weight config; uc-attest's manifest and provenance, READMEs and the rest are docs."""
    name = posixpath.basename(rel).lower()
    if rel in _OWN or name.startswith(("readme", "license")) or name.endswith(".md"):
        return LayerType.DOC
    if name.endswith(_WEIGHTS):
        return LayerType.WEIGHT
    if name.endswith(_WEIGHT_CONFIG):
        return LayerType.WEIGHT_CONFIG
    if name.endswith(_CODE):
        return LayerType.CODE
    return LayerType.DOC


#: safetensors dtype -> docs/config.md ``precision`` value (dtypes the spec does not name have none).
PRECISION = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3",
    "F8_E5M2": "float8_e5m2",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
}
_SCALES = (("K", 10**3), ("M", 10**6), ("B", 10**9), ("T", 10**12), ("Q", 10**15))


def param_size(count: int) -> str:
    """docs/config.md ``paramSize``: a count with at most one decimal and a scale letter (``6.7B``, ``30.5K``)."""
    for letter, scale in _SCALES:
        value = round(count / scale, 1)
        if value < 1000 or letter == "Q":
            break
    return f"{value:.1f}".removesuffix(".0") + letter


@dataclass(frozen=True)
class ModelConfig:
    """The ``application/vnd.cncf.model.config.v1+json`` blob (docs/config.md): what a ModelPack tool shows."""

    diff_ids: tuple[str, ...]
    quantization: str
    precision: str | None = None
    param_size: str | None = None
    family: str | None = None

    @classmethod
    def of(cls, manifest: Manifest, config_json: bytes | None, diff_ids: tuple[str, ...]) -> ModelConfig:
        """The config of a pack: its scheme id as ``quantization``, the tensors' dtypes as ``precision`` (none if
        one has no spec name), their element count as ``paramSize``, config.json's ``model_type`` as ``family``."""
        names = {PRECISION.get(t.dtype) for t in manifest.tensors}
        precision = None if None in names or not names else ",".join(sorted(n for n in names if n))
        count = sum(math.prod(t.shape) for t in manifest.tensors)
        return cls(
            diff_ids=diff_ids,
            quantization=str(manifest.scheme.get("id", "")),
            precision=precision,
            param_size=param_size(count) if count >= 1000 else None,
            family=_model_type(config_json),
        )

    def to_json(self) -> bytes:
        """RFC 8785 JSON: the same pack gives the same config digest."""
        config: dict[str, Any] = {"format": FORMAT, "quantization": self.quantization}
        if self.precision:
            config["precision"] = self.precision
        if self.param_size:
            config["paramSize"] = self.param_size
        descriptor = {"family": self.family} if self.family else {}
        return canonical_json(
            {"descriptor": descriptor, "config": config, "modelfs": {"type": "layers", "diffIds": list(self.diff_ids)}}
        )


def _model_type(config_json: bytes | None) -> str | None:
    """``model_type`` of a transformers config.json (the model family, e.g. ``llama``), if it names one."""
    if config_json is None:
        return None
    try:
        obj = json.loads(config_json)
    except (ValueError, RecursionError):
        return None
    value = obj.get("model_type") if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None
