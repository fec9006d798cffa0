"""Where `uc-attest verify` spends its time: one thread, each phase timed alone (pack-file SHA-256, decode with
each path of the C decoder, SHA-256 of the reconstruction, decode and hash fused as verify runs them), then the
real check with 1 and 2 workers, and the CLI's start-up. Every figure is the best of --repeat runs.

    python benchmarks/verify_profile.py [PACK] [--repeat 3]   # default: build/bench/pack (verify_speed.py writes it)

Run it with PYTHONPATH=DIR to profile another copy of uc_attest (the ISA rows need the current decoder).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pack", nargs="?", type=Path, default=REPO / "build" / "bench" / "pack")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if str(REPO) not in sys.path:
        sys.path.append(str(REPO))
    import uc_attest as uc
    from uc_attest.core.digest import sha256_file
    from uc_attest.pack.reader import Pack
    from uc_attest.quant import decode

    pack: Path = args.pack
    files = [p for p in sorted(pack.rglob("*")) if p.is_file()]
    t_files = best(lambda: [sha256_file(p) for p in files], args.repeat)
    isas = decode.native_isas() if hasattr(decode, "native_isas") else []  # an older copy has one C path
    print(f"uc_attest from {Path(uc.__file__).parent}; C decoder paths {isas or decode.native_available()}")
    with Pack(pack) as pk:
        names = list(pk.iter_names())
        quantized = [n for n in names if pk.tensors[n].quant is not None]
        qweights = sum(pk.tensors[n].nbytes // 2 if pk.tensors[n].dtype != "F32" else pk.tensors[n].nbytes // 4
                       for n in quantized)  # fmt: skip

        def decode_only() -> int:
            return sum(len(b) for n in quantized for b in pk.iter_bytes(n))

        blocks: dict[str, list[bytes]] = {}

        def hash_blocks() -> None:  # SHA-256 alone, over blocks already decoded (stored tensors included)
            for n in names:
                h = hashlib.sha256()
                for b in blocks[n]:
                    h.update(b)

        default = decode.native_isa() if isas else None
        for isa in isas:
            decode.set_native_isa(isa)
            t = best(decode_only, args.repeat)
            print(f"decode only ({isa}, 16 MB blocks, one thread): {t:.2f} s = {qweights / t / 1e9:.2f} G weights/s")
        if default:
            decode.set_native_isa(default)
        if not isas:
            t = best(decode_only, args.repeat)
            print(f"decode only (one thread): {t:.2f} s = {qweights / t / 1e9:.2f} G weights/s")
        blocks.update((n, [bytes(b) for b in pk.iter_bytes(n)]) for n in names)
        recon = sum(len(b) for bl in blocks.values() for b in bl)
        t_hash = best(hash_blocks, args.repeat)
        blocks.clear()
        t_fused_q = best(lambda: [pk.digest(n) for n in quantized], args.repeat)
        t_fused = best(lambda: [pk.digest(n) for n in names], args.repeat)
    print(
        f"one thread: pack files SHA-256 ({sum(p.stat().st_size for p in files) / 1e9:.2f} GB) {t_files:.2f} s | "
        f"SHA-256 of the {recon / 1e9:.2f} GB reconstruction alone {t_hash:.2f} s"
    )
    print(
        f"one thread, as verify runs it (Pack.digest): quantized tensors decode+SHA-256 {t_fused_q:.2f} s "
        f"({qweights / t_fused_q / 1e9:.2f} G weights/s), all tensors {t_fused:.2f} s"
    )
    for w in (1, 2):
        t = best(lambda w=w: uc.check_pack(pack, workers=w), args.repeat)  # type: ignore[misc]
        assert uc.check_pack(pack, workers=w).ok
        print(f"check_pack, {w} worker(s): {t:.2f} s")
    exe = Path(sys.executable).parent / "uc-attest"
    start = best(lambda: subprocess.run([str(exe), "verify", "/nonexistent"], capture_output=True, check=False), 3)
    bare = best(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), 3)
    print(f"CLI start (verify of a missing path, best of 3): {start:.2f} s; bare Python {bare:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
