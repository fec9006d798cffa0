"""Audit over real HTTP on a Rekor v1 log: every entry about a model found through the log's search index,
verified by sigstore-python, a chain of custody, a forked log caught, and a self-contained HTML report.
(The same on Rekor v2, whose entries are found through the monitor's index: test_tile_audit.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import uc_attest as uc
from tests.conftest import make_model
from tests.e2e.test_cli import cli
from tests.integration.conftest import free_port


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
