"""A monitor catching up with a 100,000-entry Rekor v2 (tile) log, then a forked copy of it caught.

Builds the log in the embedded instance's store (hashedrekord v0.0.2 entries with real signatures, appended
through the log's batching integrator), serves it over HTTP, and runs `log watch` from nothing: every entry
bundle and tile is fetched and verified (entries vs level-0 tiles, higher tiles vs the tiles below, the
compact range and the tiles against the signed checkpoint) and every entry is indexed. Prints entries
verified per second, requests and bytes, and the same for an incremental run. Then two lies by the same
log key: a second tree of the same size (the last 1,000 entries replaced) and a rewritten entry; both
must be caught (exit 1, named) with the stored state kept.

    python benchmarks/monitor_catchup.py [--entries 100000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._instance import serve, start_server
from uc_attest.instance.log_v2 import TileLog, canonicalize
from uc_attest.instance.state import InstanceState
from uc_attest.testing.logs import hashedrekord_requests


def build(root: Path, n: int, seed: int = 0) -> None:
    """Append ``n`` entries to the instance's v2 log, 64 submitters at a time."""
    state = InstanceState.load(root)
    assert state.v2 is not None
    log = TileLog(root / "log.sqlite3", state.origin_v2, state.log_name, state.v2.log_key, state.log_id_v2)
    bodies = [canonicalize(r) for r in hashedrekord_requests(n, seed=seed)]
    lanes = 64
    threads = [threading.Thread(target=lambda m=bodies[i::lanes]: [log.submit(b) for b in m]) for i in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()


def watch(root: Path, state: Path) -> tuple[int, dict[str, object], float]:
    import subprocess

    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "uc_attest.cli", "log", "watch", "--state", str(state), "--instance",
                        str(root), "--json"], capture_output=True, text=True, cwd=REPO, check=False)  # fmt: skip
    wall = time.perf_counter() - t0
    tiles = next((x for x in json.loads(r.stdout)["logs"] if x["kind"] == "tiles"), {}) if r.stdout else {}
    return r.returncode, {**tiles, "stderr": r.stderr.strip().splitlines()[-3:]}, wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "inst"
        state, proc = serve(root)
        proc.terminate()
        proc.wait()
        t0 = time.perf_counter()
        build(root, args.entries)
        print(f"built a {args.entries}-entry tile log in {time.perf_counter() - t0:.1f} s", flush=True)
        proc = start_server(root, state)
        witness = Path(tmp) / "witness.json"
        try:
            rc, r, wall = watch(root, witness)
            assert rc == 0, r
            n, secs = int(r["new_entries"]), float(r["seconds"])
            print(
                f"catch-up from nothing: {n} entries and their tiles verified and indexed in {secs:.1f} s "
                f"({n / secs:.0f} entries/s; {wall:.1f} s with process start), {r['requests']} requests, "
                f"{int(r['bytes']) / 1e6:.1f} MB"
            )
            proc.terminate()
            proc.wait()
            build(root, 1000, seed=1)
            proc = start_server(root, state)
            rc, r, _ = watch(root, witness)
            assert rc == 0 and r["new_entries"] == 1000, r
            print(
                f"incremental: {r['new_entries']} new entries in {float(r['seconds']):.2f} s, {r['requests']} "
                f"requests, {int(r['bytes']) / 1e6:.2f} MB"
            )
        finally:
            proc.terminate()
            proc.wait()
        size = args.entries + 1000
        # 1. a second tree of the same size: the last 1,000 entries replaced, signed by the same key
        forked = Path(tmp) / "forked"
        shutil.copytree(root, forked)
        with sqlite3.connect(forked / "log.sqlite3") as db:
            db.execute("DELETE FROM v2_entries WHERE idx >= ?", (size - 1000,))
            db.execute("DELETE FROM v2_checkpoints WHERE size > ?", (size - 1000,))
        build(forked, 1000, seed=2)
        kept = witness.with_suffix(".tiles.sqlite3")
        proc = start_server(forked, state)
        try:
            rc, r, _ = watch(forked, witness)
            assert rc == 1 and "fork" in str(r["problem"]), r
            print(f"forked tree of the same size: caught (exit {rc}): {r['problem']}")
        finally:
            proc.terminate()
            proc.wait()
        assert sqlite3.connect(kept).execute("SELECT size FROM logs").fetchone()[0] == size
        # 2. an entry rewritten in the store (its tile still holds the old leaf), read by a fresh monitor
        with sqlite3.connect(forked / "log.sqlite3") as db:
            body = db.execute("SELECT body FROM v2_entries WHERE idx = 54321 % ?", (size,)).fetchone()[0]
            db.execute("UPDATE v2_entries SET body = ? WHERE idx = 54321 % ?", (bytes(body).replace(b"A", b"B", 1),
                                                                              size))  # fmt: skip
        proc = start_server(forked, state)
        try:
            rc, r, _ = watch(forked, Path(tmp) / "fresh.json")
            assert rc == 1 and "does not match" in str(r["problem"]), r
            print(f"rewritten entry: caught (exit {rc}): {r['problem']}")
        finally:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
