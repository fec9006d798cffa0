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
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..core.digest import Digest
from ..core.enums import member
from ..errors import InvalidInput, MalformedBundle, UsageError
from .slsa import RECONSTRUCTION_NAME, ROOT_ALG
from .statement import STATEMENT_TYPE, Statement, validate

VALIDATION_PREDICATE = "https://github.com/uc-attest/uc-attest/validation/v1"


class RuntimeKind(StrEnum):
    """Which runtime computed a model's outputs (a ``str``: it encodes as its value)."""

    UC_ATTEST = "uc-attest"
    EXTERNAL = "external"


RUNTIME_KINDS = tuple(k.value for k in RuntimeKind)
_TEXT_LIMIT = 256


@dataclass(frozen=True)
class Runtime:
    """What computed a model's outputs: a validation names the runtime its metrics were measured with, and a
    deployment names the one it serves with (policy ``validation.runtime``). ``uc-attest``: a serving ``mode``
    (fast, exact, reference) and its ``kernel`` id (bumped whenever the kernel's outputs change; reference: the
    torch version), ``isa`` and ``version`` for the record; ``external``: another runtime, described in text."""

    kind: str  # a RuntimeKind (its text given is read as the member)
    mode: str = ""
    kernel: str = ""
    isa: str = ""
    version: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        kind = member(RuntimeKind, self.kind)
        if kind is None:
            raise UsageError(f"a runtime's kind is one of {', '.join(RUNTIME_KINDS)}, not {self.kind!r}")
        object.__setattr__(self, "kind", kind)

    @property
    def id(self) -> str:
        if self.kind is RuntimeKind.EXTERNAL:
            return f"external: {self.description}"
        return f"uc-attest {self.version} {self.mode} {self.kernel} {self.isa}".rstrip()

    def same_outputs(self, other: Runtime) -> bool:
        """Both uc-attest runtimes computing the same numbers: the same mode and kernel (the kernels' outputs do
        not depend on the ISA or the thread count; the version is the record's, the kernel id names the math)."""
        return self.kind is other.kind is RuntimeKind.UC_ATTEST and (self.mode, self.kernel) == (
            other.mode,
            other.kernel,
        )

    def to_json(self) -> dict[str, str]:
        if self.kind is RuntimeKind.EXTERNAL:
            return {"kind": "external", "description": self.description}
        return {"kind": "uc-attest", "mode": self.mode, "kernel": self.kernel, "isa": self.isa, "version": self.version}

    @classmethod
    def from_json(cls, obj: object, where: str) -> Runtime:
        """A runtime object (METRICS.json or a signed predicate); ValueError naming the field otherwise."""
        if not isinstance(obj, dict):
            raise ValueError(f"{where} must be an object")  # noqa: TRY004 - a field error, reported as such
        kind = member(RuntimeKind, obj.get("kind"))
        if kind is None:
            raise ValueError(f"{where}.kind must be one of {', '.join(RUNTIME_KINDS)}")
        external = kind is RuntimeKind.EXTERNAL
        fields = ("description",) if external else ("mode", "kernel", "isa", "version")
        extra = sorted(set(obj) - {"kind", *fields})
        if extra:
            raise ValueError(f"{where}.{extra[0]} is not a field of a {kind} runtime")
        values = {}
        for f in fields:
            v = obj.get(f, "")
            if not isinstance(v, str) or len(v) > _TEXT_LIMIT or any(ord(c) < 32 for c in v):
                raise ValueError(f"{where}.{f} must be one line of text (at most {_TEXT_LIMIT} characters)")
            values[f] = v
        needed = ("description",) if external else ("mode", "kernel")
        missing = [f for f in needed if not values[f]]
        if missing:
            raise ValueError(f"{where}.{missing[0]} is required for a {kind} runtime")
        return cls(kind, **values)


@dataclass(frozen=True)
class ValidationReport:
    """A validator's report (METRICS.json): evaluation set id, headline metrics (numbers) and, optionally, the
    runtime they were measured with."""

    evaluation_set: str
    metrics: dict[str, float]
    raw: bytes
    name: str
    runtime: Runtime | None = None


def load_report(path: Path) -> ValidationReport:
    """Read METRICS.json: {"evaluation_set": str, "metrics": {name: number}, "runtime": {...}?, ...}."""
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
    runtime = None
    if "runtime" in obj:
        try:
            runtime = Runtime.from_json(obj["runtime"], "runtime")
        except ValueError as exc:
            raise InvalidInput(f"{p}: field {exc}", path=str(p), field="runtime") from None
    return ValidationReport(obj["evaluation_set"], {k: float(v) for k, v in metrics.items()}, raw, p.name, runtime)


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
    if report.runtime is not None:
        stmt["predicate"]["runtime"] = report.runtime.to_json()  # type: ignore[index]
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
    runtime: Runtime | None = None
    runtime_error: str | None = None  # a runtime that is there but not readable: said, never taken as none


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
        *_runtime(pred),
    )


def _runtime(pred: dict[str, Any]) -> tuple[Runtime | None, str | None]:
    if "runtime" not in pred:
        return None, None
    try:
        return Runtime.from_json(pred["runtime"], "runtime"), None
    except ValueError as exc:
        return None, str(exc)
