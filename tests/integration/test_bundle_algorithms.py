"""Issue 28 against the embedded instance: signing certificates of every family of Sigstore's algorithm registry
(issued by the instance's CA, with its SCT, logged in a test log the trusted root lists), managed keys through
`verify-bundle`, and a trusted root holding two intermediates of one name (Sigstore staging's two
``sigstore-intermediate``) where the one that signed is the second.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

import uc_attest as uc
from tests.e2e.test_cli import cli
from tests.integration.conftest import Running
from tests.unit.test_verifier_algorithms import (
    BY_NAME,
    DATA,
    MEDIA,
    PROTO,
    PTYPE,
    ROOT,
    STATEMENT,
    Alg,
    b64,
    key_of,
    logged,
    message_bundle,
    sign_bytes,
    sign_digest,
)
from uc_attest.core.dsse import pae
from uc_attest.errors import SignatureInvalid
from uc_attest.evidence.chain import issuer_of
from uc_attest.evidence.identity import SignerSpec
from uc_attest.evidence.verifier import Artifact, CheckFailed, verify_bundle
from uc_attest.instance.ca import issue_leaf
from uc_attest.signing.sign import identity_token, sign_statement

ID = "algorithms@example.com"


def _trusted_root(inst: Running) -> dict[str, Any]:
    """The instance's trusted root, listing the unit tests' log too."""
    root = json.loads(inst.trust_config_path.read_text())["trustedRoot"]
    root["tlogs"].append(copy.deepcopy(ROOT["tlogs"][0]))
    return root  # type: ignore[no-any-return]


def _cert_bundle(inst: Running, alg: Alg, shape: str) -> dict[str, Any]:
    """A v0.3 bundle signed with ``alg`` under a certificate of the instance's CA, logged (SET, checkpointed
    proof) in the test log; a message signature (hashedrekord 0.0.1) or a DSSE envelope (dsse 0.0.1)."""
    key = key_of(alg)
    leaf = issue_leaf(inst.state, key.public_key(), ID)
    pem = leaf.public_bytes(serialization.Encoding.PEM)
    now = int(dt.datetime.now(dt.UTC).timestamp())
    material = {"certificate": {"rawBytes": b64(leaf.public_bytes(serialization.Encoding.DER))}}
    if shape == "dsse 0.0.1":
        sig = sign_bytes(alg, key, pae(PTYPE, STATEMENT))
        body = {
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(STATEMENT).hexdigest()},
                "signatures": [{"signature": b64(sig), "verifier": b64(pem)}],
            },
        }
        return {
            "mediaType": MEDIA,
            "verificationMaterial": {**material, "tlogEntries": [logged(body, integrated=now)]},
            "dsseEnvelope": {"payload": b64(STATEMENT), "payloadType": PTYPE, "signatures": [{"sig": b64(sig)}]},
        }
    digest = hashlib.new(alg.hash, DATA).digest()
    sig = sign_bytes(alg, key, DATA) if alg.family == "ed25519" else sign_digest(alg, key, alg.hash, digest)
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": alg.hash, "value": digest.hex()}},
            "signature": {"content": b64(sig), "publicKey": {"content": b64(pem)}},
        },
    }
    return {
        "mediaType": MEDIA,
        "verificationMaterial": {**material, "tlogEntries": [logged(body, integrated=now)]},
        "messageSignature": {
            "messageDigest": {"algorithm": PROTO[alg.hash], "digest": b64(digest)},
            "signature": b64(sig),
        },
    }


CERT_CASES = [
    ("PKIX_ECDSA_P256_SHA_256", "hashedrekord 0.0.1"),
    ("PKIX_ECDSA_P384_SHA_384", "hashedrekord 0.0.1"),
    ("PKIX_ECDSA_P521_SHA_512", "hashedrekord 0.0.1"),
    ("PKIX_ECDSA_P384_SHA_384", "dsse 0.0.1"),
    ("PKIX_RSA_PKCS1V15_2048_SHA256", "hashedrekord 0.0.1"),
    ("PKIX_RSA_PSS_3072_SHA256", "hashedrekord 0.0.1"),
    ("PKIX_RSA_PKCS1V15_4096_SHA256", "dsse 0.0.1"),
    ("PKIX_ED25519", "dsse 0.0.1"),
    ("PKIX_ED25519_PH", "hashedrekord 0.0.1"),
]


@pytest.mark.parametrize(("details", "shape"), CERT_CASES)
def test_a_certificate_of_every_registry_family_verifies(instance: Running, details: str, shape: str) -> None:
    """The own path: chain, SCT, identity and the signature with the certificate's key, its algorithm's digest."""
    doc = _cert_bundle(instance, BY_NAME[details], shape)
    root = _trusted_root(instance)
    out = verify_bundle(doc, root, where="b", signers=[SignerSpec(instance.issuer, ID)], artifact=Artifact.of(DATA))
    assert {"bundle.certificate", "bundle.sct", "bundle.identity", "bundle.signature"} <= set(out.checks)
    assert out.signer is not None and out.signer.primary == ID
    bad = copy.deepcopy(doc)  # another signer's certificate: refused
    with pytest.raises(CheckFailed, match="bundle.identity"):
        verify_bundle(
            bad, root, where="b", signers=[SignerSpec(instance.issuer, "eve@example.com")], artifact=Artifact.of(DATA)
        )


@pytest.mark.parametrize("details", ["PKIX_ECDSA_P384_SHA_384", "PKIX_RSA_PKCS1V15_2048_SHA256"])
def test_verify_bundle_with_both_verifiers_on_a_certificate_outside_p256(
    instance: Running, tmp_path: Path, details: str
) -> None:
    doc = _cert_bundle(instance, BY_NAME[details], "hashedrekord 0.0.1")
    (tmp_path / "b.json").write_text(json.dumps(doc))
    (tmp_path / "root.json").write_text(json.dumps(_trusted_root(instance)))
    (tmp_path / "art").write_bytes(DATA)
    r = cli(
        "verify-bundle",
        "--bundle",
        tmp_path / "b.json",
        "--certificate-identity",
        ID,
        "--certificate-oidc-issuer",
        instance.issuer,
        "--trusted-root",
        tmp_path / "root.json",
        tmp_path / "art",
    )
    assert r.returncode == 0, r.stderr


def test_managed_keys_through_verify_bundle(instance: Running, tmp_path: Path) -> None:
    """`verify-bundle --key`: RSA-PSS and Ed25519ph verify; a secp256k1 key (once verified as if it were P-256)
    is exit 3 naming its curve, never a crash."""
    (tmp_path / "root.json").write_text(json.dumps(_trusted_root(instance)))
    art = tmp_path / "art"
    art.write_bytes(DATA)

    def run(doc: dict[str, Any], public: Any) -> Any:
        (tmp_path / "b.json").write_text(json.dumps(doc))
        (tmp_path / "k.pem").write_bytes(
            public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return cli(
            "verify-bundle",
            "--bundle",
            tmp_path / "b.json",
            "--key",
            tmp_path / "k.pem",
            "--trusted-root",
            tmp_path / "root.json",
            art,
        )

    for details in ("PKIX_RSA_PSS_2048_SHA256", "PKIX_ED25519_PH"):
        alg = BY_NAME[details]
        key = key_of(alg)
        digest = hashlib.new(alg.hash, DATA).digest()
        doc = message_bundle(
            key.public_key(), sign_digest(alg, key, alg.hash, digest), alg.hash, digest, "hashedrekord 0.0.2", details
        )
        r = run(doc, key.public_key())
        assert r.returncode == 0, (details, r.stderr)
    k1 = ec.generate_private_key(ec.SECP256K1())
    digest = hashlib.sha256(DATA).digest()
    doc = message_bundle(
        k1.public_key(), k1.sign(digest, ec.ECDSA(hashes.SHA256())), "sha256", digest, "hashedrekord 0.0.1"
    )
    r = run(doc, k1.public_key())
    assert r.returncode == 3 and "secp256k1" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


# -- two intermediates of one name ------------------------------------------------------------------------------


def _sign(inst: Running, data: bytes) -> dict[str, Any]:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "predicateType": "https://example.com/p/v1",
        "subject": [{"name": "pack", "digest": {"sha256": hashlib.sha256(data).hexdigest()}}],
        "predicate": {},
    }
    trust = uc.select_trust(None, inst.dir)
    signed = sign_statement(statement, trust, identity_token(trust, None, ID))
    return json.loads(signed.json)  # type: ignore[no-any-return]


def _namesake(inst: Running) -> x509.Certificate:
    """Another intermediate with the instance intermediate's name, signed by the same root, with its own key
    (as Sigstore staging rotated its ``sigstore-intermediate``)."""
    real, root_key = inst.state.ca_intermediate, inst.state.keys["ca-root.key.pem"]
    return (
        x509.CertificateBuilder()
        .subject_name(real.subject)
        .issuer_name(real.issuer)
        .public_key(ec.generate_private_key(ec.SECP384R1()).public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(real.not_valid_before_utc)
        .not_valid_after(real.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(root_key, hashes.SHA384())
    )


def _with_namesake(inst: Running, keep_real: bool) -> dict[str, Any]:
    root = json.loads(inst.trust_config_path.read_text())["trustedRoot"]
    (ca,) = root["certificateAuthorities"]
    other = copy.deepcopy(ca)
    der = _namesake(inst).public_bytes(serialization.Encoding.DER)
    other["certChain"]["certificates"][0] = {"rawBytes": base64.b64encode(der).decode()}
    root["certificateAuthorities"] = [other, ca] if keep_real else [other]  # the one that signed comes second
    return root  # type: ignore[no-any-return]


def test_two_intermediates_of_one_name_the_one_that_signed_is_used(instance: Running, tmp_path: Path) -> None:
    doc = _sign(instance, DATA)
    root = _with_namesake(instance, keep_real=True)
    leaf = x509.load_der_x509_certificate(base64.b64decode(doc["verificationMaterial"]["certificate"]["rawBytes"]))
    out = verify_bundle(doc, root, where="b", signers=[SignerSpec(instance.issuer, ID)], artifact=Artifact.of(DATA))
    assert "bundle.sct" in out.checks
    now = dt.datetime.now(dt.UTC)
    assert issuer_of(leaf, root, now) == instance.state.ca_intermediate
    (tmp_path / "b.json").write_text(json.dumps(doc))
    (tmp_path / "root.json").write_text(json.dumps(root))
    (tmp_path / "art").write_bytes(DATA)
    r = cli(
        "verify-bundle",
        "--bundle",
        tmp_path / "b.json",
        "--certificate-identity",
        ID,
        "--certificate-oidc-issuer",
        instance.issuer,
        "--trusted-root",
        tmp_path / "root.json",
        "--json",
        tmp_path / "art",
    )
    assert r.returncode == 0, r.stderr + r.stdout
    assert json.loads(r.stdout)["verified_by"] == ["sigstore-python", "uc-attest"]
    # only the namesake: nothing of the root signed the certificate, whatever its name
    only = _with_namesake(instance, keep_real=False)
    with pytest.raises(SignatureInvalid, match="no certificate authority .* signed it"):
        issuer_of(leaf, only, now)
    with pytest.raises(CheckFailed, match="bundle.certificate"):
        verify_bundle(doc, only, where="b", signers=[SignerSpec(instance.issuer, ID)], artifact=Artifact.of(DATA))


@pytest.mark.parametrize("curve", [ec.SECP256K1(), ec.SECP224R1()], ids=lambda c: c.name)
def test_a_certificate_whose_key_is_outside_the_registry_is_exit_3(
    instance: Running, tmp_path: Path, curve: ec.EllipticCurve
) -> None:
    """Refused where the bundle is parsed, naming the curve, before either verifier runs."""
    key = ec.generate_private_key(curve)
    leaf = issue_leaf(instance.state, key.public_key(), ID)
    digest = hashlib.sha256(DATA).digest()
    sig = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    pem = leaf.public_bytes(serialization.Encoding.PEM)
    body = {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {"content": b64(sig), "publicKey": {"content": b64(pem)}},
        },
    }
    now = int(dt.datetime.now(dt.UTC).timestamp())
    doc = {
        "mediaType": MEDIA,
        "verificationMaterial": {
            "certificate": {"rawBytes": b64(leaf.public_bytes(serialization.Encoding.DER))},
            "tlogEntries": [logged(body, integrated=now)],
        },
        "messageSignature": {"messageDigest": {"algorithm": "SHA2_256", "digest": b64(digest)}, "signature": b64(sig)},
    }
    (tmp_path / "b.json").write_text(json.dumps(doc))
    (tmp_path / "root.json").write_text(json.dumps(_trusted_root(instance)))
    (tmp_path / "art").write_bytes(DATA)
    r = cli(
        "verify-bundle",
        "--bundle",
        tmp_path / "b.json",
        "--certificate-identity",
        ID,
        "--certificate-oidc-issuer",
        instance.issuer,
        "--trusted-root",
        tmp_path / "root.json",
        tmp_path / "art",
    )
    assert r.returncode == 3, r.stderr
    assert curve.name in r.stderr and "Traceback" not in r.stderr
