"""Audit over real HTTP on a Rekor v1 log: every entry about a model found through the log's search index,
verified by sigstore-python, a chain of custody, a forked log caught, and a self-contained HTML report.
(The same on Rekor v2, whose entries are found through the monitor's index: test_tile_audit.py.)
What a hostile log or report holds: a malformed entry and a release that does not verify are shown as such, a
validation given twice counts once, and the HTML report escapes every untrusted field."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import uc_attest as uc
from tests.conftest import RELEASE, _copy, make_model
from tests.e2e.test_cli import cli
from tests.integration.conftest import Running, free_port, start_instance


def _release_and_validate(inst: Path, pack: Path, tmp: Path) -> None:
    trust = uc.select_trust(None, inst)
    uc.attest_pack(pack, trust, sign_as=uc.SignAs(dev_identity="release-bot@bank.example"))
    (tmp / "m.json").write_text(json.dumps({"evaluation_set": "unit", "metrics": {"gap": 0.01}}))
    uc.validate_pack(pack, tmp / "m.json", trust, sign_as=uc.SignAs(dev_identity="validator@bank.example"))


def test_audit_builds_the_chain_of_custody_and_a_report(tmp_path: Path) -> None:
    inst = tmp_path / "inst"
    uc.init_instance(inst, free_port(), rekor_version=1)
    srv = uc.instance_server(inst).start()
    try:
        pack = tmp_path / "pack"
        uc.write_pack(make_model(tmp_path / "src"), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
        _release_and_validate(inst, pack, tmp_path)
        other = tmp_path / "other"  # another model in the same log must not show up
        uc.write_pack(
            make_model(tmp_path / "src2", seed=3), other, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None
        )
        uc.attest_pack(other, uc.select_trust(None, inst), sign_as=uc.SignAs(dev_identity="release-bot@bank.example"))
        r = uc.audit(pack, uc.TrustRoot.instance(inst))
        assert r.ok, r.to_dict()
        kinds = [e.kind for e in r.events]
        assert kinds == ["release", "oms", "validation"]  # attest logs the release and the OMS signature
        assert {e.signer for e in r.events} == {"release-bot@bank.example", "validator@bank.example"}
        assert all(e.details["root"] == str(r.root) for e in r.events if e.kind != "oms")
        assert {c.rule for c in r.checks} >= {"log.checkpoint", "custody.release", "custody.validation", "pack.matches"}
        html = uc.render_report_html(r.to_dict())
        assert "<svg" in html and "release-bot@bank.example" in html
        for external in ("src=", "href=", "<link", "<script", "@import", "url("):  # self-contained
            assert external not in html
        out = cli("audit", pack, "--instance", inst, "--report", tmp_path / "report.html", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["ok"] and (tmp_path / "report.html").read_text().startswith("<!doctype html>")
        assert json.loads(out.stdout)["validated"] is True
        # The other model's root: one release, never validated: a status ("not validated yet"), not a failure
        r2 = uc.audit(
            None, uc.TrustRoot.instance(inst), manifest_root=uc.load_manifest(other / uc.MANIFEST_NAME).root.hex
        )
        assert [e.kind for e in r2.events] == ["release"]
        v = next(c for c in r2.checks if c.rule == "custody.validation")
        assert v.skipped and v.detail.startswith("not validated yet") and r2.ok and not r2.validated
        assert "NOT VALIDATED YET" in uc.render_report_html(r2.to_dict())
    finally:
        srv.stop()


def test_audit_catches_a_rewritten_log(tmp_path: Path) -> None:
    inst = tmp_path / "inst"
    uc.init_instance(inst, free_port(), rekor_version=1)
    pack = tmp_path / "pack"
    uc.write_pack(make_model(tmp_path / "src"), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    srv = uc.instance_server(inst).start()
    try:
        _release_and_validate(inst, pack, tmp_path)
        v1, tiles = uc.watch_log(tmp_path / "state.json", uc.TrustRoot.instance(inst))  # both logs of the trust root
        assert v1.ok and v1.current.size == 3 and tiles.ok and tiles.current.size == 0
    finally:
        srv.stop()
    # The operator rewrites history: a fresh log with the same key, different entries, same size.
    forged = tmp_path / "forged"
    shutil.copytree(inst, forged)
    import sqlite3

    db = sqlite3.connect(forged / "log.sqlite3")
    for t in ("entries", "index_keys", "checkpoints", "attestations"):
        db.execute(f"DELETE FROM {t}")
    db.commit()
    db.close()
    srv = uc.instance_server(forged).start()
    try:
        _release_and_validate(forged, pack, tmp_path)
        r = uc.audit(pack, uc.TrustRoot.instance(forged), state=tmp_path / "state.json")
        assert not r.ok
        bad = next(c for c in r.checks if c.rule == "log.consistency")
        assert not bad.ok and "fork" in bad.detail
        out = cli("audit", pack, "--instance", forged, "--state", tmp_path / "state.json")
        assert out.returncode == 1 and "log.consistency" in out.stderr
    finally:
        srv.stop()


def test_inventory_lists_models_packs_validations_and_status(tmp_path: Path) -> None:
    inst = tmp_path / "inst"
    uc.init_instance(inst, free_port(), rekor_version=1)
    srv = uc.instance_server(inst).start()
    try:
        src = make_model(tmp_path / "src")
        old, new = tmp_path / "old", tmp_path / "new"
        uc.write_pack(src, old, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
        _release_and_validate(inst, old, tmp_path)
        uc.write_pack(
            src, new, uc.Scheme(group_size=64), "cpu", calibration=None, allocation=None
        )  # a newer pack of the same source model
        uc.attest_pack(new, uc.select_trust(None, inst), sign_as=uc.SignAs(dev_identity="release-bot@bank.example"))
        rows = uc.inventory(uc.TrustRoot.instance(inst))
        by_root = {r["manifest_root"]: r for r in rows}
        old_root = str(uc.load_manifest(old / uc.MANIFEST_NAME).root)
        new_root = str(uc.load_manifest(new / uc.MANIFEST_NAME).root)
        assert by_root[old_root]["status"] == "superseded" and by_root[old_root]["validations"] == 1
        assert by_root[new_root]["status"] == "not validated"
        assert by_root[old_root]["model"] == by_root[new_root]["model"]
        out = cli("inventory", "--instance", inst, "--csv")
        assert out.returncode == 0 and out.stdout.splitlines()[0].startswith("model,manifest_root")
        assert len(out.stdout.splitlines()) == 3
    finally:
        srv.stop()


# -- what a hostile log or report holds -----------------------------------------------------------------------


def _append_raw(inst: Running, body: dict[str, Any], keys: list[str]) -> None:
    """A body any public log could hold (valid JSON, not a shape we expect), written to the store directly."""
    from uc_attest.core.digest import canonical_json

    inst.server.instance.log.append(canonical_json(body), str(body.get("kind")), keys)


def test_audit_survives_a_malformed_log_entry(tmp_path: Path) -> None:
    inst = start_instance(tmp_path / "inst")
    try:
        pack = tmp_path / "pack"
        uc.write_pack(make_model(tmp_path / "src"), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
        uc.attest_pack(pack, uc.select_trust(None, inst.dir), sign_as=uc.SignAs(dev_identity=RELEASE))
        root = str(uc.load_manifest(pack / uc.MANIFEST_NAME).root)
        _append_raw(inst, {"apiVersion": "0.0.1", "kind": "dsse", "spec": {}}, [root])
        r = cli("audit", pack, "--instance", inst.dir, "--json")
        assert "Traceback" not in r.stderr, r.stderr
        assert r.returncode == 1, r.stderr
        events = json.loads(r.stdout)["events"]
        assert any(not e["ok"] for e in events) and any(e["ok"] for e in events)
    finally:
        inst.server.stop()


def _self_signed_release_entry(inst: Running, statement: bytes) -> None:
    """A DSSE entry a stranger can log: a release statement signed with a self-signed certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mallory")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(RELEASE)]), critical=True)
        .sign(key, hashes.SHA256())
    )
    ptype = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(statement), statement)
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    env = {
        "payload": base64.b64encode(statement).decode(),
        "payloadType": ptype,
        "signatures": [{"sig": base64.b64encode(sig).decode()}],
    }
    pem = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()
    entry = {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {"proposedContent": {"envelope": json.dumps(env), "verifiers": [pem]}},
    }
    req = urllib.request.Request(
        f"{inst.url}/api/v1/log/entries", data=json.dumps(entry).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201


def test_inventory_shows_a_release_that_does_not_verify(tmp_path: Path) -> None:
    inst = start_instance(tmp_path / "inst", rekor_version=1)  # a Rekor v1 log stores the statements
    try:
        pack = tmp_path / "pack"
        uc.write_pack(make_model(tmp_path / "src"), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
        res = uc.attest_pack(pack, uc.select_trust(None, inst.dir), sign_as=uc.SignAs(dev_identity=RELEASE))
        bundle = json.loads(res.bundle.read_text())
        statement = base64.b64decode(bundle["dsseEnvelope"]["payload"])
        forged = statement.replace(b"release", b"re1ease")  # another statement, same shape
        _self_signed_release_entry(inst, forged)
        rows = uc.inventory(uc.TrustRoot.instance(inst.dir))
        bad = [r for r in rows if str(r["status"]).startswith("DOES NOT VERIFY")]
        good = [r for r in rows if r["status"] == "not validated"]
        assert len(good) == 1 and len(bad) == 1, rows
        out = cli("inventory", "--instance", inst.dir, "--json")
        assert out.returncode == 0 and "DOES NOT VERIFY" in out.stdout
    finally:
        inst.server.stop()


def test_audit_counts_a_validation_given_and_found_beside_the_pack_once(world: dict[str, Any], tmp_path: Path) -> None:
    pack = _copy(world, tmp_path)
    report = tmp_path / "metrics.json"
    report.write_text('{"evaluation_set": "holdout-v1", "metrics": {"gap": 0.01}}')
    r = cli("validate", pack, "--report", report, "--instance", world["inst"].dir, "--identity", "v@bank.example")
    assert r.returncode == 0, r.stderr
    beside = tmp_path / "pack.validation.sigstore.json"
    copy = tmp_path / "copy.json"
    shutil.copy(beside, copy)
    r = cli("audit", pack, "--instance", world["inst"].dir, "--bundle", beside, "--bundle", copy, "--json")
    assert r.returncode in (0, 1), r.stderr
    audit = json.loads(r.stdout)
    validations = [e for e in audit["events"] if e["kind"] == "validation"]
    assert len(validations) == 1, validations
    assert any(c["rule"] == "custody.validation" and c["detail"].startswith("1 validation") for c in audit["checks"])


def test_html_report_escapes_untrusted_fields() -> None:
    evil = "<script>alert(1)</script>"
    report = {
        "ok": False,
        "target": evil,
        "manifest_root": evil,
        "log": evil,
        "checkpoint": {"size": 1, "root": evil},
        "requests": 1,
        "seconds": 0.1,
        "checks": [{"rule": evil, "ok": False, "detail": evil, "hint": evil}],
        "events": [
            {
                "time": 0,
                "kind": "release",
                "log_index": 3,
                "uuid": evil,
                "signer": evil,
                "issuer": evil,
                "ok": False,
                "details": {
                    "root": evil,
                    "builder": evil,
                    "scheme": {"id": evil},
                    "source_digest": evil,
                    "files": evil,
                },
                "problems": [evil],
            },
            {
                "time": 0,
                "kind": evil,
                "log_index": 4,
                "uuid": "",
                "signer": "",
                "issuer": "",
                "ok": True,
                "details": {"x": evil},
                "problems": [],
            },
        ],
        "tensors": [
            {"name": evil, "dtype": evil, "shape": [1], "digest": evil, "bits": 5, "rel_err_ppm": 3, "moments": evil}
        ],
    }
    page = uc.render_report_html(report)
    assert "<script" not in page and "&lt;script&gt;" in page
