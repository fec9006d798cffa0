"""`log watch` over C2SP tiles (Rekor v2), and audit/inventory through its index, over real HTTP.

The log is the embedded instance's v2 log (and a static copy of its tiles served by `python -m http.server`,
i.e. any tiles mirror). Synthetic entries carry real signatures (uc_attest.testing.logs); releases and
validations are signed by sigstore-python. Every way the log can lie is tried: a rewritten tile, an entry
bundle that does not match its tile, a higher tile rewritten, a bad checkpoint signature, two trees of the
same size, rewritten history; each exits 1 naming the tile or entry and keeps the stored state.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import uc_attest as uc
from tests.conftest import make_model
from tests.e2e.test_cli import cli
from tests.integration.conftest import Running, free_port, start_instance
from uc_attest.testing.logs import hashedrekord_requests
from uc_attest.transparency.tiles import WIDTH, tile_path, tile_width

RELEASE, VALIDATOR, SYNTH = "release-bot@bank.example", "validator@bank.example", "synthetic@example.com"


def append(inst: Running, requests: list[dict[str, Any]]) -> None:
    url = f"{inst.url}/rekor-v2/api/v2/log/entries"

    def one(req: dict[str, Any]) -> None:
        r = urllib.request.Request(url, data=json.dumps(req).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(r, timeout=30) as resp:
            assert resp.status in (200, 201)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, requests))


def mirror(inst: Running, dest: Path) -> str:
    """A static copy of the v2 log's tiles at its current size (every full and partial tile, the entries)."""
    base = f"{inst.url}/rekor-v2"
    note = urllib.request.urlopen(f"{base}/checkpoint", timeout=10).read()
    size = int(note.decode().split("\n")[1])
    paths = []
    level = 0
    while (size >> (8 * level)) > 0:
        for n in range(-(-(size >> (8 * level)) // WIDTH)):
            paths.append(tile_path(level, n, tile_width(size, level, n)))
        level += 1
    paths += [tile_path(None, n, tile_width(size, 0, n)) for n in range(-(-size // WIDTH))]
    for p in paths:
        out = dest / p
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(urllib.request.urlopen(f"{base}/{p}", timeout=10).read())
    (dest / "checkpoint").write_bytes(note)
    return note.decode()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """600 synthetic entries (3 level-0 tiles, a level-1 tile), then a release (and its OMS signature) and its
    validation."""
    root = tmp_path_factory.mktemp("tiles")
    inst = start_instance(root / "inst")
    append(inst, hashedrekord_requests(600, SYNTH))
    pack = root / "pack"
    uc.write_pack(make_model(root / "src"), pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    trust = uc.select_trust(None, inst.dir)
    uc.attest_pack(pack, trust, sign_as=uc.SignAs(dev_identity=RELEASE))
    (root / "m.json").write_text(json.dumps({"evaluation_set": "unit", "metrics": {"gap": 0.01}}))
    uc.validate_pack(pack, root / "m.json", trust, sign_as=uc.SignAs(dev_identity=VALIDATOR))
    yield {"root": root, "inst": inst, "pack": pack}
    inst.server.stop()


def indexed_size(index: Path) -> int:
    with sqlite3.connect(index) as db:
        return int(db.execute("SELECT size FROM logs").fetchone()[0])


def test_watch_verifies_every_entry_and_tile_then_only_what_is_new(world: dict[str, Any], tmp_path: Path) -> None:
    inst, state = world["inst"], tmp_path / "witness.json"
    r = cli("log", "watch", "--state", state, "--instance", inst.dir, "--json")
    assert r.returncode == 0, r.stderr
    tiles = next(x for x in json.loads(r.stdout)["logs"] if x["kind"] == "tiles")
    size = tiles["current"]["size"]
    assert size == 603 and tiles["new_entries"] == 603 and tiles["indexed"] == 603
    assert tiles["previous"] is None and tiles["requests"] >= 7 and tiles["bytes"] > 600 * 500
    index = tmp_path / "witness.tiles.sqlite3"
    assert indexed_size(index) == size
    append(inst, hashedrekord_requests(5, SYNTH, seed=1))
    again = json.loads(cli("log", "watch", "--state", state, "--instance", inst.dir, "--json").stdout)
    tiles = next(x for x in again["logs"] if x["kind"] == "tiles")
    assert tiles["previous"]["size"] == size and tiles["new_entries"] == 5 and tiles["requests"] <= 6
    # only what the watch concerns is indexed (the compact range still covers everything)
    only = tmp_path / "only.sqlite3"
    r = cli(
        "log",
        "watch",
        "--state",
        tmp_path / "w2.json",
        "--index",
        only,
        "--instance",
        inst.dir,
        "--identity",
        RELEASE,
        "--json",
    )
    tiles = next(x for x in json.loads(r.stdout)["logs"] if x["kind"] == "tiles")
    assert r.returncode == 0 and tiles["indexed"] == 2 and tiles["new_entries"] == size + 5  # release + OMS
    with sqlite3.connect(only) as db:
        assert db.execute("SELECT identity FROM entries").fetchall() == [(RELEASE,), (RELEASE,)]
    bad = cli("log", "watch", "--state", tmp_path / "w3.json", "--instance", inst.dir, "--identity-regex", "release")
    assert bad.returncode == 3 and "anchored" in bad.stderr


@pytest.fixture
def static_mirror(world: dict[str, Any], tmp_path: Path) -> Iterator[tuple[Path, str]]:
    site = tmp_path / "site"
    site.mkdir()
    mirror(world["inst"], site)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=site,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/checkpoint", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    yield site, url
    proc.terminate()
    proc.wait()


def _watch_mirror(world: dict[str, Any], tmp_path: Path, url: str, index: Path) -> subprocess.CompletedProcess[str]:
    return cli(
        "log",
        "watch",
        "--state",
        tmp_path / "w.json",
        "--index",
        index,
        "--instance",
        world["inst"].dir,
        "--mirror",
        url,
    )


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("target", "offset", "named"),
    [
        ("tile/0/001", 40, "does not match tile/0/001"),  # a rewritten leaf hash
        ("tile/entries/001", 300, "of tile/entries/001 does not match tile/0/001"),  # an entry changed
        ("tile/1/000.p/2", 5, "tile/1/000.p/2 position 0"),  # a higher tile rewritten
        ("checkpoint", -10, "does not verify with the log key"),  # a forged signature
    ],
)
def test_a_lying_mirror_is_caught_naming_the_tile(
    world: dict[str, Any], static_mirror: tuple[Path, str], tmp_path: Path, target: str, offset: int, named: str
) -> None:
    site, url = static_mirror
    index = tmp_path / "index.sqlite3"
    ok = _watch_mirror(world, tmp_path, url, index)
    assert ok.returncode == 0, ok.stderr  # the honest copy verifies with the log's own key
    before = indexed_size(index)
    shutil.rmtree(tmp_path / "fresh", ignore_errors=True)
    fresh = tmp_path / "fresh.sqlite3"  # a first run (nothing stored) reads every tile
    if target == "checkpoint":
        text = (site / "checkpoint").read_text()
        head, sig = text.rsplit(" ", 1)
        import base64

        raw = bytearray(base64.b64decode(sig))
        raw[offset] ^= 1
        (site / "checkpoint").write_text(f"{head} {base64.b64encode(bytes(raw)).decode()}\n")
    else:
        _flip(site / target, offset)
    r = _watch_mirror(world, tmp_path, url, fresh)
    assert r.returncode == 1 and named in r.stderr and "Traceback" not in r.stderr, r.stderr
    # a monitor that verified these tiles before does not fetch them again (full tiles are immutable), but it
    # never takes a lie into its state: the checkpoint is re-verified and the tiles it reads must hash to it
    r = _watch_mirror(world, tmp_path, url, index)
    assert r.returncode == (1 if target in ("checkpoint", "tile/1/000.p/2") else 0), r.stderr
    assert indexed_size(index) == before
    with sqlite3.connect(fresh) as db:
        assert db.execute("SELECT COUNT(*) FROM logs").fetchone()[0] == 0


def _fork(world: dict[str, Any], tmp_path: Path, count: int, seed: int) -> Running:
    """The same log key, another history: ``count`` different entries in a copy of the instance."""
    forged = tmp_path / "forged"
    shutil.copytree(world["inst"].dir, forged)
    with sqlite3.connect(forged / "log.sqlite3") as db:
        db.execute("DELETE FROM v2_entries")
        db.execute("DELETE FROM v2_checkpoints")
    server = uc.instance_server(forged, free_port(), move=True).start()  # its URLs rewritten for the new port
    inst = Running(forged, uc.load_instance(forged), server, forged / "trust_config.json")
    append(inst, hashedrekord_requests(count, SYNTH, seed=seed))
    return inst


def test_two_trees_of_the_same_size_and_a_rewritten_history_are_caught(world: dict[str, Any], tmp_path: Path) -> None:
    honest = world["inst"]
    index = tmp_path / "index.sqlite3"
    assert (
        cli("log", "watch", "--state", tmp_path / "w.json", "--index", index, "--instance", honest.dir).returncode == 0
    )
    size = indexed_size(index)
    forged = _fork(world, tmp_path, size, seed=7)
    try:
        r = cli("log", "watch", "--state", tmp_path / "w.json", "--index", index, "--instance", forged.dir)
        assert r.returncode == 1 and f"fork: two checkpoints of size {size}" in r.stderr, r.stderr
        assert indexed_size(index) == size
        append(forged, hashedrekord_requests(300, SYNTH, seed=8))  # the forged tree grows past the witnessed one
        r = cli("log", "watch", "--state", tmp_path / "w.json", "--index", index, "--instance", forged.dir)
        assert r.returncode == 1 and "rewrites the history verified at size" in r.stderr, r.stderr
        assert "tile/" in r.stderr and indexed_size(index) == size
    finally:
        forged.server.stop()


# -- audit and inventory on Rekor v2 -------------------------------------------------------------------------


def test_audit_on_rekor_v2_proves_the_bundles_and_lists_the_rest(world: dict[str, Any], tmp_path: Path) -> None:
    inst, pack = world["inst"], world["pack"]
    other = tmp_path / "other"  # another release by the same signer
    uc.write_pack(
        make_model(tmp_path / "src2", seed=3), other, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None
    )
    uc.attest_pack(other, uc.select_trust(None, inst.dir), sign_as=uc.SignAs(dev_identity=RELEASE))
    r = uc.audit(pack, uc.TrustRoot.instance(inst.dir), state=tmp_path / "w.json")
    assert r.ok, r.to_dict()
    kinds = sorted(e.kind for e in r.events)
    # the pack's release, its OMS signature and validation; the other model's release and OMS signature
    assert kinds == ["oms", "release", "unattributed", "unattributed", "validation"], kinds
    found = {e.kind: e for e in r.events}
    assert found["oms"].signer == RELEASE and found["oms"].details["model"] == "pack"
    assert found["release"].signer == RELEASE and found["validation"].signer == VALIDATOR
    assert found["release"].time > 0 and found["release"].details["log"] == "rekor-v2"
    assert found["unattributed"].signer == RELEASE  # the other model's release: no bundle given for it
    rules = {c.rule: c for c in r.checks}
    assert rules["custody.unattributed"].ok and rules["custody.release"].ok and rules["custody.validation"].ok
    again = uc.audit(pack, uc.TrustRoot.instance(inst.dir), state=tmp_path / "w.json")  # the index is kept and extended
    assert next(c for c in again.checks if c.rule == "log.consistency" and "indexed" in c.detail).ok
    # the other root: on Rekor v2 nothing is found without its bundle, and the audit says how to fix that
    root = str(uc.load_manifest(other / uc.MANIFEST_NAME).root)
    missing = uc.audit(None, uc.TrustRoot.instance(inst.dir), manifest_root=root)
    bad = next(c for c in missing.checks if c.rule == "custody.release")
    assert not missing.ok and not bad.ok and "--bundle" in (bad.hint or "")
    out = cli(
        "audit",
        "--manifest-root",
        root,
        "--instance",
        inst.dir,
        "--bundle",
        other.with_name("other.sigstore.json"),
        "--json",
        "--report",
        tmp_path / "r.html",
    )
    data = json.loads(out.stdout)
    assert [e["kind"] for e in data["events"] if e["kind"] == "release"] == ["release"]
    assert out.returncode == 0 and data["ok"] and data["validated"] is False  # released, not validated yet: a status
    assert "NOT VALIDATED YET" in (tmp_path / "r.html").read_text()
    assert (tmp_path / "r.html").read_text().startswith("<!doctype html>")


def test_audit_refuses_a_bundle_whose_entry_is_not_in_the_log(world: dict[str, Any], tmp_path: Path) -> None:
    inst, pack = world["inst"], world["pack"]
    doc = json.loads(pack.with_name("pack.sigstore.json").read_text())
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    entry["logIndex"] = str(int(entry["logIndex"]) - 1)  # claims another position in the log
    bad = tmp_path / "moved.sigstore.json"
    bad.write_text(json.dumps(doc))
    r = uc.audit(
        None,
        uc.TrustRoot.instance(inst.dir),
        manifest_root=str(uc.load_manifest(pack / uc.MANIFEST_NAME).root),
        bundles=[bad],
    )
    ev = next(e for e in r.events if e.details.get("bundle") == str(bad))
    assert not ev.ok and not r.ok and any("does not verify" in p or "not in the log" in p for p in ev.problems)


def test_inventory_on_rekor_v2_reads_statements_from_bundles(world: dict[str, Any], tmp_path: Path) -> None:
    inst, pack = world["inst"], world["pack"]
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    for b in [*pack.parent.glob("pack*.sigstore.json"), *pack.parent.glob("pack.model.sig")]:
        shutil.copy(b, bundles / b.name)
    oms_index = int(json.loads((bundles / "pack.model.sig").read_text())["verificationMaterial"]["tlogEntries"][0]
                    ["logIndex"])  # fmt: skip
    doc = json.loads((bundles / "pack.sigstore.json").read_text())
    import base64

    payload = bytearray(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    payload[20] ^= 1
    doc["dsseEnvelope"]["payload"] = base64.b64encode(bytes(payload)).decode()
    (bundles / "forged.sigstore.json").write_text(json.dumps(doc))
    rows = uc.inventory(uc.TrustRoot.instance(inst.dir), bundle_dirs=[bundles])
    root = str(uc.load_manifest(pack / uc.MANIFEST_NAME).root)
    good = [r for r in rows if r["manifest_root"] == root and r["status"] == "validated"]
    bad = [r for r in rows if str(r["status"]).startswith("DOES NOT VERIFY")]
    unknown = [r for r in rows if r.get("kind") == "unattributed"]
    assert len(good) == 1 and len(bad) == 1, rows
    assert len(unknown) >= 600 and all(r["status"].startswith("no statement known") for r in unknown)
    # the pack's OMS signature (attest writes it beside the pack) is attributed, not one more unknown entry
    assert oms_index not in {r["log_index"] for r in unknown}
    assert all(r["released"] is None and r["first_seen"] > 0 for r in unknown)  # not a release time
    out = cli("inventory", "--instance", inst.dir, "--bundles", bundles, "--csv")
    assert out.returncode == 0 and "validated" in out.stdout
    release = next(line for line in out.stdout.splitlines() if root[7:19] in line or root in line)
    assert re.search(r",20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC,", release), release  # a date, not epoch seconds
