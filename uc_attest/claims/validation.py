"""The validation attestation: a validator signs "these metrics describe exactly this reconstruction".

Predicate ``https://github.com/uc-attest/uc-attest/validation/v1``; subjects are the reconstruction
(the manifest root) and the report file. docs/statement.md shows an example.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.digest import Digest
from ..errors import InvalidInput, MalformedBundle
from .slsa import RECONSTRUCTION_NAME, ROOT_ALG
from .statement import STATEMENT_TYPE, Statement, validate

VALIDATION_PREDICATE = "https://github.com/uc-attest/uc-attest/validation/v1"


@dataclass(frozen=True)
class ValidationReport:
    """A validator's report (METRICS.json): evaluation set id and headline metrics (numbers)."""

    evaluation_set: str
    metrics: dict[str, float]
    raw: bytes
    name: str


def load_report(path: Path) -> ValidationReport:
    """Read METRICS.json: {"evaluation_set": str, "metrics": {name: number}, ...}."""
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
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(v))
    if bad:
        raise InvalidInput(
            f"{p}: metric {bad[0]!r} is not a finite number ({metrics[bad[0]]}): a threshold cannot judge it",
            path=str(p),
            field=f"metrics.{bad[0]}",
        )
    return ValidationReport(obj["evaluation_set"], {k: float(v) for k, v in metrics.items()}, raw, p.name)


def build_validation_statement(root: Digest, report: ValidationReport, validated_at: dt.datetime) -> dict[str, Any]:
    """The validator's statement: subject = the reconstruction (manifest root) and the report file."""
    stmt = {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": RECONSTRUCTION_NAME, "digest": {ROOT_ALG: root.hex}},
            {"name": report.name, "digest": {"sha256": hashlib.sha256(report.raw).hexdigest()}},
        ],
        "predicateType": VALIDATION_PREDICATE,
        "predicate": {
            "manifestRoot": str(root),
            "evaluationSet": report.evaluation_set,
            "metrics": report.metrics,
            "report": {"name": report.name, "digest": {"sha256": hashlib.sha256(report.raw).hexdigest()}},
            "validatedOn": validated_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }
    validate(stmt)
    return stmt


@dataclass(frozen=True)
class ValidationClaim:
    """What a validation attestation says, parsed once from the exact signed bytes."""

    statement: Statement
    root: Digest
    evaluation_set: str
    metrics: dict[str, float]
    report_digest: Digest | None


def parse_validation(statement: Statement) -> ValidationClaim:
    """The validation claim of a statement; raises MalformedBundle naming the field."""
    if statement.predicate_type != VALIDATION_PREDICATE:
        raise MalformedBundle(
            f"not a validation attestation (predicateType {statement.predicate_type!r})", field="predicateType"
        )
    roots = [s.digest.get(ROOT_ALG) for s in statement.subjects if s.name == RECONSTRUCTION_NAME]
    pred = statement.predicate
    metrics = pred.get("metrics")
    if len(roots) != 1 or not isinstance(roots[0], str) or not isinstance(metrics, dict):
        raise MalformedBundle("validation statement lacks the reconstruction subject or metrics", field="subject")
    try:
        root = Digest(roots[0])
        report = pred.get("report", {}).get("digest", {}).get("sha256")
        report_digest = Digest(str(report)) if report else None
    except (ValueError, AttributeError):
        raise MalformedBundle("validation statement holds a bad digest", field="subject") from None
    return ValidationClaim(
        statement,
        root,
        str(pred.get("evaluationSet", "")),
        {  # a non-finite or non-numeric metric is left out: a threshold on it then finds it missing
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        },
        report_digest,
    )
