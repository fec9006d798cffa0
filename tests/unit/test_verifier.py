"""The own bundle verifier's checks one by one, without I/O: parsing, the log body of each entry kind
re-derived from the bundle, the SET and the inclusion proof against a signed checkpoint, OtherName text.
(Every vector and its mutations through both verifiers: tests/integration/test_differential.py.)"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from uc_attest.core import merkle
from uc_attest.core.digest import canonical_json
from uc_attest.core.dsse import pae
from uc_attest.core.x509names import _der_string
from uc_attest.errors import MalformedBundle
from uc_attest.evidence.verifier import (
    CheckFailed,
    UnsupportedBundle,
    _body_matches,
    _logs,
    parse,
    verify_bundle,
    verify_entry,
)
from uc_attest.transparency.checkpoint import Checkpoint, sign_note

KEY = ec.generate_private_key(ec.SECP256R1())
PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
LOG_KEY = ec.generate_private_key(ec.SECP256R1())
LOG_DER = LOG_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
LOG_ID = hashlib.sha256(LOG_DER).digest()
PAYLOAD = b'{"_type": "https://in-toto.io/Statement/v1"}'
PTYPE = "application/vnd.in-toto+json"


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def dsse_bundle(sig: bytes | None = None, entries: list[dict[str, Any]] | None = None,
                media: str = "application/vnd.dev.sigstore.bundle.v0.3+json") -> dict[str, Any]:  # fmt: skip
    sig = sig if sig is not None else KEY.sign(pae(PTYPE, PAYLOAD), ec.ECDSA(hashes.SHA256()))
    return {
        "mediaType": media,
        "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": entries or []},
        "dsseEnvelope": {"payload": b64(PAYLOAD), "payloadType": PTYPE, "signatures": [{"sig": b64(sig)}]},
    }


def test_der_strings_lose_their_wrapper() -> None:
    assert _der_string(b"\x0c\x0efoo!oidc.local") == "foo!oidc.local"
    long = "x" * 200
    assert _der_string(b"\x0c\x81\xc8" + long.encode()) == long
    assert _der_string(b"plain") == "plain"  # not one DER string: shown as it is
    assert _der_string(b"\x0c\x05ab") == "\x0c\x05ab"  # a length that does not fit


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.9"}, "version=0.9"),
        (
            {
                "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                "verificationMaterial": {
                    "publicKey": {},
                    "tlogEntries": [{"kindVersion": {"kind": "rekord", "version": "0.0.1"}}],
                },
            },
            "rekord 0.0.1",
        ),
    ],
)
def test_unsupported_shapes_name_the_field(doc: dict[str, Any], named: str) -> None:
    with pytest.raises(UnsupportedBundle, match=named):
        parse(doc, "b")


def test_a_dsse_envelope_with_two_signatures_is_refused() -> None:
    d = dsse_bundle()
    d["dsseEnvelope"]["signatures"].append(d["dsseEnvelope"]["signatures"][0])
    with pytest.raises(CheckFailed, match="bundle.parse"):
        parse(d, "b")


def _bodies(sig: bytes) -> dict[tuple[str, str], dict[str, Any]]:
    pae_digest = hashlib.sha256(pae(PTYPE, PAYLOAD)).digest()
    return {
        ("dsse", "0.0.1"): {"kind": "dsse", "apiVersion": "0.0.1", "spec": {
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(PAYLOAD).hexdigest()},
            "signatures": [{"signature": b64(sig), "verifier": b64(PEM)}]}},
        ("intoto", "0.0.2"): {"kind": "intoto", "apiVersion": "0.0.2", "spec": {"content": {
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(PAYLOAD).hexdigest()},
            "envelope": {"payloadType": PTYPE, "payload": b64(b64(PAYLOAD).encode()),
                         "signatures": [{"sig": b64(b64(sig).encode()), "publicKey": b64(PEM)}]}}}},
        ("hashedrekord", "0.0.2"): {"kind": "hashedrekord", "apiVersion": "0.0.2", "spec": {"hashedRekordV002": {
            "data": {"algorithm": "SHA2_256", "digest": b64(pae_digest)},
            "signature": {"content": b64(sig), "verifier": {"publicKey": {"rawBytes": b64(
                KEY.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))}}}}}},
    }  # fmt: skip


@pytest.mark.parametrize("kind", [("dsse", "0.0.1"), ("intoto", "0.0.2"), ("hashedrekord", "0.0.2")])
def test_each_entry_kind_is_re_derived_from_the_bundle(kind: tuple[str, str]) -> None:
    sig = KEY.sign(pae(PTYPE, PAYLOAD), ec.ECDSA(hashes.SHA256()))
    p = parse(dsse_bundle(sig), "b")
    body = _bodies(sig)[kind]
    assert _body_matches(body, *kind, p, KEY.public_key()) is None
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert _body_matches(body, *kind, p, other) is not None  # another signer
    forged = parse(dsse_bundle(KEY.sign(b"other", ec.ECDSA(hashes.SHA256()))), "b")
    assert _body_matches(body, *kind, forged, KEY.public_key()) is not None  # another signature
    changed = dsse_bundle(sig)
    changed["dsseEnvelope"]["payload"] = b64(PAYLOAD + b" ")
    assert _body_matches(body, *kind, parse(changed, "b"), KEY.public_key()) is not None  # another payload


def _logged(body: bytes, integrated: int = 1_700_000_000) -> tuple[dict[str, Any], dict[str, Any]]:
    """A one-entry Rekor v1 log: the bundle entry (SET, inclusion proof, checkpoint) and its trusted root."""
    cp_note = sign_note(Checkpoint("test-log - 1", 1, merkle.leaf_hash(body)).text(), "test-log", LOG_KEY)
    set_payload = canonical_json({"body": b64(body), "integratedTime": integrated, "logID": LOG_ID.hex(),
                                  "logIndex": 0})  # fmt: skip
    entry = {"logIndex": "0", "logId": {"keyId": b64(LOG_ID)}, "kindVersion": {"kind": "dsse", "version": "0.0.1"},
             "integratedTime": str(integrated), "canonicalizedBody": b64(body),
             "inclusionPromise": {"signedEntryTimestamp": b64(LOG_KEY.sign(set_payload, ec.ECDSA(hashes.SHA256())))},
             "inclusionProof": {"logIndex": "0", "treeSize": "1", "rootHash": b64(merkle.leaf_hash(body)),
                                "hashes": [], "checkpoint": {"envelope": cp_note}}}  # fmt: skip
    root = {"tlogs": [{"baseUrl": "http://log", "publicKey": {"rawBytes": b64(LOG_DER),
                                                              "validFor": {"start": "2020-01-01T00:00:00Z"}},
                       "logId": {"keyId": b64(LOG_ID)}}]}  # fmt: skip
    return entry, root


def test_set_and_inclusion_proof_verify_and_each_tampering_is_named() -> None:
    sig = KEY.sign(pae(PTYPE, PAYLOAD), ec.ECDSA(hashes.SHA256()))
    body = json.dumps(_bodies(sig)[("dsse", "0.0.1")]).encode()
    entry, root = _logged(body)
    p = parse(dsse_bundle(sig, [entry]), "b")
    ve = verify_entry(entry, p, _logs(root), KEY.public_key(), "b")
    assert ve.set_time == 1_700_000_000 and ve.tree_size == 1
    cases = {
        "SET": lambda e: e.__setitem__("integratedTime", "1700000001"),
        "checkpoint": lambda e: e["inclusionProof"]["checkpoint"].__setitem__(
            "envelope", e["inclusionProof"]["checkpoint"]["envelope"].replace("test-log - 1", "test-log - 2")),
        "tree size or root": lambda e: e["inclusionProof"].__setitem__("rootHash", b64(bytes(32))),
        "not in the trusted root": lambda e: e["logId"].__setitem__("keyId", b64(bytes(32))),
        "needs an inclusion proof": lambda e: e.pop("inclusionProof"),
    }  # fmt: skip
    for named, edit in cases.items():
        e = json.loads(json.dumps(entry))
        edit(e)
        with pytest.raises(CheckFailed, match=named):
            verify_entry(e, p, _logs(root), KEY.public_key(), "b")
    # a v0.1 bundle may be proven by its SET alone
    e = json.loads(json.dumps(entry))
    e.pop("inclusionProof")
    old = parse(dsse_bundle(sig, [e], "application/vnd.dev.sigstore.bundle+json;version=0.1"), "b")
    assert verify_entry(e, old, _logs(root), KEY.public_key(), "b").checkpoint is None


def test_a_log_key_without_a_validity_start_is_a_malformed_root() -> None:
    from uc_attest.errors import MalformedBundle

    _, root = _logged(b"{}")
    root["tlogs"][0]["publicKey"]["validFor"] = {}
    with pytest.raises(MalformedBundle, match="validFor.start"):
        _logs(root)


def test_a_log_key_outside_its_validity_is_refused_by_both_trusted_root_readers(tmp_path: Any) -> None:
    """One parse of the trusted root (issue 33): the bundle verifier and trust selection (the Rekor v1 client
    behind ``TrustRoot.logs()``) read the same ``validFor``; an entry integrated before the key's start, or after
    its end, is refused by both. (Trust selection ignored ``validFor`` before.)"""
    from uc_attest.errors import LogMisbehaved
    from uc_attest.signing.trust import TRUSTED_ROOT, Trust
    from uc_attest.transparency.rekor_v1 import RekorClient, VerifiedCheckpoint

    sig = KEY.sign(pae(PTYPE, PAYLOAD), ec.ECDSA(hashes.SHA256()))
    body = json.dumps(_bodies(sig)[("dsse", "0.0.1")]).encode()
    entry, root = _logged(body)
    p = parse(dsse_bundle(sig, [entry]), "b")
    answer = {merkle.leaf_hash(body).hex(): {
        "body": b64(body), "integratedTime": 1_700_000_000, "logID": LOG_ID.hex(), "logIndex": 0,
        "verification": {"signedEntryTimestamp": entry["inclusionPromise"]["signedEntryTimestamp"],
                         "inclusionProof": {"logIndex": 0, "treeSize": 1, "rootHash": merkle.leaf_hash(body).hex(),
                                            "hashes": [], "checkpoint": entry["inclusionProof"]["checkpoint"]["envelope"]}},
    }}  # fmt: skip

    def client(valid: dict[str, str]) -> RekorClient:
        root["tlogs"][0]["publicKey"]["validFor"] = valid
        f = tmp_path / "root.json"
        f.write_text(json.dumps({"mediaType": TRUSTED_ROOT, **root}))
        (log,) = Trust.file(f).logs()
        return RekorClient(log)

    in_force = {"start": "2020-01-01T00:00:00Z"}
    assert verify_entry(entry, p, _logs(root), KEY.public_key(), "b").set_time == 1_700_000_000
    latest = client(in_force).verify_note(entry["inclusionProof"]["checkpoint"]["envelope"])
    assert isinstance(latest, VerifiedCheckpoint)
    assert client(in_force).verify_entry(answer, latest).integrated_time == 1_700_000_000
    for valid in ({"start": "2099-01-01T00:00:00Z"}, {"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"}):
        with pytest.raises(LogMisbehaved, match="outside the log key's validity"):
            client(valid).verify_entry(answer, latest)
        with pytest.raises(CheckFailed, match="outside the log key's validity"):
            verify_entry(entry, p, _logs(root), KEY.public_key(), "b")
    root["tlogs"][0]["publicKey"]["validFor"] = {}
    (tmp_path / "root.json").write_text(json.dumps({"mediaType": TRUSTED_ROOT, **root}))
    with pytest.raises(MalformedBundle, match="validFor.start"):
        Trust.file(tmp_path / "root.json").logs()  # the same strictness as the bundle verifier's


def test_without_a_set_the_index_shown_is_the_one_the_proof_proves() -> None:
    sig = KEY.sign(pae(PTYPE, PAYLOAD), ec.ECDSA(hashes.SHA256()))
    entry, root = _logged(json.dumps(_bodies(sig)[("dsse", "0.0.1")]).encode())
    entry.pop("inclusionPromise")  # Rekor v2: nothing but the inclusion proof signs the index
    p = parse(dsse_bundle(sig, [entry]), "b")
    assert verify_entry(entry, p, _logs(root), KEY.public_key(), "b").index == 0
    entry["logIndex"] = "7"
    with pytest.raises(CheckFailed, match="logIndex 7 is not the index its inclusion proof proves"):
        verify_entry(entry, p, _logs(root), KEY.public_key(), "b")


@pytest.mark.parametrize(("path", "value"), [
    (("verificationMaterial", "timestampVerificationData"), [1]),
    (("verificationMaterial", "tlogEntries"), {"a": 1}),
    (("verificationMaterial", "tlogEntries", 0), 5),
    (("verificationMaterial", "tlogEntries", 0, "inclusionProof"), 5),
    (("verificationMaterial", "tlogEntries", 0, "logIndex"), True),
    (("verificationMaterial", "tlogEntries", 0, "inclusionProof", "hashes"), [3]),
    (("dsseEnvelope", "signatures", 0, "sig"), ["x"]),
    (("dsseEnvelope", "payload"), 1.5),
])  # fmt: skip
def test_a_field_of_the_wrong_json_type_is_malformed_input(path: tuple[Any, ...], value: Any) -> None:
    from uc_attest.errors import MalformedBundle

    entry, _ = _logged(b"{}")
    doc = dsse_bundle(entries=[entry])
    target: Any = doc
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    with pytest.raises(MalformedBundle, match="is a JSON"):
        parse(doc, "b")


# --- Found by an outside review: a log key's validity for entries no one timestamps, and validFor parsed strictly.


@pytest.mark.parametrize(
    "valid",
    [{"start": "2099-01-01T00:00:00Z"}, {"start": "2000-01-01T00:00:00Z", "end": "2001-01-01T00:00:00Z"}],
    ids=["not-yet-valid", "retired"],
)
def test_a_key_signed_entry_without_set_or_timestamp_needs_its_log_key_valid_now(valid: dict[str, str]) -> None:
    """No SET and no RFC 3161 time: the unsigned integratedTime proves nothing, so the log key must be valid now."""
    sig = KEY.sign(pae(PTYPE, PAYLOAD), ec.ECDSA(hashes.SHA256()))
    entry, root = _logged(json.dumps(_bodies(sig)[("dsse", "0.0.1")]).encode())
    entry.pop("inclusionPromise")
    root["tlogs"][0]["publicKey"]["validFor"] = valid
    with pytest.raises(CheckFailed, match="not valid"):
        verify_bundle(dsse_bundle(sig, [entry]), root, where="b", key=KEY.public_key())


@pytest.mark.parametrize(
    "valid",
    [
        {"start": "2020-01-01T00:00:00Z", "end": ""},
        {"start": "2020-01-01T00:00:00Z", "end": 0},
        {"start": "2020-01-01T00:00:00Z", "end": False},
        {"start": "2020-01-01T00:00:00Z", "end": {}},
        {"start": "2024-01-01T00:00:00"},  # no time zone: would be read in the machine's local time
        {"start": "2024-W01-1T00:00:00Z"},
        {"start": "20240101T000000Z"},
        {},
    ],
)
def test_a_validity_that_is_not_rfc3339_is_malformed(valid: dict[str, Any]) -> None:
    from uc_attest.errors import MalformedBundle
    from uc_attest.transparency.trusted import trusted_logs

    _, root = _logged(b"{}")
    root["tlogs"][0]["publicKey"]["validFor"] = valid
    with pytest.raises(MalformedBundle, match="tlogs\\[0\\]"):
        trusted_logs(root)


@pytest.mark.parametrize("tlogs", [5, "x", {"a": 1}])
def test_tlogs_that_are_not_a_list_are_malformed(tlogs: Any) -> None:
    from uc_attest.errors import MalformedBundle
    from uc_attest.transparency.trusted import trusted_logs

    with pytest.raises(MalformedBundle, match="tlogs"):
        trusted_logs({"tlogs": tlogs})


def test_rfc3339_times() -> None:
    from uc_attest.core.rfc3339 import parse

    assert parse("2024-01-01T00:00:00Z").timestamp() == parse("2024-01-01T01:00:00+01:00").timestamp() == 1704067200.0
    assert parse("2024-01-01T00:00:00.5Z").timestamp() == 1704067200.5


@pytest.mark.parametrize(
    "valid", [{"start": "2024-01-01T00:00:00"}, {"start": "2024-01-01T00:00:00Z", "end": ""}, {"start": 0}]
)
@pytest.mark.parametrize("section", ["certificateAuthorities", "timestampAuthorities"])
def test_ca_and_tsa_windows_are_read_as_strictly_as_the_logs(section: str, valid: dict[str, Any]) -> None:
    """The same parser for every validFor: no local time, an empty end is not "forever" (it was, for CAs/TSAs)."""
    import datetime as dt

    from uc_attest.evidence.chain import ca_certificates
    from uc_attest.evidence.timestamps import authorities

    root = {section: [{"certChain": {"certificates": []}, "validFor": valid}]}
    with pytest.raises(MalformedBundle, match=section):
        if section == "certificateAuthorities":
            ca_certificates(root, dt.datetime.now(dt.UTC))
        else:
            authorities(root)
