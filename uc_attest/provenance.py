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
import json
import platform
from dataclasses import dataclass
from typing import Any

from .digest import canonical_json
from .errors import InvalidInput
from .manifest import Manifest

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/uc-attest/uc-attest/pack/v1"
RECONSTRUCTION_NAME = "uc-attest:reconstruction"
ROOT_ALG = "sha256"  # see module docstring: the subject *name* says it is a Merkle root
MANIFEST_BYPRODUCT = "uc-manifest.json"
#: Inline the manifest only below this size: public Rekor rejects requests over ~100 KB.
INLINE_LIMIT = 60_000


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


def build_statement(manifest: Manifest, manifest_bytes: bytes, info: BuildInfo, inline: str = "auto") -> dict[str, Any]:
    """The statement for a pack; ``inline`` is ``auto``, ``always`` or ``never`` (manifest in payload)."""
    subjects = [{"name": rel, "digest": {"sha256": d.hex}} for rel, d in sorted(manifest.files.items())]
    subjects.append({"name": MANIFEST_BYPRODUCT, "digest": {"sha256": hashlib.sha256(manifest_bytes).hexdigest()}})
    subjects.append({"name": RECONSTRUCTION_NAME, "digest": {ROOT_ALG: manifest.root.hex}})
    byproduct: dict[str, Any] = {
        "name": MANIFEST_BYPRODUCT,
        "mediaType": "application/json",
        "digest": {"sha256": hashlib.sha256(manifest_bytes).hexdigest()},
    }
    if inline == "always" or (inline == "auto" and len(manifest_bytes) <= INLINE_LIMIT):
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
            },
            "internalParameters": {"device": info.device, "versions": info.versions},
            "resolvedDependencies": [
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
    validate_statement(stmt)
    return stmt


def validate_statement(stmt: Any) -> None:
    """Structural validation with the in-toto-attestation reference implementation."""
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    try:
        pb = json_format.ParseDict(stmt, statement_pb2.Statement())
        Statement.copy_from_pb(pb).validate()
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise InvalidInput(f"not a valid in-toto Statement v1: {exc}") from None


@dataclass(frozen=True)
class PackStatement:
    """What a verifier needs from a signed provenance statement."""

    raw: dict[str, Any]
    files: dict[str, str]  # subject name -> sha256 hex (pack files, including uc-manifest.json)
    root: str  # manifest root hex
    manifest_sha256: str
    manifest_bytes: bytes | None  # inline manifest, if present
    builder_id: str
    build_type: str
    predicate_type: str
    scheme: dict[str, Any]
    source_digest: str
    resolved: dict[str, str]  # source file -> sha256 hex


def parse_statement(payload: bytes) -> PackStatement:
    """Parse and check a uc-attest provenance statement; raises InvalidInput naming the field."""
    try:
        stmt = json.loads(payload)
    except ValueError:
        raise InvalidInput("statement payload is not JSON") from None
    validate_statement(stmt)

    def need(cond: bool, field: str) -> None:
        if not cond:
            raise InvalidInput(f"statement field {field} is missing or invalid", field=field)

    files: dict[str, str] = {}
    root = None
    for s in stmt["subject"]:
        if s.get("name") == RECONSTRUCTION_NAME:
            root = s.get("digest", {}).get(ROOT_ALG)
        elif "sha256" in s.get("digest", {}):
            files[s["name"]] = s["digest"]["sha256"]
    need(isinstance(root, str), f"subject {RECONSTRUCTION_NAME}")
    pred = stmt.get("predicate", {})
    bd, rd = pred.get("buildDefinition", {}), pred.get("runDetails", {})
    byps = [b for b in rd.get("byproducts", []) if b.get("name") == MANIFEST_BYPRODUCT]
    need(len(byps) == 1 and isinstance(byps[0].get("digest", {}).get("sha256"), str), "runDetails.byproducts")
    content = byps[0].get("content")
    manifest_bytes = base64.b64decode(content) if isinstance(content, str) else None
    if manifest_bytes is not None:
        need(hashlib.sha256(manifest_bytes).hexdigest() == byps[0]["digest"]["sha256"], "byproducts[].content")
    return PackStatement(
        raw=stmt,
        files=files,
        root=str(root),
        manifest_sha256=byps[0]["digest"]["sha256"],
        manifest_bytes=manifest_bytes,
        builder_id=str(rd.get("builder", {}).get("id", "")),
        build_type=str(bd.get("buildType", "")),
        predicate_type=str(stmt.get("predicateType", "")),
        scheme=dict(bd.get("externalParameters", {}).get("scheme", {})),
        source_digest=str(bd.get("externalParameters", {}).get("source", {}).get("digest", {}).get("sha256", "")),
        resolved={d.get("name", ""): d.get("digest", {}).get("sha256", "") for d in bd.get("resolvedDependencies", [])},
    )


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


VALIDATION_PREDICATE = "https://github.com/uc-attest/uc-attest/validation/v1"


@dataclass(frozen=True)
class ValidationReport:
    """A validator's report (METRICS.json): evaluation set id and headline metrics (numbers)."""

    evaluation_set: str
    metrics: dict[str, float]
    raw: bytes
    name: str


def load_report(path: Any) -> ValidationReport:
    """Read METRICS.json: {"evaluation_set": str, "metrics": {name: number}, ...}."""
    from pathlib import Path

    p = Path(path)
    try:
        raw = p.read_bytes()
        obj = json.loads(raw)
    except FileNotFoundError:
        raise InvalidInput(f"{p}: report not found", path=str(p)) from None
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{p}: report is not JSON: {exc}", path=str(p)) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("evaluation_set"), str) or not obj["evaluation_set"]:
        raise InvalidInput(
            f"{p}: field evaluation_set (a non-empty string) is required", path=str(p), field="evaluation_set"
        )
    metrics = obj.get("metrics")
    if (
        not isinstance(metrics, dict)
        or not metrics
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values())
    ):
        raise InvalidInput(f"{p}: field metrics must map names to numbers", path=str(p), field="metrics")
    return ValidationReport(obj["evaluation_set"], {k: float(v) for k, v in metrics.items()}, raw, p.name)


