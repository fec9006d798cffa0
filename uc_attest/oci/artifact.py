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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.digest import canonical_json, sha256_file
from ..core.fsutil import atomic_output_dir, atomic_write_bytes
from ..errors import InvalidInput
from ..manifest import Manifest
from ..pack.layout import MANIFEST_NAME
from .registry import OCI_INDEX, OCI_MANIFEST, Reference, Registry, fallback_tag, parse_json, sha256_digest

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
#: Bundle file suffixes beside a pack directory, and their referrer role.
BUNDLE_SUFFIXES = {".sigstore.json": "release", ".validation.sigstore.json": "validation", ".model.sig": "oms"}


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
            raise InvalidInput(f"{pack_dir / rel}: not the file the pack's manifest records; verify the pack first",
                               path=str(pack_dir / rel))  # fmt: skip
        size = (pack_dir / rel).stat().st_size
        reg.push_blob(digest, size, pack_dir / rel)
        layers.append({"mediaType": media_type(rel), "digest": digest, "size": size, "annotations": {TITLE: rel}})
    reg.push_blob(EMPTY_DIGEST, 2, b"{}")
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": PACK_TYPE, "config": EMPTY,
            "layers": layers, "annotations": {ROOT_ANNOTATION: str(manifest.root),
                                              SCHEME_ANNOTATION: canonical_json(manifest.scheme).decode()}}  # fmt: skip
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
        rbody = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_TYPE, "config": EMPTY,
                 "layers": [{"mediaType": BUNDLE_TYPE, "digest": bdigest, "size": len(data),
                             "annotations": {TITLE: path.name}}],
                 "subject": subject, "annotations": {ROLE_ANNOTATION: role}}  # fmt: skip
        rraw = canonical_json(rbody)
        rdigest, handled = reg.put_manifest(sha256_digest(rraw), rraw, OCI_MANIFEST)
        api = api and handled
        pushed.append({"mediaType": OCI_MANIFEST, "digest": rdigest, "size": len(rraw), "artifactType": BUNDLE_TYPE,
                       "annotations": {ROLE_ANNOTATION: role, TITLE: path.name}})  # fmt: skip
        result.referrers.append({"file": path.name, "role": role, "digest": rdigest})
    if pushed and not api:  # no referrers API: the tag-schema index, merged with what is there
        tag = fallback_tag(digest)
        old = reg.find_manifest(tag)
        entries = list(parse_json(old, f"{ref.host} tag {tag}").get("manifests", [])) if old else []
        known = {e.get("digest") for e in entries}
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


def _safe_title(title: Any, what: str) -> str:
    rel = str(title) if isinstance(title, str) else ""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in rel:
        raise InvalidInput(f"{what}: unsafe or missing file name {title!r} ({TITLE})")
    return rel


def pull_pack(ref: Reference, out: Path, *, plain_http: bool = False, force: bool = False) -> PullResult:
    """Pull a pack by digest (a tag is resolved first; the result names the digest pulled) into ``out``, every
    blob checked while streaming, written atomically; its bundles beside ``out``."""
    reg = Registry(ref, plain_http=plain_http)
    raw, digest, _ = reg.get_manifest(ref.digest or ref.tag or "latest")
    body = parse_json(raw, f"{ref} manifest")
    if body.get("artifactType") != PACK_TYPE:
        raise InvalidInput(f"{ref}: not a uc-attest pack (artifactType {body.get('artifactType')!r}, expected "
                           f"{PACK_TYPE})")  # fmt: skip
    layers = body.get("layers")
    if not isinstance(layers, list) or not layers:
        raise InvalidInput(f"{ref}: the pack manifest lists no layers")
    out = Path(out)
    total = 0
    with atomic_output_dir(out, overwrite=force) as tmp:
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict):
                raise InvalidInput(f"{ref}: layers[{i}] is not an object")
            rel = _safe_title((layer.get("annotations") or {}).get(TITLE), f"{ref} layers[{i}]")
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            with open(dst, "wb") as fh:
                fh.writelines(reg.blob_chunks(layer, f"layer {rel}"))
                fh.flush()
                os.fsync(fh.fileno())
            total += int(layer["size"])
        if not (tmp / MANIFEST_NAME).is_file():
            raise InvalidInput(f"{ref}: the artifact has no {MANIFEST_NAME} layer")
    result = PullResult(str(ref), digest, out, len(layers), total)
    for path, data in _referrer_bundles(reg, digest, raw, out):
        atomic_write_bytes(path, data)
        result.bundles.append(str(path))
    return result


def _referrer_bundles(reg: Registry, digest: str, raw: bytes, out: Path) -> list[tuple[Path, bytes]]:
    entries = reg.referrers(digest)
    found: list[tuple[Path, bytes]] = []
    validations = 0
    for e in entries:
        if e.get("artifactType") != BUNDLE_TYPE:
            continue
        rraw, rdigest, _ = reg.get_manifest(str(e.get("digest")))
        body = parse_json(rraw, f"referrer {rdigest}")
        subject = body.get("subject") or {}
        if subject.get("digest") != digest:
            continue  # an index entry whose manifest does not refer to this pack: ignored
        role = (body.get("annotations") or {}).get(ROLE_ANNOTATION)
        (layer,) = body.get("layers") or [None]
        if not isinstance(layer, dict) or role not in ("release", "validation", "oms"):
            continue
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
        tags = parse_json(resp.read(4 << 20), f"{ref} tags").get("tags") or []
    rows = []
    for tag in sorted(t for t in tags if isinstance(t, str) and not t.startswith("sha256-")):
        raw, digest, _ = reg.get_manifest(tag)
        body = parse_json(raw, f"{ref}:{tag} manifest")
        row: dict[str, Any] = {"tag": tag, "digest": digest, "artifact_type": body.get("artifactType")}
        if body.get("artifactType") == PACK_TYPE:
            ann = body.get("annotations") or {}
            entries = reg.referrers(digest)
            roles = sorted(str((e.get("annotations") or {}).get(ROLE_ANNOTATION, "?")) for e in entries
                           if e.get("artifactType") == BUNDLE_TYPE)  # fmt: skip
            status = "validated" if "validation" in roles else "released" if "release" in roles else "no release bundle"
            row |= {"manifest_root": ann.get(ROOT_ANNOTATION), "bundles": roles, "status": f"{status} (listed)"}
        rows.append(row)
    return rows
