"""The one error tree of uc-attest.

Errors carry structured data and a one-line message; they never print or exit. Each class has the
exit code the CLI uses for it (``cli/exits.py`` maps them, and anything else, in one place):

* 1 - verification failed or denied (:class:`VerificationFailed`, :class:`LogMisbehaved`, ...)
* 2 - usage (:class:`UsageError`)
* 3 - invalid input: malformed file, unsupported model, invalid policy (:class:`InvalidInput`)
* 4 - operational: I/O, network, instance down, log unreachable, an extra not installed (:class:`OperationalError`,
  :class:`MissingExtra`)
* 70 - internal error: an exception that is not one of these (a bug; see :data:`EXIT_INTERNAL`)

A message speaks the library's terms: the parameters it names are the Python keywords a caller passes
(``bits``, ``force``...), never a CLI flag. Such an error says which (``option="bits"``, or a list), and its
message is then a template whose positional fields are those options (``"{0} must be between 2 and 8, got
{bits}"``, the other fields from the structured data), so the CLI rewrites it in its flags from the same data
(:meth:`UcAttestError.spelled`; ``cli/flags.py`` holds the table). An option's field may give:

* nothing: ``{0}`` is the name (``bits``; the CLI: ``--bits``);
* a value after ``=``: ``{0:=True}`` is ``force=True`` (the CLI: ``--force``, a switch), ``{0:={budget}}`` is
  ``budget=5.0`` (the CLI: ``--bits-budget 5.0``);
* a placeholder the CLI shows after the flag, the library not: ``{0:FILE}`` is ``trust_config`` (the CLI:
  ``--trust-config FILE``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar

EXIT_OK, EXIT_DENIED, EXIT_USAGE, EXIT_INVALID, EXIT_OPERATIONAL = 0, 1, 2, 3, 4
#: A crash (an exception that is not a UcAttestError): never 0 or 1. 70 is sysexits' EX_SOFTWARE.
EXIT_INTERNAL = 70


#: How a message names an option: (its name, its field's format spec) -> the words (module docstring).
Spelling = Callable[[str, str], str]


def keyword(name: str, spec: str) -> str:
    """The library's spelling of an option: its keyword, with the value a message gives it (``force=True``)."""
    return name + spec if spec.startswith("=") else name


class _Option:
    """An option's field in a message template: spelled by whoever renders it, through its format spec."""

    def __init__(self, name: str, spell: Spelling) -> None:
        self.name, self.spell = name, spell

    def __format__(self, spec: str) -> str:
        return self.spell(self.name, spec)


