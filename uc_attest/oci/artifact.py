"""A pack as an OCI artifact, its bundles as referrers (docs/oci.md).

Pack manifest: OCI image manifest 1.1, ``artifactType`` PACK_TYPE, the empty config, one layer per pack
file (sorted by name; ``org.opencontainers.image.title`` = its relative path), the manifest root and the
scheme as annotations. Its bytes are canonical JSON, so the same pack is the same digest everywhere and a
second push uploads nothing. Each bundle beside the pack (release, validations, OMS signature) is a
referrer: a manifest of ``artifactType`` the bundle media type, one layer, ``subject`` = the pack manifest;
listed by the referrers API where the registry has one, else by the ``sha256-<hex>`` tag index (fallback).
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.digest import canonical_json, sha256_file
from ..core.fsutil import atomic_output_dir, atomic_write_bytes, inside
from ..errors import InvalidInput, RegistryMisbehaved
from ..manifest import Manifest
from ..pack.layout import MANIFEST_NAME
from .registry import OCI_INDEX, OCI_MANIFEST, Reference, Registry, fallback_tag, sha256_digest
from .schema import MAX_MANIFEST, Descriptor, parse_index, parse_manifest, parse_tags, short

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
ROLES = ("release", "validation", "oms")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
#: The most a referrer's bundle may weigh (it is read into memory): Sigstore bundles are a few KiB.
MAX_BUNDLE = 16 << 20


def media_type(rel: str) -> str:
    if rel == MANIFEST_NAME:
        return "application/vnd.uc-attest.manifest.v1+json"
    if rel.endswith(".safetensors"):
        return "application/vnd.uc-attest.shard.v1+safetensors"
    return "application/json" if rel.endswith(".json") else "application/octet-stream"


def bundles_beside(pack_dir: Path) -> list[tuple[Path, str]]:
    """(bundle file, role) for the bundles kept beside a pack: PACK.sigstore.json, PACK.validation*.sigstore.json,
    PACK.model.sig."""
    out = []
    for p in sorted(pack_dir.parent.glob(pack_dir.name + ".*")):
        rest = p.name[len(pack_dir.name) :]
        if rest == ".sigstore.json":
            out.append((p, "release"))
        elif rest.startswith(".validation") and rest.endswith(".sigstore.json"):
            out.append((p, "validation"))
        elif rest == ".model.sig":
            out.append((p, "oms"))
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


def push_pack(pack_dir: Path, ref: Reference, *, plain_http: bool = False) -> PushResult:
    """Push the pack (its files must be those its manifest records) and the bundles beside it."""
    pack_dir = Path(pack_dir)
    manifest = Manifest.from_json((pack_dir / MANIFEST_NAME).read_bytes(), str(pack_dir / MANIFEST_NAME))
    reg = Registry(ref, plain_http=plain_http)
    layers = []
    files = sorted(p.relative_to(pack_dir).as_posix() for p in pack_dir.rglob("*") if p.is_file())
    for rel in files:
        digest = "sha256:" + sha256_file(pack_dir / rel).hex
        want = manifest.files.get(rel)
        if rel != MANIFEST_NAME and (want is None or want.hex != digest.removeprefix("sha256:")):
            raise InvalidInput(
                f"{pack_dir / rel}: not the file the pack's manifest records; verify the pack first",
                path=str(pack_dir / rel),
            )
        size = (pack_dir / rel).stat().st_size
        reg.push_blob(digest, size, pack_dir / rel)
        layers.append({"mediaType": media_type(rel), "digest": digest, "size": size, "annotations": {TITLE: rel}})
    reg.push_blob(EMPTY_DIGEST, 2, b"{}")
    body = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": PACK_TYPE,
        "config": EMPTY,
        "layers": layers,
        "annotations": {
            ROOT_ANNOTATION: str(manifest.root),
            SCHEME_ANNOTATION: canonical_json(manifest.scheme).decode(),
        },
    }
    raw = canonical_json(body)
    digest, _ = reg.put_manifest(ref.tag or sha256_digest(raw), raw, OCI_MANIFEST)
    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(raw)}
    result = PushResult(str(ref), digest, len(layers), 0, 0)
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


def _safe_title(title: str | None, what: str) -> str:
    """A layer's title as a relative path inside the pack: components that are not empty, ``.`` or ``..``, no
    absolute path, backslash, NUL or other control character, at most 255 bytes each."""
    rel = title or ""
    parts = rel.split("/")
    if (
        not rel
        or len(rel.encode("utf-8", "surrogatepass")) > 4096
        or any(p in ("", ".", "..") or len(p.encode("utf-8", "surrogatepass")) > 255 for p in parts)
        or "\\" in rel
        or any(unicodedata.category(c) in ("Cc", "Cs") for c in rel)
    ):
        raise RegistryMisbehaved(f"{what}.annotations[{TITLE!r}]: unsafe or missing file name {short(title)}")
    return rel


def pack_layers(raw: bytes, what: str) -> list[tuple[str, Descriptor]]:
    """(file name, descriptor) of each layer of a pack manifest, every field checked before anything is fetched:
    a pack's ``artifactType``, at least one layer, safe and distinct titles, a ``uc-manifest.json`` layer."""
    body = parse_manifest(raw, what)
    if body.artifact_type != PACK_TYPE:
        raise InvalidInput(f"{what}: not a uc-attest pack (artifactType {body.artifact_type!r}, expected {PACK_TYPE})")
    if not body.layers:
        raise InvalidInput(f"{what}: the pack manifest lists no layers")
    files: list[tuple[str, Descriptor]] = []
    seen: set[str] = set()
    for i, layer in enumerate(body.layers):
        rel = _safe_title(layer.annotations.get(TITLE), f"{what}: layers[{i}]")
        parents = {"/".join(rel.split("/")[:k]) for k in range(1, rel.count("/") + 1)}
        if rel in seen or parents & seen or any(s.startswith(rel + "/") for s in seen):
            raise RegistryMisbehaved(
                f"{what}: layers[{i}].annotations[{TITLE!r}]: {rel!r} is named twice, or as a file and a directory"
            )
        seen.add(rel)
        files.append((rel, layer))
    if MANIFEST_NAME not in seen:
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
            dst = inside(tmp, rel)  # a layer title: checked by pack_layers, joined by the one rule
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


def bundle_referrer(raw: bytes, what: str, subject: str) -> tuple[str, Descriptor] | None:
    """(role, bundle layer) of a referrer manifest; None when it does not refer to ``subject`` or has no role of
    ours (ignored); RegistryMisbehaved naming the field when it is malformed (not exactly one layer...)."""
    body = parse_manifest(raw, what)
    role = body.annotations.get(ROLE_ANNOTATION)
    if body.subject is None or body.subject.digest != subject or role not in ROLES:
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
        if role == "validation":
            validations += 1
            suffix = ".validation.sigstore.json" if validations == 1 else f".validation-{validations}.sigstore.json"
        else:
            suffix = {"release": ".sigstore.json", "oms": ".model.sig"}[role]
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
        if body.artifact_type == PACK_TYPE:
            ann = body.annotations
            entries = reg.referrers(digest)
            roles = sorted(e.annotations.get(ROLE_ANNOTATION, "?") for e in entries if e.artifact_type == BUNDLE_TYPE)
            status = "validated" if "validation" in roles else "released" if "release" in roles else "no release bundle"
            row |= {"manifest_root": ann.get(ROOT_ANNOTATION), "bundles": roles, "status": f"{status} (listed)"}
        rows.append(row)
    return rows
