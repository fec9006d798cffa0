"""Differential: the own verifier and sigstore-python over every bundle vector of ../shared/vectors, as
given and mutated (wrong identity, issuer, key or digest; a flipped signature, payload, SET, integrated
time, inclusion-proof hash or timestamp). Where sigstore-python reads the shape both must agree: every valid
vector verified by both, every broken one and every mutation refused by both. Where it does not (managed
keys, intoto entries, v0.1 SET-only, a TSA validity end), the own path alone must do the same.

Then every field: each string and integer of each valid bundle altered (``changed``), refused by both but for
the fields no signature covers (``UNSIGNED``) and sigstore-python's documented gaps (``SIGSTORE_PYTHON_GAPS``);
a bounded sample by default, all of them under ``-m slow``. test_realworld.py runs the same over real bundles.
"""

from __future__ import annotations

import base64
import copy
import os
import random
import re
from collections.abc import Iterator
from typing import Any

import pytest

import uc_attest as uc
from tests.conftest import SHARED
from tests.integration.bundle_paths import MUTATIONS, NA, run_both, run_own, run_sigstore_python
from uc_attest.testing.vectors import all_vectors, artifact_digest

VECTORS = all_vectors(SHARED) if (SHARED / "vectors").exists() else []


def test_vectors_are_there() -> None:
    if not VECTORS:
        pytest.skip(f"{SHARED / 'vectors'} not found: ../shared is not beside this clone")
    assert len(VECTORS) == 70 + 17


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v.name)
def test_both_verifiers_agree_on_every_vector_and_its_mutations(v) -> None:  # type: ignore[no-untyped-def]
    try:
        doc = v.doc()
    except ValueError:  # not JSON: refused before any verifier, exit 3
        assert not v.expect_ok
        with pytest.raises(uc.MalformedBundle):
            uc.verify_any_bundle(
                v.bundle, artifact_digest(v), uc.BundleIdentity("x", "y"), trust=uc.TrustFile(v.trusted_root)
            )
        return
    own, stock = run_own(v, doc), run_sigstore_python(v, doc)
    if v.expect_ok:
        assert own is None, f"own path refuses a valid vector: {own}"
        assert stock in (None, NA), f"sigstore-python refuses a valid vector: {stock}"
    else:
        assert own is not None, "own path accepts a broken vector"
        assert stock is not None, "sigstore-python accepts a broken vector"
        return
    assert run_both(v, doc) is None
    tried = 0
    for name, mutate in MUTATIONS.items():
        case = mutate(v, doc)
        if case is None:
            continue
        mdoc, kw = case
        tried += 1
        own, stock = run_own(v, mdoc, **kw), run_sigstore_python(v, mdoc, **kw)
        assert own is not None, f"{name}: the own path accepts the mutated bundle"
        assert stock is not None, f"{name}: sigstore-python accepts the mutated bundle"
    assert tried >= 4


# -- every field: each leaf of each valid bundle mutated, both verifiers must refuse ----------------------------

Path_ = tuple[str | int, ...]

#: Fields no signature covers, and why a mutation of them may be accepted (by both verifiers alike).
UNSIGNED: dict[str, str] = {
    r"dsseEnvelope\.signatures\.\d+\.keyid": "a key hint outside the PAE; neither verifier reads it",
    r"verificationMaterial\.publicKey\.hint": "a hint naming the key; the verifier is given the key",
    r"verificationMaterial\.timestampVerificationData\.rfc3161Timestamps\.\d+\.signedTimestamp":
        "with a SET the timestamp is an extra time: one no trusted TSA signed is not counted (reported as ignored)",
    r"verificationMaterial\.x509CertificateChain\.certificates\.[1-9]\d*\.rawBytes":
        "a v0.1/v0.2 chain certificate after the leaf: the path is built from the trusted root's CAs, not from these",
}  # fmt: skip
#: Fields sigstore-python 4.5.1 does not check where the own path does (verify-bundle runs both: refused).
SIGSTORE_PYTHON_GAPS: dict[str, str] = {
    r"verificationMaterial\.tlogEntries\.\d+\.logIndex":
        "a Rekor v2 entry (no SET): sigstore-python does not compare logIndex with the index its proof proves",
    r"verificationMaterial\.tlogEntries\.\d+\.logId\.keyId":
        "a Rekor v2 entry (no SET): sigstore-python finds the log by the checkpoint's key, not by logId",
    r"verificationMaterial\.tlogEntries\.\d+\.inclusionProof\.treeSize":
        "sigstore-python does not compare the proof's treeSize with its checkpoint's; where the path still reaches"
        " the signed root (some indexes of a tree one larger) it accepts: harmless, the root is the signed one",
}  # fmt: skip


