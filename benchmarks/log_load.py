"""Load on the embedded log: N concurrent clients append hashedrekord entries over HTTP.

Reports entries/s and p50/p99 latency, then checks that every returned inclusion proof
verifies against its checkpoint, that every checkpoint handed out is signed by the log key,
and that each is consistent with the final tree (consistency proofs from the server,
verified locally).

    python benchmarks/log_load.py [--entries 2000] [--clients 8]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._instance import EntrySigner, post, serve
from uc_attest.core import merkle
from uc_attest.transparency.checkpoint import Checkpoint, ecdsa_verifier, open_note


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state, proc = serve(Path(tmp) / "inst")
        try:
            signer = EntrySigner()
            per = args.entries // args.clients
            bodies = [[signer.entry(f"{c}/{i}") for i in range(per)] for c in range(args.clients)]
            latencies: list[float] = []
            results: list[dict[str, object]] = []
            lock = threading.Lock()

            def client(mine: list[dict[str, object]]) -> None:
                for b in mine:
                    t0 = time.perf_counter()
                    status, resp = post(f"{state.url}/api/v1/log/entries", b)
                    dt = time.perf_counter() - t0
                    assert status == 201
                    with lock:
                        latencies.append(dt)
                        results.append(resp)

            threads = [threading.Thread(target=client, args=(m,)) for m in bodies]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            n = len(latencies)
            q = statistics.quantiles(latencies, n=100)
            print(
                f"{n} entries from {args.clients} concurrent clients in {wall:.2f} s: {n / wall:.0f} entries/s; "
                f"latency p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms"
            )
            # Verify every proof and checkpoint handed out.
            v = ecdsa_verifier(state.log_name, state.log_key.public_key())
            with urllib.request.urlopen(f"{state.url}/api/v1/log") as r:
                final = json.loads(r.read())
            final_size, final_root = final["treeSize"], bytes.fromhex(final["rootHash"])
            sizes: dict[int, bytes] = {}
            for resp in results:
                (entry,) = resp.values()
                p = entry["verification"]["inclusionProof"]  # type: ignore[index]
                cp = Checkpoint.parse(open_note(p["checkpoint"], [v]).text)
                assert cp.size == p["treeSize"] and cp.root.hex() == p["rootHash"]
                merkle.verify_inclusion(
                    p["logIndex"],
                    p["treeSize"],
                    merkle.leaf_hash(base64.b64decode(entry["body"])),  # type: ignore[index]
                    [bytes.fromhex(h) for h in p["hashes"]],
                    cp.root,
                )
                sizes[cp.size] = cp.root
            for size, root in sizes.items():
                with urllib.request.urlopen(
                    f"{state.url}/api/v1/log/proof?firstSize={size}&lastSize={final_size}"
                ) as r:
                    proof = json.loads(r.read())
                merkle.verify_consistency(
                    size, final_size, root, final_root, [bytes.fromhex(h) for h in proof["hashes"]]
                )
            print(
                f"verified: {n} inclusion proofs, {len(sizes)} signed checkpoints, each consistent with the final "
                f"tree (size {final_size})"
            )
        finally:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
