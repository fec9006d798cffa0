"""Attest and verify through the real sigstore-python Signer/Verifier against the instance over HTTP.

No mocks: every bundle here was produced by sigstore-python talking HTTP to the embedded
instance on 127.0.0.1, and every verification is sigstore-python's Verifier.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

import uc_attest as uc
from tests.integration.conftest import Running, start_instance
from uc_attest.evidence.bundle import verify_dsse_bundle
from uc_attest.evidence.identity import SignerSpec

IDENTITY = "release-bot@example.com"


@pytest.fixture(scope="module")
def signed(instance: Running, packed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "pack.sigstore.json"
    trust = uc.select_trust(None, instance.dir)
    res = uc.attest_pack(packed, trust, sign_as=uc.SignAs(dev_identity=IDENTITY), bundle_out=out)
    assert res.bundle == out and res.manifest_inline and res.identity == IDENTITY
    return out


@pytest.fixture(scope="module")
def signed_v1(instance_v1: Running, packed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle-v1") / "pack.sigstore.json"
    uc.attest_pack(
        packed, uc.select_trust(None, instance_v1.dir), sign_as=uc.SignAs(dev_identity=IDENTITY), bundle_out=out
    )
    return out


def _check(
    instance: Running, pack: Path, bundle: Path, identity: str = IDENTITY, issuer: str | None = None
) -> uc.Verdict:
    return uc.verify(
        pack,
        uc.Anchor.signed_by(
            identity, issuer or instance.issuer, bundle=bundle, trust=uc.TrustRoot.instance(instance.dir)
        ),
    )


def test_attested_pack_verifies_offline(instance: Running, packed: Path, signed: Path) -> None:
    """The default: Rekor v2 (a hashedrekord over the DSSE PAE, no SET) with an RFC 3161 timestamp."""
    rc = _check(instance, packed, signed)
    assert rc.ok, rc.to_dict()
    rules = {c.rule for c in rc.checks}
    assert {"release.signer", "release.log", "log.online", "pack.files", "pack.manifest", "pack.tensors"} <= rules
    online = next(c for c in rc.checks if c.rule == "log.online")
    assert not online.skipped and "tiles" in online.detail
    bundle = json.loads(signed.read_text())
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    entry = bundle["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"] == {"kind": "hashedrekord", "version": "0.0.2"}
    assert "inclusionPromise" not in entry and int(entry.get("integratedTime") or 0) == 0
    assert len(bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]) == 1
    ev = verify_dsse_bundle(signed, uc.select_trust(None, instance.dir), [SignerSpec(instance.issuer, IDENTITY)])
    assert [t.kind for t in ev.times] == ["rfc3161"] and ev.signed_at is not None


def test_v1_bundles_still_verify(instance_v1: Running, packed: Path, signed_v1: Path) -> None:
    """An instance that prefers Rekor v1: a dsse entry with its SET, verified as before."""
    rc = _check(instance_v1, packed, signed_v1)
    assert rc.ok, rc.to_dict()
    entry = json.loads(signed_v1.read_text())["verificationMaterial"]["tlogEntries"][0]
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.1"} and entry["inclusionPromise"]
    note = entry["inclusionProof"]["checkpoint"]["envelope"]
    # Rekor's convention (sigstore-js checks it): origin "<log host> - <tree id>", signed under the host's name
    assert note.startswith("127.0.0.1 - ") and "\n\u2014 127.0.0.1 " in note
    assert "re-fetched" in next(c for c in rc.checks if c.rule == "log.online").detail


@pytest.mark.parametrize(("identity", "issuer"), [("eve@example.com", None), (IDENTITY, "https://accounts.google.com")])
def test_wrong_identity_or_issuer_is_refused(
    instance: Running, packed: Path, signed: Path, identity: str, issuer: str | None
) -> None:
    rc = _check(instance, packed, signed, identity, issuer)
    assert not rc.ok and not rc.checks[0].ok


def _tamper(bundle: Path, tmp: Path, edit: Any) -> Path:
    data = json.loads(bundle.read_text())
    edit(data)
    out = tmp / "tampered.sigstore.json"
    out.write_text(json.dumps(data))
    return out


def _flip_b64(value: str, pos: int = 10) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[pos % len(raw)] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _payload(d: dict[str, Any]) -> None:
    env = d["dsseEnvelope"]
    stmt = json.loads(base64.b64decode(env["payload"]))
    stmt["predicate"]["runDetails"]["builder"]["id"] = "evil"
    env["payload"] = base64.b64encode(json.dumps(stmt).encode()).decode()


def _signature(d: dict[str, Any]) -> None:
    d["dsseEnvelope"]["signatures"][0]["sig"] = _flip_b64(d["dsseEnvelope"]["signatures"][0]["sig"], 20)


def _certificate(d: dict[str, Any]) -> None:
    c = d["verificationMaterial"]["certificate"]
    c["rawBytes"] = _flip_b64(c["rawBytes"], 16)  # the serial number: the certificate parses, its CA's signature fails


def _set(d: dict[str, Any]) -> None:
    e = d["verificationMaterial"]["tlogEntries"][0]
    e["inclusionPromise"]["signedEntryTimestamp"] = _flip_b64(e["inclusionPromise"]["signedEntryTimestamp"], 12)


def _inclusion_root(d: dict[str, Any]) -> None:
    p = d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    p["rootHash"] = _flip_b64(p["rootHash"], 3)


def _checkpoint(d: dict[str, Any]) -> None:
    p = d["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    p["checkpoint"]["envelope"] = p["checkpoint"]["envelope"].replace("\n", "\nextra\n", 1)


def _integrated_time(d: dict[str, Any]) -> None:
    e = d["verificationMaterial"]["tlogEntries"][0]
    e["integratedTime"] = str(int(e["integratedTime"]) + 3600)


def _timestamp(d: dict[str, Any]) -> None:
    ts = d["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
    ts["signedTimestamp"] = _flip_b64(ts["signedTimestamp"], -20)


def _no_timestamp(d: dict[str, Any]) -> None:
    d["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] = []


def _duplicate_timestamp(d: dict[str, Any]) -> None:
    tss = d["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    tss.append(dict(tss[0]))


@pytest.mark.parametrize("edit", [_payload, _signature, _certificate, _inclusion_root, _checkpoint])
def test_altered_bundle_is_refused_with_reason(
    instance: Running, packed: Path, signed: Path, tmp_path: Path, edit: Any
) -> None:
    rc = _check(instance, packed, _tamper(signed, tmp_path, edit))
    assert not rc.ok
    assert not rc.checks[0].ok and rc.checks[0].detail


@pytest.mark.parametrize("edit", [_timestamp, _no_timestamp, _duplicate_timestamp])
def test_a_v2_entry_needs_a_verified_timestamp(
    instance: Running, packed: Path, signed: Path, tmp_path: Path, edit: Any
) -> None:
    rc = _check(instance, packed, _tamper(signed, tmp_path, edit))
    assert not rc.ok
    first = rc.checks[0]
    assert first.rule == "release.timestamps" and not first.ok, rc.to_dict()


@pytest.mark.parametrize("edit", [_payload, _signature, _set, _inclusion_root, _checkpoint, _integrated_time])
def test_altered_v1_bundle_is_refused_with_reason(
    instance_v1: Running, packed: Path, signed_v1: Path, tmp_path: Path, edit: Any
) -> None:
    rc = _check(instance_v1, packed, _tamper(signed_v1, tmp_path, edit))
    assert not rc.ok
    assert not rc.checks[0].ok and rc.checks[0].detail


def test_another_instances_trust_root_refuses(packed: Path, signed: Path, tmp_path: Path) -> None:
    other = start_instance(tmp_path / "other")
    try:
        rc = uc.verify(
            packed,
            uc.Anchor.signed_by(IDENTITY, other.issuer, bundle=signed, trust=uc.TrustRoot.instance(other.dir)),
        )
        assert not rc.ok and not rc.checks[0].ok
        # the first fact that fails is named: the certificate was not issued under this root (not a timestamp)
        assert rc.checks[0].rule == "release.signer" and "does not chain" in rc.checks[0].detail, rc.to_dict()
    finally:
        other.server.stop()


def test_tampered_pack_with_valid_bundle_names_tensor_and_file(
    instance: Running, packed: Path, signed: Path, tmp_path: Path
) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(packed, pack)
    data = bytearray((pack / "model.safetensors").read_bytes())
    data[-30] ^= 1
    (pack / "model.safetensors").write_bytes(bytes(data))
    rc = _check(instance, pack, signed)
    assert rc.checks[0].ok and not rc.ok
    subjects = {f.subject for f in rc.findings}
    assert subjects and all(s.endswith(".weight") for s in subjects)  # shards are proved by their tensors
    anchor = uc.Anchor.signed_by(IDENTITY, instance.issuer, bundle=signed, trust=uc.TrustRoot.instance(instance.dir))
    rc = uc.verify(pack, anchor, tensors=uc.TensorCheck(shard_digests=True))
    subjects = {f.subject for f in rc.findings}
    assert "model.safetensors" in subjects and len(subjects) >= 2  # and by their own digests when asked


def test_large_manifest_goes_by_digest(instance: Running, packed: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.json"
    res = uc.attest_pack(
        packed,
        uc.select_trust(None, instance.dir),
        sign_as=uc.SignAs(dev_identity=IDENTITY),
        bundle_out=out,
        inline="never",
    )
    assert not res.manifest_inline
    assert _check(instance, packed, out).ok
    # the manifest in the pack is now bound only by digest: changing it is caught
    pack = tmp_path / "pack"
    shutil.copytree(packed, pack)
    m = json.loads((pack / uc.MANIFEST_NAME).read_text())
    m["scheme"]["bits"] = 4
    (pack / uc.MANIFEST_NAME).write_text(json.dumps(m))
    rc = _check(instance, pack, out)
    assert not rc.ok


@pytest.mark.parametrize(
    ("pattern", "allowed"),
    [(r"^release-bot@example\.com$", True), (r"^[a-z-]+@example\.com$", True), (r"^release-bot@example\.org$", False)],
)
def test_policy_identity_regex(
    instance: Running, packed: Path, signed: Path, tmp_path: Path, pattern: str, allowed: bool
) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        f"version: 1\nname: regex\ntrust: {{instance: {instance.dir}}}\nsigners:\n  release:\n"
        f"    - issuer: {instance.issuer}\n      identity_regex: '{pattern}'\n"
    )
    v = uc.verify(packed, uc.Anchor.policy(policy, bundle=signed))
    assert v.ok is allowed, v.to_dict()
