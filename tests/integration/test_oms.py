"""OpenSSF Model Signing, both ways, with the real tool (PyPI model-signing 1.1.1) against the instance:
stock `model_signing verify` accepts the OMS signature `attest` writes for a pack (and refuses a tampered
pack); stock `model_signing sign` (sigstore, key and certificate methods) produces source signatures `pack
--source-signature` accepts, records, and the policy and the audit read. Bad signatures, uncovered files,
unsafe names and symlinks are refused, naming the file or field.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import uc_attest as uc
from tests.conftest import make_model
from tests.e2e.test_cli import cli
from tests.integration.conftest import Running
from uc_attest.claims.oms import build_oms, parse_oms
from uc_attest.claims.statement import Statement, encode
from uc_attest.core.dsse import PAYLOAD_TYPE_IN_TOTO, pae

VENDOR, RELEASE = "models@vendor.example", "release-bot@bank.example"
MS = str(Path(sys.executable).parent / "model_signing")

pytestmark = pytest.mark.skipif(
    not Path(MS).exists(), reason="model-signing is not installed (pip install model-signing)"
)


def model_signing(*args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MS, *map(str, args)], capture_output=True, text=True, timeout=180, check=False)


def sign_sigstore(inst: Running, model: Path, identity: str = VENDOR, *extra: str) -> Path:
    sig = model / "model.sig"
    r = model_signing(
        "sign",
        "sigstore",
        "--trust_config",
        inst.trust_config_path,
        "--identity_token",
        inst.token(identity),
        "--signature",
        sig,
        *extra,
        model,
    )
    assert r.returncode == 0, r.stderr
    return sig


def key_pair(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = tmp / "vendor.key", tmp / "vendor.pub"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    return priv, pub


@pytest.fixture(scope="module")
def vendor_model(instance: Running, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = make_model(tmp_path_factory.mktemp("vendor") / "model")
    sign_sigstore(instance, src)
    return src


def test_stock_model_signing_verifies_the_pack_signature(instance: Running, vendor_model: Path, tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    signature = uc.OmsSignature(
        vendor_model / "model.sig", uc.SigstoreIdentity(VENDOR, None, uc.TrustInstance(instance.dir))
    )
    uc.write_pack(
        vendor_model, pack, uc.DEFAULT_SCHEME, "cpu", source_signature=signature, calibration=None, allocation=None
    )
    res = uc.attest_pack(pack, uc.select_trust(None, instance.dir), sign_as=uc.SignAs(dev_identity=RELEASE))
    assert res.oms_bundle == tmp_path / "pack.model.sig" and res.oms_log_index == res.log_index + 1
    verify = (
        "verify",
        "sigstore",
        "--trust_config",
        instance.trust_config_path,
        "--signature",
        res.oms_bundle,
        "--identity",
        RELEASE,
        "--identity_provider",
        instance.issuer,
        pack,
    )
    ok = model_signing(*verify)
    assert ok.returncode == 0, ok.stderr
    statement = Statement.parse(base64.b64decode(json.loads(res.oms_bundle.read_text())["dsseEnvelope"]["payload"]))
    claim = parse_oms(statement)  # our own payload read as strictly as any other
    assert sorted(claim.resources) == sorted(p.relative_to(pack).as_posix() for p in pack.rglob("*") if p.is_file())
    # the same signature checked by uc-attest: verify --bundle, verify-bundle over the directory
    v = uc.verify(
        pack,
        uc.Anchor.signed_by(RELEASE, instance.issuer, bundle=res.oms_bundle, trust=uc.TrustRoot.instance(instance.dir)),
    )
    assert v.ok, v.to_dict()
    assert {c.rule for c in v.checks} >= {"release.signer", "oms.files", "pack.tensors"}
    tr = tmp_path / "root.json"
    tr.write_text(json.dumps(json.loads(instance.trust_config_path.read_text())["trustedRoot"]))
    r = cli(
        "verify-bundle",
        "--bundle",
        res.oms_bundle,
        "--certificate-identity",
        RELEASE,
        "--certificate-oidc-issuer",
        instance.issuer,
        "--trusted-root",
        tr,
        "--json",
        pack,
    )
    assert r.returncode == 0 and "oms.files" in json.loads(r.stdout)["checks"], r.stdout + r.stderr
    # tampered: the stock tool and ours refuse, ours naming the file and both digests
    data = bytearray((pack / "model.safetensors").read_bytes())
    data[-7] ^= 1
    (pack / "model.safetensors").write_bytes(bytes(data))
    assert model_signing(*verify).returncode != 0
    v = uc.verify(
        pack,
        uc.Anchor.signed_by(RELEASE, instance.issuer, bundle=res.oms_bundle, trust=uc.TrustRoot.instance(instance.dir)),
    )
    assert not v.ok and "model.safetensors" in {f.subject for f in v.findings}
    r = cli(
        "verify-bundle",
        "--bundle",
        res.oms_bundle,
        "--certificate-identity",
        RELEASE,
        "--certificate-oidc-issuer",
        instance.issuer,
        "--trusted-root",
        tr,
        pack,
    )
    assert r.returncode == 1 and "model.safetensors" in r.stderr


def test_no_oms_writes_only_the_release(instance: Running, packed: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.sigstore.json"
    r = cli("attest", packed, "--instance", instance.dir, "--identity", RELEASE, "--bundle", out, "--no-oms", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["oms_signature"] is None
    assert not (tmp_path / "r.model.sig").exists()


def test_verify_model_sigstore_verifies_a_stock_signed_directory(instance: Running, vendor_model: Path) -> None:
    """``verify-model sigstore``: stock model_signing's sigstore signature of a plain directory verifies as its
    signer under the instance, and is denied (exit 1) naming whom it expected for anyone else."""
    base = ("verify-model", "sigstore", vendor_model, "--signature", vendor_model / "model.sig")
    ok = cli(*base, "--identity", VENDOR, "--instance", instance.dir, "--json")
    assert ok.returncode == 0, ok.stderr
    v = json.loads(ok.stdout)
    assert v["ok"] and {c["rule"] for c in v["checks"]} == {"oms.signature", "oms.files"}, v
    with_issuer = cli(*base, "--identity", VENDOR, "--issuer", instance.issuer, "--instance", instance.dir)
    assert with_issuer.returncode == 0, with_issuer.stderr
    wrong = cli(*base, "--identity", "someone-else@vendor.example", "--instance", instance.dir)
    assert wrong.returncode == 1 and "someone-else@vendor.example" in wrong.stderr, wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_a_source_signed_by_stock_model_signing_is_recorded_and_gated(
    instance: Running, vendor_model: Path, tmp_path: Path
) -> None:
    pack = tmp_path / "pack"
    r = cli(
        "pack",
        vendor_model,
        "-o",
        pack,
        "--device",
        "cpu",
        "--source-signature",
        vendor_model / "model.sig",
        "--source-identity",
        VENDOR,
        "--instance",
        instance.dir,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    sig = json.loads(r.stdout)["source_signature"]
    assert sig["identity"] == VENDOR and sig["method"] == "sigstore" and sig["file"] == "uc-source.model.sig"
    assert "model.sig" not in {p.name for p in pack.iterdir()}  # the vendor's file is kept under our name only
    uc.attest_pack(pack, uc.select_trust(None, instance.dir), sign_as=uc.SignAs(dev_identity=RELEASE))
    claim = uc.load_manifest(pack / uc.MANIFEST_NAME).source_signature
    assert claim is not None and claim.identity == VENDOR

    def policy(source: str) -> Path:
        p = tmp_path / "policy.yaml"
        p.write_text(
            f"version: 1\nname: src\ntrust: {{instance: {instance.dir}}}\nsigners:\n  release:\n"
            f"    - issuer: {instance.issuer}\n      identity: {RELEASE}\nsource:\n{source}"
        )
        return p

    ok = uc.verify(
        pack, uc.Anchor.policy(policy(f"  signers:\n    - issuer: {instance.issuer}\n      identity: {VENDOR}\n"))
    )
    assert ok.ok, ok.to_dict()
    assert "signed by models@vendor.example" in next(c for c in ok.checks if c.rule == "source.signers").detail
    other = uc.verify(
        pack, uc.Anchor.policy(policy(f"  signers:\n    - issuer: {instance.issuer}\n      identity: x@y.example\n"))
    )
    bad = next(c for c in other.checks if c.rule == "source.signers")
    assert not other.ok and not bad.ok and bad.actual == f"{VENDOR} via {instance.issuer}"
    # a pack of an unsigned source is denied by a policy naming source signers
    plain = tmp_path / "plain"
    uc.write_pack(make_model(tmp_path / "unsigned"), plain, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    uc.attest_pack(plain, uc.select_trust(None, instance.dir), sign_as=uc.SignAs(dev_identity=RELEASE))
    none = uc.verify(
        plain, uc.Anchor.policy(policy(f"  signers:\n    - issuer: {instance.issuer}\n      identity: {VENDOR}\n"))
    )
    assert not none.ok and next(c for c in none.checks if c.rule == "source.signers").actual == "none"
    # the audit shows the vendor as the first link: vendor -> pack (-> validation)
    audit = uc.audit(pack, uc.TrustRoot.instance(instance.dir))
    assert audit.events[0].kind == "source" and audit.events[0].signer == VENDOR and audit.events[0].ok
    assert audit.events[0].details["kept_signature"] == "verified again"
    assert next(c for c in audit.checks if c.rule == "custody.source").ok
    assert VENDOR in uc.render_report_html(audit.to_dict())
    # a rebuild from the signed source directory (its model.sig inside) reproduces the pack, signature kept
    rebuilt = uc.check_rebuild(pack, vendor_model, "cpu")
    assert rebuilt.ok, rebuilt.to_dict()


def test_a_key_signed_source(tmp_path: Path) -> None:
    src = make_model(tmp_path / "model")
    priv, pub = key_pair(tmp_path)
    r = model_signing("sign", "key", "--private_key", priv, "--signature", src / "model.sig", src)
    assert r.returncode == 0, r.stderr
    pack = tmp_path / "pack"
    r = cli(
        "pack",
        src,
        "-o",
        pack,
        "--device",
        "cpu",
        "--source-signature",
        src / "model.sig",
        "--source-key",
        pub,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    sig = json.loads(r.stdout)["source_signature"]
    assert sig["method"] == "key" and sig["identity"].startswith("sha256:") and sig["issuer"] == ""
    _, other = key_pair(tmp_path / "..")
    r = cli(
        "pack",
        src,
        "-o",
        tmp_path / "p2",
        "--device",
        "cpu",
        "--source-signature",
        src / "model.sig",
        "--source-key",
        other,
    )
    assert r.returncode == 1 and not (tmp_path / "p2").exists()
    # verify a plain model directory, no pack
    ok = cli("verify-model", "key", src, "--signature", src / "model.sig", "--key", pub)
    assert ok.returncode == 0, ok.stderr
    wrong = cli("verify-model", "key", src, "--signature", src / "model.sig", "--key", other)
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr, wrong.stderr
    (src / "notes.txt").write_text("added after signing")
    bad = cli("verify-model", "key", src, "--signature", src / "model.sig", "--key", pub)
    assert bad.returncode == 1 and "notes.txt" in bad.stderr and "not covered" in bad.stderr


def test_the_pack_keeps_the_signature_bytes_it_verified_not_a_file_swapped_in_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source signature is verified, then kept in the pack: it was copied from its path again, so a file
    swapped in between (here a valid signature by a key nobody asked for) went into the pack unverified, under
    the record of the verified one. The pack keeps the very bytes that verified."""
    import hashlib

    from uc_attest.evidence import packing

    src = make_model(tmp_path / "model")
    priv, pub = key_pair(tmp_path)
    other_priv, _ = key_pair(tmp_path / "..")
    sig, other = tmp_path / "model.sig", tmp_path / "other.sig"
    for key, out in ((priv, sig), (other_priv, other)):
        r = model_signing("sign", "key", "--private_key", key, "--signature", out, src)
        assert r.returncode == 0, r.stderr
    verified, swapped = sig.read_bytes(), other.read_bytes()
    real = packing.verify_source

    def verify_then_swap(model_dir: Path, signature: Any, **kw: Any) -> Any:
        out = real(model_dir, signature, **kw)
        sig.write_bytes(swapped)  # after the verification, before the pack keeps it
        return out

    monkeypatch.setattr(packing, "verify_source", verify_then_swap)
    res = uc.write_pack(src, tmp_path / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None,
                        source_signature=uc.OmsSignature(sig, uc.PublicKey(pub)))  # fmt: skip
    record = res.manifest.source_signature
    assert record is not None and record.sha256.hex == hashlib.sha256(verified).hexdigest()
    kept = tmp_path / "pack" / record.file
    assert kept.read_bytes() == verified != swapped
    assert res.manifest.files[record.file] == record.sha256


