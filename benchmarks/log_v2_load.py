"""Load on the embedded Rekor v2 log: 8 concurrent clients append hashedrekord v0.0.2 entries over HTTP.

Prints entries/s and p50/p99 latency with the batch interval the log integrates on, then checks that every
entry is provable afterwards from the C2SP tiles (inclusion in the final checkpoint, and every checkpoint
handed out consistent with it), then kills the server with SIGKILL under load, restarts it, and checks
that every entry acknowledged before the kill is still in the log and provable.

    python benchmarks/log_v2_load.py [--entries 6000] [--clients 8]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._instance import serve, start_server
from uc_attest.core import merkle
from uc_attest.instance.log_v2 import INTERVAL_S
from uc_attest.signing.trust import Trust
from uc_attest.testing.logs import hashedrekord_requests
from uc_attest.transparency.tiles import TileClient, TileTree

PATH = "/rekor-v2/api/v2/log/entries"


class _Conn:
    """A minimal keep-alive HTTP/1.1 client (a load generator, like wrk or hey, should cost the machine
    little: http.client took more CPU per request than the server's append). Answers are parsed after
    the timed run."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def post(self, body: bytes) -> tuple[int, bytes]:
        head = f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        self.sock.sendall(head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        header, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = int(header.split(b" ", 2)[1])
        length = int(
            next(h.split(b":", 1)[1] for h in header.split(b"\r\n") if h.lower().startswith(b"content-length"))
        )
        while len(self.buf) < length:
            self._recv()
        data, self.buf = self.buf[:length], self.buf[length:]
        return status, data

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk


def load(port: int, requests: list[bytes], clients: int, inflight: int, stop_after: int | None = None,
         ) -> tuple[float, list[float], list[dict[str, Any]]]:  # fmt: skip
    """Each client keeps ``inflight`` requests outstanding (one keep-alive connection each, as an HTTP/1.1
    client with a connection pool does) until its share is sent; (wall, latencies, answers)."""
    latencies: list[float] = []
    raw: list[bytes] = []
    lock = threading.Lock()

    def client(mine: list[bytes]) -> None:
        try:
            conn = _Conn(port)
            for body in mine:
                t0 = time.perf_counter()
                status, data = conn.post(body)
                dt = time.perf_counter() - t0
                assert status in (200, 201), data
                with lock:
                    latencies.append(dt)
                    raw.append(data)
        except OSError:
            if stop_after is None:
                raise  # only the kill -9 run loses its connections

    lanes = clients * inflight
    threads = [threading.Thread(target=client, args=(requests[c::lanes],)) for c in range(lanes)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, [json.loads(r) for r in raw]


def provable(inst_dir: Path, answers: list[dict[str, Any]]) -> tuple[int, int]:
    """Every answered entry proven in the final checkpoint from the tiles; every checkpoint handed out
    consistent with it. Returns (final size, distinct checkpoints)."""
    (log,) = Trust(str(inst_dir / "trust_config.json")).tile_logs()
    client = TileClient(log)
    final = client.checkpoint()
    tree = TileTree(client, final.size)
    assert tree.root() == final.root
    seen: dict[int, bytes] = {}
    for a in answers:
        index = int(a["logIndex"])
        leaf = merkle.leaf_hash(base64.b64decode(a["canonicalizedBody"]))
        merkle.verify_inclusion(index, final.size, leaf, merkle.inclusion_path(tree.hash_range, index, final.size),
                                final.root)  # fmt: skip
        cp = client.verify_note(a["inclusionProof"]["checkpoint"]["envelope"])
        proof = [base64.b64decode(h) for h in a["inclusionProof"]["hashes"]]
        merkle.verify_inclusion(index, cp.size, leaf, proof, cp.root)  # the proof handed out, as it was
        seen[cp.size] = cp.root
    for size, root in seen.items():
        merkle.verify_consistency(size, final.size, root, final.root,
                                  merkle.consistency_path(tree.hash_range, size, final.size))  # fmt: skip
    return final.size, len(seen)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=6000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--inflight", type=int, default=4, help="requests each client keeps outstanding")
    args = ap.parse_args()
    print(f"preparing {args.entries + 4000} signed requests...", flush=True)
    requests = [json.dumps(r).encode() for r in hashedrekord_requests(args.entries + 4000)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "inst"
        state, proc = serve(root)
        try:
            load(state.port, requests[:200], args.clients, args.inflight)  # warm up (connections, caches)
            wall, lat, answers = load(state.port, requests[200 : 200 + args.entries], args.clients, args.inflight)
            q = statistics.quantiles(lat, n=100)
            print(
                f"{len(lat)} entries from {args.clients} concurrent clients ({args.inflight} in flight each) in {wall:.2f} s: "
                f"{len(lat) / wall:.0f} entries/s; latency p50 {q[49] * 1e3:.1f} ms, p99 {q[98] * 1e3:.1f} ms "
                f"(batch interval {INTERVAL_S * 1e3:.0f} ms: goal p99 < {INTERVAL_S * 1e3 + 50:.0f} ms)"
            )
            size, cps = provable(root, answers)
            print(
                f"verified from the tiles: {len(answers)} entries included in the final checkpoint (size {size}), "
                f"{cps} checkpoints handed out, each consistent with it"
            )
            # kill -9 under load: every acknowledged entry survives
            rest = requests[200 + args.entries :]
            killer = threading.Timer(1.0, lambda: os.kill(proc.pid, signal.SIGKILL))
            killer.start()
            _, _, acked = load(state.port, rest, args.clients, args.inflight, stop_after=1)
            proc.wait()
            proc = start_server(root, state)
            size2, _ = provable(root, acked)
            print(
                f"kill -9 after {len(acked)} of {len(rest)} further entries were acknowledged: all {len(acked)} "
                f"in the log after restart (size {size2}) and provable"
            )
        finally:
            proc.terminate()
            proc.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