class UcAttestError(Exception):
    """Root of every error raised by uc-attest. ``option``: the parameter(s) the message names; the message is
    then a template (module docstring), and ``data["option"]`` says which, as given."""

    exit_code: int = EXIT_OPERATIONAL

    def __init__(self, message: str, *, option: str | Sequence[str] | None = None, **data: Any) -> None:
        self.options: tuple[str, ...] = (option,) if isinstance(option, str) else tuple(option or ())
        self.template = message if self.options else None
        self.data: dict[str, Any] = data
        if self.options:
            self.data = {"option": option if isinstance(option, str) else list(self.options), **data}
            message = self.spelled(keyword)
        super().__init__(message)
        self.message = message

    def spelled(self, spell: Spelling) -> str:
        """The message with each option it names spelled by ``spell`` (the CLI: as its flag)."""
        if self.template is None:
            return self.message
        return self.template.format(*(_Option(o, spell) for o in self.options), **self.data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view: error class, message and structured data."""
        return {"error": type(self).__name__, "message": self.message, **self.data}


class UsageError(UcAttestError):
    """Contradictory or missing arguments."""

    exit_code = EXIT_USAGE


class InvalidInput(UcAttestError):
    """An input file or directory is malformed or unsupported."""

    exit_code = EXIT_INVALID


class MalformedSafetensors(InvalidInput):
    """A safetensors file breaks the format; ``kind`` names the rule (Rust crate's error names)."""

    def __init__(self, path: str, kind: str, detail: str) -> None:
        super().__init__(f"{path}: malformed safetensors ({kind}): {detail}", path=path, kind=kind)
        self.kind = kind


class MalformedModel(InvalidInput):
    """A source model directory is unusable (missing config, pickle-only, bad index...)."""


class MalformedPack(InvalidInput):
    """A pack directory or its manifest is structurally unusable."""


class MalformedBundle(InvalidInput):
    """A Sigstore bundle, statement or trust root cannot be parsed (names the field)."""


class UnsupportedTensor(InvalidInput):
    """A tensor cannot be quantized (non-finite values, unsupported dtype...)."""


class OperationalError(UcAttestError):
    """I/O or environment failure not caused by the content of the inputs."""

    exit_code = EXIT_OPERATIONAL


class LogUnreachable(OperationalError):
    """A transparency log did not answer usefully *for now*: refused, timeout, HTTP 5xx or 429 (after retries)."""


class MissingExtra(OperationalError):
    """What was asked needs a module that ``pip install uc-attest`` does not install (PyTorch: packing,
    calibration, a rebuild, serving; transformers: serving); the message names the extra that brings it. Exit 4:
    the environment, not the inputs. ``what``: the thing asked, as the caller names it (the CLI: its command)."""

    #: The top-level module -> (its name in the message, the extra of uc-attest that installs it).
    EXTRAS: ClassVar[dict[str, tuple[str, str]]] = {
        "torch": ("PyTorch", "torch"),
        "transformers": ("transformers", "bench"),  # serving's architectures and tokenizers (pyproject: bench)
    }

    def __init__(self, what: str, module: str) -> None:
        label, extra = self.EXTRAS[module]
        super().__init__(f"{what} needs {label}: pip install 'uc-attest[{extra}]'", module=module, extra=extra)

    @classmethod
    def require(cls, module: str, what: str) -> None:
        """Refuse ``what`` before any of its work when ``module`` (one of :attr:`EXTRAS`) is not installed: its
        spec is looked up, the module not imported (that is left to the step that uses it)."""
        import importlib.util

        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # an import hook that refuses it, or a module set to None
            found = False
        if not found:
            raise cls(what, module)

    @classmethod
    def of(cls, exc: BaseException, what: str) -> MissingExtra | None:
        """The error ``exc`` means when it is the import of a module an extra brings that is not installed
        (``No module named 'torch'``), or a MissingExtra the library raised (told again as ``what``), else None:
        the one test of it, wherever the import happened."""
        if isinstance(exc, MissingExtra):
            return cls(what, exc.data["module"])
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            module = exc.name.partition(".")[0]
            if module in cls.EXTRAS:
                return cls(what, module)
        return None


class FindingKind(Enum):
    """What a pack's tensor or file failed; the value is the text the finding prints (its ``problem``)."""

    MISSING_TENSOR = "missing from pack"
    ADDED_TENSOR = "not in manifest (added tensor)"
    SHAPE_DIFFERS = "dtype/shape differs"
    DIGEST_DIFFERS = "reconstructed digest differs"
    DECODED_DIFFERS = "decoded weight digest differs"  # a packed layer decoded as served (``load_model(deep=True)``)
    LOADED_DIFFERS = "loaded tensor differs from the manifest"  # a tensor as transformers loaded it
    CANNOT_RECONSTRUCT = "cannot reconstruct"  # with the reason: "cannot reconstruct: <why>"
    UNREADABLE_SHARD = "unreadable shard"  # with the reason
    MOMENTS_DIFFER = "committed calibration moments differ"
    MISSING_FILE = "file missing from pack"
    FILE_DIFFERS = "file digest differs"
    ADDED_FILE = "file not in manifest (added file)"

    def at(
        self, subject: str, expected: str | None = None, actual: str | None = None, *, why: str | None = None
    ) -> Finding:
        """The finding of this kind about ``subject`` (``why`` follows the text after a colon)."""
        problem = self.value if why is None else f"{self.value}: {why}"
        return Finding(subject, problem, expected, actual, kind=self)


@dataclass(frozen=True)
class Finding:
    """One failed check: which tensor or file, what was expected and what was found. ``kind``: what failed, for
    findings about a pack's tensors and files (not part of the text, the JSON or equality)."""

    subject: str
    problem: str
    expected: str | None = None
    actual: str | None = None
    kind: FindingKind | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = {"subject": self.subject, "problem": self.problem, "expected": self.expected, "actual": self.actual}
        return {k: v for k, v in out.items() if v is not None}


class VerificationFailed(UcAttestError):
    """Verification ran to the end and found at least one mismatch; lists every one."""

    exit_code = EXIT_DENIED

    def __init__(self, findings: list[Finding]) -> None:
        first = findings[0] if findings else None
        msg = f"verification failed: {len(findings)} finding(s)"
        if first is not None:
            msg += f", first: {first.subject}: {first.problem}"
        super().__init__(msg, findings=[f.to_dict() for f in findings])
        self.findings = findings


class SignatureInvalid(VerificationFailed):
    """A bundle does not verify against the trust root, or its signer is not a trusted one."""

    def __init__(self, subject: str, problem: str, expected: str | None = None, actual: str | None = None) -> None:
        super().__init__([Finding(subject, problem, expected, actual)])
        self.problem = problem


class LogMisbehaved(UcAttestError):
    """A transparency log answered something malformed or inconsistent (bad signature, fork, not JSON...)."""

    exit_code = EXIT_DENIED


class MerkleError(UcAttestError):
    """A Merkle proof does not prove what it claims."""

    exit_code = EXIT_DENIED


class ProofError(MerkleError):
    """A proof is malformed for the given index and size."""


class RootMismatch(MerkleError):
    """A proof does not lead to the expected root."""

    def __init__(self, expected: bytes, computed: bytes) -> None:
        super().__init__(f"root mismatch: expected {expected.hex()}, computed {computed.hex()}")
        self.expected = expected
        self.computed = computed


class NoteError(UcAttestError):
    """A signed note or checkpoint is malformed, or no trusted signature verifies."""

    exit_code = EXIT_DENIED


class RegistryMisbehaved(InvalidInput):
    """A registry (or its token service) answered something malformed or unsafe: a field of the wrong type or
    form, an answer too large, a realm or redirect that is not followed. Exit 3; the message names the field."""


class RegistryUnreachable(OperationalError):
    """No usable HTTP answer from a registry: refused, timed out, or a broken HTTP exchange (bad status line,
    truncated or malformed chunked body, overlong header). Exit 4."""


__all__ = [
    "EXIT_DENIED",
    "EXIT_INTERNAL",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_OPERATIONAL",
    "EXIT_USAGE",
    "Finding",
    "FindingKind",
    "InvalidInput",
    "LogMisbehaved",
    "LogUnreachable",
    "MalformedBundle",
    "MalformedModel",
    "MalformedPack",
    "MalformedSafetensors",
    "MerkleError",
    "MissingExtra",
    "NoteError",
    "OperationalError",
    "ProofError",
    "RegistryMisbehaved",
    "RegistryUnreachable",
    "RootMismatch",
    "SignatureInvalid",
    "UcAttestError",
    "UnsupportedTensor",
    "UsageError",
    "VerificationFailed",
]
