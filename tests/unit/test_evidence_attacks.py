"""Attacks on the bundle evidence a verdict reads (``evidence/verifier.py``'s log, SET and time checks, the signer
match): each test is a way a one-line slip would accept a forged log entry, a SET from a key not valid then, a
checkpoint no log signed, or a certificate of someone else (found by mutation testing, docs/mutation.md)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from uc_attest.core import merkle
from uc_attest.core.digest import canonical_json
from uc_attest.core.dsse import pae
from uc_attest.errors import MalformedBundle
from uc_attest.evidence.identity import OID_ISSUER_V2, SignerSpec
from uc_attest.evidence.verifier import (
    CheckFailed,
    UnsupportedBundle,
    _logs,
    _verify_note,
    parse,
    signer_matches,
    verify_entry,
)
from uc_attest.transparency.checkpoint import Checkpoint, sign_note, sign_note_ed25519
from uc_attest.transparency.trusted import TrustedLog

KEY = ec.generate_private_key(ec.SECP256R1())
PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
LOG_KEY = ec.generate_private_key(ec.SECP256R1())
LOG_DER = LOG_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
LOG_ID = hashlib.sha256(LOG_DER).digest()
PAYLOAD = b'{"_type": "https://in-toto.io/Statement/v1"}'
PTYPE = "application/vnd.in-toto+json"


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def dsse_bundle(sig: bytes, entries: list[dict[str, Any]], media: str) -> dict[str, Any]:
    """A managed-key DSSE bundle of PAYLOAD with ``entries``."""
    return {"mediaType": media, "verificationMaterial": {"publicKey": {"hint": ""}, "tlogEntries": entries},
            "dsseEnvelope": {"payload": b64(PAYLOAD), "payloadType": PTYPE, "signatures": [{"sig": b64(sig)}]}}  # fmt: skip


SIG = KEY.sign(pae(PTYPE, PAYLOAD), ec.ECDSA(hashes.SHA256()))
BODY = canonical_json({"kind": "dsse", "apiVersion": "0.0.1", "spec": {
    "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(PAYLOAD).hexdigest()},
    "signatures": [{"signature": b64(SIG), "verifier": b64(PEM)}]}})  # fmt: skip
T = 1_700_000_000
V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat()


def _root(start: float = T - 86400, end: float | None = None, der: bytes = LOG_DER) -> dict[str, Any]:
    valid = {"start": _iso(start)} | ({"end": _iso(end)} if end is not None else {})
    return {"tlogs": [{"baseUrl": "http://log", "publicKey": {"rawBytes": b64(der), "validFor": valid},
                       "logId": {"keyId": b64(LOG_ID)}}]}  # fmt: skip


def _entry(
    *,
    body: bytes = BODY,
    others: list[bytes] = (),  # type: ignore[assignment]
    index: int = 0,
    integrated: int = T,
    set_key: ec.EllipticCurvePrivateKey | None = LOG_KEY,
    proof: bool = True,
    checkpoint: bool = True,
    note_key: ec.EllipticCurvePrivateKey = LOG_KEY,
) -> dict[str, Any]:
    """A Rekor v1 entry for ``body`` at ``index`` of a log holding ``others`` around it: SET (by ``set_key``),
    inclusion proof and (``checkpoint``) the checkpoint signed by ``note_key``."""
    leaves = [merkle.leaf_hash(b) for b in others]
    leaves.insert(index, merkle.leaf_hash(body))
    root, path = merkle.root_from_leaf_hashes(leaves), merkle.inclusion_proof(leaves, index)
    e: dict[str, Any] = {"logIndex": str(index), "logId": {"keyId": b64(LOG_ID)},
                         "kindVersion": {"kind": "dsse", "version": "0.0.1"}, "integratedTime": str(integrated),
                         "canonicalizedBody": b64(body)}  # fmt: skip
    if set_key is not None:
        payload = canonical_json({"body": b64(body), "integratedTime": integrated, "logID": LOG_ID.hex(),
                                  "logIndex": index})  # fmt: skip
        e["inclusionPromise"] = {"signedEntryTimestamp": b64(set_key.sign(payload, ec.ECDSA(hashes.SHA256())))}
    if proof:
        p: dict[str, Any] = {"logIndex": str(index), "treeSize": str(len(leaves)), "rootHash": b64(root),
                             "hashes": [b64(h) for h in path]}  # fmt: skip
        if checkpoint:
            note = sign_note(Checkpoint("test-log - 1", len(leaves), root).text(), "test-log", note_key)
            p["checkpoint"] = {"envelope": note}
        e["inclusionProof"] = p
    return e


def _verify(e: dict[str, Any], root: dict[str, Any] | None = None, media: str = V03) -> Any:
    p = parse(dsse_bundle(SIG, [e], media), "b")
    return verify_entry(e, p, _logs(root or _root()), KEY.public_key(), "b")


OTHERS = [b'{"n":1}', b'{"n":2}', b'{"n":3}', b'{"n":4}']


def test_an_honest_entry_is_verified_with_every_field_it_proves() -> None:
    """The reference: SET, inclusion proof and checkpoint, in a log of five entries (not a power of two)."""
    ve = _verify(_entry(others=OTHERS, index=2))
    assert (ve.log_id, ve.index, ve.kind, ve.version, ve.body) == (LOG_ID, 2, "dsse", "0.0.1", BODY)
    assert ve.set_time == T and ve.tree_size == 5 and ve.checkpoint is not None and ve.key_details is None
    assert ve.root == merkle.root_from_leaf_hashes([merkle.leaf_hash(b) for b in [*OTHERS[:2], BODY, *OTHERS[2:]]])


@pytest.mark.parametrize(("start", "end"), [(T + 1, None), (T - 86400, T - 1)])
def test_a_set_signed_by_a_log_key_outside_its_validity_window_is_refused(start: int, end: int | None) -> None:
    """The log key (maybe since compromised, or not yet in service) signed a SET for a time its trust root does
    not vouch for it: the SET is no evidence of when the entry was logged."""
    with pytest.raises(CheckFailed, match="outside the log key's validity"):
        _verify(_entry(), _root(start, end))
    assert _verify(_entry(), _root(T, T)).set_time == T  # both ends are inside


def test_a_set_by_another_key_than_the_logs_is_refused() -> None:
    """A SET signed by some other ECDSA key (an attacker's), over the right payload."""
    with pytest.raises(CheckFailed, match="SET does not verify"):
        _verify(_entry(set_key=ec.generate_private_key(ec.SECP256R1())))


def test_a_set_over_another_index_or_time_is_refused() -> None:
    """The SET signs (body, time, log id, index): an entry claiming another index or time with that SET fails."""
    e = _entry(others=OTHERS, index=2)
    e["logIndex"] = "3"
    with pytest.raises(CheckFailed, match="SET does not verify"):
        _verify(e)
    e = _entry()
    e["integratedTime"] = str(T + 1)
    with pytest.raises(CheckFailed, match="SET does not verify"):
        _verify(e)


def test_a_checkpoint_signed_by_another_key_than_the_logs_is_refused() -> None:
    """A checkpoint (tree head) not signed by the log: anybody can write a tree that holds their entry."""
    with pytest.raises(CheckFailed, match="checkpoint does not verify with the log key"):
        _verify(_entry(note_key=ec.generate_private_key(ec.SECP256R1())))


def test_an_inclusion_proof_that_does_not_lead_to_the_checkpoint_is_refused() -> None:
    """A proof whose tree size or root is not the signed checkpoint's, or whose path does not lead to it."""
    e = _entry(others=OTHERS, index=1)
    e["inclusionProof"]["treeSize"] = "6"
    with pytest.raises(CheckFailed, match="tree size or root is not its checkpoint's"):
        _verify(e)
    e = _entry(others=OTHERS, index=1)
    e["inclusionProof"]["hashes"][0] = b64(bytes(32))
    with pytest.raises(CheckFailed, match="inclusion proof does not verify"):
        _verify(e)
    e = _entry(others=OTHERS, index=1)
    e["inclusionProof"]["logIndex"] = "2"
    with pytest.raises(CheckFailed, match="inclusion proof does not verify"):
        _verify(e)


def test_without_a_set_the_entry_index_must_be_the_one_proven() -> None:
    """Rekor v2 has no SET: nothing but the proof signs the index, so the entry's own index must be the proof's."""
    e = _entry(others=OTHERS, index=3, set_key=None)
    assert _verify(e).set_time is None and _verify(e).index == 3
    e["logIndex"] = "1"
    with pytest.raises(CheckFailed, match="logIndex 1 is not the index its inclusion proof proves"):
        _verify(e)


def test_a_v01_entry_with_a_bare_inclusion_proof_needs_its_set() -> None:
    """A v0.1 proof without a checkpoint is signed by nothing: only a SET makes it evidence."""
    e = _entry(others=OTHERS, index=2, checkpoint=False)
    ve = _verify(e, media=V01)
    assert ve.checkpoint is None and ve.set_time == T and ve.tree_size is None
    bad = _entry(others=OTHERS, index=2, checkpoint=False)
    bad["inclusionProof"]["rootHash"] = b64(bytes(32))
    with pytest.raises(CheckFailed, match="inclusion proof does not verify"):
        _verify(bad, media=V01)
    with pytest.raises(CheckFailed, match="without a checkpoint needs a SET"):
        _verify(_entry(others=OTHERS, index=2, checkpoint=False, set_key=None), media=V01)
    malformed = _entry(others=OTHERS, index=2, checkpoint=False)
    del malformed["inclusionProof"]["treeSize"]
    with pytest.raises(CheckFailed, match="inclusion proof is malformed"):
        _verify(malformed, media=V01)


def test_an_entry_with_neither_proof_nor_set_is_refused() -> None:
    """v0.1 without a SET and without a proof; v0.3 without an inclusion proof (a SET alone is not enough)."""
    with pytest.raises(CheckFailed, match="v0.1 entry needs a SET"):
        _verify(_entry(proof=False, set_key=None), media=V01)
    assert _verify(_entry(proof=False), media=V01).set_time == T
    with pytest.raises(CheckFailed, match="v0.3 bundle needs an inclusion proof with a checkpoint"):
        _verify(_entry(proof=False))
    with pytest.raises(CheckFailed, match="inclusion proof is malformed"):  # v0.3: a proof without its checkpoint
        _verify(_entry(checkpoint=False))


def test_an_entry_whose_body_is_another_kind_or_not_an_object_is_refused() -> None:
    """The entry says dsse 0.0.1 but its body is of another kind (or not a JSON object at all)."""
    e = _entry(body=canonical_json({**json.loads(BODY), "kind": "intoto"}))
    with pytest.raises(CheckFailed, match="the body is intoto 0.0.1, the entry says dsse 0.0.1"):
        _verify(e)
    e = _entry(body=b"[1]")
    with pytest.raises(CheckFailed, match="not a JSON object"):
        _verify(e)
    e = _entry()
    e["kindVersion"] = {"kind": "rekord", "version": "0.0.1"}
    with pytest.raises(UnsupportedBundle, match="rekord 0.0.1"):
        verify_entry(e, parse(dsse_bundle(SIG, [_entry()], V03), "b"), _logs(_root()), KEY.public_key(), "b")
    e = _entry()
    del e["logIndex"]
    with pytest.raises(MalformedBundle, match="tlog entry is malformed"):
        verify_entry(e, parse(dsse_bundle(SIG, [_entry()], V03), "b"), _logs(_root()), KEY.public_key(), "b")


def test_a_log_key_window_is_read_from_the_trust_root() -> None:
    """``validFor`` start and end (absent end: still valid) are what the SET and timestamp checks compare to."""
    (log,) = _logs(_root(T - 10, T + 10)).values()
    assert (log.start, log.end, log.log_id) == (T - 10, T + 10, LOG_ID)
    (open_ended,) = _logs(_root(T - 10)).values()
    assert open_ended.end == float("inf")
    assert _logs({}) == {} and _logs({"tlogs": None}) == {}
    with pytest.raises(MalformedBundle, match=r"tlogs\[0\]"):
        _logs({"tlogs": [{"publicKey": {"rawBytes": "!!"}, "logId": {"keyId": b64(LOG_ID)}}]})


def _note_log(key: Any) -> TrustedLog:
    return TrustedLog("", key, b"", 0, float("inf"))


def test_a_checkpoint_is_verified_with_the_log_key_only() -> None:
    """ECDSA: the note's key hash must be the log key's; Ed25519: the C2SP key id of (name, key). A note signed
    by another key of the same type, or carrying the right key hash with another key's signature, is refused."""
    from uc_attest.errors import NoteError

    text = Checkpoint("log", 3, bytes(32)).text()
    assert _verify_note(sign_note(text, "log", LOG_KEY), _note_log(LOG_KEY.public_key())).size == 3
    with pytest.raises(NoteError):
        _verify_note(sign_note(text, "log", ec.generate_private_key(ec.SECP256R1())), _note_log(LOG_KEY.public_key()))
    ed = ed25519.Ed25519PrivateKey.generate()
    assert _verify_note(sign_note_ed25519(text, "log", ed), _note_log(ed.public_key())).root == bytes(32)
    with pytest.raises(NoteError):
        _verify_note(sign_note_ed25519(text, "log", ed25519.Ed25519PrivateKey.generate()), _note_log(ed.public_key()))
    with pytest.raises(NoteError):  # an ECDSA-signed note is not the Ed25519 log's
        _verify_note(sign_note(text, "log", LOG_KEY), _note_log(ed.public_key()))
    with pytest.raises(NoteError):  # and an Ed25519 note is not the ECDSA log's
        _verify_note(sign_note_ed25519(text, "log", ed), _note_log(LOG_KEY.public_key()))


# -- whose certificate it is ------------------------------------------------------------------------------------


def _cert(sans: list[x509.GeneralName], issuer: str | None) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(minutes=10))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
    )
    if issuer is not None:
        der = b"\x0c" + bytes([len(issuer)]) + issuer.encode()
        b = b.add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier(OID_ISSUER_V2), der), critical=False)
    return b.sign(key, hashes.SHA256())


