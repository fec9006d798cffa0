"""The bundle shapes auditors meet that sigstore-python does not verify, made for real against the instance:
a statement with only a sha512 subject (npm), a TSA-only bundle (GitHub's private-repository instance),
a v0.1 bundle proven by its SET alone, a Sigstore OtherName identity (``user!host``), a managed-key DSSE
attestation (npm's registry key), a trusted root whose CA subject has no commonName. Each verifies through
`verify-bundle` (the own path, sigstore-python where it can) and each tampering is refused, naming the
check. Bundles no verifier supports get exit 3 naming the field and version, never a traceback.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

import uc_attest as uc
from tests.e2e.test_cli import cli
from tests.integration.conftest import Running
from uc_attest.core.dsse import PAYLOAD_TYPE_IN_TOTO, pae
from uc_attest.signing.sign import identity_token, sign_statement

ID = "auditor-shapes@example.com"


def _root(inst: Running, tmp: Path, edit: Any = None) -> Path:
    root = json.loads(inst.trust_config_path.read_text())["trustedRoot"]
    if edit is not None:
        edit(root)
    out = tmp / "trusted_root.json"
    out.write_text(json.dumps(root))
    return out


def _statement(subject: dict[str, str]) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "pkg.tgz", "digest": subject}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {}},
    }


def _sign(inst: Running, statement: dict[str, Any], identity: str = ID) -> dict[str, Any]:
    trust = uc.select_trust(None, inst.dir)
    signed = sign_statement(statement, trust, identity_token(trust, None, identity))
    return json.loads(signed.json)  # type: ignore[no-any-return]


def _verify(bundle: dict[str, Any], tmp: Path, root: Path, artifact: Path | str, identity: str = ID,
            issuer: str | None = None, *extra: str) -> Any:  # fmt: skip
    path = tmp / f"b{abs(hash(json.dumps(bundle))) % 10**8}.json"
    path.write_text(json.dumps(bundle))
    r = cli(
        "verify-bundle",
        "--bundle",
        path,
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        issuer or "https://dev-oidc.uc-attest.invalid",
        "--trusted-root",
        root,
        *extra,
        "--json",
        artifact,
    )
    if r.returncode:  # --json puts the error on stdout: keep both in stderr for the assertions
        r.stderr += r.stdout
    return r


def test_a_sha512_only_subject_matches_the_artifact(instance: Running, tmp_path: Path) -> None:
    art = tmp_path / "pkg.tgz"
    art.write_bytes(b"an npm tarball")
    bundle = _sign(instance, _statement({"sha512": hashlib.sha512(art.read_bytes()).hexdigest()}))
    root = _root(instance, tmp_path)
    ok = _verify(bundle, tmp_path, root, art)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verified_by"] == ["sigstore-python", "uc-attest"]
    other = tmp_path / "other.tgz"
    other.write_bytes(b"another tarball")
    bad = _verify(bundle, tmp_path, root, other)
    assert bad.returncode == 1 and "subject" in bad.stderr


def test_a_tsa_only_bundle_needs_no_require_tlog(instance: Running, tmp_path: Path) -> None:
    art = tmp_path / "pkg.tgz"
    art.write_bytes(b"built in a private repository")
    bundle = _sign(instance, _statement({"sha256": hashlib.sha256(art.read_bytes()).hexdigest()}))
    bundle["verificationMaterial"]["tlogEntries"] = []
    root = _root(instance, tmp_path)
    strict = _verify(bundle, tmp_path, root, art)
    assert strict.returncode == 1 and "bundle.tlog" in strict.stderr and "TSA-only" in strict.stderr
    loose = _verify(bundle, tmp_path, root, art, ID, None, "--no-require-tlog")
    assert loose.returncode == 0, loose.stderr
    out = json.loads(loose.stdout)
    assert out["verified_by"] == ["uc-attest"] and "TSA-only" in out["gap"]
    tampered = copy.deepcopy(bundle)
    ts = tampered["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
    raw = bytearray(base64.b64decode(ts["signedTimestamp"]))
    raw[-20] ^= 1
    ts["signedTimestamp"] = base64.b64encode(bytes(raw)).decode()
    r = _verify(tampered, tmp_path, root, art, ID, None, "--no-require-tlog")
    assert r.returncode == 1 and "no verified RFC 3161 timestamp" in r.stderr


def test_a_v01_bundle_proven_by_its_set_alone(instance_v1: Running, tmp_path: Path) -> None:
    art = tmp_path / "pkg.tgz"
    art.write_bytes(b"an older release")
    bundle = _sign(instance_v1, _statement({"sha256": hashlib.sha256(art.read_bytes()).hexdigest()}))
    vm = bundle["verificationMaterial"]
    old = {"mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.1",
           "verificationMaterial": {"x509CertificateChain": {"certificates": [vm["certificate"]]},
                                    "tlogEntries": [{k: v for k, v in vm["tlogEntries"][0].items()
                                                     if k != "inclusionProof"}]},
           "dsseEnvelope": bundle["dsseEnvelope"]}  # fmt: skip
    root = _root(instance_v1, tmp_path)
    ok = _verify(old, tmp_path, root, art)
    assert ok.returncode == 0, ok.stderr
    assert "SET" in json.loads(ok.stdout)["gap"]
    bad = copy.deepcopy(old)
    e = bad["verificationMaterial"]["tlogEntries"][0]
    e["integratedTime"] = str(int(e["integratedTime"]) + 60)
    r = _verify(bad, tmp_path, root, art)
    assert r.returncode == 1 and "bundle.tlog: the SET does not verify" in r.stderr


def test_an_othername_identity(instance: Running, packed: Path, tmp_path: Path) -> None:
    """Fulcio issues ``user!host`` identities as a Sigstore OtherName SAN; sigstore-python 4.5.1 compares them
    with their DER wrapper, so its identity check cannot match: the own path checks the identity."""
    art = tmp_path / "pkg.tgz"
    art.write_bytes(b"signed by a username identity")
    bundle = _sign(instance, _statement({"sha256": hashlib.sha256(art.read_bytes()).hexdigest()}), "foo!oidc.local")
    root = _root(instance, tmp_path)
    ok = _verify(bundle, tmp_path, root, art, "foo!oidc.local")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verified_by"] == ["sigstore-python", "uc-attest"]
    assert _verify(bundle, tmp_path, root, art, "bar!oidc.local").returncode == 1
    # the release path too: a pack attested by a username identity verifies under a policy naming it
    b = tmp_path / "pack.sigstore.json"
    uc.attest_pack(
        packed, uc.select_trust(None, instance.dir), sign_as=uc.SignAs(dev_identity="foo!oidc.local"), bundle_out=b
    )
    v = uc.verify(
        packed,
        uc.Anchor.signed_by("foo!oidc.local", instance.issuer, bundle=b, trust=uc.TrustRoot.instance(instance.dir)),
    )
    assert v.ok, v.to_dict()
    assert not uc.verify(
        packed,
        uc.Anchor.signed_by("foo", instance.issuer, bundle=b, trust=uc.TrustRoot.instance(instance.dir)),
    ).ok


def _managed_key_bundle(inst: Running, key: ec.EllipticCurvePrivateKey, statement: bytes) -> dict[str, Any]:
    """A DSSE attestation signed with a registry's key (no certificate), logged as a dsse entry on Rekor v1."""
    import urllib.request

    from uc_attest.transparency.rekor_v1 import RekorClient

    sig = key.sign(pae(PAYLOAD_TYPE_IN_TOTO, statement), ec.ECDSA(hashes.SHA256()))
    env = {"payload": base64.b64encode(statement).decode(), "payloadType": PAYLOAD_TYPE_IN_TOTO,
           "signatures": [{"sig": base64.b64encode(sig).decode(), "keyid": ""}]}  # fmt: skip
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    entry = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {"proposedContent": {"envelope": json.dumps(env), "verifiers": [base64.b64encode(pem).decode()]}},
    }
    req = urllib.request.Request(
        f"{inst.url}/api/v1/log/entries", data=json.dumps(entry).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        (uuid,) = json.loads(r.read())
    (log,) = uc.select_trust(None, inst.dir).logs()
    logged = RekorClient(log).entry_by_uuid(uuid)
    return {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "registry-key"}, "tlogEntries": [logged.raw_entry(log.log_id)]},
            "dsseEnvelope": dict(env)}  # fmt: skip


