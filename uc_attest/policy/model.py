"""The policy file (YAML) as a strict pydantic model. docs/policy.md documents every field.

Strict means: unknown keys are errors, types are not coerced, identity patterns must be
anchored regular expressions that compile, and a policy must name at least one release
signer (fail closed). Errors name the file, the line and the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..core.device import Device
from ..core.enums import member
from ..core.fsutil import read_small
from ..errors import InvalidInput


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


_E = TypeVar("_E", bound=StrEnum)


def _words(kind: type[_E]) -> BeforeValidator:
    """A ``StrEnum`` field read from YAML: text naming one member (strict: never bytes or a number), else refused
    as a ``Literal`` of its values is ("Input should be 'a', 'b' or 'c'")."""
    values = [repr(m.value) for m in kind]
    expected = values[0] if len(values) == 1 else f"{', '.join(values[:-1])} or {values[-1]}"

    def named(v: Any) -> _E:
        m = member(kind, v)
        if m is None:
            raise PydanticCustomError("enum", "Input should be {expected}", {"expected": expected})
        return m

    return BeforeValidator(named)


class RuntimeNeed(StrEnum):
    """Policy ``validation.runtime``: what a validation must say about the runtime its metrics were measured with."""

    ANY = "any"  # need not name one
    NAMED = "named"  # must name one
    MATCH = "match"  # must be the deployment's (the same uc-attest mode and kernel)


class Signer(_Strict):
    """One trusted signer: an OIDC issuer and an identity (exact) or an anchored regex."""

    issuer: str = Field(min_length=1, description="OIDC issuer URL, exact.")
    identity: str | None = Field(None, description="Certificate identity (email or URI), exact.")
    identity_regex: str | None = Field(None, description="Anchored regex (^...$) for the identity.")

    @model_validator(mode="after")
    def _one_identity(self) -> Signer:
        if (self.identity is None) == (self.identity_regex is None):
            raise ValueError("give exactly one of identity or identity_regex")
        return self

    @field_validator("identity_regex")
    @classmethod
    def _anchored(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not (v.startswith("^") and v.endswith("$")):
            raise ValueError(f"identity_regex {v!r} must be anchored with ^ and $")
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"identity_regex {v!r} does not compile: {exc}") from None
        return v

    def matches(self, identity: str, issuer: str) -> bool:
        if issuer != self.issuer:
            return False
        if self.identity is not None:
            return identity == self.identity
        return re.fullmatch(self.identity_regex or "", identity) is not None

    def describe(self) -> str:
        return f"{self.identity or self.identity_regex} via {self.issuer}"


class Signers(_Strict):
    release: list[Signer] = Field(min_length=1, description="Who may sign release provenance.")
    validator: list[Signer] = Field(default_factory=list, description="Who may sign validation attestations.")


class Trust(_Strict):
    """Which Sigstore trust root to verify against (paths relative to the policy file)."""

    trust_config: str | None = None
    instance: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Trust:
        if (self.trust_config is None) == (self.instance is None):
            raise ValueError("give exactly one of trust_config or instance")
        return self


class Release(_Strict):
    predicate_types: list[str] = Field(default_factory=lambda: ["https://slsa.dev/provenance/v1"], min_length=1)
    build_types: list[str] = Field(
        default_factory=lambda: ["https://github.com/uc-attest/uc-attest/pack/v1"], min_length=1
    )
    builder_ids: list[str] = Field(default_factory=list, description="Allowed builder ids (exact); empty: any.")
    max_age_days: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    require_online_log_check: bool = Field(
        False, description="Fail if the log cannot be reached to re-fetch the entry (default: skip when offline)."
    )
    require_timestamps: Annotated[int, Field(ge=0, le=32)] = Field(
        0, description="Verified RFC 3161 timestamps from distinct timestamp authorities the bundle must carry."
    )
    require_tlog: bool = Field(
        True, description="Require a transparency-log entry; false admits TSA-only bundles (said in the verdict)."
    )


class CalibrationPolicy(_Strict):
    required: bool = Field(False, description="Deny a pack whose provenance records no calibration.")
    methods: list[Literal["self-sampled", "python-docstrings", "text-file", "moments-file"]] = Field(
        default_factory=list, description="Allowed calibration methods; empty: any (a record is then required)."
    )


class Quantization(_Strict):
    schemes: list[str] = Field(default_factory=list, description="Allowed scheme ids; empty: any.")
    bits: list[int] = Field(default_factory=list)
    group_sizes: list[int] = Field(default_factory=list)
    calibration: CalibrationPolicy | None = Field(
        None,
        description="How the committed calibration moments must have been obtained (rule quantization.calibration).",
    )


class Source(_Strict):
    allowed_digests: list[str] = Field(
        default_factory=list, description="Allowed source-model tree digests (sha256:<hex>); empty: any."
    )
    signers: list[Signer] = Field(
        default_factory=list,
        description="Who may have signed the source model (OpenSSF Model Signing, sigstore method); with keys, "
        "non-empty requires a verified source signature in the provenance.",
    )
    keys: list[str] = Field(
        default_factory=list, description="Source signing keys allowed (key method): sha256:<hex> of the SPKI."
    )

    @field_validator("allowed_digests", "keys")
    @classmethod
    def _digests(cls, v: list[str]) -> list[str]:
        for d in v:
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", d):
                raise ValueError(f"{d!r} is not sha256:<64 hex>")
        return v


class Rebuild(_Strict):
    required: bool = False
    device: Annotated[Device, _words(Device)] = Device.AUTO


class Threshold(_Strict):
    min: Annotated[float, Field(allow_inf_nan=False)] | None = None
    max: Annotated[float, Field(allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _some(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs min or max")
        return self

    def admits(self, x: float) -> bool:
        """``x`` within [min, max]; fails closed: a non-finite value is never admitted."""
        if not math.isfinite(x):
            return False
        return (self.min is None or x >= self.min) and (self.max is None or x <= self.max)


class Validation(_Strict):
    required: bool = True
    max_age_days: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    evaluation_sets: list[str] = Field(default_factory=list, description="Accepted evaluation set ids; empty: any.")
    require_tlog: bool | None = Field(
        None, description="A validation bundle must have a transparency-log entry; unset: as release.require_tlog."
    )
    require_timestamps: Annotated[int, Field(ge=0, le=32)] | None = Field(
        None, description="RFC 3161 timestamps from distinct TSAs a validation must carry; unset: as release."
    )
    require_online_log_check: bool | None = Field(
        None, description="A validation's log entry must be re-fetched and proven; unset: as release."
    )
    runtime: Annotated[RuntimeNeed, _words(RuntimeNeed)] = Field(
        RuntimeNeed.ANY,
        description="The runtime the metrics were measured with: any (need not be named), named (must be), match "
        "(must be the deployment's: the same uc-attest mode and kernel; load_model gives its own, gate and verify "
        "take --runtime MODE).",
    )


@dataclass(frozen=True)
class EvidenceRules:
    """What every signed bundle of one role must carry: a log entry, RFC 3161 timestamps, the online re-check."""

    require_tlog: bool
    require_timestamps: int
    require_online_log_check: bool


class Policy(_Strict):
    """A uc-attest verification policy."""

    version: Literal[1]
    name: str = Field(min_length=1)
    trust: Trust
    signers: Signers
    release: Release = Field(default_factory=Release)
    quantization: Quantization = Field(default_factory=Quantization)
    source: Source = Field(default_factory=Source)
    rebuild: Rebuild = Field(default_factory=Rebuild)
    validation: Validation | None = None

    def release_evidence(self) -> EvidenceRules:
        r = self.release
        return EvidenceRules(r.require_tlog, r.require_timestamps, r.require_online_log_check)

    def validation_evidence(self) -> EvidenceRules:
        """A validation bundle meets the release's log and timestamp rules unless the validation section sets its own."""
        r, v = self.release_evidence(), self.validation
        if v is None:
            return r
        return EvidenceRules(
            r.require_tlog if v.require_tlog is None else v.require_tlog,
            r.require_timestamps if v.require_timestamps is None else v.require_timestamps,
            r.require_online_log_check if v.require_online_log_check is None else v.require_online_log_check,
        )

    @model_validator(mode="after")
    def _validator_signers(self) -> Policy:
        if self.validation is not None and self.validation.required and not self.signers.validator:
            raise ValueError("validation.required needs at least one signers.validator")
        return self


