"""A pack as an OCI artifact, its bundles as referrers (docs/oci.md).

Pack manifest: OCI image manifest 1.1 in the CNCF ModelPack layout (``modelpack.py``): ``artifactType``
``application/vnd.cncf.model.manifest.v1+json``, a model config blob, one unarchived layer per pack file (sorted
by name; ``org.cncf.model.filepath`` and ``org.opencontainers.image.title`` = its relative path), the manifest
root and the scheme as annotations. Packs pushed before (Layout.UC_ATTEST_V1: uc-attest's own media types, the
empty config) still pull. Its bytes are canonical JSON, so the same pack is the same digest everywhere and a
second push uploads nothing. Each bundle beside the pack (release, validations, OMS signature) is a referrer: a
manifest of ``artifactType`` the bundle media type, one layer, ``subject`` = the pack manifest; listed by the
referrers API where the registry has one, else by the ``sha256-<hex>`` tag index (fallback).
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any

from ..core.digest import canonical_json, sha256_file
from ..core.enums import member
from ..core.fsutil import atomic_output_dir, atomic_write_bytes, inside
from ..errors import InvalidInput, RegistryMisbehaved
from ..manifest import Manifest
from ..pack.layout import CONFIG_NAME, MANIFEST_NAME
from .modelpack import ARTIFACT_TYPE, CONFIG_TYPE, FILEPATH, LayerType, ModelConfig, layer_type
from .registry import OCI_INDEX, OCI_MANIFEST, Reference, Registry, fallback_tag, sha256_digest
from .schema import MAX_MANIFEST, Descriptor, ImageManifest, parse_index, parse_manifest, parse_tags, short

PACK_TYPE = "application/vnd.uc-attest.pack.v1+json"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY_DIGEST = sha256_digest(b"{}")
EMPTY: dict[str, Any] = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": EMPTY_DIGEST, "size": 2}
TITLE = "org.opencontainers.image.title"
ROOT_ANNOTATION, SCHEME_ANNOTATION, ROLE_ANNOTATION = (
    "dev.uc-attest.manifest-root",
    "dev.uc-attest.scheme",
    "dev.uc-attest.role",
)
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
#: The most a referrer's bundle may weigh (it is read into memory): Sigstore bundles are a few KiB.
MAX_BUNDLE = 16 << 20
#: The most components a layer's file path may have: a model's files sit a few directories deep, and making the
#: directories of a path thousands deep recursed past Python's limit.
MAX_PATH_DEPTH = 64
#: The most bytes a layer's file path may have: with the pull's destination directory in front it stays below the
#: system's 4,096-byte path limit (a longer one failed at open as an operational error, exit 4, not as the
#: registry's content refused).
MAX_PATH_BYTES = 1024


class BundleRole(StrEnum):
    """What a bundle beside a pack is: its referrer's ``dev.uc-attest.role`` annotation."""

    RELEASE = "release"  # PACK.sigstore.json
    VALIDATION = "validation"  # PACK.validation*.sigstore.json
    OMS = "oms"  # PACK.model.sig


class Layout(Enum):
    """How a pack's manifest and layers are typed in a registry."""

    #: CNCF ModelPack (the default): what modctl, KitOps and Docker model-runner read.
    MODELPACK = "modelpack"
    #: uc-attest's own media types and the empty config (packs pushed before ModelPack): pulled, and pushed on request.
    UC_ATTEST_V1 = "uc-attest-v1"

    @property
    def artifact_type(self) -> str:
        return ARTIFACT_TYPE if self is Layout.MODELPACK else PACK_TYPE


#: artifactType -> the layout it names; any other artifactType is not a pack.
LAYOUTS = {layout.artifact_type: layout for layout in Layout}
_RAW_TYPES = frozenset(LayerType)


def legacy_media_type(rel: str) -> str:
    """A pack file's layer media type in the uc-attest-v1 layout."""
    if rel == MANIFEST_NAME:
        return "application/vnd.uc-attest.manifest.v1+json"
    if rel.endswith(".safetensors"):
        return "application/vnd.uc-attest.shard.v1+safetensors"
    return "application/json" if rel.endswith(".json") else "application/octet-stream"