def test_a_managed_key_dsse_attestation(instance_v1: Running, tmp_path: Path) -> None:
    art = tmp_path / "pkg.tgz"
    art.write_bytes(b"published by the registry")
    key = ec.generate_private_key(ec.SECP256R1())
    statement = json.dumps(_statement({"sha512": hashlib.sha512(art.read_bytes()).hexdigest()})).encode()
    bundle = _managed_key_bundle(instance_v1, key, statement)
    path = tmp_path / "publish.sigstore.json"
    path.write_text(json.dumps(bundle))
    pub = tmp_path / "registry.pub"
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    root = _root(instance_v1, tmp_path)
    r = cli("verify-bundle", "--bundle", path, "--key", pub, "--trusted-root", root, "--json", art)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["verified_by"] == ["uc-attest"]
    other = tmp_path / "other.pub"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    r = cli("verify-bundle", "--bundle", path, "--key", other, "--trusted-root", root, art)
    assert r.returncode == 1 and "bundle.tlog" in r.stderr
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(statement.replace(b"pkg", b"pkh")).decode()
    path.write_text(json.dumps(bundle))
    r = cli("verify-bundle", "--bundle", path, "--key", pub, "--trusted-root", root, art)
    assert r.returncode == 1 and "payload hash" in r.stderr