def policy_schema() -> dict[str, Any]:
    return Policy.model_json_schema()


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of the deepest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next(((k, v) for k, v in node.value if getattr(k, "value", None) == key), None)
            if nxt is None:
                return line
            line, node = nxt[0].start_mark.line + 1, nxt[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _one_line(text: str) -> str:
    """Untrusted text (keys, parser messages) on one line: whitespace runs collapsed, control characters escaped."""
    flat = " ".join(text.split())
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)


MAX_DEPTH = 32  # a policy is a few levels deep; deeper is an attack on the parser, not a policy


def _refuse_duplicate_keys(root: yaml.Node | None, path: Path) -> None:
    """A key given twice in one mapping (YAML says keys are unique; PyYAML keeps the last one silently), or
    nesting deeper than MAX_DEPTH: InvalidInput naming the lines."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)] if root is not None else []
    visited: set[int] = set()  # an alias is the same node again: walked once (no alias bombs)
    while stack:
        node, depth = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if depth > MAX_DEPTH:
            line = node.start_mark.line + 1
            raise InvalidInput(f"{path}:{line}: nested deeper than {MAX_DEPTH} levels", path=str(path))
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        raise InvalidInput(
                            f"{path}:{line}: key {key.value!r} given twice (lines {seen[key.value]} and {line})",
                            path=str(path),
                            field=str(key.value),
                        )
                    seen[key.value] = line
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def read_policy(path: Path) -> tuple[Policy, Path]:
    """Load and validate a policy; returns it and its directory (base for relative paths)."""
    path = Path(path)
    try:
        text = read_small(path, "policy").decode("utf-8")  # never a FIFO or device, at most a few MiB
    except FileNotFoundError:
        raise InvalidInput(f"{path}: policy file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read policy: {exc}", path=str(path)) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _refuse_duplicate_keys(node, path)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = _one_line(str(getattr(exc, "problem", None) or exc))
        raise InvalidInput(f"{path}{where}: invalid YAML: {problem}", path=str(path)) from None
    except RecursionError:
        raise InvalidInput(f"{path}: invalid YAML: nested too deeply", path=str(path)) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: a policy must be a YAML mapping", path=str(path))
    try:
        return Policy.model_validate(data), path.parent
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith("function-after")))
            field = _one_line(".".join(str(x) for x in loc)) or "(top level)"
            line = _line_of(node, loc)
            msg = "unknown key" if e["type"] == "extra_forbidden" else _one_line(e["msg"])
            problems.append(f"{path}:{line}: {field}: {msg}")
        raise InvalidInput("; ".join(problems), path=str(path), problems=problems) from None


def load_policy(path: Path) -> Policy:
    """Load and validate a policy file (errors name file, line and field)."""
    return read_policy(Path(path))[0]