ISS = "https://issuer.example"


def test_a_certificate_of_another_identity_or_issuer_is_not_the_signers() -> None:
    """The expected signer is (issuer, identity): same identity at another issuer, another identity at the same
    issuer, and a regex that only matches part of an identity are all someone else."""
    cert = _cert([x509.RFC822Name("dev@example.com")], ISS)
    assert signer_matches(SignerSpec(ISS, "dev@example.com"), cert)
    assert not signer_matches(SignerSpec("https://other.example", "dev@example.com"), cert)
    assert not signer_matches(SignerSpec(ISS, "ops@example.com"), cert)
    assert signer_matches(SignerSpec(ISS, identity_regex=r"dev@example\.com"), cert)
    assert signer_matches(SignerSpec(ISS, identity_regex=r".*@example\.com"), cert)
    assert not signer_matches(SignerSpec(ISS, identity_regex=r"dev@example"), cert)  # anchored, not a search
    assert not signer_matches(SignerSpec(ISS, identity_regex=r"example\.com"), cert)
    uri = _cert([x509.UniformResourceIdentifier("https://github.com/o/r/.github/workflows/r.yml@refs/heads/main")], ISS)
    assert signer_matches(SignerSpec(ISS, identity_regex=r"https://github\.com/o/r/.*"), uri)
    assert not signer_matches(SignerSpec(ISS, identity_regex=r"https://github\.com/o/x/.*"), uri)
    assert not signer_matches(SignerSpec(ISS, "dev@example.com"), _cert([x509.RFC822Name("dev@example.com")], None))


# -- RFC 3161 timestamps against the trusted root's authorities (evidence/timestamps.py) ---------------------------

TS_NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SIGNED = b"the bundle's signature bytes"


def _tsa_chain(intermediate: bool = False) -> tuple[ec.EllipticCurvePrivateKey, list[x509.Certificate]]:
    """A TSA key and its chain, leaf first (as the instance makes them: timestamping EKU, valid from a day before
    TS_NOW); ``intermediate``: leaf, intermediate CA, root."""
    from uc_attest.instance.state import _ca_cert, _tsa_leaf

    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _ca_cert("tsa root", root_key, None, root_key, 1, TS_NOW)
    if not intermediate:
        return key, [_tsa_leaf(key, root, root_key, TS_NOW), root]
    mid_key = ec.generate_private_key(ec.SECP256R1())
    mid = _ca_cert("tsa intermediate", mid_key, root, root_key, 0, TS_NOW)
    return key, [_tsa_leaf(key, mid, mid_key, TS_NOW), mid, root]