def private_pki(tmp: Path, name: str = "Vendor") -> tuple[Path, Path, Path]:
    """A private CA and a code-signing leaf (SAN models@vendor.example): (CA PEM, leaf PEM, leaf key)."""
    now = dt.datetime.now(dt.UTC)

    def dn(cn: str) -> x509.Name:
        return x509.Name(
            [x509.NameAttribute(NameOID.ORGANIZATION_NAME, name), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        )

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(dn("Root CA")).issuer_name(dn("Root CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=365))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .sign(ca_key, hashes.SHA256()))  # fmt: skip
    leaf = (x509.CertificateBuilder().subject_name(dn("model signer")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(VENDOR)]), critical=False)
            .sign(ca_key, hashes.SHA256()))  # fmt: skip
    tmp.mkdir(parents=True, exist_ok=True)
    paths = tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return paths


def test_a_certificate_signed_source(tmp_path: Path) -> None:
    """model_signing's certificate method (a private PKI, no Sigstore): chain to the given CA, then the key."""
    src = make_model(tmp_path / "model")
    ca, leaf, key = private_pki(tmp_path / "pki")
    r = model_signing(
        "sign",
        "certificate",
        "--private_key",
        key,
        "--signing_certificate",
        leaf,
        "--certificate_chain",
        ca,
        "--signature",
        src / "model.sig",
        src,
    )
    assert r.returncode == 0, r.stderr
    issuer = "CN=Root CA,O=Vendor"
    pack = tmp_path / "pack"
    r = cli(
        "pack",
        src,
        "-o",
        pack,
        "--device",
        "cpu",
        "--source-signature",
        src / "model.sig",
        "--source-cert-chain",
        ca,
        "--source-identity",
        VENDOR,
        "--source-issuer",
        issuer,
        "--json",
    )
    assert r.returncode == 0, r.stderr
    sig = json.loads(r.stdout)["source_signature"]
    assert (sig["method"], sig["identity"], sig["issuer"]) == ("certificate", VENDOR, issuer)
    # another CA: refused, nothing written; the wrong identity: refused
    other_ca, _, _ = private_pki(tmp_path / "other", "Other")
    for extra in (
        ("--source-cert-chain", other_ca),
        ("--source-cert-chain", ca, "--source-identity", "x@y.example", "--source-issuer", issuer),
    ):
        bad = cli(
            "pack", src, "-o", tmp_path / "p2", "--device", "cpu", "--source-signature", src / "model.sig", *extra
        )
        assert bad.returncode == 1 and not (tmp_path / "p2").exists(), bad.stderr
        assert "Traceback" not in bad.stderr
    # without the chain the method is named, not guessed at
    r = cli(
        "verify-model",
        "sigstore",
        src,
        "--signature",
        src / "model.sig",
        "--identity",
        VENDOR,
        "--issuer",
        issuer,
        "--trust-config",
        "public-good",
        "--offline",
    )
    assert r.returncode not in (0, 1) and "certificate-method" in r.stderr and "Traceback" not in r.stderr
    ok = cli("verify-model", "certificate", src, "--signature", src / "model.sig", "--cert-chain", ca)
    assert ok.returncode == 0, ok.stderr
    named = ("verify-model", "certificate", src, "--signature", src / "model.sig", "--cert-chain", ca)
    assert cli(*named, "--identity", VENDOR, "--issuer", issuer).returncode == 0
    wrong = cli(*named, "--identity", "x@y.example", "--issuer", issuer)
    assert wrong.returncode == 1 and "x@y.example" in wrong.stderr and "Traceback" not in wrong.stderr
    assert cli(*named[:-1], other_ca).returncode == 1  # another PKI's CA
    half = cli(*named, "--identity", VENDOR)  # the signer is named by both, or not at all
    assert half.returncode == 2 and "both or neither" in half.stderr and "Traceback" not in half.stderr
    (src / "config.json").write_text("{}")
    changed = cli(*named)
    assert changed.returncode == 1 and "config.json" in changed.stderr


def test_a_source_that_does_not_verify_is_not_packed(instance: Running, tmp_path: Path) -> None:
    src = make_model(tmp_path / "model")
    sign_sigstore(instance, src)
    base = (
        "pack",
        src,
        "-o",
        tmp_path / "pack",
        "--device",
        "cpu",
        "--source-signature",
        src / "model.sig",
        "--instance",
        instance.dir,
    )
    r = cli(*base, "--source-identity", "someone-else@vendor.example")
    assert r.returncode == 1 and "someone-else@vendor.example" in r.stderr and not (tmp_path / "pack").exists()
    (src / "config.json").write_text((src / "config.json").read_text() + "\n")
    r = cli(*base, "--source-identity", VENDOR)
    assert r.returncode == 1 and "config.json" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "pack").exists()
    # a file the pack reads but the signature does not cover (signed with it ignored)
    src2 = make_model(tmp_path / "model2")
    sign_sigstore(instance, src2, VENDOR, "--ignore-paths", str(src2 / "tokenizer.json"))  # a path, not a name
    r = cli(
        "pack",
        src2,
        "-o",
        tmp_path / "p2",
        "--device",
        "cpu",
        "--source-signature",
        src2 / "model.sig",
        "--source-identity",
        VENDOR,
        "--instance",
        instance.dir,
    )
    assert r.returncode == 1 and "tokenizer.json" in r.stderr and "not covered" in r.stderr
    # a malformed signature file: exit 3 naming it
    (src2 / "model.sig").write_text("{not json")
    r = cli(
        "pack",
        src2,
        "-o",
        tmp_path / "p3",
        "--device",
        "cpu",
        "--source-signature",
        src2 / "model.sig",
        "--source-identity",
        VENDOR,
        "--instance",
        instance.dir,
    )
    assert r.returncode == 3 and "model.sig" in r.stderr