def leaves(doc: Any, path: Path_ = ()) -> Iterator[Path_]:
    """The path of every string and integer of a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from leaves(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from leaves(v, (*path, i))
    elif isinstance(doc, (str, int)) and not isinstance(doc, bool):
        yield path


def changed(value: str | int) -> str | int:
    """The value altered as an attacker would: an integer off by one, a bit of base64 data flipped, a
    character of text changed. A checkpoint (signed note) is altered in its signed text (origin, size, root
    hash), never on a signature line: a line by a signer the verifier does not know is ignored (a witness's
    cosignature), and the name on an ECDSA line (Rekor v1) is not signed (its key hint is SHA-256 of the key
    alone); broken log signatures are the conformance vectors checkpoint-* and rekor2-checkpoint-*."""
    if isinstance(value, int):
        return value + 1
    if "\n\n\u2014 " in value:  # a signed note
        text, sigs = value.split("\n\n", 1)
        return changed(text) + "\n\n" + sigs
    if value.lstrip("-").isdigit():
        return str(int(value) + 1)
    try:
        raw = bytearray(base64.b64decode(value, validate=True))
    except ValueError:
        raw = bytearray()
    if len(raw) >= 2:
        raw[len(raw) // 2] ^= 0x01
        return base64.b64encode(bytes(raw)).decode()
    i = len(value) // 2
    return value[:i] + chr(ord(value[i]) ^ 0x01) + value[i + 1 :] if value else "x"


def mutate(doc: dict[str, Any], path: Path_) -> dict[str, Any]:
    d = copy.deepcopy(doc)
    target: Any = d
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = changed(target[path[-1]])
    return d


def dotted(path: Path_) -> str:
    return ".".join(str(k) for k in path)


def unsigned(path: Path_, doc: dict[str, Any]) -> str | None:
    why = next((why for pat, why in UNSIGNED.items() if re.fullmatch(pat, dotted(path))), None)
    entries = (doc.get("verificationMaterial") or {}).get("tlogEntries") or []
    if "signedTimestamp" in path and not any(e.get("inclusionPromise") for e in entries):
        return None  # the timestamp is the only time: it must verify
    return why


def sample(paths: list[Path_], seed: str) -> list[Path_]:
    """All of them under UC_MUTATIONS=all (the slow test), else a bounded, reproducible sample."""
    if os.environ.get("UC_MUTATIONS") == "all":
        return paths
    return random.Random(seed).sample(paths, min(PER_BUNDLE, len(paths)))


PER_BUNDLE = int(os.environ.get("UC_MUTATIONS_PER_BUNDLE", "6"))
VALID = [v for v in VECTORS if v.expect_ok]


def gap(path: Path_) -> str | None:
    return next((why for pat, why in SIGSTORE_PYTHON_GAPS.items() if re.fullmatch(pat, dotted(path))), None)


def check_field_mutations(v: Any, doc: dict[str, Any]) -> int:
    """Each sampled leaf mutated: both verifiers refuse (but for the documented fields) and `verify-bundle`
    answers a documented error, never a crash (run_both lets any other exception through). The stock runner
    calling sigstore-python directly may crash on a certificate with a malformed extension (a refusal);
    verify-bundle parses the bundle first and answers exit 3 there."""
    tried = 0
    for path in sample(list(leaves(doc)), v.name):
        mdoc = mutate(doc, path)
        own, stock, both = run_own(v, mdoc), run_sigstore_python(v, mdoc), run_both(v, mdoc)
        if unsigned(path, doc) is not None:
            continue
        tried += 1
        assert own is not None, f"{dotted(path)}: the own path accepts the mutated bundle"
        assert stock is not None or gap(path), f"{dotted(path)}: sigstore-python accepts the mutated bundle"
        assert both is not None, f"{dotted(path)}: verify-bundle accepts the mutated bundle"
    return tried


@pytest.mark.parametrize("v", VALID, ids=lambda v: v.name)
def test_every_field_mutated_is_refused_sampled(v) -> None:  # type: ignore[no-untyped-def]
    check_field_mutations(v, v.doc())


@pytest.mark.slow
@pytest.mark.parametrize("v", VALID, ids=lambda v: v.name)
def test_every_field_mutated_is_refused_all(v, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("UC_MUTATIONS", "all")
    assert check_field_mutations(v, v.doc()) > 10