def _token(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, over: bytes = SIGNED,
           at: dt.datetime = TS_NOW) -> bytes:  # fmt: skip
    """A granted TimeStampResp over sha256(``over``) at ``at``, by the TSA (key, cert)."""
    from asn1crypto import tsp

    from uc_attest.instance.tsa import timestamp

    imprint = {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": hashlib.sha256(over).digest()}
    return timestamp(tsp.TimeStampReq({"version": "v1", "message_imprint": imprint, "cert_req": True}).dump(),
                     key, cert, at)  # fmt: skip


def _ts_doc(*tokens: bytes, dsse: bool = False) -> dict[str, Any]:
    tvd = {"rfc3161Timestamps": [{"signedTimestamp": b64(t)} for t in tokens]}
    doc: dict[str, Any] = {"verificationMaterial": {"timestampVerificationData": tvd}}
    if dsse:
        doc["dsseEnvelope"] = {"payload": "", "payloadType": PTYPE, "signatures": [{"sig": b64(SIGNED)}]}
    else:
        doc["messageSignature"] = {"signature": b64(SIGNED)}
    return doc


#: A validity that covers every time these tests sign at (the trusted root requires a start).
IN_SERVICE = {"start": "2000-01-01T00:00:00Z"}


def _ta(chain: list[x509.Certificate], valid: dict[str, Any] | None = IN_SERVICE, **names: Any) -> dict[str, Any]:
    """A timestamp authority of ``chain``; ``valid``: its ``validFor`` (None: none at all)."""
    der = [c.public_bytes(serialization.Encoding.DER) for c in chain]
    ta: dict[str, Any] = {"certChain": {"certificates": [{"rawBytes": b64(d)} for d in der]}, **names}
    if valid is not None:
        ta["validFor"] = valid
    return ta


def _at(days: float) -> str:
    return (TS_NOW + dt.timedelta(days=days)).isoformat()


@pytest.mark.parametrize(
    ("valid", "inside"),
    [
        ({"start": _at(1)}, False),  # the authority was not in service yet
        ({"start": _at(-30), "end": _at(-1)}, False),  # its key had been retired (maybe since compromised)
        ({"start": _at(-30), "end": _at(30)}, True),
        ({"start": _at(0), "end": _at(0)}, True),  # both ends are inside
        ({"start": _at(-30)}, True),  # no end: still in service
    ],
)
def test_a_timestamp_outside_its_authoritys_validity_window_is_refused(valid: dict[str, str] | None,
                                                                       inside: bool) -> None:  # fmt: skip
    """A TSA key signs a time its trusted root does not vouch for it at (``validFor`` start/end): that time is no
    evidence of when the bundle was signed, and the bundle is refused naming the authority."""
    from uc_attest.evidence.timestamps import TimestampInvalid, verify_timestamps

    key, chain = _tsa_chain()
    root = {"timestampAuthorities": [_ta(chain, valid, subject={"commonName": "TSA A"})]}
    if not inside:
        with pytest.raises(TimestampInvalid, match="outside TSA A's validity"):
            verify_timestamps(_ts_doc(_token(key, chain[0])), root, None, "b")
        return
    got = verify_timestamps(_ts_doc(_token(key, chain[0])), root, None, "b")
    assert got.verified == [(TS_NOW, "TSA A")] and got.ignored == []


@pytest.mark.parametrize("valid", [None, {}, {"end": _at(1)}, {"start": None, "end": _at(1)}])
def test_a_timestamp_authority_without_a_validity_start_is_a_malformed_root_not_one_always_in_service(
    valid: dict[str, str] | None,
) -> None:
    """A TSA listed without ``validFor.start`` (or without ``validFor``) was read as in service since always, so a
    timestamp from any time before its end was counted; the root is malformed (as a log without a start is), the
    bundle refused naming the entry."""
    from uc_attest.evidence.timestamps import verify_timestamps

    key, chain = _tsa_chain()
    root = {"timestampAuthorities": [_ta(chain, valid, subject={"commonName": "TSA A"})]}
    with pytest.raises(MalformedBundle, match=r"timestampAuthorities\[0\] is malformed .*validFor.start"):
        verify_timestamps(_ts_doc(_token(key, chain[0])), root, None, "b")


def test_a_timestamp_authoritys_window_is_read_from_the_trusted_root() -> None:
    """``validFor`` start and end as aware datetimes (absent end: open)."""
    from uc_attest.evidence.timestamps import authorities

    _, chain = _tsa_chain()
    a, b = authorities({"timestampAuthorities": [_ta(chain, {"start": _at(-2), "end": _at(3)}),
                                                 _ta(chain, {"start": _at(-2)})]})  # fmt: skip
    assert (a.start, a.end) == (TS_NOW - dt.timedelta(days=2), TS_NOW + dt.timedelta(days=3))
    assert b.start == a.start and b.end is None
    assert a.chain == b.chain == tuple(chain)
    assert authorities({}) == [] and authorities({"timestampAuthorities": None}) == []
    good = _ta(chain, {"start": _at(-2)})
    for bad in ({"certChain": {"certificates": [{"rawBytes": "!!"}]}}, {"uri": "x"},
                {**good, "validFor": {"start": "yesterday"}}, _ta(chain, None), _ta(chain, {})):  # fmt: skip
        with pytest.raises(MalformedBundle, match=r"trusted root: timestampAuthorities\[1\] is malformed"):
            authorities({"timestampAuthorities": [good, bad]})


def test_each_timestamp_authority_keeps_its_own_name_so_two_are_not_counted_as_one() -> None:
    """The name a verified time is credited to is how ``release.timestamps`` counts distinct authorities: the
    subject's common name, else the URI, else the authority's place in the trusted root (never one shared
    placeholder that would merge distinct authorities, nor a field another authority could also claim)."""
    from uc_attest.evidence.timestamps import authorities

    _, chain = _tsa_chain()
    tas = [_ta(chain, subject={"commonName": "TSA A"}, uri="https://a"), _ta(chain, subject={"commonName": "TSA B"}),
           _ta(chain, uri="https://c"), _ta(chain, subject={"organization": "o"}), _ta(chain)]  # fmt: skip
    names = [a.name for a in authorities({"timestampAuthorities": tas})]
    assert names == ["TSA A", "TSA B", "https://c", "timestampAuthorities[3]", "timestampAuthorities[4]"]


def test_a_timestamp_by_an_authority_the_root_does_not_trust_is_not_counted() -> None:
    """A token signed by some other TSA (an attacker's), one over other bytes than the bundle's signature, and
    an authority listed without its root (a chain of one certificate) verify nothing: reported, not counted."""
    from uc_attest.evidence.timestamps import verify_timestamps

    key, chain = _tsa_chain()
    other_key, other = _tsa_chain()
    root = {"timestampAuthorities": [_ta(chain, subject={"commonName": "TSA A"})]}
    forged = verify_timestamps(_ts_doc(_token(other_key, other[0])), root, None, "b")
    untrusted = "timestamp 0 is not signed by a timestamp authority of the trusted root"
    assert forged.verified == [] and forged.ignored == [untrusted]
    elsewhere = verify_timestamps(_ts_doc(_token(key, chain[0], over=b"another signature")), root, None, "b")
    assert elsewhere.verified == [] and len(elsewhere.ignored) == 1
    leaf_only = {"timestampAuthorities": [_ta(chain[:1], subject={"commonName": "TSA A"})]}
    assert verify_timestamps(_ts_doc(_token(key, chain[0])), leaf_only, None, "b").verified == []
    # an authority listed without its root is skipped, and does not hide the authorities listed after it
    leaf_first = {"timestampAuthorities": [_ta(other[:1]), _ta(chain, subject={"commonName": "TSA A"})]}
    assert verify_timestamps(_ts_doc(_token(key, chain[0])), leaf_first, None, "b").verified == [(TS_NOW, "TSA A")]
    both = verify_timestamps(_ts_doc(_token(other_key, other[0]), _token(key, chain[0])), root, None, "b")
    assert both.verified == [(TS_NOW, "TSA A")] and both.ignored[0].startswith("timestamp 0 ")


def test_a_timestamp_is_credited_to_the_authority_whose_chain_verifies_it() -> None:
    """Two authorities in the root: the token of the second is the second's (not the first listed), and a chain
    with an intermediate CA verifies through it."""
    from uc_attest.evidence.timestamps import verify_timestamps

    key_a, chain_a = _tsa_chain()
    key_b, chain_b = _tsa_chain(intermediate=True)
    root = {"timestampAuthorities": [_ta(chain_a, subject={"commonName": "TSA A"}),
                                     _ta(chain_b, subject={"commonName": "TSA B"})]}  # fmt: skip
    got = verify_timestamps(_ts_doc(_token(key_b, chain_b[0]), _token(key_a, chain_a[0])), root, None, "b")
    assert got.verified == [(TS_NOW, "TSA B"), (TS_NOW, "TSA A")] and got.ignored == []
    no_mid = {"timestampAuthorities": [_ta([chain_b[0], chain_b[2]], subject={"commonName": "TSA B"})]}
    assert verify_timestamps(_ts_doc(_token(key_b, chain_b[0])), no_mid, None, "b").verified == []


def test_a_dsse_bundles_timestamp_covers_its_envelope_signature() -> None:
    """The bytes a timestamp must cover: the DSSE envelope's signature, else the message signature; a token over
    the bundle's payload or anything else is not a timestamp of this signature."""
    from uc_attest.evidence.timestamps import signature_bytes, verify_timestamps

    key, chain = _tsa_chain()
    root = {"timestampAuthorities": [_ta(chain, subject={"commonName": "TSA A"})]}
    assert signature_bytes(_ts_doc(dsse=True)) == signature_bytes(_ts_doc()) == SIGNED
    assert verify_timestamps(_ts_doc(_token(key, chain[0]), dsse=True), root, None, "b").verified == [
        (TS_NOW, "TSA A")]  # fmt: skip
    two = _ts_doc(dsse=True)
    two["dsseEnvelope"]["signatures"] = [{"sig": b64(b"first")}, {"sig": b64(SIGNED)}]
    assert signature_bytes(two) == b"first"
    for bad in ({}, {"dsseEnvelope": {"signatures": []}}, {"messageSignature": {"signature": 5}},
                {"dsseEnvelope": {}}, {"messageSignature": {}}):  # fmt: skip
        with pytest.raises(MalformedBundle, match="bundle: no readable signature"):
            signature_bytes(bad)


def test_timestamps_past_the_limits_or_duplicated_or_unreadable_are_refused() -> None:
    """At most 32 tokens (a verifier must not be made to check thousands), no token twice (one authority's
    time counted twice), and a token that is no RFC 3161 response is an invalid timestamp, not an ignored one."""
    from uc_attest.evidence.timestamps import MAX_TIMESTAMPS, TimestampInvalid, verify_timestamps

    key, chain = _tsa_chain()
    root = {"timestampAuthorities": [_ta(chain, subject={"commonName": "TSA A"})]}
    tokens = [_token(key, chain[0], at=TS_NOW + dt.timedelta(seconds=i)) for i in range(MAX_TIMESTAMPS + 1)]
    assert MAX_TIMESTAMPS == 32
    assert len(verify_timestamps(_ts_doc(*tokens[:32]), root, None, "b").verified) == 32
    with pytest.raises(TimestampInvalid, match="33 RFC 3161 timestamps: more than 32"):
        verify_timestamps(_ts_doc(*tokens), root, None, "b")
    with pytest.raises(TimestampInvalid, match="duplicate"):
        verify_timestamps(_ts_doc(tokens[0], tokens[1], tokens[0]), root, None, "b")
    with pytest.raises(TimestampInvalid, match="timestamp 1 is not an RFC 3161 response"):
        verify_timestamps(_ts_doc(tokens[0], b"\x30\x03\x02\x01\x00"), root, None, "b")
    none = verify_timestamps(_ts_doc(), root, None, "b")
    assert none.verified == [] and none.ignored == []
    assert verify_timestamps({"messageSignature": {}}, {"timestampAuthorities": 5}, None, "b").verified == []
    with pytest.raises(MalformedBundle, match="timestampVerificationData is malformed"):
        verify_timestamps({"verificationMaterial": {"timestampVerificationData": {"rfc3161Timestamps": [{}]}}},
                          root, None, "b")  # fmt: skip


@pytest.mark.parametrize(("before", "after", "inside"), [(-1, 1, True), (0, 0, True), (1, 2, False), (-2, -1, False)])
def test_a_timestamp_outside_the_signing_certificates_validity_is_refused(before: int, after: int,
                                                                          inside: bool) -> None:  # fmt: skip
    """A Fulcio certificate lives minutes: a trusted time outside it means the key signed when the certificate
    did not vouch for it (a stolen short-lived key used later)."""
    from uc_attest.evidence.timestamps import TimestampInvalid, verify_timestamps

    key, chain = _tsa_chain()
    root = {"timestampAuthorities": [_ta(chain, subject={"commonName": "TSA A"})]}
    leaf = type("Leaf", (), {"not_valid_before_utc": TS_NOW + dt.timedelta(minutes=before),
                             "not_valid_after_utc": TS_NOW + dt.timedelta(minutes=after)})()  # fmt: skip
    doc = _ts_doc(_token(key, chain[0]))
    if inside:
        assert verify_timestamps(doc, root, leaf, "b").verified == [(TS_NOW, "TSA A")]  # type: ignore[arg-type]
        return
    with pytest.raises(TimestampInvalid, match="outside the signing certificate's validity"):
        verify_timestamps(doc, root, leaf, "b")  # type: ignore[arg-type]


def test_a_timestamp_by_another_certificate_of_the_authoritys_root_is_not_the_authoritys() -> None:
    """The trusted root lists an authority by its TSA certificate and root: a token signed by another timestamping
    certificate the same root CA issued (another service, or one the root CA issued to an attacker) verifies to
    that root, but it is not the listed authority's (its certificate is pinned)."""
    from uc_attest.evidence.timestamps import verify_timestamps
    from uc_attest.instance.state import _ca_cert, _tsa_leaf

    root_key, key, rogue_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _ca_cert("tsa root", root_key, None, root_key, 1, TS_NOW)
    listed, rogue = _tsa_leaf(key, ca, root_key, TS_NOW), _tsa_leaf(rogue_key, ca, root_key, TS_NOW)
    root = {"timestampAuthorities": [_ta([listed, ca], subject={"commonName": "TSA A"})]}
    assert verify_timestamps(_ts_doc(_token(key, listed)), root, None, "b").verified == [(TS_NOW, "TSA A")]
    got = verify_timestamps(_ts_doc(_token(rogue_key, rogue)), root, None, "b")
    assert got.verified == [] and len(got.ignored) == 1


def test_a_refused_timestamp_is_a_finding_about_its_own_bundle() -> None:
    """Each refusal (too many, duplicate, unreadable, outside the authority's or the certificate's validity) is
    a finding whose subject is the bundle it is in: a validation bundle's bad timestamp is not reported as
    the release bundle's, nor as nobody's."""
    from uc_attest.evidence.timestamps import TimestampInvalid, verify_timestamps

    key, chain = _tsa_chain()
    root = {"timestampAuthorities": [_ta(chain, subject={"commonName": "TSA A"})]}
    late = {"timestampAuthorities": [_ta(chain, {"start": _at(1)}, subject={"commonName": "TSA A"})]}
    tok = _token(key, chain[0])
    leaf = type("Leaf", (), {"not_valid_before_utc": TS_NOW + dt.timedelta(minutes=1),
                             "not_valid_after_utc": TS_NOW + dt.timedelta(minutes=2)})()  # fmt: skip
    cases: list[tuple[dict[str, Any], dict[str, Any], Any]] = [
        (_ts_doc(*[_token(key, chain[0], at=TS_NOW + dt.timedelta(seconds=i)) for i in range(33)]), root, None),
        (_ts_doc(tok, tok), root, None),
        (_ts_doc(b"\x30\x03\x02\x01\x00"), root, None),
        (_ts_doc(tok), late, None),
        (_ts_doc(tok), root, leaf),
    ]
    for doc, trusted, cert in cases:
        with pytest.raises(TimestampInvalid) as exc:
            verify_timestamps(doc, trusted, cert, "validation.sigstore.json")
        assert [f.subject for f in exc.value.findings] == ["validation.sigstore.json"]
    with pytest.raises(MalformedBundle, match="^validation.sigstore.json: timestampVerificationData"):
        verify_timestamps({"verificationMaterial": {"timestampVerificationData": {"rfc3161Timestamps": 5}}}, root, None,
                          "validation.sigstore.json")  # fmt: skip


def test_a_checkpoint_cosigned_by_a_witness_is_verified_by_the_log_keys_own_signature_line() -> None:
    """A checkpoint may carry more signature lines than the log's (witness cosignatures): only the line with the
    log key's hash is the log's, so a witness line neither breaks the note nor stands in for the log, and a log
    signature filed under another key's hash is not the log's."""
    from uc_attest.errors import NoteError

    text = Checkpoint("log", 3, bytes(32)).text()
    witness = ec.generate_private_key(ec.SECP256R1())
    cosigned = sign_note(text, "log", LOG_KEY) + sign_note(text, "witness", witness).splitlines(keepends=True)[-1]
    assert _verify_note(cosigned, _note_log(LOG_KEY.public_key())).size == 3
    with pytest.raises(NoteError):  # the witness's line alone is not the log's
        _verify_note(sign_note(text, "witness", witness), _note_log(LOG_KEY.public_key()))
    name, sig = sign_note(text, "log", LOG_KEY).splitlines()[-1].rsplit(" ", 1)
    raw = base64.b64decode(sig)
    misfiled = (text + b"\n").decode() + f"{name} {b64(bytes(4) + raw[4:])}\n"
    with pytest.raises(NoteError):
        _verify_note(misfiled, _note_log(LOG_KEY.public_key()))


def test_a_logged_certificate_or_key_that_is_not_the_bundles_is_not_its_signer() -> None:
    """The verifier a log entry records must be the bundle's own certificate (or its key): another certificate,
    another key, or bytes that do not parse as either are someone else, never "the signer"."""
    from uc_attest.evidence.verifier import _pem_matches

    leaf = _cert([x509.RFC822Name("dev@example.com")], ISS)
    other = _cert([x509.RFC822Name("dev@example.com")], ISS)
    leaf_pem, other_pem = (c.public_bytes(serialization.Encoding.PEM) for c in (leaf, other))
    assert _pem_matches(leaf_pem, leaf, None) and not _pem_matches(other_pem, leaf, None)
    assert not _pem_matches(leaf_pem, None, KEY.public_key())  # a certificate where the bundle has only a key
    assert _pem_matches(PEM, None, KEY.public_key())
    assert not _pem_matches(PEM, leaf, None)  # a key where the bundle has a certificate
    other_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert not _pem_matches(PEM, None, other_key)
    for garbage in (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b"not a pem", b""):
        assert not _pem_matches(garbage, leaf, KEY.public_key())


def test_an_entry_of_a_log_the_trusted_root_does_not_list_is_refused_as_a_failed_tlog_check() -> None:
    """An entry (with a SET and a checkpoint) from a log the trusted root does not list, e.g. the attacker's own
    log: refused as the bundle.tlog check of this bundle, naming the log id."""
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = other.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    root = _root(der=der)
    root["tlogs"][0]["logId"]["keyId"] = b64(hashlib.sha256(der).digest())
    with pytest.raises(CheckFailed) as exc:
        _verify(_entry(), root)
    assert exc.value.check == "bundle.tlog"
    assert exc.value.problem == f"bundle.tlog: log {LOG_ID.hex()[:16]}… is not in the trusted root"
    assert [f.subject for f in exc.value.findings] == ["b"]


def test_an_entry_whose_body_logs_another_signature_or_is_malformed_is_refused() -> None:
    """The log holds a body for another payload or another signature (a real entry of someone else's), or a body
    whose fields have the wrong JSON types: the entry proves nothing about this bundle."""
    spec = json.loads(BODY)["spec"]
    for changed, why in (
        ({**spec, "payloadHash": {"algorithm": "sha256", "value": "00" * 32}},
         "the logged payload hash is not the bundle payload's"),
        ({**spec, "signatures": [{"signature": b64(b"another"), "verifier": b64(PEM)}]},
         "no logged signature is the bundle's, by its signer"),
        ({**spec, "signatures": [{"signature": 5, "verifier": b64(PEM)}]}, "the body is malformed"),
    ):  # fmt: skip
        body = canonical_json({"kind": "dsse", "apiVersion": "0.0.1", "spec": changed})
        with pytest.raises(CheckFailed) as exc:
            _verify(_entry(body=body))
        assert exc.value.problem.startswith(f"bundle.tlog: {why}"), exc.value.problem


def test_an_inclusion_promise_without_its_signed_entry_timestamp_is_a_set_that_does_not_verify() -> None:
    """An entry that has an inclusionPromise but no signedEntryTimestamp in it: a SET that does not verify (a
    refused signature check, not a malformed bundle and not an entry without a SET)."""
    e = _entry()
    e["inclusionPromise"] = {"note": "no SET"}
    with pytest.raises(CheckFailed, match="bundle.tlog: the SET does not verify with the log key"):
        _verify(e)


def test_key_details_that_are_not_the_signers_are_a_failed_tlog_check_of_this_bundle() -> None:
    """A hashedrekord 0.0.2 entry naming an algorithm (``keyDetails``) that is not the signer key's is refused as
    the bundle.tlog check of the bundle being verified (its finding names that bundle)."""
    from tests.unit.test_verifier_algorithms import BY_NAME, DATA, ROOT, key_of, message_bundle, sign_digest
    from uc_attest.evidence.verifier import Artifact, verify_bundle

    alg = BY_NAME["PKIX_ECDSA_P256_SHA_256"]
    key = key_of(alg)
    digest = hashlib.sha256(DATA).digest()
    doc = message_bundle(key.public_key(), sign_digest(alg, key, "sha256", digest), "sha256", digest,
                         "hashedrekord 0.0.2", "PKIX_ECDSA_P384_SHA_384")  # fmt: skip
    with pytest.raises(CheckFailed) as exc:
        verify_bundle(doc, ROOT, where="release.sigstore.json", key=key.public_key(), artifact=Artifact.of(DATA))
    assert exc.value.check == "bundle.tlog" and "PKIX_ECDSA_P384_SHA_384" in exc.value.problem
    assert [f.subject for f in exc.value.findings] == ["release.sigstore.json"]


def _v002(sig: bytes, verifier: dict[str, Any], algorithm: str, digest: bytes) -> dict[str, Any]:
    return {"kind": "hashedrekord", "apiVersion": "0.0.2", "spec": {"hashedRekordV002": {
        "data": {"algorithm": algorithm, "digest": b64(digest)}, "signature": {"content": b64(sig), "verifier": verifier}}}}  # fmt: skip


def test_a_rekor_v2_entry_logging_another_certificate_or_algorithm_than_the_bundles_is_not_its_entry() -> None:
    """hashedrekord 0.0.2 with a certificate: the logged certificate must be the bundle's leaf (not another one
    with the same key type), and ``keyDetails`` must be an algorithm of that leaf's key."""
    from uc_attest.evidence.verifier import _body_matches

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = dt.datetime.now(dt.UTC)
    leaf = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(leaf_key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(minutes=10))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name("dev@example.com")]), critical=False)
            .sign(leaf_key, hashes.SHA256()))  # fmt: skip
    other = _cert([x509.RFC822Name("dev@example.com")], ISS)
    digest = hashlib.sha256(b"artifact").digest()
    sig = leaf_key.sign(digest, ec.ECDSA(utils_prehashed()))
    doc = {"mediaType": V03, "verificationMaterial": {"certificate": {"rawBytes": b64(leaf.public_bytes(
        serialization.Encoding.DER))}, "tlogEntries": []}, "messageSignature": {"messageDigest": {
        "algorithm": "SHA2_256", "digest": b64(digest)}, "signature": b64(sig)}}  # fmt: skip
    p = parse(doc, "b")
    der = {"rawBytes": b64(leaf.public_bytes(serialization.Encoding.DER))}
    assert _body_matches(_v002(sig, {"x509Certificate": der}, "SHA2_256", digest), "hashedrekord", "0.0.2", p, None,
                         "b") is None  # fmt: skip
    named = {"x509Certificate": der, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}
    assert _body_matches(_v002(sig, named, "SHA2_256", digest), "hashedrekord", "0.0.2", p, None, "b") is None
    someone = {"x509Certificate": {"rawBytes": b64(other.public_bytes(serialization.Encoding.DER))}}
    assert _body_matches(_v002(sig, someone, "SHA2_256", digest), "hashedrekord", "0.0.2", p, None, "b") == (
        "the logged certificate is not the bundle's")  # fmt: skip
    wrong = {"x509Certificate": der, "keyDetails": "PKIX_ECDSA_P384_SHA_384"}
    with pytest.raises(CheckFailed, match="keyDetails PKIX_ECDSA_P384_SHA_384 is not the signer's"):
        _body_matches(_v002(sig, wrong, "SHA2_256", digest), "hashedrekord", "0.0.2", p, None, "b")