def test_a_trusted_root_whose_ca_has_no_common_name(instance: Running, tmp_path: Path) -> None:
    art = tmp_path / "pkg.tgz"
    art.write_bytes(b"under a private root")
    bundle = _sign(instance, _statement({"sha256": hashlib.sha256(art.read_bytes()).hexdigest()}))

    def drop_cn(root: dict[str, Any]) -> None:
        for ca in root["certificateAuthorities"]:
            ca["subject"].pop("commonName", None)

    r = _verify(bundle, tmp_path, _root(instance, tmp_path, drop_cn), art)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["verified_by"] == ["uc-attest"] and "commonName" in out["gap"]


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda d: d.__setitem__("mediaType", "application/vnd.dev.sigstore.bundle+json;version=9.9"), "version=9.9"),
        (
            lambda d: d["verificationMaterial"]["tlogEntries"][0].__setitem__(
                "kindVersion", {"kind": "rekord", "version": "0.0.1"}
            ),
            "rekord 0.0.1",
        ),
        (lambda d: d.__setitem__("mediaType", "[bold red]x[/] [/x]"), "[bold red]x[/] [/x]"),
    ],
)
def test_a_bundle_no_verifier_supports_is_exit_3_naming_it(
    instance: Running, tmp_path: Path, edit: Any, named: str
) -> None:
    art = tmp_path / "pkg.tgz"
    art.write_bytes(b"x")
    bundle = _sign(instance, _statement({"sha256": hashlib.sha256(b"x").hexdigest()}))
    edit(bundle)
    r = _verify(bundle, tmp_path, _root(instance, tmp_path), art)
    assert r.returncode == 3, r.stderr
    assert named in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("predicate", [{}, None], ids=["empty", "null"])
def test_a_statement_whose_predicate_is_empty_verifies(instance: Running, tmp_path: Path, predicate: Any) -> None:
    """PEP 740 publish attestations (PyPI) carry ``"predicate": null``; the in-toto spec leaves it optional."""
    art = tmp_path / "pkg-1.0.tar.gz"
    art.write_bytes(b"a PyPI sdist")
    statement = _statement({"sha256": hashlib.sha256(art.read_bytes()).hexdigest()})
    statement.update(predicateType="https://docs.pypi.org/attestations/publish/v1", predicate=predicate)
    bundle = _sign(instance, statement)
    root = _root(instance, tmp_path)
    ok = _verify(bundle, tmp_path, root, art)
    assert ok.returncode == 0, ok.stderr
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"another sdist")
    bad = _verify(bundle, tmp_path, root, other)
    assert bad.returncode == 1 and "bundle.subject" in bad.stderr