def build_validation_statement(root_hex: str, report: ValidationReport, validated_at: dt.datetime) -> dict[str, Any]:
    """The validator's statement: subject = the reconstruction (manifest root) and the report file."""
    stmt = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": RECONSTRUCTION_NAME, "digest": {ROOT_ALG: root_hex}},
            {"name": report.name, "digest": {"sha256": hashlib.sha256(report.raw).hexdigest()}},
        ],
        "predicateType": VALIDATION_PREDICATE,
        "predicate": {
            "manifestRoot": f"sha256:{root_hex}",
            "evaluationSet": report.evaluation_set,
            "metrics": report.metrics,
            "report": {"name": report.name, "digest": {"sha256": hashlib.sha256(report.raw).hexdigest()}},
            "validatedOn": validated_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    validate_statement(stmt)
    return stmt


@dataclass(frozen=True)
class ValidationStatement:
    root: str
    evaluation_set: str
    metrics: dict[str, float]
    report_sha256: str


def parse_validation(payload: bytes) -> ValidationStatement:
    try:
        stmt = json.loads(payload)
    except ValueError:
        raise InvalidInput("validation payload is not JSON") from None
    validate_statement(stmt)
    if stmt.get("predicateType") != VALIDATION_PREDICATE:
        raise InvalidInput(
            f"not a validation attestation (predicateType {stmt.get('predicateType')!r})", field="predicateType"
        )
    roots = [s["digest"].get(ROOT_ALG) for s in stmt["subject"] if s.get("name") == RECONSTRUCTION_NAME]
    pred = stmt.get("predicate", {})
    metrics = pred.get("metrics")
    if len(roots) != 1 or not isinstance(roots[0], str) or not isinstance(metrics, dict):
        raise InvalidInput("validation statement lacks the reconstruction subject or metrics")
    return ValidationStatement(
        roots[0],
        str(pred.get("evaluationSet", "")),
        {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
        str(pred.get("report", {}).get("digest", {}).get("sha256", "")),
    )