@dataclass(frozen=True)
class PackFile:
    """A pack file as a layer: its path in the pack, where it is, its sha256 digest and size."""

    rel: str
    path: Path
    digest: str
    size: int

    def layer(self, layout: Layout) -> dict[str, Any]:
        if layout is Layout.MODELPACK:
            media, annotations = str(layer_type(self.rel)), {FILEPATH: self.rel, TITLE: self.rel}
        else:
            media, annotations = legacy_media_type(self.rel), {TITLE: self.rel}
        return {"mediaType": media, "digest": self.digest, "size": self.size, "annotations": annotations}


@dataclass(frozen=True)
class BuiltPack:
    """What push uploads: the pack files, the config blob and the manifest (canonical JSON)."""

    layout: Layout
    files: tuple[PackFile, ...]
    config: bytes
    manifest: bytes


def build_pack(pack_dir: Path, layout: Layout = Layout.MODELPACK) -> BuiltPack:
    """The pack's artifact in ``layout``; InvalidInput for a file its manifest does not record as it is."""
    pack_dir = Path(pack_dir)
    manifest = Manifest.from_json((pack_dir / MANIFEST_NAME).read_bytes(), str(pack_dir / MANIFEST_NAME))
    files = []
    rels = sorted(p.relative_to(pack_dir).as_posix() for p in pack_dir.rglob("*") if p.is_file())
    refused = next(((rel, why) for rel in rels if (why := path_problem(rel)) is not None), None)
    if refused is not None:  # before anything is hashed or sent: a pull would refuse the artifact
        raise InvalidInput(
            f"{pack_dir}: {refused[1]}: no registry artifact can carry it", path=str(pack_dir / refused[0])
        )
    for rel in rels:
        digest = sha256_file(pack_dir / rel)
        want = manifest.files.get(rel)
        if rel != MANIFEST_NAME and (want is None or want.hex != digest.hex):
            raise InvalidInput(
                f"{pack_dir / rel}: not the file the pack's manifest records; verify the pack first",
                path=str(pack_dir / rel),
            )
        files.append(PackFile(rel, pack_dir / rel, "sha256:" + digest.hex, (pack_dir / rel).stat().st_size))
    if layout is Layout.MODELPACK:
        config_json = (pack_dir / CONFIG_NAME).read_bytes() if CONFIG_NAME in manifest.files else None
        config = ModelConfig.of(manifest, config_json, tuple(f.digest for f in files)).to_json()
        config_descriptor = {"mediaType": CONFIG_TYPE, "digest": sha256_digest(config), "size": len(config)}
    else:
        config, config_descriptor = b"{}", EMPTY
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": layout.artifact_type,
        "config": config_descriptor,
        "layers": [f.layer(layout) for f in files],
        "annotations": {
            ROOT_ANNOTATION: str(manifest.root),
            SCHEME_ANNOTATION: canonical_json(manifest.scheme).decode(),
        },
    }
    return BuiltPack(layout, tuple(files), config, canonical_json(body))


def bundles_beside(pack_dir: Path) -> list[tuple[Path, BundleRole]]:
    """(bundle file, role) for the bundles kept beside a pack: PACK.sigstore.json, PACK.validation*.sigstore.json,
    PACK.model.sig."""
    out = []
    for p in sorted(pack_dir.parent.glob(pack_dir.name + ".*")):
        rest = p.name[len(pack_dir.name) :]
        if rest == ".sigstore.json":
            out.append((p, BundleRole.RELEASE))
        elif rest.startswith(".validation") and rest.endswith(".sigstore.json"):
            out.append((p, BundleRole.VALIDATION))
        elif rest == ".model.sig":
            out.append((p, BundleRole.OMS))
    return out


@dataclass
class PushResult:
    reference: str
    digest: str
    layers: int
    uploaded_blobs: int
    uploaded_bytes: int
    referrers: list[dict[str, str]] = field(default_factory=list)
    referrers_api: bool = False

    def to_dict(self) -> dict[str, Any]:
        """What ``push --json`` prints."""
        return {"ok": True, **asdict(self)}


