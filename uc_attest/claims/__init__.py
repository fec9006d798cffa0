"""Claims: one codec per predicate, each parsed once from the exact signed bytes of an in-toto Statement.

* ``statement``  in-toto Statement v1 (exact bytes, subjects, subject matching)
* ``slsa``       the release provenance (SLSA provenance v1 with the per-tensor manifest)
* ``validation`` the validator's attestation of one reconstruction
"""

from __future__ import annotations

from .slsa import BUILD_TYPE, RECONSTRUCTION_NAME, SLSA_PROVENANCE_V1, ReleaseClaim, parse_release
from .statement import Statement
from .validation import VALIDATION_PREDICATE, ValidationClaim, parse_validation

Claim = ReleaseClaim | ValidationClaim


def parse_claim(statement: Statement) -> Claim | None:
    """The claim a statement makes, by its predicate type; None for predicates uc-attest does not read.

    A SLSA provenance of another build type (npm, PyPI...) is not a uc-attest release: None."""
    if statement.predicate_type == VALIDATION_PREDICATE:
        return parse_validation(statement)
    if statement.predicate_type == SLSA_PROVENANCE_V1:
        build = statement.predicate.get("buildDefinition", {})
        if isinstance(build, dict) and build.get("buildType") == BUILD_TYPE:
            return parse_release(statement)
    return None


__all__ = [
    "BUILD_TYPE",
    "RECONSTRUCTION_NAME",
    "SLSA_PROVENANCE_V1",
    "VALIDATION_PREDICATE",
    "Claim",
    "ReleaseClaim",
    "Statement",
    "ValidationClaim",
    "parse_claim",
    "parse_release",
    "parse_validation",
]