def utils_prehashed() -> Any:
    from cryptography.hazmat.primitives.asymmetric import utils

    return utils.Prehashed(hashes.SHA256())


def test_a_dsse_envelope_logged_as_hashedrekord_needs_the_digest_its_signer_key_signs() -> None:
    """A DSSE bundle logged as hashedrekord 0.0.2 records a digest of the PAE: for an Ed25519 key that is SHA-512
    (what Ed25519ph signs), and a SHA-256 digest recorded for it is not what the key signed."""
    from uc_attest.evidence.verifier import _body_matches

    key = ed25519.Ed25519PrivateKey.generate()
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    sig = key.sign(pae(PTYPE, PAYLOAD))
    p = parse(dsse_bundle(sig, [], V03), "b")
    verifier = {"publicKey": {"rawBytes": b64(der)}}
    good = _v002(sig, verifier, "SHA2_512", hashlib.sha512(pae(PTYPE, PAYLOAD)).digest())
    assert _body_matches(good, "hashedrekord", "0.0.2", p, key.public_key(), "b") is None
    sha256 = _v002(sig, verifier, "SHA2_256", hashlib.sha256(pae(PTYPE, PAYLOAD)).digest())
    assert _body_matches(sha256, "hashedrekord", "0.0.2", p, key.public_key(), "b") == (
        "the logged digest of the DSSE PAE is sha256: the signer's key signs sha512")  # fmt: skip