def push_pack(
    pack_dir: Path, ref: Reference, *, plain_http: bool = False, layout: Layout = Layout.MODELPACK
) -> PushResult:
    """Push the pack (its files must be those its manifest records) and the bundles beside it."""
    pack_dir = Path(pack_dir)
    built = build_pack(pack_dir, layout)
    reg = Registry(ref, plain_http=plain_http)
    for f in built.files:
        reg.push_blob(f.digest, f.size, f.path)
    reg.push_blob(sha256_digest(built.config), len(built.config), built.config)
    reg.push_blob(EMPTY_DIGEST, 2, b"{}")  # the referrers' config (the pack's own, in the uc-attest-v1 layout)
    raw = built.manifest
    digest, _ = reg.put_manifest(ref.tag or sha256_digest(raw), raw, OCI_MANIFEST)
    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw)}
    result = PushResult(str(ref), digest, len(built.files), 0, 0)
    api = True
    pushed: list[dict[str, Any]] = []
    for path, role in bundles_beside(pack_dir):
        data = path.read_bytes()
        bdigest = sha256_digest(data)
        reg.push_blob(bdigest, len(data), data)
        rbody = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": BUNDLE_TYPE,
            "config": EMPTY,
            "layers": [
                {"mediaType": BUNDLE_TYPE, "digest": bdigest, "size": len(data), "annotations": {TITLE: path.name}}
            ],
            "subject": subject,
            "annotations": {ROLE_ANNOTATION: role},
        }
        rraw = canonical_json(rbody)
        rdigest, handled = reg.put_manifest(sha256_digest(rraw), rraw, OCI_MANIFEST)
        api = api and handled
        pushed.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": rdigest,
                "size": len(rraw),
                "artifactType": BUNDLE_TYPE,
                "annotations": {ROLE_ANNOTATION: role, TITLE: path.name},
            }
        )
        result.referrers.append({"file": path.name, "role": role, "digest": rdigest})
    if pushed and not api:  # no referrers API: the tag-schema index, merged with what is there
        tag = fallback_tag(digest)
        old = reg.find_manifest(tag)
        entries = [d.to_json() for d in parse_index(old, f"{ref.host}: tag {tag}")] if old else []
        known = {e["digest"] for e in entries}
        entries += [e for e in pushed if e["digest"] not in known]
        index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        if index != old:
            reg.put_manifest(tag, index, OCI_INDEX)
    result.referrers_api = api and bool(pushed)
    result.uploaded_blobs, result.uploaded_bytes = reg.uploaded_blobs, reg.uploaded_bytes
    return result


@dataclass
class PullResult:
    reference: str
    digest: str
    out: Path
    files: int
    bytes: int
    bundles: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """What ``pull --json`` prints."""
        return {
            "ok": True,
            "reference": self.reference,
            "digest": self.digest,
            "output": str(self.out),
            "files": self.files,
            "bytes": self.bytes,
            "bundles": self.bundles,
        }


def _safe_path(rel: str | None, what: str) -> str:
    """A layer's file path as a relative path inside the pack (:func:`path_problem`), else RegistryMisbehaved."""
    problem = path_problem(rel)
    if problem is not None:
        raise RegistryMisbehaved(f"{what}: {problem}")
    assert rel is not None
    return rel


def path_problem(rel: str | None) -> str | None:
    """What makes ``rel`` no file path a pull writes (None: it is one): components that are not empty, ``.`` or
    ``..``, no absolute path, backslash, NUL or other control character, at most 255 bytes each, at most
    ``MAX_PATH_DEPTH`` of them and ``MAX_PATH_BYTES`` in all. ``push`` refuses the same paths before uploading."""
    parts = (rel or "").split("/")
    if (
        not rel
        or any(p in ("", ".", "..") or len(p.encode("utf-8", "surrogatepass")) > 255 for p in parts)
        or "\\" in rel
        or any(unicodedata.category(c) in ("Cc", "Cs") for c in rel)
    ):
        return f"unsafe or missing file name {short(rel)}"
    if len(parts) > MAX_PATH_DEPTH:
        return f"{short(rel)} is {len(parts)} components deep (directories nested at most {MAX_PATH_DEPTH - 1} deep)"
    size = len(rel.encode("utf-8", "surrogatepass"))
    if size > MAX_PATH_BYTES:
        return f"{short(rel)} is {size} bytes long (at most {MAX_PATH_BYTES})"
    return None


def _path_key(layer: Descriptor, layout: Layout) -> str:
    """The annotation that names a layer's file: the ModelPack file path when there is one, else the title."""
    has = layer.annotations.keys()
    return FILEPATH if FILEPATH in has or (TITLE not in has and layout is Layout.MODELPACK) else TITLE


