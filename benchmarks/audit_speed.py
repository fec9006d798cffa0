"""Audit time on a log of 10,000 entries of which 50 concern the audited model.

Rekor v1 (default): the audit finds them through the log's search index. Rekor v2: the log has no search;
the audit follows the log's tiles into an index (every entry verified) and proves the 50 bundles given.

    python benchmarks/audit_speed.py [--filler 10000] [--concerning 50] [--rekor-version 1|2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import uc_attest as uc
from benchmarks._instance import EntrySigner, post, serve
from uc_attest.testing.logs import hashedrekord_requests
from uc_attest.testing.synth import write_synth_model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--filler", type=int, default=10_000)
    ap.add_argument("--concerning", type=int, default=50)
    ap.add_argument("--rekor-version", type=int, choices=(1, 2), default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inst = Path(tmp) / "inst"
        state, proc = serve(inst, args.rekor_version)
        try:
            signer = EntrySigner()
            v2 = hashedrekord_requests(args.filler) if args.rekor_version == 2 else []

            def filler(c: int) -> None:
                for i in range(c, args.filler, 8):
                    if v2:
                        post(f"{state.url}/rekor-v2/api/v2/log/entries", v2[i])
                    else:
                        post(f"{state.url}/api/v1/log/entries", signer.entry(f"filler {i}"))

            t0 = time.perf_counter()
            threads = [threading.Thread(target=filler, args=(c,)) for c in range(8)]
            for t in threads:
                t.start()
            pack = Path(tmp) / "pack"
            uc.write_pack(
                write_synth_model(Path(tmp) / "src", hidden=64, inter=128, layers=1, vocab=32),
                pack,
                uc.DEFAULT_SCHEME,
                "cpu",
                calibration=None,
                allocation=None,
            )
            trust = uc.select_trust(None, inst)
            (Path(tmp) / "m.json").write_text(json.dumps({"evaluation_set": "bench", "metrics": {"x": 1.0}}))
            for i in range(args.concerning):
                if i % 2 == 0:
                    uc.attest_pack(
                        pack,
                        trust,
                        sign_as=uc.SignAs(dev_identity="release-bot@bank.example"),
                        bundle_out=Path(tmp) / f"r{i}.json",
                    )
                else:
                    uc.validate_pack(
                        pack,
                        Path(tmp) / "m.json",
                        trust,
                        sign_as=uc.SignAs(dev_identity="validator@bank.example"),
                        bundle_out=Path(tmp) / f"v{i}.json",
                    )
            for t in threads:
                t.join()
            if v2:
                size = int(urllib.request.urlopen(f"{state.url}/rekor-v2/checkpoint").read().split(b"\n")[1])
            else:
                size = json.loads(urllib.request.urlopen(f"{state.url}/api/v1/log").read())["treeSize"]
            print(f"log filled: {size} entries ({args.concerning} about the model) in {time.perf_counter() - t0:.0f} s")
            bundles = sorted(Path(tmp).glob("[rv]*.json")) if v2 else []
            t0 = time.perf_counter()
            r = uc.audit(pack, uc.TrustRoot.instance(inst), bundles=bundles)
            dt = time.perf_counter() - t0
            print(
                f"audit: {len(r.events)} entries found and verified, ok={r.ok}, {r.requests} log requests, "
                f"{dt:.2f} s (including {r.to_dict()['checks'][-1]['detail']})"
            )
        finally:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
