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
    _Log,
    _logs,
    _verify_note,
    parse,
    signer_matches,
    verify_entry,
)
from uc_attest.transparency.checkpoint import Checkpoint, sign_note, sign_note_ed25519

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


def _note_log(key: Any) -> _Log:
    return _Log(key, b"", 0, float("inf"))


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
