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
import hashlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

import uc_attest as uc
from uc_attest import merkle
from uc_attest.tlog.checkpoint import Checkpoint, ecdsa_verifier, open_note


def post(url: str, body: dict[str, object]) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, json.loads(r.read())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        state = uc.init_instance(Path(tmp) / "inst", port)
        proc = subprocess.Popen([sys.executable, "-m", "uc_attest.cli", "instance", "serve", str(Path(tmp) / "inst")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{state.url}/api/v1/log", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            key = ec.generate_private_key(ec.SECP256R1())
            pem = base64.b64encode(key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
            per = args.entries // args.clients
            bodies = []
            for c in range(args.clients):
                mine = []
                for i in range(per):
                    d = hashlib.sha256(f"{c}/{i}".encode()).digest()
                    sig = base64.b64encode(key.sign(d, ec.ECDSA(Prehashed(hashes.SHA256())))).decode()
                    mine.append({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
                        "data": {"hash": {"algorithm": "sha256", "value": d.hex()}},
                        "signature": {"content": sig, "publicKey": {"content": pem}}}})
                bodies.append(mine)
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
            print(f"{n} entries from {args.clients} concurrent clients in {wall:.2f} s: {n / wall:.0f} entries/s; "
                  f"latency p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms")
            # Verify every proof and checkpoint handed out.
            v = ecdsa_verifier("uc-attest-dev-log", state.log_key.public_key())
            with urllib.request.urlopen(f"{state.url}/api/v1/log") as r:
                final = json.loads(r.read())
            final_size, final_root = final["treeSize"], bytes.fromhex(final["rootHash"])
            sizes: dict[int, bytes] = {}
            for resp in results:
                (entry,) = resp.values()
                p = entry["verification"]["inclusionProof"]  # type: ignore[index]
                cp = Checkpoint.parse(open_note(p["checkpoint"], [v]).text)
                assert cp.size == p["treeSize"] and cp.root.hex() == p["rootHash"]
                merkle.verify_inclusion(p["logIndex"], p["treeSize"],
                                        merkle.leaf_hash(base64.b64decode(entry["body"])),  # type: ignore[index]
                                        [bytes.fromhex(h) for h in p["hashes"]], cp.root)
                sizes[cp.size] = cp.root
            for size, root in sizes.items():
                with urllib.request.urlopen(f"{state.url}/api/v1/log/proof?firstSize={size}&lastSize={final_size}") as r:
                    proof = json.loads(r.read())
                merkle.verify_consistency(size, final_size, root, final_root, [bytes.fromhex(h) for h in proof["hashes"]])
            print(f"verified: {n} inclusion proofs, {len(sizes)} signed checkpoints, each consistent with the final "
                  f"tree (size {final_size})")
        finally:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