def test_an_in_toto_v01_statement_verifies(instance_v1: Running, tmp_path: Path) -> None:
    """npm publish attestations: in-toto Statement v0.1, a sha512 subject, signed by the registry's key."""
    art = tmp_path / "pkg.tgz"
    art.write_bytes(b"an npm tarball, 2023")
    statement = _statement({"sha512": hashlib.sha512(art.read_bytes()).hexdigest()})
    statement.update(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://github.com/npm/attestation/tree/main/specs/publish/v0.1",
        }
    )
    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "registry.pub"
    pub.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    root = _root(instance_v1, tmp_path)

    def verify(stmt: dict[str, Any], artifact: Path) -> Any:
        path = tmp_path / "publish.sigstore.json"
        path.write_text(json.dumps(_managed_key_bundle(instance_v1, key, json.dumps(stmt).encode())))
        return cli("verify-bundle", "--bundle", path, "--key", pub, "--trusted-root", root, artifact)

    ok = verify(statement, art)
    assert ok.returncode == 0, ok.stderr
    other = tmp_path / "other.tgz"
    other.write_bytes(b"another tarball")
    assert verify(statement, other).returncode == 1
    statement["_type"] = "https://in-toto.io/Statement/v9"  # an unknown statement type matches nothing
    r = verify(statement, art)
    assert r.returncode == 1 and "bundle.subject" in r.stderr


def test_a_tsa_only_bundle_under_a_root_without_logs_needs_no_flag(instance: Running, tmp_path: Path) -> None:
    """GitHub's instance lists no transparency log (nor CT log): its TSA-only attestations verify as
    `gh attestation verify` accepts them; a root that lists a log still needs --no-require-tlog."""
    art = tmp_path / "pkg.tgz"
    art.write_bytes(b"built in a private repository")
    bundle = _sign(instance, _statement({"sha256": hashlib.sha256(art.read_bytes()).hexdigest()}))
    bundle["verificationMaterial"]["tlogEntries"] = []
    no_logs = _root(instance, tmp_path, lambda r: r.update(tlogs=[]))
    ok = _verify(bundle, tmp_path, no_logs, art)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verified_by"] == ["uc-attest"]
    no_ct = _root(instance, tmp_path, lambda r: r.update(tlogs=[], ctlogs=[]))  # no CT log: no SCT to check
    assert _verify(bundle, tmp_path, no_ct, art).returncode == 0
    assert _verify(bundle, tmp_path, no_logs, art, "eve@example.com").returncode == 1
    strict = _verify(bundle, tmp_path, _root(instance, tmp_path), art)
    assert strict.returncode == 1 and "TSA-only" in strict.stderr


@pytest.mark.parametrize(("edit", "code"), [
    (lambda d: d["verificationMaterial"].__setitem__("timestampVerificationData", [1]), 3),
    (lambda d: d["verificationMaterial"]["tlogEntries"][0].__setitem__("inclusionProof", 5), 3),
    (lambda d: d["verificationMaterial"]["tlogEntries"][0].__setitem__("logIndex", {"a": 1}), 3),
    (lambda d: d["dsseEnvelope"].__setitem__("signatures", "x"), 3),
    (lambda d: d["verificationMaterial"]["tlogEntries"][0].__setitem__(
        "logIndex", str(int(d["verificationMaterial"]["tlogEntries"][0]["logIndex"]) + 7)), 1),
])  # fmt: skip
def test_a_field_of_the_wrong_type_is_a_clean_error(instance: Running, tmp_path: Path, edit: Any, code: int) -> None:
    art = tmp_path / "pkg.tgz"
    art.write_bytes(b"x")
    bundle = _sign(instance, _statement({"sha256": hashlib.sha256(b"x").hexdigest()}))
    edit(bundle)
    r = _verify(bundle, tmp_path, _root(instance, tmp_path), art)
    assert r.returncode == code, r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr
