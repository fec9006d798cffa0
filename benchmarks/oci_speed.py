"""Push / pull throughput of a pack through a local OCI registry (Debian docker-registry on 127.0.0.1) vs
`cp -r` of the directory, bytes sent by a second push, and verify from the registry vs verify of the
local directory — all measured in one run.

    python benchmarks/oci_speed.py [--pack build/bench/pack]   # the pack benchmarks/verify_speed.py writes
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", type=Path, default=REPO / "build" / "bench" / "pack")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    import uc_attest as uc
    from tests.integration.test_oci import start_registry

    if not (args.pack / uc.MANIFEST_NAME).exists():
        print(f"{args.pack}: no pack (run benchmarks/verify_speed.py first)")
        return 1
    if shutil.which("docker-registry") is None:
        print("docker-registry is not installed (apt-get install docker-registry)")
        return 1
    size = sum(p.stat().st_size for p in args.pack.rglob("*") if p.is_file())
    with tempfile.TemporaryDirectory(dir=args.pack.parent) as tmp:
        root = Path(tmp)
        proc, host = start_registry(root)
        try:
            t0 = time.perf_counter()
            shutil.copytree(args.pack, root / "copy")
            t_cp = time.perf_counter() - t0
            ref = f"oci://{host}/bench/pack:v1"
            t0 = time.perf_counter()
            first = uc.push(args.pack, ref, plain_http=True)
            t_push = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = uc.push(args.pack, ref, plain_http=True)
            t_again = time.perf_counter() - t0
            t0 = time.perf_counter()
            uc.pull(f"oci://{host}/bench/pack@{first.digest}", root / "pulled", plain_http=True)
            t_pull = time.perf_counter() - t0
            t0 = time.perf_counter()
            local = uc.verify(args.pack, uc.Anchor.pack_itself())
            t_vl = time.perf_counter() - t0
            t0 = time.perf_counter()
            remote = uc.verify_oci(f"oci://{host}/bench/pack@{first.digest}", uc.Anchor.pack_itself(), plain_http=True)
            t_vr = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait(10)
    assert local.ok and remote.ok
    gb = size / 1e9
    print(f"pack {gb:.2f} GB, {first.layers} layers; loopback registry (docker-registry), one run")
    print(f"{'step':<34} {'seconds':>8} {'GB/s':>6} {'vs cp -r':>9}")
    for label, t in (("cp -r (directory copy)", t_cp), ("push (first)", t_push), ("pull by digest (checked)", t_pull)):
        print(f"{label:<34} {t:>8.2f} {gb / t:>6.2f} {t / t_cp:>9.2f}")
    print(f"second push: {again.uploaded_blobs} blobs, {again.uploaded_bytes} bytes uploaded, {t_again:.2f} s")
    print(f"verify local directory {t_vl:.2f} s; verify oci:// (pull + verify) {t_vr:.2f} s ({t_vr / t_vl:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
