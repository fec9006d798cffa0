"""Where `uc-attest verify` spends its time: one thread, each phase timed alone (pack-file SHA-256, decode,
SHA-256 of the reconstruction), then the real check with 1 and 2 workers, and the CLI's start-up.

    python benchmarks/verify_profile.py [PACK]   # default: build/bench/pack (benchmarks/verify_speed.py writes it)
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    import uc_attest as uc
    from uc_attest.core.digest import sha256_file
    from uc_attest.pack.reader import Pack

    pack = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "build" / "bench" / "pack"
    t0 = time.perf_counter()
    for p in sorted(pack.rglob("*")):
        if p.is_file():
            sha256_file(p)
    t_files = time.perf_counter() - t0
    t_dec = t_hash = 0.0
    n = 0
    with Pack(pack) as pk:
        for name in pk.iter_names():
            h = hashlib.sha256()
            it = pk.iter_bytes(name)
            while True:
                t0 = time.perf_counter()
                block = next(it, None)
                t1 = time.perf_counter()
                t_dec += t1 - t0
                if block is None:
                    break
                h.update(block)
                n += len(block)
                t_hash += time.perf_counter() - t1
    print(f"one thread: pack files SHA-256 {t_files:.2f} s | decode (read, reconstruct; stored tensors copied) "
          f"{t_dec:.2f} s | SHA-256 of the {n / 1e9:.2f} GB reconstruction {t_hash:.2f} s")
    for w in (1, 2):
        t0 = time.perf_counter()
        assert uc.check_pack(pack, workers=w).ok
        print(f"check_pack, {w} worker(s): {time.perf_counter() - t0:.2f} s")
    exe = Path(sys.executable).parent / "uc-attest"
    starts = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([str(exe), "verify", "/nonexistent"], capture_output=True, check=False)
        starts.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - t0
    print(f"CLI start (verify of a missing path, best of 3): {min(starts):.2f} s; bare Python {bare:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