def _key_signed(model: Path, statement: dict[str, Any], tmp: Path) -> tuple[Path, Path]:
    """An OMS bundle signed with a key by hand (the way model_signing's key method writes one)."""
    key = ec.generate_private_key(ec.SECP256R1())
    payload = encode(statement)
    sig = key.sign(pae(PAYLOAD_TYPE_IN_TOTO, payload), ec.ECDSA(hashes.SHA256()))
    bundle = {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
              "verificationMaterial": {"publicKey": {"hint": "k"}, "tlogEntries": []},
              "dsseEnvelope": {"payload": base64.b64encode(payload).decode(), "payloadType": PAYLOAD_TYPE_IN_TOTO,
                               "signatures": [{"sig": base64.b64encode(sig).decode()}]}}  # fmt: skip
    path, pub = tmp / "model.sig", tmp / "k.pub"
    path.write_text(json.dumps(bundle))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    return path, pub


@pytest.mark.parametrize("name", ["../outside.bin", "/etc/passwd", "a/../../b", "sub//x", "./config.json"])
def test_an_unsafe_resource_name_is_exit_3_naming_it(tmp_path: Path, name: str) -> None:
    model = make_model(tmp_path / "model")
    statement = build_oms("model", {"config.json": "00" * 32})
    statement["predicate"]["resources"].append({"name": name, "algorithm": "sha256", "digest": "11" * 32})
    statement["predicate"]["resources"].sort(key=lambda r: r["name"])
    import hashlib

    root = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in statement["predicate"]["resources"]))
    statement["subject"][0]["digest"]["sha256"] = root.hexdigest()
    sig, pub = _key_signed(model, statement, tmp_path)
    r = cli("verify-model", "key", model, "--signature", sig, "--key", pub)
    assert r.returncode == 3 and name in r.stderr and "Traceback" not in r.stderr


