"""Claims: one codec per predicate, each parsed once from the exact signed bytes of an in-toto Statement.

* ``statement``  in-toto Statement v1 (exact bytes, subjects, subject matching)
* ``slsa``       the release provenance (SLSA provenance v1 with the per-tensor manifest)
* ``validation`` the validator's attestation of one reconstruction
* ``oms``        OpenSSF Model Signing v1.0: a model directory's files (and a directory as OMS enumerates it)
"""

from __future__ import annotations

from .oms import OMS_PREDICATE, OmsClaim, parse_oms
from .slsa import BUILD_TYPE, RECONSTRUCTION_NAME, SLSA_PROVENANCE_V1, ReleaseClaim, parse_release
from .statement import Statement
from .validation import VALIDATION_PREDICATE, ValidationClaim, parse_validation

Claim = ReleaseClaim | ValidationClaim | OmsClaim


def parse_claim(statement: Statement) -> Claim | None:
    """The claim a statement makes, by its predicate type; None for predicates uc-attest does not read.

    A SLSA provenance of another build type (npm, PyPI...) is not a uc-attest release: None."""
    if statement.predicate_type == VALIDATION_PREDICATE:
        return parse_validation(statement)
    if statement.predicate_type == OMS_PREDICATE:
        return parse_oms(statement)
    if statement.predicate_type == SLSA_PROVENANCE_V1:
        build = statement.predicate.get("buildDefinition", {})
        if isinstance(build, dict) and build.get("buildType") == BUILD_TYPE:
            return parse_release(statement)
    return None


__all__ = [
    "BUILD_TYPE",
    "OMS_PREDICATE",
    "RECONSTRUCTION_NAME",
    "SLSA_PROVENANCE_V1",
    "VALIDATION_PREDICATE",
    "Claim",
    "OmsClaim",
    "ReleaseClaim",
    "Statement",
    "ValidationClaim",
    "parse_claim",
    "parse_release",
    "parse_validation",
]
