"""in-toto Statement v1, kept as the exact signed bytes and parsed once.

The signed payload of every attestation is a Statement; :class:`Statement` keeps its exact bytes (what
the signature covers), the parsed document and its subjects. Predicates are read by their codecs
(``slsa``, ``validation``), never from re-serialized JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import MalformedBundle

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
#: Statement types a Sigstore verifier meets: v1, and v0.1 (npm provenance and publish attestations).
ATTESTATION_TYPES = (STATEMENT_TYPE, "https://in-toto.io/Statement/v0.1")
#: Digest algorithms a subject may carry that a verifier can recompute (hashlib names).
COMPUTABLE = {"sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}


def encode(doc: dict[str, Any]) -> bytes:
    """The bytes uc-attest signs for a statement: compact JSON with sorted keys."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def validate(doc: Any) -> None:
    """Structural validation with the in-toto-attestation reference implementation."""
    from google.protobuf import json_format
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement as Reference

    try:
        pb = json_format.ParseDict(doc, statement_pb2.Statement())
        Reference.copy_from_pb(pb).validate()
    except (
        json_format.ParseError,
        ValueError,
        TypeError,
        AttributeError,
        SystemError,
        UnicodeError,
        RecursionError,
    ) as exc:  # protobuf raises SystemError on a lone surrogate
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise MalformedBundle(f"not a valid in-toto Statement v1: {first}") from None


@dataclass(frozen=True)
class Subject:
    name: str
    digest: dict[str, str]  # algorithm -> lowercase hex


@dataclass(frozen=True)
class Statement:
    """A parsed in-toto Statement v1 and the exact bytes it was parsed from."""

    payload: bytes
    doc: dict[str, Any]
    predicate_type: str
    subjects: tuple[Subject, ...]

    @property
    def predicate(self) -> dict[str, Any]:
        p = self.doc.get("predicate")
        return p if isinstance(p, dict) else {}

    @classmethod
    def parse(cls, payload: bytes) -> Statement:
        """Parse and validate; raises MalformedBundle naming what is wrong."""
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedBundle("statement payload is not JSON") from None
        validate(doc)
        subjects = tuple(
            Subject(str(s.get("name", "")), {str(k): str(v).lower() for k, v in s.get("digest", {}).items()})
            for s in doc["subject"]
        )
        return cls(payload, doc, str(doc.get("predicateType", "")), subjects)

    @classmethod
    def parse_attestation(cls, payload: bytes) -> Statement:
        """Any in-toto Statement a Sigstore verifier accepts (sigstore-go, ``gh attestation verify``): v1 or v0.1,
        its predicate an object, empty or absent (PEP 740 publish attestations have ``"predicate": null``).
        Only what subject matching needs is checked; MalformedBundle naming what is wrong."""
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise MalformedBundle("statement payload is not JSON") from None
        if not isinstance(doc, dict) or doc.get("_type") not in ATTESTATION_TYPES:
            raise MalformedBundle(f"not an in-toto Statement ({', '.join(ATTESTATION_TYPES)})")
        subjects = doc.get("subject")
        if not isinstance(subjects, list) or not subjects:
            raise MalformedBundle("the statement has no subject")
        out = []
        for s in subjects:
            digest = s.get("digest") if isinstance(s, dict) else None
            if not isinstance(digest, dict) or not digest or not all(isinstance(v, str) for v in digest.values()):
                raise MalformedBundle("a statement subject has no digest (algorithm -> hex)")
            out.append(Subject(str(s.get("name", "")), {str(k): v.lower() for k, v in digest.items()}))
        if not isinstance(doc.get("predicateType"), str) or not doc["predicateType"]:
            raise MalformedBundle("the statement has no predicateType")
        if doc.get("predicate") is not None and not isinstance(doc["predicate"], dict):
            raise MalformedBundle("the statement's predicate is not an object")
        return cls(payload, doc, doc["predicateType"], tuple(out))

    def subject(self, name: str) -> Subject | None:
        return next((s for s in self.subjects if s.name == name), None)

    def matches_artifact(self, data_hashes: dict[str, str]) -> bool:
        """True if some subject's digests include one of ``data_hashes`` (algorithm -> hex) and none of that
        subject's computable digests disagree (a subject names one artifact, every algorithm must agree)."""
        for s in self.subjects:
            common = [alg for alg in s.digest if alg in data_hashes]
            if common and all(s.digest[alg] == data_hashes[alg] for alg in common):
                return True
        return False
