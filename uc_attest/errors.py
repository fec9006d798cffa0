"""Error tree of uc-attest.

Errors carry structured data and a one-line message; they never print or exit.
The CLI maps each class to an exit code in one place (``cli.py``):

* 1 - verification failed or denied (:class:`VerificationFailed`)
* 2 - usage (:class:`UsageError`)
* 3 - invalid input: malformed file, unsupported model (:class:`InvalidInput`)
* 4 - operational: I/O, network, instance down (:class:`OperationalError`)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class UcAttestError(Exception):
    """Root of every error raised by uc-attest."""

    exit_code: int = 4

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data: dict[str, Any] = data

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: error class, message and structured data."""
        return {"error": type(self).__name__, "message": self.message, **self.data}


class UsageError(UcAttestError):
    """Contradictory or missing command-line arguments."""

    exit_code = 2


class InvalidInput(UcAttestError):
    """An input file or directory is malformed or unsupported."""

    exit_code = 3


class MalformedSafetensors(InvalidInput):
    """A safetensors file breaks the format; ``kind`` names the rule (Rust crate's error names)."""

    def __init__(self, path: str, kind: str, detail: str) -> None:
        super().__init__(f"{path}: malformed safetensors ({kind}): {detail}", path=path, kind=kind)
        self.kind = kind


class MalformedModel(InvalidInput):
    """A source model directory is unusable (missing config, pickle-only, bad index...)."""


class MalformedPack(InvalidInput):
    """A pack directory or its manifest is structurally unusable."""


class UnsupportedTensor(InvalidInput):
    """A tensor cannot be quantized (non-finite values, unsupported dtype...)."""


class OperationalError(UcAttestError):
    """I/O or environment failure not caused by the content of the inputs."""

    exit_code = 4


@dataclass(frozen=True)
class Finding:
    """One failed check: which tensor or file, what was expected and what was found."""

    subject: str
    problem: str
    expected: str | None = None
    actual: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class VerificationFailed(UcAttestError):
    """Verification ran to the end and found at least one mismatch; lists every one."""

    exit_code = 1

    def __init__(self, findings: list[Finding]) -> None:
        first = findings[0] if findings else None
        msg = f"verification failed: {len(findings)} finding(s)"
        if first is not None:
            msg += f", first: {first.subject}: {first.problem}"
        super().__init__(msg, findings=[f.to_dict() for f in findings])
        self.findings = findings
