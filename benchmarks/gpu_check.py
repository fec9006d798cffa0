"""CUDA vs CPU determinism check (run by benchmarks/gpu_check.sh on a machine with a GPU).

Generates a deterministic ~1 GB bf16 Llama-shaped model and calibration moments for every
linear layer from integer arithmetic (same bytes on every machine), packs it with the default
scheme (error feedback through the moments) on CUDA and on CPU, compares every pack file and every
tensor digest, decodes every quantized tensor on the GPU with the torch decoder and
compares its bytes with the host decoder, times both packs and prints the manifest root
so it can be compared with the root computed on any other machine. Needs only torch and
numpy (no sigstore, no network).
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

import uc_attest as uc
from uc_attest import calibration
from uc_attest.pack import Pack
from uc_attest.quant.decode_protocol import Decoding
from uc_attest.quant.reconstruct import reconstruct_tensor
from uc_attest.quant.rotation import sign_key
from uc_attest.testing.synth import synth_moments, write_synth_model


def write_calibration(model: Path, out: Path, g: int) -> Path:
    """Synthetic moments (block form, exact integer sums) for every quantized tensor of the model;
    one computation per row length."""
    from uc_attest.source import ModelSource

    src = ModelSource(model)
    try:
        shapes = {
            t.name: t.info.shape
            for t in src.tensors
            if uc.DEFAULT_SCHEME.applies_to(t.name, t.info.dtype, t.info.shape)
        }
    finally:
        src.close()
    widths = {s[-1] for s in shapes.values() if s[-1] % g == 0}
    per_width = {w: synth_moments(w, seed=w, tokens=256, block=g) for w in widths}
    entries = {n: per_width[s[-1]] for n, s in shapes.items() if s[-1] in per_width}
    calibration.write(out, entries, "gpu_check synthetic moments")
    return out


def file_digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir()) if p.is_file()}


def gpu_decode_check(pack_dir: Path) -> int:
    """Decode every quantized tensor with the torch decoder on CUDA; compare with the host decoder."""
    bad = 0
    with Pack(pack_dir) as pack:
        for name in pack.iter_names():
            pt = pack.tensors[name]
            if pt.quant is None:
                continue
            f, scheme = pack.files[pt.shard], pack.schemes[pt.shard]
            comps = [f.tensor(name + s).to("cuda") for s in (".uc_codes", ".uc_scales", ".uc_zeros")]
            key = sign_key(name) if scheme.rotated else None
            w = reconstruct_tensor(
                *comps,
                Decoding(
                    pt.dtype,
                    pt.quant.bits,
                    scheme.group_size,
                    pt.quant.exponent,
                    key,
                    scheme.sign_period(pt.shape),
                ),
                pt.shape,
                scheme.parts(pt.shape),
            )
            gpu = hashlib.sha256(w.contiguous().view(torch.uint8).cpu().numpy().tobytes()).hexdigest()
            if gpu != pack.digest(name).hex:
                bad += 1
                print(f"MISMATCH gpu decoder: {name}")
    return bad


def runtime_check(pack_dir: Path, device: str, tokens: int = 512) -> int:
    """The serving runtime on ``device``: every quantized Linear as a PackedLinear (the pack's components as
    its buffers), each decoded weight's digest against the manifest (computed on CPU when packing), and
    the time of one forward through every layer (decode + matmul) for 1 and for ``tokens`` tokens."""
    from uc_attest.runtime.packed import PackedLinear, PackedWeight, Workspace

    entries = {e.name: e for e in uc.load_manifest(pack_dir / uc.MANIFEST_NAME).tensors}
    layers: list[PackedLinear] = []
    ws = Workspace()
    bad = 0
    with Pack(pack_dir) as pack:
        for name in pack.iter_names():
            pt = pack.tensors[name]
            if pt.quant is None or len(pt.shape) != 2:
                continue
            scheme = pack.schemes[pt.shard]
            f = pack.files[pt.shard]
            dt = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}[pt.dtype]
            w = PackedWeight(name, (pt.shape[0], pt.shape[1]), dt, pt.quant, scheme.rotated, scheme.sign_period(pt.shape),
                             device=device, parts=scheme.parts(pt.shape))  # fmt: skip
            for suffix in ("uc_codes", "uc_scales", "uc_zeros"):
                getattr(w, suffix).copy_(f.tensor(f"{name}.{suffix}"))
            if w.digest() != entries[name].digest:
                bad += 1
                print(f"MISMATCH runtime decode on {device}: {name}")
            layers.append(PackedLinear(w, None, ws))
    weights = sum(lay.weight.shape.numel() for lay in layers)
    print(f"runtime on {device}: {len(layers) - bad}/{len(layers)} decoded layers equal the manifest")
    for n in (1, tokens):
        xs = {lay.in_features: torch.randn(n, lay.in_features, device=device).to(lay.weight.dtype) for lay in layers}
        with torch.inference_mode():
            for lay in layers[:2]:  # warm up
                lay(xs[lay.in_features])
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for lay in layers:
                lay(xs[lay.in_features])
            if device == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
        print(
            f"  forward of every packed layer, {n} token(s): {dt * 1e3:.1f} ms ({weights / dt / 1e9:.2f} G weights/s decoded)"
        )
    return bad


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="uc-gpu-check-"))
    model = work / "model"
    print(
        f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}"
        + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
    )
    t0 = time.perf_counter()
    write_synth_model(model, hidden=args.hidden, inter=args.hidden * 11 // 4, layers=args.layers, vocab=32000)
    src_digest = hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()
    print(
        f"generated model: {(model / 'model.safetensors').stat().st_size / 1e9:.2f} GB in "
        f"{time.perf_counter() - t0:.1f} s, source sha256 {src_digest}"
    )
    t0 = time.perf_counter()
    cal = write_calibration(model, work / "calibration.safetensors", uc.DEFAULT_SCHEME.group_size)
    cal_digest = hashlib.sha256(cal.read_bytes()).hexdigest()
    print(
        f"calibration moments: {cal.stat().st_size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s, sha256 {cal_digest}"
    )
    results = {}
    devices = ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
    for dev in devices:
        out = work / f"pack-{dev}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        res = uc.write_pack(model, out, uc.DEFAULT_SCHEME, dev, calibration=uc.MomentsFile(cal), allocation=None)
        if dev == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        qw = sum(t.shape[0] * t.shape[1] for t in res.manifest.tensors if t.quant)
        results[dev] = (res.manifest, file_digests(out))
        print(f"pack on {dev}: {dt:.1f} s ({dt / qw * 1e7:.3f} s per 10 M weights), root {res.manifest.root}")
    rc = 0
    if len(results) == 2:
        (mg, fg), (mc, fc) = results["cuda"], results["cpu"]
        diff = [
            e.name
            for e, o in zip(
                sorted(mg.tensors, key=lambda e: e.name), sorted(mc.tensors, key=lambda e: e.name), strict=True
            )
            if e != o
        ]
        print(f"tensor digests equal: {len(mg.tensors) - len(diff)}/{len(mg.tensors)}; pack files equal: {fg == fc}")
        for n in diff:
            print(f"MISMATCH tensor: {n}")
        bad = gpu_decode_check(work / "pack-cuda")
        print(f"GPU torch decoder vs host decoder: {'all equal' if bad == 0 else f'{bad} mismatches'}")
        bad += runtime_check(work / "pack-cuda", "cuda")
        rc = 0 if (not diff and fg == fc and bad == 0) else 1
    else:
        rc = 1 if runtime_check(work / "pack-cpu", "cpu", tokens=64) else 0
    print(
        "RESULT:",
        "CUDA == CPU, bit for bit"
        if rc == 0 and len(results) == 2
        else ("CPU only (no GPU)" if len(results) == 1 else "MISMATCH"),
    )
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