def test_a_v01_entry_whose_checkpoint_is_not_the_logs_is_refused_even_with_a_set() -> None:
    """A v0.1 bundle whose inclusion proof carries a checkpoint: the checkpoint must verify with the log key (a
    valid SET does not excuse a forged checkpoint, which would otherwise be read as the bare proof's)."""
    with pytest.raises(CheckFailed, match="checkpoint does not verify with the log key"):
        _verify(_entry(others=OTHERS, index=2, note_key=ec.generate_private_key(ec.SECP256R1())), media=V01)
    assert _verify(_entry(others=OTHERS, index=2), media=V01).checkpoint is not None


def _intoto(payload: str | None = None, signatures: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """An intoto 0.0.2 body of the bundle's envelope (``payload``: the logged base64 payload, None: left out)."""
    env: dict[str, Any] = {"payloadType": PTYPE, "signatures": signatures if signatures is not None else [
        {"sig": b64(b64(SIG).encode()), "publicKey": b64(PEM)}]}  # fmt: skip
    if payload is not None:
        env["payload"] = b64(payload.encode("utf-8", "surrogateescape"))
    return {"kind": "intoto", "apiVersion": "0.0.2", "spec": {"content": {
        "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(PAYLOAD).hexdigest()}, "envelope": env}}}  # fmt: skip


def test_an_intoto_entry_logging_another_envelope_payload_than_its_hash_is_refused() -> None:
    """intoto 0.0.2 logs the payload hash and (optionally) the envelope's payload: a body whose payload is not the
    bundle's, even under the right hash, is not this bundle's entry; one without the payload is read by its
    hash; a payload that is not UTF-8 is a clean refusal."""
    from uc_attest.evidence.verifier import _body_matches

    p = parse(dsse_bundle(SIG, [], V03), "b")

    def why(body: dict[str, Any]) -> str | None:
        return _body_matches(body, "intoto", "0.0.2", p, KEY.public_key(), "b")

    assert why(_intoto(b64(PAYLOAD))) is None and why(_intoto()) is None
    assert why(_intoto(b64(b'{"_type": "another"}'))) == "the logged payload is not the bundle's"
    assert why(_intoto("\udcff\udcfe")) == "the logged payload is not the bundle's"


def test_a_logged_signature_list_is_searched_past_entries_that_are_incomplete_or_someone_elses() -> None:
    """A body may log several signatures: an entry missing its fields, with an undecodable signature, or by
    another key before the bundle's own does not hide it (the entry is the bundle's), and a list with none of
    the bundle's is refused."""
    from uc_attest.evidence.verifier import _body_matches

    p = parse(dsse_bundle(SIG, [], V03), "b")
    other = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)  # fmt: skip
    mine = {"sig": b64(b64(SIG).encode()), "publicKey": b64(PEM)}
    for before in ({}, {"sig": b64(b"A")}, {"sig": b64(b64(SIG).encode())}, {"sig": b64(b64(SIG).encode()),
                                                                          "publicKey": b64(other)}):  # fmt: skip
        assert _body_matches(_intoto(signatures=[before, mine]), "intoto", "0.0.2", p, KEY.public_key()) is None
        assert _body_matches(_intoto(signatures=[before]), "intoto", "0.0.2", p, KEY.public_key()) == (
            "no logged signature is the bundle's, by its signer")  # fmt: skip
    spec = json.loads(BODY)["spec"]
    mine_dsse = spec["signatures"][0]
    for before in ({}, {"signature": b64(SIG)}, {"signature": b64(SIG), "verifier": b64(other)}):
        body = {"kind": "dsse", "apiVersion": "0.0.1", "spec": {**spec, "signatures": [before, mine_dsse]}}
        assert _body_matches(body, "dsse", "0.0.1", p, KEY.public_key()) is None


def test_a_bundle_outcome_reports_every_check_it_passed_and_what_was_signed() -> None:
    """verify_bundle (managed key, DSSE, one log entry, one RFC 3161 timestamp): the outcome lists the checks in
    order and carries the payload that was signed, its type, the log entry and the timestamp; a key bundle
    without the key, a bundle without any log entry (unless admitted), a bad entry and a bad timestamp are each
    refused as a finding about this bundle, naming the check."""
    from uc_attest.evidence.timestamps import TimestampInvalid
    from uc_attest.evidence.verifier import verify_bundle

    tsa_key, chain = _tsa_chain()
    root = {**_root(), "timestampAuthorities": [_ta(chain, subject={"commonName": "TSA A"})]}
    doc = dsse_bundle(SIG, [_entry(others=OTHERS, index=1)], V03)
    token = _token(tsa_key, chain[0], over=SIG)
    doc["verificationMaterial"]["timestampVerificationData"] = {"rfc3161Timestamps": [{"signedTimestamp": b64(token)}]}
    where = "release.sigstore.json"
    out = verify_bundle(doc, root, where=where, key=KEY.public_key())
    assert out.checks == ["bundle.timestamps", "bundle.tlog", "bundle.signature"]
    assert (out.payload_type, out.payload) == (PTYPE, PAYLOAD) and out.tsa_times == [(TS_NOW, "TSA A")]
    assert [(e.index, e.set_time) for e in out.entries] == [(1, T)] and out.set_times == [(T, LOG_ID.hex())]

    def refused(d: dict[str, Any], **kw: Any) -> Any:
        with pytest.raises(CheckFailed) as exc:
            verify_bundle(d, root, where=where, **{"key": KEY.public_key(), **kw})
        assert [f.subject for f in exc.value.findings] == [where]
        return exc.value

    no_key = refused(doc, key=None)
    assert (no_key.check, no_key.problem) == ("bundle.parse", "bundle.parse: a public-key bundle needs the key (--key)")
    untimed = dsse_bundle(SIG, [], V03)
    assert refused(untimed).problem == "bundle.tlog: the bundle has no transparency-log entry (a TSA-only bundle)"
    assert verify_bundle(untimed, root, where=where, key=KEY.public_key(), require_tlog=False).entries == []
    bad_entry = dsse_bundle(SIG, [_entry(set_key=ec.generate_private_key(ec.SECP256R1()))], V03)
    assert "SET does not verify" in refused(bad_entry).problem
    twice = dsse_bundle(SIG, [_entry()], V03)
    twice["verificationMaterial"]["timestampVerificationData"] = {"rfc3161Timestamps": [
        {"signedTimestamp": b64(token)}, {"signedTimestamp": b64(token)}]}  # fmt: skip
    with pytest.raises(TimestampInvalid) as exc:
        verify_bundle(twice, root, where=where, key=KEY.public_key())
    assert [f.subject for f in exc.value.findings] == [where]
    with pytest.raises(MalformedBundle, match=where):
        verify_bundle({"mediaType": V03}, root, where=where, key=KEY.public_key())


def test_log_entries_naming_different_algorithms_for_one_signature_are_refused() -> None:
    """Two entries of one bundle whose keyDetails name different algorithms (each one the key's) cannot both
    describe the one signature: the bundle is refused as bundle.tlog, naming both, not verified with either."""
    from tests.unit.test_verifier_algorithms import BY_NAME, DATA, ROOT, key_of, message_bundle, sign_digest
    from uc_attest.evidence.verifier import Artifact, verify_bundle

    alg = BY_NAME["PKIX_ECDSA_P384_SHA_384"]
    key = key_of(alg)
    digest = hashlib.sha384(DATA).digest()
    sig = sign_digest(alg, key, "sha384", digest)
    one = message_bundle(key.public_key(), sig, "sha384", digest, "hashedrekord 0.0.2", "PKIX_ECDSA_P384_SHA_384")
    two = message_bundle(key.public_key(), sig, "sha384", digest, "hashedrekord 0.0.2", "PKIX_ECDSA_P384_SHA_256")
    where = "release.sigstore.json"
    assert verify_bundle(one, ROOT, where=where, key=key.public_key(), artifact=Artifact.of(DATA)).checks[-1] == (
        "bundle.signature")  # fmt: skip
    one["verificationMaterial"]["tlogEntries"].append(two["verificationMaterial"]["tlogEntries"][0])
    with pytest.raises(CheckFailed) as exc:
        verify_bundle(one, ROOT, where=where, key=key.public_key(), artifact=Artifact.of(DATA))
    assert exc.value.check == "bundle.tlog" and [f.subject for f in exc.value.findings] == [where]
    assert exc.value.problem == ("bundle.tlog: the entries name different algorithms (PKIX_ECDSA_P384_SHA_256, "
                                 "PKIX_ECDSA_P384_SHA_384)")  # fmt: skip


@pytest.mark.parametrize(("start", "end", "valid"), [(0, 0, True), (-1, 1, True), (1, 2, False), (-2, -1, False)])
def test_a_rekor_v2_entry_needs_its_log_key_valid_at_the_bundles_timestamps(start: int, end: int, valid: bool) -> None:
    """An entry without a SET (Rekor v2) has no time of its own: the log key must have been valid at the bundle's
    RFC 3161 times (both ends inclusive), or a retired (maybe compromised) log key could still vouch for it."""
    from uc_attest.evidence.verifier import verify_bundle

    tsa_key, chain = _tsa_chain()
    at = TS_NOW.timestamp()
    root = {**_root(at + start * 60, at + end * 60), "timestampAuthorities": [_ta(chain, subject={"commonName": "A"})]}
    doc = dsse_bundle(SIG, [_entry(set_key=None)], V03)
    doc["verificationMaterial"]["timestampVerificationData"] = {"rfc3161Timestamps": [
        {"signedTimestamp": b64(_token(tsa_key, chain[0], over=SIG))}]}  # fmt: skip
    if valid:
        assert verify_bundle(doc, root, where="b", key=KEY.public_key()).entries[0].set_time is None
        return
    with pytest.raises(CheckFailed) as exc:
        verify_bundle(doc, root, where="b", key=KEY.public_key())
    assert (exc.value.check, exc.value.problem) == (
        "bundle.tlog",
        "bundle.tlog: the log key is not valid at the bundle's timestamps",
    )
    assert [f.subject for f in exc.value.findings] == ["b"]


@pytest.fixture(scope="module")
def dev_ca(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An embedded instance's CA and CT log (a Fulcio of our own): its state and trusted root, with this file's
    log (LOG_KEY) as the root's transparency log."""
    from uc_attest.instance.state import init_instance

    state = init_instance(tmp_path_factory.mktemp("instance") / "i", 8799, rekor_version=1)
    root = state.trust_config(dt.datetime.now(dt.UTC))["trustedRoot"]
    return state, {**root, "tlogs": _root()["tlogs"], "timestampAuthorities": []}


def _cert_bundle(state: Any, identity: str = "dev@example.com", at: int | None = None) -> tuple[dict[str, Any], Any]:
    """A DSSE bundle signed by a fresh key certified by the instance CA for ``identity``, logged (SET) at ``at``."""
    import time

    from uc_attest.instance.ca import issue_leaf

    key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_leaf(state, key.public_key(), identity)
    sig = key.sign(pae(PTYPE, PAYLOAD), ec.ECDSA(hashes.SHA256()))
    body = canonical_json({"kind": "dsse", "apiVersion": "0.0.1", "spec": {
        "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(PAYLOAD).hexdigest()},
        "signatures": [{"signature": b64(sig), "verifier": b64(leaf.public_bytes(serialization.Encoding.PEM))}]}})  # fmt: skip
    entry = _entry(body=body, integrated=int(time.time()) + 1 if at is None else at)
    doc = dsse_bundle(sig, [entry], V03)
    doc["verificationMaterial"] = {"certificate": {"rawBytes": b64(leaf.public_bytes(serialization.Encoding.DER))},
                                   "tlogEntries": [entry]}  # fmt: skip
    return doc, leaf


def test_a_certificate_bundle_is_checked_at_a_verified_time_against_the_ca_and_the_expected_signers(
    dev_ca: Any,
) -> None:
    """A Fulcio-style bundle: its certificate must chain to the trusted root at the bundle's verified time (the
    SET's), carry an SCT of the root's CT log, and name an expected signer; each failure is refused as the
    named check of this bundle, and a bundle with no verified time at all is a timestamp failure."""
    from uc_attest.evidence.identity import SignerSpec
    from uc_attest.evidence.timestamps import TimestampInvalid
    from uc_attest.evidence.verifier import verify_bundle

    state, root = dev_ca
    issuer = state.issuer
    doc, leaf = _cert_bundle(state)
    where = "release.sigstore.json"
    out = verify_bundle(doc, root, where=where, signers=[SignerSpec(issuer, "dev@example.com")])
    assert out.checks == ["bundle.timestamps", "bundle.tlog", "bundle.time", "bundle.certificate", "bundle.sct",
                          "bundle.identity", "bundle.signature"]  # fmt: skip
    assert out.signer is not None and out.signer.primary == "dev@example.com" and out.signer.issuer == issuer
    assert verify_bundle(doc, root, where=where).checks[-2:] == ["bundle.identity", "bundle.signature"]

    def refused(d: dict[str, Any], r: dict[str, Any], check: str, **kw: Any) -> str:
        with pytest.raises(CheckFailed) as exc:
            verify_bundle(d, r, where=where, **kw)
        assert exc.value.check == check and [f.subject for f in exc.value.findings] == [where]
        assert exc.value.problem.startswith(f"{check}: ")
        return str(exc.value.problem)

    eve = refused(doc, root, "bundle.identity", signers=[SignerSpec(issuer, "eve@example.com")])
    assert eve == f"bundle.identity: signed by dev@example.com via {issuer}, not by an expected signer"
    assert "bundle.identity" in refused(doc, root, "bundle.identity", signers=[])
    other_ca = {**root, "certificateAuthorities": [{**root["certificateAuthorities"][0], "certChain": {
        "certificates": [{"rawBytes": b64(_cert([x509.RFC822Name("x@y")], None).public_bytes(
            serialization.Encoding.DER))}]}}]}  # fmt: skip
    assert "does not chain to the trusted root" in refused(doc, other_ca, "bundle.certificate")
    late, _ = _cert_bundle(state, at=int(leaf.not_valid_after_utc.timestamp()) + 60)  # logged after it expired
    assert "does not chain" in refused(late, root, "bundle.certificate")
    no_ct = {**root, "ctlogs": [{**root["ctlogs"][0], "logId": {"keyId": b64(bytes(32))}}]}
    assert refused(doc, no_ct, "bundle.sct") == "bundle.sct: no embedded SCT verifies with a CT log of the trusted root"
    assert "bundle.sct" not in verify_bundle(doc, {**root, "ctlogs": []}, where=where).checks  # no CT log listed
    untimed = json.loads(json.dumps(doc))
    del untimed["verificationMaterial"]["tlogEntries"][0]["inclusionPromise"]
    with pytest.raises(TimestampInvalid) as exc:
        verify_bundle(untimed, root, where=where)
    assert exc.value.problem == "bundle.time: no verified time (no SET, no RFC 3161 timestamp)"
    assert [f.subject for f in exc.value.findings] == [where]
    # a trusted timestamp from before the short-lived certificate existed: the key was not certified then
    tsa_key, chain = _tsa_chain()
    stamped = json.loads(json.dumps(doc))
    sig = base64.b64decode(stamped["dsseEnvelope"]["signatures"][0]["sig"])
    stamped["verificationMaterial"]["timestampVerificationData"] = {"rfc3161Timestamps": [
        {"signedTimestamp": b64(_token(tsa_key, chain[0], over=sig))}]}  # fmt: skip
    with pytest.raises(TimestampInvalid, match="outside the signing certificate's validity"):
        verify_bundle(stamped, {**root, "timestampAuthorities": [_ta(chain)]}, where=where)


def test_an_sct_counts_only_while_its_ct_logs_key_is_valid_and_ctlogs_is_read_strictly(dev_ca: Any) -> None:
    """A CT log key of the trusted root vouches for SCTs made inside its ``validFor`` (as a transparency log's
    key does for entries); ``ctlogs`` of another JSON type is a malformed root, never "no CT log listed" (which
    skips the SCT check), and a malformed CT log entry is never skipped."""
    from uc_attest.evidence.verifier import verify_bundle

    state, root = dev_ca
    doc, _ = _cert_bundle(state)
    where = "release.sigstore.json"

    def ct_valid(valid: Any) -> dict[str, Any]:
        ct = json.loads(json.dumps(root["ctlogs"][0]))
        ct["publicKey"]["validFor"] = valid
        return {**root, "ctlogs": [ct]}

    assert "bundle.sct" in verify_bundle(doc, ct_valid({"start": "2020-01-01T00:00:00Z"}), where=where).checks
    for valid in ({"start": "2099-01-01T00:00:00Z"}, {"start": "2020-01-01T00:00:00Z", "end": "2021-01-01T00:00:00Z"}):
        with pytest.raises(CheckFailed, match="bundle.sct: no embedded SCT verifies"):
            verify_bundle(doc, ct_valid(valid), where=where)
    for ctlogs in ("", 0, False, {}, -1):
        with pytest.raises(MalformedBundle, match="trusted root: ctlogs is not a list"):
            verify_bundle(doc, {**root, "ctlogs": ctlogs}, where=where)
    for valid in ([], {}, None, ""):
        with pytest.raises(MalformedBundle, match=r"trusted root: ctlogs\[0\] is malformed"):
            verify_bundle(doc, ct_valid(valid), where=where)
    assert "bundle.sct" not in verify_bundle(doc, {**root, "ctlogs": None}, where=where).checks  # null: absent


def _message(key: Any, sig: bytes, digest: tuple[str, bytes] | None) -> dict[str, Any]:
    """A managed-key v0.3 message-signature bundle without a log entry (verified under a root listing no log)."""
    ms: dict[str, Any] = {"signature": b64(sig)}
    if digest is not None:
        ms["messageDigest"] = {"algorithm": {"sha256": "SHA2_256", "sha384": "SHA2_384", "sha512": "SHA2_512"}[
            digest[0]], "digest": b64(digest[1])}  # fmt: skip
    return {"mediaType": V03, "verificationMaterial": {"publicKey": {"hint": "k"}, "tlogEntries": []},
            "messageSignature": ms}  # fmt: skip


def test_a_message_signature_is_held_to_the_artifact_and_to_a_digest_its_key_signs() -> None:
    """hashedrekord bundles: the message digest must be the artifact's (else bundle.subject), of an algorithm the
    artifact can be hashed with and the key signs; without a message digest the signature is verified over the
    artifact's own digests (or bytes, for pure Ed25519); with neither a digest nor an artifact nothing is
    verified, and that is refused."""
    from cryptography.hazmat.primitives.asymmetric import utils

    from uc_attest.evidence.verifier import Artifact, UnsupportedBundle, key_name, verify_bundle

    data = b"the artifact"
    art = Artifact.of(data)
    d256 = hashlib.sha256(data).digest()
    sig = KEY.sign(d256, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    where, pub = "m.sigstore.json", KEY.public_key()

    def check(doc: dict[str, Any], artifact: Any = art) -> Any:
        return verify_bundle(doc, {}, where=where, key=pub, artifact=artifact)

    def refused(doc: dict[str, Any], artifact: Any = art) -> Any:
        with pytest.raises(CheckFailed) as exc:
            check(doc, artifact)
        assert [f.subject for f in exc.value.findings] == [where]
        return exc.value

    assert check(_message(KEY, sig, ("sha256", d256))).checks == ["bundle.timestamps", "bundle.tlog",
                                                                   "bundle.signature"]  # fmt: skip
    assert check(_message(KEY, sig, ("sha256", d256)), None).checks[-1] == "bundle.signature"  # the digest alone
    other = refused(_message(KEY, sig, ("sha256", hashlib.sha256(b"another").digest())))
    subject = "bundle.subject: the bundle's message digest is not the artifact's"
    assert (other.check, other.problem) == ("bundle.subject", subject)
    sha384 = refused(_message(KEY, sig, ("sha384", hashlib.sha384(data).digest())))
    unsigned = (f"bundle.signature: the message digest is sha384: the signer's {key_name(pub)} key signs sha256 "
                "digests (PKIX_ECDSA_P256_SHA_256)")  # fmt: skip
    assert (sha384.check, sha384.problem) == ("bundle.signature", unsigned)
    with pytest.raises(UnsupportedBundle, match=f"^{where}: messageDigest.algorithm sha512: cannot compute it"):
        check(_message(KEY, sig, ("sha512", hashlib.sha512(data).digest())), Artifact({"sha256": d256}, data))
    assert check(_message(KEY, sig, None)).checks[-1] == "bundle.signature"  # over the artifact's sha256
    with pytest.raises(UnsupportedBundle, match=f"^{where}: cannot compute sha256 for the artifact"):
        check(_message(KEY, sig, None), Artifact({}, data))
    none = refused(_message(KEY, sig, None), None)
    assert (none.check, none.problem) == (
        "bundle.signature",
        "bundle.signature: no message digest and no artifact to verify against",
    )
    ed = ed25519.Ed25519PrivateKey.generate()
    pure = _message(ed, ed.sign(data), None)
    assert verify_bundle(pure, {}, where=where, key=ed.public_key(), artifact=Artifact({"sha256": d256}, data)).checks[
        -1] == "bundle.signature"  # fmt: skip


def test_a_dsse_signature_must_verify_with_the_algorithm_its_log_entry_names() -> None:
    """A DSSE envelope logged as hashedrekord 0.0.2 with keyDetails: the signature is verified with that algorithm
    only; one the same key made with another of its algorithms is not the logged signature."""
    from tests.unit.test_verifier_algorithms import BY_NAME, MEDIA, ROOT, STATEMENT, key_of, logged
    from uc_attest.evidence.verifier import verify_bundle

    key = key_of(BY_NAME["PKIX_ECDSA_P384_SHA_384"])
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    sig = key.sign(pae(PTYPE, STATEMENT), ec.ECDSA(hashes.SHA384()))

    def bundle(details: str, alg: str, digest: bytes) -> dict[str, Any]:
        entry = logged(_v002(sig, {"publicKey": {"rawBytes": b64(der)}, "keyDetails": details}, alg, digest),
                       with_set=False)  # fmt: skip
        return {"mediaType": MEDIA, "verificationMaterial": {"publicKey": {"hint": "k"}, "tlogEntries": [entry]},
                "dsseEnvelope": {"payload": b64(STATEMENT), "payloadType": PTYPE, "signatures": [{"sig": b64(sig)}]}}  # fmt: skip

    honest = bundle("PKIX_ECDSA_P384_SHA_384", "SHA2_384", hashlib.sha384(pae(PTYPE, STATEMENT)).digest())
    assert verify_bundle(honest, ROOT, where="b", key=key.public_key()).checks[-1] == "bundle.signature"
    relabelled = bundle("PKIX_ECDSA_P384_SHA_256", "SHA2_256", hashlib.sha256(pae(PTYPE, STATEMENT)).digest())
    with pytest.raises(CheckFailed) as exc:
        verify_bundle(relabelled, ROOT, where="b", key=key.public_key())
    assert exc.value.check == "bundle.signature"


def test_a_signature_that_does_not_verify_or_a_statement_about_another_artifact_is_refused() -> None:
    """The last checks of a bundle: the signature over what it claims to sign (named with the key's algorithms; a
    pure Ed25519 signature that fails is said to be over the artifact's bytes), then, for DSSE, a statement
    subject that is the artifact."""
    from cryptography.hazmat.primitives.asymmetric import utils

    from uc_attest.evidence.verifier import Artifact, key_name, verify_bundle

    data = b"the artifact"
    d256 = hashlib.sha256(data).digest()
    forged = KEY.sign(hashlib.sha256(b"else").digest(), ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    with pytest.raises(CheckFailed) as exc:
        verify_bundle(_message(KEY, forged, ("sha256", d256)), {}, where="b", key=KEY.public_key(),
                      artifact=Artifact.of(data))  # fmt: skip
    bad = "bundle.signature: the signature does not verify with the signer's key (PKIX_ECDSA_P256_SHA_256)"
    assert (exc.value.check, exc.value.problem) == ("bundle.signature", bad)
    assert [f.subject for f in exc.value.findings] == ["b"]
    ed = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(CheckFailed) as exc:
        verify_bundle(_message(ed, ed.sign(b"else"), ("sha256", d256)), {}, where="b", key=ed.public_key(),
                      artifact=Artifact.of(data))  # fmt: skip
    assert exc.value.problem == (f"bundle.signature: the signature does not verify with the signer's "
                                 f"{key_name(ed.public_key())} key over the artifact's bytes (pure Ed25519); a sha256 "
                                 "message digest is not signed by sha512 algorithms")  # fmt: skip
    assert [f.subject for f in exc.value.findings] == ["b"]
    doc = dsse_bundle(SIG, [], V03)
    about = verify_bundle(doc, {}, where="b", key=KEY.public_key(), artifact=Artifact.of(data),
                          statement_matches=lambda payload, hexd: payload == PAYLOAD and hexd["sha256"] == d256.hex())  # fmt: skip
    assert about.checks == ["bundle.timestamps", "bundle.tlog", "bundle.signature", "bundle.subject"]
    with pytest.raises(CheckFailed) as exc:
        verify_bundle(doc, {}, where="b", key=KEY.public_key(), artifact=Artifact.of(data),
                      statement_matches=lambda payload, hexd: False)  # fmt: skip
    elsewhere = "bundle.subject: no statement subject matches the artifact's digest"
    assert (exc.value.check, exc.value.problem) == ("bundle.subject", elsewhere)
    assert [f.subject for f in exc.value.findings] == ["b"]
