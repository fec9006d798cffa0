"""The own bundle verifier's checks one by one, without I/O: parsing, the log body of each entry kind
re-derived from the bundle, the SET and the inclusion proof against a signed checkpoint, OtherName text.
(Every vector and its mutations through both verifiers: tests/integration/test_differential.py.)"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

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
EXAMPLES = int(os.environ.get("UC_FUZZ_EXAMPLES", "200"))


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


# --- Found by an outside review: every section of the trusted root read as strictly as tlogs (transparency/trusted.py),
# and RFC 3339 dates that overflow once in UTC refused as malformed (not an internal error).

SECTIONS = ("tlogs", "ctlogs", "certificateAuthorities", "timestampAuthorities")
OVERFLOWING = ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59-23:59",
               "0001-01-01T00:00:00.5+00:01"]  # fmt: skip


def _ca_der() -> bytes:
    """A self-signed CA certificate (DER), for certChain entries."""
    import datetime as dt

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(LOG_KEY.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(LOG_KEY, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.DER)


CA_DER = _ca_der()


def _full_root() -> dict[str, Any]:
    """A trusted root with one well-formed entry in each section."""
    log = {"baseUrl": "http://log", "publicKey": {"rawBytes": b64(LOG_DER), "validFor": {"start": "2020-01-01T00:00:00Z"}},
           "logId": {"keyId": b64(LOG_ID)}}  # fmt: skip
    ca = {"subject": {"commonName": "CA"}, "uri": "https://ca", "certChain": {"certificates": [{"rawBytes": b64(CA_DER)}]},
          "validFor": {"start": "2020-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"}}  # fmt: skip
    return {"tlogs": [log], "ctlogs": [json.loads(json.dumps(log))], "certificateAuthorities": [ca],
            "timestampAuthorities": [json.loads(json.dumps(ca))]}  # fmt: skip


def _read(section: str, root: Any) -> list[Any]:
    from uc_attest.transparency import trusted

    return {"tlogs": trusted.trusted_logs, "ctlogs": trusted.trusted_ct_logs,
            "certificateAuthorities": trusted.trusted_cas, "timestampAuthorities": trusted.trusted_tsas}[section](root)  # fmt: skip


def _valid_for(entry: dict[str, Any]) -> dict[str, Any]:
    """The dict holding an entry's validFor (a log's public key, or the authority itself)."""
    held: dict[str, Any] = entry.get("publicKey", entry)
    return held


@pytest.mark.parametrize(
    "text",
    [
        *OVERFLOWING,
        "٢٠٢٤-01-01T00:00:00Z",
        "2024-01-01T00:00:00-00:60",
        "2024-01-01T00:00:00+05:99",
        "2024-01-01T00:00:00+24:00",
    ],
)
def test_an_rfc3339_date_out_of_range_in_utc_is_a_value_error(text: str) -> None:
    from uc_attest.core.rfc3339 import parse

    with pytest.raises(ValueError, match="RFC 3339|representable"):
        parse(text)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.integers(1, 9999), st.integers(1, 12), st.integers(1, 31), st.integers(0, 23), st.integers(0, 59),
       st.integers(0, 59), st.text("0123456789", max_size=9), st.sampled_from("Z+-"), st.integers(0, 23),
       st.integers(0, 59))  # fmt: skip
def test_rfc3339_parse_returns_an_instant_or_a_value_error(
    y: int, mo: int, d: int, h: int, mi: int, s: int, frac: str, sign: str, oh: int, om: int
) -> None:
    """Any well-shaped date-time, any offset, any fraction: an aware UTC instant, or ValueError (never an
    OverflowError that the CLI would report as an internal error)."""
    import datetime as dt

    from uc_attest.core.rfc3339 import parse

    zone = "Z" if sign == "Z" else f"{sign}{oh:02d}:{om:02d}"
    text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{'.' + frac if frac else ''}{zone}"
    try:
        when = parse(text)
    except ValueError:
        return
    assert when.tzinfo == dt.UTC


@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize("when", OVERFLOWING)
@pytest.mark.parametrize("bound", ["start", "end"])
def test_a_validity_bound_that_overflows_is_a_malformed_root(section: str, when: str, bound: str) -> None:
    root = _full_root()
    _valid_for(root[section][0])["validFor"][bound] = when
    with pytest.raises(MalformedBundle, match=rf"trusted root: {section}\[0\] is malformed"):
        _read(section, root)


@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize("value", [5, -1, 0, 1.5, True, False, "", "x", {}, {"a": 1}])
def test_a_section_that_is_not_a_list_is_malformed(section: str, value: Any) -> None:
    """Only a list is a section; absent and JSON null are empty; ``0``, ``""``, ``false`` or ``{}`` are not."""
    with pytest.raises(MalformedBundle, match=rf"trusted root: {section} is not a list"):
        _read(section, {**_full_root(), section: value})
    assert _read(section, {**_full_root(), section: None}) == []
    assert _read(section, {k: v for k, v in _full_root().items() if k != section}) == []
    assert len(_read(section, _full_root())) == 1


@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize("entry", [None, 5, -1, "x", "", [], [{}], True])
def test_an_entry_that_is_not_an_object_is_malformed(section: str, entry: Any) -> None:
    root = _full_root()
    root[section].append(entry)
    with pytest.raises(MalformedBundle, match=rf"trusted root: {section}\[1\] is malformed"):
        _read(section, root)


@pytest.mark.parametrize("section", SECTIONS)
@pytest.mark.parametrize("valid", [-1, 0, 1, "", "x", [], [{}], False, True, 1.5])
def test_a_validity_that_is_not_an_object_is_malformed_never_forever(section: str, valid: Any) -> None:
    """``validFor: []`` (or 0, "", false) was read through ``x or {}`` as "valid forever" for CAs and TSAs."""
    root = _full_root()
    _valid_for(root[section][0])["validFor"] = valid
    with pytest.raises(MalformedBundle, match=rf"trusted root: {section}\[0\] is malformed"):
        _read(section, root)


@pytest.mark.parametrize("section", ["tlogs", "ctlogs"])
@pytest.mark.parametrize("valid", ["absent", None, {}, {"start": None}, {"end": "2030-01-01T00:00:00Z"}])
def test_a_log_needs_its_validity_start(section: str, valid: Any) -> None:
    """tlogs and ctlogs (TransparencyLogInstance both): ``validFor.start`` is required."""
    root = _full_root()
    if valid == "absent":
        del root[section][0]["publicKey"]["validFor"]
    else:
        root[section][0]["publicKey"]["validFor"] = valid
    with pytest.raises(MalformedBundle, match=rf"{section}\[0\] is malformed .*validFor.start"):
        _read(section, root)


@pytest.mark.parametrize("section", ["certificateAuthorities", "timestampAuthorities"])
@pytest.mark.parametrize("valid", ["absent", None, {}, {"start": None}, {"start": None, "end": None},
                                   {"end": "2030-01-01T00:00:00Z"}])  # fmt: skip
def test_an_authority_needs_its_validity_start(section: str, valid: Any) -> None:
    """CAs and TSAs (CertificateAuthority: a ``TimeRange`` whose start is not optional, as for logs): a missing
    start, or no ``validFor`` at all, is malformed naming the entry, never "in service since always" (it was read
    as the earliest time, so a retired authority listed without a start vouched for every past signature)."""
    root = _full_root()
    if valid == "absent":
        del root[section][0]["validFor"]
    else:
        root[section][0]["validFor"] = valid
    with pytest.raises(MalformedBundle, match=rf"trusted root: {section}\[0\] is malformed .*validFor.start"):
        _read(section, root)


@pytest.mark.parametrize("section", ["certificateAuthorities", "timestampAuthorities"])
def test_an_authoritys_validity_bounds_are_read_and_an_absent_or_null_end_is_open(section: str) -> None:
    """The bounds as written, both inclusive; an absent or JSON null end: still in service."""
    import datetime as dt

    root = _full_root()
    (got,) = _read(section, root)
    assert (got.start, got.end) == (dt.datetime(2020, 1, 1, tzinfo=dt.UTC), dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert got.valid_at(got.start) and got.valid_at(got.end) and not got.valid_at(got.end + dt.timedelta(seconds=1))
    assert not got.valid_at(got.start - dt.timedelta(seconds=1))
    for valid in ({"start": "2020-01-01T00:00:00Z"}, {"start": "2020-01-01T00:00:00Z", "end": None}):
        root = _full_root()
        root[section][0]["validFor"] = valid
        (got,) = _read(section, root)
        assert (got.start, got.end) == (dt.datetime(2020, 1, 1, tzinfo=dt.UTC), None)


@pytest.mark.parametrize("section", ["certificateAuthorities", "timestampAuthorities"])
@pytest.mark.parametrize(
    ("field", "value"),
    [("subject", "x"), ("subject", -1), ("subject", []), ("subject", {"commonName": 5}), ("uri", 5),
     ("uri", ["https://x"]), ("certChain", None), ("certChain", "x"), ("certChain", {}),
     ("certChain", {"certificates": []}), ("certChain", {"certificates": "x"}), ("certChain", {"certificates": [5]}),
     ("certChain", {"certificates": [{"rawBytes": "!!"}]}), ("certChain", {"certificates": [{"rawBytes": 5}]}),
     ("certChain", {"certificates": [{"rawBytes": b64(b"not a certificate")}]})],
)  # fmt: skip
def test_an_authoritys_fields_of_another_type_are_malformed(section: str, field: str, value: Any) -> None:
    root = _full_root()
    root[section][0][field] = value
    with pytest.raises(MalformedBundle, match=rf"trusted root: {section}\[0\] is malformed"):
        _read(section, root)


@pytest.mark.parametrize("section", ["certificateAuthorities", "timestampAuthorities"])
def test_an_authoritys_null_subject_is_absent(section: str) -> None:
    """``subject: null`` (it crashed the TSA reader) is an absent subject: the name is the URI, else the place."""
    root = _full_root()
    root[section][0]["subject"] = None
    assert [a.name for a in _read(section, root)] == ["https://ca"]
    root[section][0]["uri"] = None
    assert [a.name for a in _read(section, root)] == [f"{section}[0]"]


@pytest.mark.parametrize("section", ["tlogs", "ctlogs"])
@pytest.mark.parametrize(
    ("path", "value"),
    [(("baseUrl",), None), (("baseUrl",), 5), (("publicKey",), None), (("publicKey", "rawBytes"), "!!"),
     (("publicKey", "rawBytes"), b64(b"not a key")), (("logId",), "x"), (("logId", "keyId"), 5)],
)  # fmt: skip
def test_a_logs_fields_of_another_type_are_malformed(section: str, path: tuple[str, ...], value: Any) -> None:
    root = _full_root()
    target = root[section][0]
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    with pytest.raises(MalformedBundle, match=rf"trusted root: {section}\[0\] is malformed"):
        _read(section, root)


def test_a_root_that_is_not_an_object_is_malformed() -> None:
    for section in SECTIONS:
        with pytest.raises(MalformedBundle, match="not a JSON object"):
            _read(section, [])


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
    scalars |= st.sampled_from([*OVERFLOWING, "2024-02-30T00:00:00Z", "2024-01-01T00:00:00Z", "AAAA", b64(CA_DER)])
    return st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                        max_leaves=6)  # fmt: skip


def _paths(o: Any, p: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [p]
    items = o.items() if isinstance(o, dict) else enumerate(o) if isinstance(o, list) else []
    for k, v in items:
        out += _paths(v, (*p, k))
    return out


ROOT_PATHS = [p for p in _paths(_full_root()) if p]


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.sampled_from(ROOT_PATHS), _json_values())
def test_any_one_field_of_the_root_replaced_by_any_json_is_read_or_malformed(path: tuple[Any, ...], value: Any) -> None:
    """Every section parser, on a root with one field (anywhere) replaced by any JSON value: the entries, or
    MalformedBundle; never another exception (which the CLI reports as an internal error, exit 70)."""
    root = _full_root()
    target: Any = root
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    for section in SECTIONS:
        try:
            got = _read(section, root)
        except MalformedBundle:
            continue
        for entry in got:  # what each reader relies on
            if section.endswith("logs"):
                assert isinstance(entry.start, float) and isinstance(entry.end, float) and entry.base_url
            else:
                assert entry.chain and isinstance(entry.name, str) and entry.name and entry.start.tzinfo is not None
                assert entry.end is None or entry.end.tzinfo is not None
