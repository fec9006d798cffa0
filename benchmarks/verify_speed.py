"""Verify throughput and memory on a generated ~1 GB bf16 model, against baselines in the same run.

Baselines, measured here and now on the same files with a warm page cache:
  (a) `openssl dgst -sha256` over the original model file: the one-core hashing floor;
  (b) `model_signing verify key` (OpenSSF model-signing, key mode) on the original model directory.
Measured: `uc-attest verify PACK` (reconstruct every tensor + SHA-256 + compare, as a CLI process),
its peak RSS (/usr/bin/time -v), pack time per million weights, and `model_signing verify key` on the
pack directory (what an OMS tool — NGC, Kubeflow, KServe — spends on a pack instead of the original).

    python benchmarks/verify_speed.py [--workdir build/bench] [--repeat 3] [--keep-pack] [--before DIR]

--before DIR: also time `uc-attest verify` with PYTHONPATH=DIR (a copy of an earlier uc_attest package, e.g. the
previous decoder), side by side in the same run. --keep-pack: reuse an existing pack (no pack time reported).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def best_of(cmd: list[str], repeat: int, **kw: object) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_rss_mb(cmd: list[str], env: dict[str, str] | None = None) -> float:
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=True, env=env)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    return int(m.group(1)) / 1024 if m else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=REPO / "build" / "bench")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--keep-pack", action="store_true", help="reuse WORKDIR/pack if it exists")
    ap.add_argument("--before", type=Path, help="directory holding an earlier uc_attest package to compare")
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    import uc_attest as uc
    from uc_attest.testing.synth import write_synth_model

    work: Path = args.workdir
    model, pack = work / "model", work / "pack"
    if not (model / "model.safetensors").exists():
        shutil.rmtree(model, ignore_errors=True)
        t0 = time.perf_counter()
        write_synth_model(
            model,
            hidden=args.hidden,
            inter=args.hidden * 11 // 4,
            layers=args.layers,
            vocab=32000,
            dtype=torch.bfloat16,
        )
        print(f"generated model in {time.perf_counter() - t0:.1f} s")
    size = (model / "model.safetensors").stat().st_size
    pack_s = None
    if not (args.keep_pack and (pack / "uc-manifest.json").exists()):
        shutil.rmtree(pack, ignore_errors=True)
        t0 = time.perf_counter()
        uc.write_pack(model, pack, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
        pack_s = time.perf_counter() - t0
    manifest = uc.load_manifest(pack / "uc-manifest.json")
    qweights = sum(t.shape[0] * t.shape[1] for t in manifest.tensors if t.quant)
    largest = max(t.shape[0] * t.shape[1] * 2 for t in manifest.tensors if len(t.shape) == 2)

    keydir = work / "keys"
    keydir.mkdir(exist_ok=True)
    priv, pub, sig = keydir / "key.pem", keydir / "pub.pem", work / "model.sig"
    if not priv.exists():
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", priv], check=True)
        subprocess.run(["openssl", "ec", "-in", priv, "-pubout", "-out", pub], check=True, capture_output=True)
    ms = str(BIN / "model_signing")
    subprocess.run(
        [ms, "sign", "key", "--private_key", priv, "--signature", sig, model], check=True, capture_output=True
    )
    pack_sig = work / "pack.model.sig"
    subprocess.run(
        [ms, "sign", "key", "--private_key", priv, "--signature", pack_sig, pack], check=True, capture_output=True
    )
    pack_size = sum(p.stat().st_size for p in pack.iterdir() if p.is_file())

    openssl_cmd = ["openssl", "dgst", "-sha256", str(model / "model.safetensors")]
    ms_cmd = [ms, "verify", "key", "--public_key", str(pub), "--signature", str(sig), str(model)]
    ms_pack_cmd = [ms, "verify", "key", "--public_key", str(pub), "--signature", str(pack_sig), str(pack)]
    uc_cmd = [str(BIN / "uc-attest"), "verify", str(pack), "--integrity-only"]
    uc_files_cmd = [*uc_cmd, "--shard-digests"]
    before_env = {**os.environ, "PYTHONPATH": str(args.before)} if args.before else None
    for cmd in (openssl_cmd, ms_cmd, ms_pack_cmd, uc_cmd):  # warm the page cache and check every command works
        subprocess.run(cmd, check=True, capture_output=True)
    if before_env:
        subprocess.run(uc_cmd, check=True, capture_output=True, env=before_env)
    t_openssl = best_of(openssl_cmd, args.repeat)
    t_ms = best_of(ms_cmd, args.repeat)
    t_ms_pack = best_of(ms_pack_cmd, args.repeat)
    t_uc = best_of(uc_cmd, args.repeat)
    t_uc_files = best_of(uc_files_cmd, args.repeat)
    t_before = best_of(uc_cmd, args.repeat, env=before_env) if before_env else None
    rss = peak_rss_mb(uc_cmd)
    rss_before = peak_rss_mb(uc_cmd, env=before_env) if before_env else None

    print(
        f"model: {size / 1e9:.2f} GB bf16, {len(manifest.tensors)} tensors, {qweights / 1e6:.0f} M quantized "
        f"weights; pack {sum(p.stat().st_size for p in pack.glob('*.safetensors')) / 1e9:.2f} GB; "
        f"{os.cpu_count()} cores, torch {torch.__version__}"
    )
    if pack_s is not None:
        print(
            f"pack (CPU, {torch.get_num_threads()} threads): {pack_s:.1f} s = {pack_s / qweights * 1e7:.2f} s per 10 M weights"
        )
    print(f"{'command':<46} {'seconds':>8} {'GB/s':>6} {'vs openssl':>10} {'vs model_signing':>16}")
    for label, t in (
        ("openssl dgst -sha256 (original file)", t_openssl),
        ("model_signing verify key (original dir)", t_ms),
        ("model_signing verify key (pack dir)", t_ms_pack),
        ("uc-attest verify (every tensor reconstructed)", t_uc),
        ("uc-attest verify --shard-digests (+ files)", t_uc_files),
        (f"  the same, PYTHONPATH={args.before}", t_before),
    ):
        if t is None:
            continue
        print(f"{label:<46} {t:>8.2f} {size / t / 1e9:>6.2f} {t / t_openssl:>10.2f} {t / t_ms:>16.2f}")
    print(
        f"GB/s above is original-model bytes per second; the pack directory is {pack_size / 1e9:.2f} GB "
        f"({size / pack_size:.2f}x smaller)"
    )
    print(
        f"uc-attest verify peak RSS: {rss:.0f} MB (largest tensor {largest / 1e6:.0f} MB, model {size / 1e6:.0f} MB)"
        + (f"; with {args.before}: {rss_before:.0f} MB" if rss_before is not None else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
