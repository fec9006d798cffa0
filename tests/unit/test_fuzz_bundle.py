"""Property test of the own verifier's bundle JSON entry point (``verifier.verify_bundle``): arbitrary JSON,
and valid bundles with one field replaced by arbitrary JSON, give only the documented errors — a
MalformedBundle/UnsupportedBundle (exit 3) or a failed check (exit 1) — never another exception (exit 70).
``UC_FUZZ_EXAMPLES`` sets the number of examples (200 by default)."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SHARED
from tests.unit.test_verifier import KEY, PAYLOAD, PTYPE, _bodies, _logged, dsse_bundle
from uc_attest.core.dsse import pae
from uc_attest.errors import EXIT_DENIED, EXIT_INVALID, UcAttestError
from uc_attest.evidence.verifier import Artifact, verify_bundle
from uc_attest.testing.vectors import all_vectors

EXAMPLES = int(os.environ.get("UC_FUZZ_EXAMPLES", "200"))
FIELDS = ["mediaType", "verificationMaterial", "tlogEntries", "certificate", "rawBytes", "publicKey",
          "x509CertificateChain", "certificates", "timestampVerificationData", "rfc3161Timestamps",
          "signedTimestamp", "logIndex", "logId", "keyId", "kindVersion", "kind", "version", "integratedTime",
          "inclusionPromise", "signedEntryTimestamp", "inclusionProof", "rootHash", "treeSize", "hashes",
          "checkpoint", "envelope", "canonicalizedBody", "dsseEnvelope", "payload", "payloadType", "signatures",
          "sig", "messageSignature", "messageDigest", "algorithm", "digest", "signature"]  # fmt: skip
MEDIA = ["application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.dev.sigstore.bundle+json;version=0.1"]
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12) | \
    st.sampled_from([*MEDIA, "AAAA", "hashedrekord", "dsse", "0.0.1", "1", "-1"])  # fmt: skip
JSON = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=5), kids, max_size=4), max_leaves=20)  # fmt: skip


def _synthetic() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A managed-key DSSE bundle logged with a SET and an inclusion proof, its root and verifier arguments."""
    sig = KEY.sign(pae(PTYPE, PAYLOAD), ec.ECDSA(hashes.SHA256()))
    entry, root = _logged(json.dumps(_bodies(sig)[("dsse", "0.0.1")]).encode())
    return dsse_bundle(sig, [entry]), root, {"key": KEY.public_key()}


def _valid() -> list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]]:
    out = [_synthetic()]
    if (SHARED / "vectors").exists():  # and every valid third-party vector, where ../shared is beside the clone
        from tests.integration.bundle_paths import artifact_of, key_of, signers_of, trust_of

        for v in all_vectors(SHARED):
            if v.expect_ok:
                key = key_of(v)
                kw = {"key": key} if key is not None else {"signers": signers_of(v, v.doc(), None, None)}
                out.append((v.doc(), trust_of(str(v.trusted_root)).root_document, {**kw, "artifact": artifact_of(v)}))
    return out


VALID = _valid()


def _run(doc: Any, root: dict[str, Any], **kw: Any) -> None:
    try:
        verify_bundle(doc, root, where="fuzz", **kw)
    except UcAttestError as exc:
        assert exc.exit_code in (EXIT_DENIED, EXIT_INVALID), f"{type(exc).__name__} exit {exc.exit_code}"


def test_the_valid_bundles_verify() -> None:
    for doc, root, kw in VALID:
        verify_bundle(doc, root, where="fuzz", **kw)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=JSON)
def test_arbitrary_json_gives_a_documented_error(doc: Any) -> None:
    _, root, kw = VALID[0]
    _run(doc, root, **kw)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.fixed_dictionaries({"mediaType": st.sampled_from(MEDIA)}, optional=dict.fromkeys(("verificationMaterial", "dsseEnvelope", "messageSignature"), JSON)))  # fmt: skip
def test_bundle_shaped_json_gives_a_documented_error(doc: dict[str, Any]) -> None:
    _, root, kw = VALID[0]
    _run(doc, root, **kw)


def _paths(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node's path (containers too: a replaced list or object is a mutation as well)."""
    out = [path] if path else []
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        out += _paths(v, (*path, k))
    return out


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_valid_bundle_with_a_field_replaced_gives_a_documented_error(data: st.DataObject) -> None:
    doc, root, kw = data.draw(st.sampled_from(VALID))
    path = data.draw(st.sampled_from(_paths(doc)))
    mutated = copy.deepcopy(doc)
    target: Any = mutated
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = data.draw(JSON)
    _run(mutated, root, **kw)


@pytest.mark.parametrize("value", [[1], 5, "x", {"rfc3161Timestamps": 5}, {"rfc3161Timestamps": [1]}])
def test_timestamp_verification_data_of_any_shape(value: Any) -> None:
    doc, root, kw = VALID[0]
    doc = copy.deepcopy(doc)
    doc["verificationMaterial"]["timestampVerificationData"] = value
    _run(doc, root, **kw)


def test_an_artifact_is_optional() -> None:
    doc, root, kw = VALID[0]
    _run(doc, root, **kw, artifact=Artifact.of(b"other"))
