"""The provenance statement: in-toto Statement v1 with a SLSA provenance v1 predicate.

Subjects are every pack file (sha256) and the reconstruction: a subject named
``uc-attest:reconstruction`` whose ``sha256`` value is the manifest's Merkle root (RFC 6962
over the tensor digests), not the hash of any file. The ``uc-attest:`` name marks it; a
custom digest name would be clearer, but sigstore-python (library and CLI) only accept
SHA-2/SHA-3 digest names in subjects, and the bundles must verify with the stock tools. The per-tensor manifest travels
inside the signed payload as a SLSA byproduct (``content`` = the exact canonical bytes of
``uc-manifest.json``) unless it is too large for a public log, in which case only its
digest is signed and the manifest file in the pack is checked against it.
docs/statement.md shows a complete example.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import platform
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..core.digest import Digest, canonical_json
from ..core.enums import member
from ..core.fsutil import is_safe_relative
from ..errors import MalformedBundle, MalformedPack
from ..manifest import CalibrationRecord, Manifest, OmsMethod, SourceSignature
from .statement import STATEMENT_TYPE, Statement, validate

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/uc-attest/uc-attest/pack/v1"
RECONSTRUCTION_NAME = "uc-attest:reconstruction"
ROOT_ALG = "sha256"  # see module docstring: the subject *name* says it is a Merkle root
MANIFEST_BYPRODUCT = "uc-manifest.json"
#: Inline the manifest only below this size: public Rekor rejects requests over ~100 KB.
INLINE_LIMIT = 60_000


class ManifestInline(StrEnum):
    """Whether the manifest travels inside the signed payload: below ``INLINE_LIMIT`` (``auto``), always, never."""

    AUTO = "auto"
    ALWAYS = "always"
    NEVER = "never"

    def inlines(self, size: int) -> bool:
        """Whether a manifest of ``size`` bytes goes inside the payload."""
        return self is ManifestInline.ALWAYS or (self is ManifestInline.AUTO and size <= INLINE_LIMIT)


def source_tree_digest(source_files: dict[str, str]) -> str:
    """sha256 of the canonical JSON ``{"files": {path: "sha256:<hex>"}}`` of the source model."""
    return hashlib.sha256(canonical_json({"files": dict(sorted(source_files.items()))})).hexdigest()


@dataclass(frozen=True)
class BuildInfo:
    builder_id: str
    source_name: str
    source_uri: str
    device: str
    versions: dict[str, str]
    started: dt.datetime
    finished: dt.datetime
    invocation_id: str = ""


def build_statement(
    manifest: Manifest, manifest_bytes: bytes, info: BuildInfo, inline: ManifestInline = ManifestInline.AUTO
) -> dict[str, Any]:
    """The statement for a pack; ``inline``: whether the manifest goes in the payload."""
    subjects = [{"name": rel, "digest": {"sha256": d.hex}} for rel, d in sorted(manifest.files.items())]
    subjects.append({"name": MANIFEST_BYPRODUCT, "digest": {"sha256": hashlib.sha256(manifest_bytes).hexdigest()}})
    subjects.append({"name": RECONSTRUCTION_NAME, "digest": {ROOT_ALG: manifest.root.hex}})
    byproduct: dict[str, Any] = {
        "name": MANIFEST_BYPRODUCT,
        "mediaType": "application/json",
        "digest": {"sha256": hashlib.sha256(manifest_bytes).hexdigest()},
    }
    if inline.inlines(len(manifest_bytes)):
        byproduct["content"] = base64.b64encode(manifest_bytes).decode()
    source_files = {k: str(v) for k, v in manifest.source_files.items()}

    def ts(t: dt.datetime) -> str:
        return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "source": {
                    "name": info.source_name,
                    "uri": info.source_uri,
                    "digest": {"sha256": source_tree_digest(source_files)},
                },
                "scheme": manifest.scheme,
                **({"calibration": manifest.calibration.to_dict()} if manifest.calibration else {}),
            },
            "internalParameters": {"device": info.device, "versions": info.versions},
            "resolvedDependencies": _source_signature(manifest.source_signature)
            + [
                {"name": rel, "digest": {"sha256": d.removeprefix("sha256:")}}
                for rel, d in sorted(source_files.items())
            ],
        },
        "runDetails": {
            "builder": {"id": info.builder_id},
            "metadata": {
                "invocationId": info.invocation_id,
                "startedOn": ts(info.started),
                "finishedOn": ts(info.finished),
            },
            "byproducts": [byproduct],
        },
    }
    stmt = {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": SLSA_PROVENANCE_V1, "predicate": predicate}
    validate(stmt)
    return stmt


OMS_ANNOTATION = "openssfModelSigning"


def _source_signature(sig: SourceSignature | None) -> list[dict[str, Any]]:
    """The verified OMS signature of the source model as a resolved dependency: the signed model (its OMS root
    digest) and, annotated, who signed it, how, when, and the signature file kept in the pack."""
    if sig is None:
        return []
    note: dict[str, Any] = {
        "method": sig.method.value,
        "identity": sig.identity,
        "issuer": sig.issuer,
        "signature": {"name": sig.file, "sha256": sig.sha256.hex},
    }
    if sig.signed_at is not None:
        note["signedAt"] = dt.datetime.fromtimestamp(sig.signed_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [{"name": f"oms:{sig.model}", "digest": {"sha256": sig.root.hex}, "annotations": {OMS_ANNOTATION: note}}]


def _parse_source_signature(deps: list[Any]) -> SourceSignature | None:
    for d in deps:
        note = _obj(d.get("annotations"), "resolvedDependencies[].annotations").get(OMS_ANNOTATION)
        if note is None:
            continue
        f = "resolvedDependencies[].annotations.openssfModelSigning"
        note = _obj(note, f)
        sig = _obj(note.get("signature"), f + ".signature")
        texts = {k: note.get(k) for k in ("method", "identity")} | {"signature.name": sig.get("name")}
        bad = next((k for k, v in texts.items() if not isinstance(v, str)), None)
        if bad is None and member(OmsMethod, note["method"]) is None:
            bad = "method"
        if bad is not None:
            raise MalformedBundle(f"statement field {f}.{bad} is missing or not a string", field=f"{f}.{bad}")
        at = note.get("signedAt")
        when = None
        if at:
            try:
                when = int(dt.datetime.strptime(str(at), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())
            except ValueError:
                raise MalformedBundle(
                    f"statement field {f}.signedAt is not a UTC time", field=f"{f}.signedAt"
                ) from None
        return SourceSignature(
            sig["name"],
            _digest(sig.get("sha256"), f"{f}.signature.sha256"),
            OmsMethod(note["method"]),
            note["identity"],
            str(note.get("issuer", "")),
            str(d.get("name", "")).removeprefix("oms:"),
            _digest(_obj(d.get("digest"), "resolvedDependencies[].digest").get("sha256"), "omsSignature digest"),
            when,
        )
    return None


@dataclass(frozen=True)
class ReleaseClaim:
    """What a signed uc-attest release provenance says, parsed once from the exact signed bytes."""

    statement: Statement
    files: dict[str, Digest]  # subject name -> digest (pack files, including uc-manifest.json)
    root: Digest  # the reconstruction: the manifest's Merkle root
    manifest_digest: Digest
    manifest_bytes: bytes | None  # the manifest inline in the payload, if present
    builder_id: str
    build_type: str
    scheme: dict[str, Any]
    source_name: str
    source_tree: Digest | None  # digest of the source model's file tree (source_tree_digest)
    resolved: dict[str, Digest]  # source file -> digest
    source_signature: SourceSignature | None = None  # the source's OMS signature, verified at pack time
    calibration: CalibrationRecord | None = None  # how the committed calibration moments were obtained

    @property
    def predicate_type(self) -> str:
        return self.statement.predicate_type


def _scheme(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedBundle("statement field externalParameters.scheme is not an object", field="scheme")
    return value


def _digest(value: Any, where: str) -> Digest:
    try:
        return Digest(str(value))
    except ValueError:
        raise MalformedBundle(f"statement field {where} is not a sha256 hex digest", field=where) from None


def parse_release(statement: Statement) -> ReleaseClaim:
    """The release claim of a SLSA provenance statement made by uc-attest; raises MalformedBundle naming the field.

    The statement may come from anyone (a public log): every shape error is a MalformedBundle, never a crash."""
    try:
        return _parse_release(statement)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise MalformedBundle(f"statement predicate has an unexpected shape: {exc}", field="predicate") from None


def _parse_release(statement: Statement) -> ReleaseClaim:
    files, root = _subject_files(statement)
    pred = statement.predicate
    bd = _obj(pred.get("buildDefinition"), "predicate.buildDefinition")
    rd = _obj(pred.get("runDetails"), "predicate.runDetails")
    manifest_digest, manifest_bytes = _manifest_byproduct(rd)
    ext = _obj(bd.get("externalParameters"), "buildDefinition.externalParameters")
    source = _obj(ext.get("source"), "externalParameters.source")
    tree = _obj(source.get("digest"), "externalParameters.source.digest").get("sha256")
    deps = [
        d for d in _list(bd.get("resolvedDependencies"), "buildDefinition.resolvedDependencies") if isinstance(d, dict)
    ]
    resolved = _resolved_files(deps)
    return ReleaseClaim(
        statement=statement,
        files=files,
        root=_digest(root, f"subject {RECONSTRUCTION_NAME}"),
        manifest_digest=manifest_digest,
        manifest_bytes=manifest_bytes,
        builder_id=str(_obj(rd.get("builder"), "runDetails.builder").get("id", "")),
        build_type=str(bd.get("buildType", "")),
        scheme=_scheme(ext.get("scheme", {})),
        source_name=str(source.get("name", "")),
        source_tree=_digest(tree, "externalParameters.source.digest") if tree else None,
        resolved=resolved,
        source_signature=_parse_source_signature(deps),
        calibration=_calibration(ext.get("calibration")),
    )


def _need(cond: bool, field: str) -> None:
    if not cond:
        raise MalformedBundle(f"statement field {field} is missing or invalid", field=field)


def _subject_files(statement: Statement) -> tuple[dict[str, Digest], str]:
    """The released files (sha256 subjects, each name safe to join to a directory) and the manifest root."""
    files: dict[str, Digest] = {}
    root = None
    for sub in statement.subjects:
        if sub.name == RECONSTRUCTION_NAME:
            root = sub.digest.get(ROOT_ALG)
        elif "sha256" in sub.digest:
            _need(is_safe_relative(sub.name), f"subject {sub.name!r} (an unsafe file name)")
            files[sub.name] = _digest(sub.digest["sha256"], f"subject {sub.name}")
    _need(isinstance(root, str), f"subject {RECONSTRUCTION_NAME}")
    assert isinstance(root, str)
    return files, root


def _manifest_byproduct(rd: dict[str, Any]) -> tuple[Digest, bytes | None]:
    """The manifest byproduct (exactly one): its digest, and its bytes when inline (they must hash to it)."""
    byps = [
        b
        for b in _list(rd.get("byproducts"), "runDetails.byproducts")
        if isinstance(b, dict) and b.get("name") == MANIFEST_BYPRODUCT
    ]
    _need(len(byps) == 1, "runDetails.byproducts")
    manifest_digest = _digest(
        _obj(byps[0].get("digest"), "byproducts[].digest").get("sha256"), "runDetails.byproducts[].digest"
    )
    content = byps[0].get("content")
    manifest_bytes = None
    if isinstance(content, str):
        try:
            manifest_bytes = base64.b64decode(content, validate=True)
        except ValueError:
            _need(False, "byproducts[].content")
    if manifest_bytes is not None:
        _need(hashlib.sha256(manifest_bytes).hexdigest() == manifest_digest.hex, "byproducts[].content")
    return manifest_digest, manifest_bytes


def _resolved_files(deps: list[dict[str, Any]]) -> dict[str, Digest]:
    """The source files of the resolved dependencies (all but the OMS signature), each name safe."""
    resolved: dict[str, Digest] = {}
    for d in deps:
        if OMS_ANNOTATION not in _obj(d.get("annotations"), "resolvedDependencies[].annotations"):
            where = f"resolvedDependencies {d.get('name')!r}"
            _need(is_safe_relative(str(d.get("name", ""))), f"{where} (an unsafe file name)")
            resolved[str(d.get("name", ""))] = _digest(_obj(d.get("digest"), where).get("sha256", ""), where)
    return resolved


def _obj(value: Any, where: str) -> dict[str, Any]:
    """A JSON object of the predicate ({} when absent); MalformedBundle naming the field otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedBundle(f"statement field {where} is not an object", field=where)
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedBundle(f"statement field {where} is not a list", field=where)
    return value


def _calibration(value: Any) -> CalibrationRecord | None:
    if value is None:
        return None
    try:
        return CalibrationRecord.from_dict(value, "statement")
    except MalformedPack:
        raise MalformedBundle(
            "statement field externalParameters.calibration is invalid", field="calibration"
        ) from None


def default_versions(device: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("uc-attest", "torch", "numpy", "safetensors", "sigstore"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    out["device"] = device
    return out
