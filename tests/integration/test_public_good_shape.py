"""The verifying client on real public-good Rekor data.

No live call to rekor.sigstore.dev is possible here (no network), so the REST answer is
reconstructed from a real public-good bundle (sigstore-conformance `happy-path-v0.3`): the
bundle's tlog entry converted back to the Rekor v1 response shape (hex hashes, integer sizes),
exactly the inverse of what sigstore-python does when it builds a bundle. The client must accept
it with the production log key and refuse any alteration.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import SHARED
from uc_attest.transparency.rekor_v1 import LogKey, LogMisbehaved, RekorClient

BUNDLE = SHARED / "vectors" / "sigstore-conformance" / "test" / "assets" / "bundle-verify" / "happy-path-v0.3"
ROOT = SHARED / "vectors" / "sigstore-python" / "sigstore" / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"


def _rest_answer(entry: dict[str, Any]) -> dict[str, Any]:
    hexb = lambda b64: base64.b64decode(b64).hex()
    body = base64.b64decode(entry["canonicalizedBody"])
    import hashlib

    uuid = hashlib.sha256(b"\x00" + body).hexdigest()
    p = entry["inclusionProof"]
    return {
        uuid: {
            "body": entry["canonicalizedBody"],
            "integratedTime": int(entry["integratedTime"]),
            "logID": hexb(entry["logId"]["keyId"]),
            "logIndex": int(entry["logIndex"]),
            "verification": {
                "signedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
                "inclusionProof": {
                    "logIndex": int(p["logIndex"]),
                    "treeSize": int(p["treeSize"]),
                    "rootHash": hexb(p["rootHash"]),
                    "hashes": [hexb(h) for h in p["hashes"]],
                    "checkpoint": p["checkpoint"]["envelope"],
                },
            },
        }
    }


@pytest.fixture
def client_and_answer() -> tuple[RekorClient, dict[str, Any]]:
    if not (BUNDLE.exists() and ROOT.exists()):
        pytest.skip("../shared vectors not present")
    entry = json.loads((BUNDLE / "bundle.sigstore.json").read_text())["verificationMaterial"]["tlogEntries"][0]
    log_id = base64.b64decode(entry["logId"]["keyId"])
    root = json.loads((ROOT / "trusted_root.json").read_text())
    tlog = next(t for t in root["tlogs"] if base64.b64decode(t["logId"]["keyId"]) == log_id)
    key = serialization.load_der_public_key(base64.b64decode(tlog["publicKey"]["rawBytes"]))
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return RekorClient(LogKey(tlog["baseUrl"], key, log_id)), _rest_answer(entry)


def test_real_public_good_entry_verifies(client_and_answer: tuple[RekorClient, dict[str, Any]]) -> None:
    client, answer = client_and_answer
    ((_, e),) = answer.items()
    cp = client.verify_note(e["verification"]["inclusionProof"]["checkpoint"])
    assert cp.origin.startswith("rekor.sigstore.dev")
    got = client.verify_entry(answer, cp)
    assert got.kind == "hashedrekord" and got.index == e["logIndex"]


@pytest.mark.parametrize("field", ["set", "hash", "body"])
def test_altered_public_good_entry_is_refused(
    client_and_answer: tuple[RekorClient, dict[str, Any]], field: str
) -> None:
    client, answer = client_and_answer
    ((uuid, e),) = answer.items()
    cp = client.verify_note(e["verification"]["inclusionProof"]["checkpoint"])
    bad = copy.deepcopy(answer)
    v = bad[uuid]["verification"]
    if field == "set":
        sig = bytearray(base64.b64decode(v["signedEntryTimestamp"]))
        sig[-2] ^= 1
        v["signedEntryTimestamp"] = base64.b64encode(bytes(sig)).decode()
    elif field == "hash":
        v["inclusionProof"]["hashes"][0] = "00" * 32
    else:
        bad[uuid]["integratedTime"] += 1
    with pytest.raises(LogMisbehaved):
        client.verify_entry(bad, cp)