def layer_path(layer: Descriptor, layout: Layout, what: str) -> str:
    """The file a layer is written to: its ``org.cncf.model.filepath`` or its ``org.opencontainers.image.title``
    (equal when both are there), a safe relative path; in the ModelPack layout, an unarchived layer type."""
    title, filepath = layer.annotations.get(TITLE), layer.annotations.get(FILEPATH)
    if title is not None and filepath is not None and title != filepath:
        raise RegistryMisbehaved(
            f"{what}.annotations: {TITLE!r} {short(title)} and {FILEPATH!r} {short(filepath)} name different files"
        )
    key = _path_key(layer, layout)
    rel = _safe_path(layer.annotations.get(key), f"{what}.annotations[{key!r}]")
    if layout is Layout.MODELPACK and layer.media_type not in _RAW_TYPES:
        raise RegistryMisbehaved(
            f"{what}.mediaType: {short(layer.media_type)} is not an unarchived ModelPack layer type "
            "(application/vnd.cncf.model.*.v1.raw)"
        )
    return rel


def _fold(rel: str) -> str:
    """The name a case-insensitive, normalizing file system (macOS, Windows) gives ``rel``."""
    return unicodedata.normalize("NFC", rel).casefold()


def pack_layout(raw: bytes, what: str) -> tuple[Layout, ImageManifest]:
    """The layout of a pack manifest (from its ``artifactType``; anything else is not a pack) and the manifest."""
    body = parse_manifest(raw, what)
    layout = LAYOUTS.get(body.artifact_type or "")
    if layout is None:
        raise InvalidInput(
            f"{what}: not a uc-attest pack (artifactType {body.artifact_type!r}, expected {ARTIFACT_TYPE} or {PACK_TYPE})"
        )
    if layout is Layout.MODELPACK and (body.config is None or body.config.media_type != CONFIG_TYPE):
        got = short(body.config.media_type) if body.config else "none"
        raise RegistryMisbehaved(f"{what}: config.mediaType: {got}, expected {CONFIG_TYPE} in a ModelPack artifact")
    return layout, body


def pack_layers(raw: bytes, what: str) -> list[tuple[str, Descriptor]]:
    """(file name, descriptor) of each layer of a pack manifest, every field checked before anything is fetched:
    a pack's ``artifactType`` (either layout), at least one layer, safe and distinct file paths (also up to case
    and Unicode normalization), a ``uc-manifest.json`` layer."""
    layout, body = pack_layout(raw, what)
    if not body.layers:
        raise InvalidInput(f"{what}: the pack manifest lists no layers")
    files: list[tuple[str, Descriptor]] = []
    seen: set[str] = set()
    for i, layer in enumerate(body.layers):
        rel = layer_path(layer, layout, f"{what}: layers[{i}]")
        folded = _fold(rel)
        parents = {"/".join(folded.split("/")[:k]) for k in range(1, folded.count("/") + 1)}
        if folded in seen or parents & seen or any(s.startswith(folded + "/") for s in seen):
            raise RegistryMisbehaved(
                f"{what}: layers[{i}].annotations[{_path_key(layer, layout)!r}]: {rel!r} is named twice (up to case "
                "and Unicode normalization), or as a file and a directory"
            )
        seen.add(folded)
        files.append((rel, layer))
    if MANIFEST_NAME not in {rel for rel, _ in files}:
        raise InvalidInput(f"{what}: the artifact has no {MANIFEST_NAME} layer")
    return files


def pull_pack(ref: Reference, out: Path, *, plain_http: bool = False, force: bool = False) -> PullResult:
    """Pull a pack by digest (a tag is resolved first; the result names the digest pulled) into ``out``, every
    blob checked while streaming, written atomically; its bundles beside ``out``. Any failure (a blob that does
    not match, a malformed referrer, a broken answer) leaves nothing behind."""
    reg = Registry(ref, plain_http=plain_http)
    raw, digest, _ = reg.get_manifest(ref.digest or ref.tag or "latest")
    files = pack_layers(raw, f"{ref} manifest")
    out = Path(out)
    with atomic_output_dir(out, overwrite=force) as tmp:
        bundles = _referrer_bundles(reg, digest, out)
        for rel, layer in files:
            dst = inside(tmp, rel)  # a layer's file path: checked by pack_layers, joined by the one rule
            dst.parent.mkdir(parents=True, exist_ok=True)
            with open(dst, "wb") as fh:
                fh.writelines(reg.blob_chunks(layer, f"layer {rel}"))
                fh.flush()
                os.fsync(fh.fileno())
    result = PullResult(str(ref), digest, out, len(files), sum(layer.size for _, layer in files))
    for path, data in bundles:
        atomic_write_bytes(path, data)
        result.bundles.append(str(path))
    return result


