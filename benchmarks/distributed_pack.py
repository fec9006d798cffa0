"""A pack split over torchrun ranks against one process, on the same model in the same run (issue 34).

    python benchmarks/distributed_pack.py [--hidden 1024 --inter 2816 --layers 8] [--ranks 1,2] [--default]

Generates a Llama-shaped bf16 model, packs it with one process (thread budget 1 per rank, as torchrun gives
each rank, and the one-process pack with the machine's budget) and with torchrun over N ranks, checks the
packs are byte-identical, and prints per rank: wall time, peak RSS and the bytes its process read from disk
(/proc/self/io read_bytes, after dropping the page cache where this user may: otherwise reads served from
the cache are not counted and the column says so). ``--default`` packs with the default command
(the calibration as pipeline stages over the ranks, then the measured allocation split over them); without it the plain pack
(``--no-calibration``: the quantization split, the writing on rank 0).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rank_main(src: str, out: str, default: bool) -> None:
    """One rank (or the one process): pack, then print what it cost as one JSON line."""
    import torch  # noqa: F401 - imported before the baseline: its libraries' reads and memory are not the pack's

    import uc_attest as uc
    from uc_attest.pack import distributed, writer  # noqa: F401

    read0, rss0 = _read_bytes(), _peak_rss_kb()
    t0 = time.perf_counter()
    if default:
        request = uc.PackRequest(Path(src), Path(out), device="cpu")
    else:
        request = uc.PackRequest(Path(src), Path(out), device="cpu", calibration=None)
    res = uc.run_pack(request)
    row = {"rank": res.rank, "ranks": res.world_size, "seconds": time.perf_counter() - t0,
           "peak_rss_mb": _peak_rss_kb() / 1024,
           "base_rss_mb": rss0 / 1024, "read_mb": (_read_bytes() - read0) / 2**20, "root": str(res.manifest.root)}  # fmt: skip
    os.write(1, (json.dumps(row) + "\n").encode())  # one write: the ranks' lines never interleave


def _peak_rss_kb() -> int:
    """VmHWM: this process's peak resident memory (ru_maxrss would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _read_bytes() -> int:
    io = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(io["read_bytes"])


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
        return True
    except OSError:
        return False


def run(ranks: int, src: Path, out: Path, default: bool, threads: int | None) -> tuple[float, list[dict[str, float]]]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "UC_ATTEST_THREADS")}
    if threads is not None:
        env["UC_ATTEST_THREADS"] = str(threads)
    args = [__file__, "_rank", str(src), str(out), "1" if default else "0"]
    if ranks == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc-per-node", str(ranks), *args]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=7200)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{ranks} rank(s) failed:\n{r.stderr[-2000:]}")
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return wall, sorted(rows, key=lambda d: d["rank"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--inter", type=int, default=2816)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--default", action="store_true", help="the default command (calibrated, allocated)")
    a = ap.parse_args()
    from uc_attest.testing.synth import write_synth_model

    with tempfile.TemporaryDirectory(prefix="uc-dist-") as tmp:
        root = Path(tmp)
        src = write_synth_model(root / "src", hidden=a.hidden, inter=a.inter, layers=a.layers, vocab=32000)
        size = (src / "model.safetensors").stat().st_size
        print(f"model: generated Llama bf16, hidden {a.hidden}, {a.layers} layers, {size / 1e9:.2f} GB; "
              f"{'default command' if a.default else 'plain pack (--no-calibration)'}; {os.cpu_count()} CPUs")  # fmt: skip
        cached = False
        roots: dict[str, str] = {}
        base = None
        for ranks in [int(x) for x in a.ranks.split(",")]:
            for threads in [None, 1] if ranks == 1 else [None]:
                cached = not drop_caches()
                out = root / f"pack-{ranks}-{threads}"
                wall, rows = run(ranks, src, out, a.default, threads)
                assert len({r["root"] for r in rows}) == 1  # every rank returns rank 0's pack
                label = f"{ranks} rank(s)" + (f", {threads} thread" if threads else "")
                roots[label] = rows[0]["root"]
                base = base or wall
                print(f"\n{label}: wall {wall:.1f} s ({base / wall:.2f}x the first row)")
                for r in rows:
                    print(f"  rank {r['rank']}: {r['seconds']:.1f} s in the pack, peak RSS {r['peak_rss_mb']:.0f} MB "
                          f"({r['peak_rss_mb'] - r['base_rss_mb']:.0f} MB above torch + uc-attest loaded), "
                          f"read {r['read_mb']:.0f} MB from disk")  # fmt: skip
        first = next(iter(roots.values()))
        for label, root in roots.items():
            same = "the same as the first row" if root == first else "differs from the first row"
            print(f"root, {label}: {root[:19]}… ({same})")
        if a.default:
            print("(the calibration record names its thread budget: rank 0 calibrates on its node's cores, as the first "
                  "row does; the one-thread row calibrated on one)")  # fmt: skip
        if cached:
            print("(page cache not dropped: this user may not; reads served from the cache are not counted)")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_rank":
        rank_main(sys.argv[2], sys.argv[3], sys.argv[4] == "1")
    else:
        main()