def test_a_symlink_leaving_the_model_is_refused(tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the model")
    (model / "link.txt").symlink_to(outside)
    priv, pub = key_pair(tmp_path)
    r = model_signing(
        "sign", "key", "--private_key", priv, "--signature", tmp_path / "model.sig", "--allow_symlinks", model
    )
    assert r.returncode == 0, r.stderr
    r = cli("verify-model", "key", model, "--signature", tmp_path / "model.sig", "--key", pub)
    assert r.returncode == 3 and "link.txt" in r.stderr and "leaves the model directory" in r.stderr


def test_our_payload_meets_the_oms_schema_when_it_is_at_hand(packed: Path) -> None:
    """The spec's JSON schemas (ossf/model-signing-spec `schemas/v1.0`, package `oms-schemas`) are not on PyPI:
    run against them where they are installed; parse_oms enforces the same constraints everywhere."""
    from uc_attest.claims.oms import FILES_SHA256, scan

    statement = build_oms(packed.name, scan(packed, FILES_SHA256))
    parse_oms(Statement.parse(encode(statement)))
    oms_schemas = pytest.importorskip("oms_schemas", reason="oms-schemas (the OMS spec's schemas) is not installed")
    import jsonschema

    schema_dir = Path(oms_schemas.__file__).parent / "v1.0"
    registry = __import__("referencing").Registry().with_resources(
        [(json.loads(p.read_text())["$id"], __import__("referencing").Resource.from_contents(json.loads(p.read_text())))
         for p in schema_dir.glob("*.json")])  # fmt: skip
    jsonschema.Draft202012Validator(json.loads((schema_dir / "statement.schema.json").read_text()),
                                    registry=registry).validate(statement)  # fmt: skip