def bundle_referrer(raw: bytes, what: str, subject: str) -> tuple[BundleRole, Descriptor] | None:
    """(role, bundle layer) of a referrer manifest; None when it does not refer to ``subject`` or has no role of
    ours (ignored); RegistryMisbehaved naming the field when it is malformed (not exactly one layer...)."""
    body = parse_manifest(raw, what)
    role = member(BundleRole, body.annotations.get(ROLE_ANNOTATION))  # None: a referrer not of ours (ignored)
    if body.subject is None or body.subject.digest != subject or role is None:
        return None
    if len(body.layers) != 1:
        raise RegistryMisbehaved(f"{what}: layers: a bundle referrer has exactly one layer, not {len(body.layers)}")
    (layer,) = body.layers
    if layer.size > MAX_BUNDLE:
        raise RegistryMisbehaved(
            f"{what}: layers[0].size: {layer.size} bytes, over the {MAX_BUNDLE >> 20} MiB limit for a bundle"
        )
    return role, layer


def _referrer_bundles(reg: Registry, digest: str, out: Path) -> list[tuple[Path, bytes]]:
    found: list[tuple[Path, bytes]] = []
    validations = 0
    for e in reg.referrers(digest):
        if e.artifact_type != BUNDLE_TYPE:
            continue
        rraw, rdigest, _ = reg.get_manifest(e.digest)
        parsed = bundle_referrer(rraw, f"{reg.ref.host}: referrer {rdigest}", digest)
        if parsed is None:
            continue  # an index entry whose manifest does not refer to this pack: ignored
        role, layer = parsed
        data = b"".join(reg.blob_chunks(layer, f"referrer {rdigest}"))
        match role:
            case BundleRole.VALIDATION:
                validations += 1
                suffix = ".validation.sigstore.json" if validations == 1 else f".validation-{validations}.sigstore.json"
            case BundleRole.RELEASE:
                suffix = ".sigstore.json"
            case BundleRole.OMS:
                suffix = ".model.sig"
        found.append((out.parent / (out.name + suffix), data))
    return found


def list_repository(ref: Reference, *, plain_http: bool = False) -> list[dict[str, Any]]:
    """Each tag of the repository -> its digest -> (a pack's) manifest root -> the bundles attached as
    referrers, by role. Listed, not verified: ``verify oci://…@digest`` verifies one."""
    reg = Registry(ref, plain_http=plain_http)
    with reg.request("GET", "/tags/list") as resp:
        tags = parse_tags(reg.read_limited(resp, MAX_MANIFEST, f"{ref} tags"), f"{ref} tags")
    rows = []
    for tag in sorted(t for t in tags if not t.startswith("sha256-")):
        if not _TAG.match(tag):
            raise RegistryMisbehaved(f"{ref} tags: {short(tag)} is not a tag")
        raw, digest, _ = reg.get_manifest(tag)
        body = parse_manifest(raw, f"{ref}:{tag} manifest")
        row: dict[str, Any] = {"tag": tag, "digest": digest, "artifact_type": body.artifact_type}
        layout = LAYOUTS.get(body.artifact_type or "")
        if layout is not None:
            ann = body.annotations
            entries = reg.referrers(digest)
            roles = sorted(e.annotations.get(ROLE_ANNOTATION, "?") for e in entries if e.artifact_type == BUNDLE_TYPE)
            known = {member(BundleRole, r) for r in roles}
            status = (
                "validated"
                if BundleRole.VALIDATION in known
                else "released"
                if BundleRole.RELEASE in known
                else "no release bundle"
            )
            row |= {
                "layout": layout.value,
                "manifest_root": ann.get(ROOT_ANNOTATION),
                "bundles": roles,
                "status": f"{status} (listed)",
            }
        rows.append(row)
    return rows
