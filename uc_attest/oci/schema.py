"""What a registry answers, parsed once and typed: descriptors, image manifests, image indexes.

Every field read from a registry answer is checked here (type, range, form) and a failure is one line naming
the field (``RegistryMisbehaved``, exit 3); nothing a registry sends can raise anything else. A broken HTTP
exchange (refused, timeout, bad status line, truncated or malformed chunked body) is ``RegistryUnreachable``
(exit 4).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import RegistryMisbehaved

DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
#: The most a manifest, an index or a token answer may weigh (what CNCF distribution accepts for a manifest).
MAX_MANIFEST = 4 << 20
_MAX_SIZE = (1 << 63) - 1


def short(value: object, limit: int = 80) -> str:
    """``repr`` of a value from a registry, on one line and bounded (for error messages)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), f"a {type(value).__name__}"
    )


def parse_json(raw: bytes, what: str) -> dict[str, Any]:
    """A JSON object, or RegistryMisbehaved (not JSON, nested too deeply, not an object)."""
    try:
        obj = json.loads(raw)
    except RecursionError:
        raise RegistryMisbehaved(f"{what}: JSON nested too deeply") from None
    except ValueError as exc:
        raise RegistryMisbehaved(f"{what}: not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RegistryMisbehaved(f"{what}: not a JSON object ({_kind(obj)})")
    return obj


def optional_str(value: object, name: str) -> str | None:
    """A string field that may be absent; ``name`` is the field as the error names it."""
    if value is not None and not isinstance(value, str):
        raise RegistryMisbehaved(f"{name}: expected a string, got {_kind(value)}")
    return value


def parse_annotations(value: object, what: str) -> dict[str, str]:
    """``annotations``: absent, or an object of strings."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RegistryMisbehaved(f"{what}: expected an object of strings, got {_kind(value)}")
    for k, v in value.items():
        if not isinstance(v, str):
            raise RegistryMisbehaved(f"{what}[{short(k)}]: expected a string, got {_kind(v)}")
    return dict(value)


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what to fetch (sha256 digest), how many bytes, and its annotations."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    @classmethod
    def parse(cls, obj: object, what: str) -> Descriptor:
        if not isinstance(obj, dict):
            raise RegistryMisbehaved(f"{what}: expected a descriptor object, got {_kind(obj)}")
        media = obj.get("mediaType")
        if not isinstance(media, str):
            raise RegistryMisbehaved(f"{what}.mediaType: expected a string, got {_kind(media)}")
        digest = obj.get("digest")
        if not isinstance(digest, str) or not DIGEST.match(digest):
            raise RegistryMisbehaved(f"{what}.digest: expected sha256:<64 hex digits>, got {short(digest)}")
        size = obj.get("size")
        if type(size) is not int or not 0 <= size <= _MAX_SIZE:
            raise RegistryMisbehaved(f"{what}.size: expected a non-negative integer, got {short(size)}")
        annotations = parse_annotations(obj.get("annotations"), f"{what}.annotations")
        return cls(media, digest, size, annotations, optional_str(obj.get("artifactType"), f"{what}.artifactType"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class ImageManifest:
    """The fields of an OCI image manifest that uc-attest reads (an index parses too, with no layers)."""

    artifact_type: str | None
    config: Descriptor | None
    layers: tuple[Descriptor, ...]
    subject: Descriptor | None
    annotations: dict[str, str]


def _optional_descriptor(obj: dict[str, Any], key: str, what: str) -> Descriptor | None:
    value = obj.get(key)
    return None if value is None else Descriptor.parse(value, f"{what}: {key}")


def _descriptors(obj: dict[str, Any], key: str, what: str) -> tuple[Descriptor, ...]:
    value = obj.get(key, [])
    if not isinstance(value, list):
        raise RegistryMisbehaved(f"{what}: {key}: expected a list, got {_kind(value)}")
    return tuple(Descriptor.parse(v, f"{what}: {key}[{i}]") for i, v in enumerate(value))


def parse_manifest(raw: bytes, what: str) -> ImageManifest:
    """An image manifest from a registry; RegistryMisbehaved naming the field when a field read is malformed."""
    obj = parse_json(raw, what)
    optional_str(obj.get("mediaType"), f"{what}: mediaType")
    return ImageManifest(
        artifact_type=optional_str(obj.get("artifactType"), f"{what}: artifactType"),
        config=_optional_descriptor(obj, "config", what),
        layers=_descriptors(obj, "layers", what),
        subject=_optional_descriptor(obj, "subject", what),
        annotations=parse_annotations(obj.get("annotations"), f"{what}: annotations"),
    )


def parse_index(raw: bytes, what: str) -> tuple[Descriptor, ...]:
    """The ``manifests`` of an image index (a referrers answer, or the ``sha256-<hex>`` fallback tag)."""
    obj = parse_json(raw, what)
    optional_str(obj.get("mediaType"), f"{what}: mediaType")
    return _descriptors(obj, "manifests", what)


def parse_tags(raw: bytes, what: str) -> list[str]:
    """The ``tags`` of a tag list answer (``null`` for a repository without tags)."""
    tags = parse_json(raw, what).get("tags")
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RegistryMisbehaved(f"{what}: tags: expected a list of strings, got {short(tags)}")
    return list(tags)
