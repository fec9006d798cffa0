"""llama.cpp, the field's reference CPU runtime, built here and measured beside uc-attest (issues 30, 31).

The sources come from PyPI's llama-cpp-python sdist (its vendored llama.cpp: pip reaches PyPI, GitHub is out
of reach), built once into ``build/llama.cpp/`` (``llama-bench``, ``llama-quantize``; ~20 min on 2 cores)
with the host's ISA (``GGML_NATIVE``). A Hugging Face model directory is converted with the vendored
``convert_hf_to_gguf.py`` (the ``gguf`` package) to f16, quantized to q5_K_M, and ``llama-bench`` reports
prompt processing and batch-1 generation tokens/s for both on the same threads. For fidelity (issue 31,
``benchmarks/llm.py``) the model is converted to f32 and quantized to each of ``FIDELITY_TYPES``;
:func:`linear_bpw` reads the bits per weight its files really spend on the linear layers, and
:func:`perplexity_kl` runs ``llama-perplexity --kl-divergence`` against the f32 file on a text.

    python benchmarks/llama_cpp.py build
    python benchmarks/llama_cpp.py bench MODEL_DIR [--threads 2] [--tokens 64]    # JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / "build" / "llama.cpp"
SDIST = "llama-cpp-python==0.3.36"
TYPES = ("f16", "q5_K_M")
#: The formats of the fidelity table (issue 31): llama.cpp's 5-bit family, q6_K and q8_0.
FIDELITY_TYPES = ("q5_0", "q5_1", "q5_K_M", "q6_K", "q8_0")
TOOLS = ("llama-bench", "llama-quantize", "llama-perplexity")
#: The linear layers' tensors in a llama.cpp GGUF (the ones uc-attest quantizes: embeddings and the head stay).
LINEAR = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def binary(name: str) -> Path | None:
    path = HOME / "bin" / name
    return path if path.is_file() and os.access(path, os.X_OK) else None


def source() -> Path:
    """The vendored llama.cpp tree, unpacked once from the sdist."""
    src = HOME / "src"
    if (src / "CMakeLists.txt").is_file():
        return src
    with tempfile.TemporaryDirectory(prefix="uc-llama-") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST, "-d", tmp],
                       check=True, capture_output=True)  # fmt: skip
        (sdist,) = Path(tmp).glob("llama_cpp_python-*.tar.gz")
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        (tree,) = Path(tmp).glob("llama_cpp_python-*/vendor/llama.cpp")
        HOME.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tree), src)
    return src


def build() -> Path:
    if all(binary(t) for t in TOOLS):
        return HOME / "bin"
    src, out = source(), HOME / "cmake"
    flags = ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
             "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_APP=OFF", "-DBUILD_SHARED_LIBS=OFF"]  # fmt: skip
    subprocess.run(["cmake", "-S", src, "-B", out, "-G", "Ninja", *flags], check=True)
    subprocess.run(["cmake", "--build", out, "--target", *TOOLS, "-j", str(os.cpu_count() or 2)], check=True)
    (HOME / "bin").mkdir(exist_ok=True)
    for name in TOOLS:
        shutil.copy2(out / "bin" / name, HOME / "bin" / name)
    return HOME / "bin"


def gguf_files(model: Path, work: Path) -> dict[str, Path]:
    """f16 (converted) and q5_K_M (quantized from it) GGUF files of a Hugging Face model directory."""
    src = source()
    out = {"f16": work / "model-f16.gguf", "q5_K_M": work / "model-q5_K_M.gguf"}
    if not out["f16"].is_file():
        env = {**os.environ, "PYTHONPATH": str(src / "gguf-py"), "NO_LOCAL_GGUF": ""}
        subprocess.run([sys.executable, src / "convert_hf_to_gguf.py", model, "--outtype", "f16", "--outfile",
                        out["f16"]], check=True, capture_output=True, env=env)  # fmt: skip
    if not out["q5_K_M"].is_file():
        quantize = binary("llama-quantize")
        assert quantize is not None, "run `python benchmarks/llama_cpp.py build` first"
        subprocess.run([quantize, out["f16"], out["q5_K_M"], "q5_K_M"], check=True, capture_output=True)
    return out


def convert(model: Path, out: Path, outtype: str) -> Path:
    """``convert_hf_to_gguf.py`` of a Hugging Face model directory to ``out`` (cached)."""
    if not out.is_file():
        env = {**os.environ, "PYTHONPATH": str(source() / "gguf-py"), "NO_LOCAL_GGUF": ""}
        partial = out.with_suffix(".partial")
        subprocess.run([sys.executable, source() / "convert_hf_to_gguf.py", model, "--outtype", outtype, "--outfile",
                        partial], check=True, capture_output=True, env=env)  # fmt: skip
        partial.rename(out)
    return out


def quantize(base: Path, kind: str) -> Path:
    """``llama-quantize BASE OUT KIND`` beside ``base`` (cached)."""
    out = base.with_name(f"model-{kind}.gguf")
    if not out.is_file():
        exe = binary("llama-quantize")
        assert exe is not None, "run `python benchmarks/llama_cpp.py build` first"
        partial = out.with_suffix(".partial")
        subprocess.run([exe, base, partial, kind], check=True, capture_output=True)
        partial.rename(out)
    return out


def linear_bpw(path: Path) -> tuple[float, dict[str, int]]:
    """Bits per weight a GGUF file stores for the linear layers (bytes of their tensors over their weights) and how
    many of them each ggml type holds: with hidden 576 many K-quant matrices fall back to other types."""
    from gguf import GGUFReader

    n_bytes = n_weights = 0
    types: dict[str, int] = {}
    for t in GGUFReader(str(path)).tensors:
        parts = t.name.split(".")
        if len(parts) == 4 and parts[0] == "blk" and parts[2] in LINEAR and parts[3] == "weight":
            n_bytes += int(t.n_bytes)
            n_weights += int(t.n_elements)
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    return 8 * n_bytes / n_weights, dict(sorted(types.items()))


def perplexity_kl(base: Path, quant: Path, text: Path, ctx: int, chunks: int, threads: int = 2) -> dict[str, float]:
    """``llama-perplexity --kl-divergence`` of ``quant`` against ``base`` over the first ``chunks`` windows of
    ``ctx`` tokens of ``text`` (llama.cpp scores the second half of each window): mean KL (nats), PPL ratio,
    same-top-token fraction."""
    exe = binary("llama-perplexity")
    assert exe is not None, "run `python benchmarks/llama_cpp.py build` first"
    logits = base.with_name(f"{base.stem}.{text.stem}.{ctx}x{chunks}.kld")
    common = ["-f", text, "-c", str(ctx), "--chunks", str(chunks), "-t", str(threads), "--no-repack"]
    if not logits.is_file():  # written under another name, renamed when complete
        partial = logits.with_suffix(".partial")
        subprocess.run([exe, "-m", base, *common, "--kl-divergence-base", partial], check=True, capture_output=True)
        partial.rename(logits)
    r = subprocess.run([exe, "-m", quant, *common, "--kl-divergence-base", logits, "--kl-divergence"], check=True,
                       capture_output=True, text=True)  # fmt: skip
    return _kld_summary(r.stdout + r.stderr)


def _kld_summary(out: str) -> dict[str, float]:
    """The figures of llama-perplexity's KL-divergence summary (``Mean KLD``, ``Mean PPL(Q)/PPL(base)``,
    ``Same top p``)."""
    found: dict[str, float] = {}
    for line in out.splitlines():
        words = line.split()
        if line.startswith(("Mean    KLD:", "Mean KLD:")):
            found["kl"] = float(words[2])
        elif line.startswith("Mean PPL(Q)/PPL(base)"):
            found["ppl_ratio"] = float(words[3])
        elif line.startswith("Same top p:"):
            found["top1"] = float(words[3]) / 100
    if "kl" not in found:
        raise RuntimeError(f"llama-perplexity printed no KL summary:\n{out[-2000:]}")
    return found


def bench(model: Path, threads: int = 2, tokens: int = 64, prompt: int = 64) -> dict[str, dict[str, float]]:
    """llama-bench on f16 and q5_K_M: {type: {"pp": tokens/s, "tg": tokens/s, "bpw": bits per weight}}."""
    exe = binary("llama-bench")
    assert exe is not None, "run `python benchmarks/llama_cpp.py build` first"
    work = HOME / "models" / model.resolve().name
    work.mkdir(parents=True, exist_ok=True)
    files = gguf_files(model, work)
    out: dict[str, dict[str, float]] = {}
    for kind in TYPES:
        # --repack 0: this build's AMX repacking of Q5_K/Q6_K crashes on Sapphire Rapids (SIGSEGV); the plain
        # AVX-512 kernels run
        r = subprocess.run([exe, "-m", files[kind], "-t", str(threads), "-p", str(prompt), "-n", str(tokens), "-r", "3",
                            "--repack", "0", "-o", "json"], check=True, capture_output=True, text=True)  # fmt: skip
        rows = json.loads(r.stdout)
        row = {"bpw": 8 * rows[0]["model_size"] / rows[0]["model_n_params"]}
        for x in rows:
            row["pp" if x["n_prompt"] else "tg"] = float(x["avg_ts"])
        out[kind] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build")
    b = sub.add_parser("bench")
    b.add_argument("model", type=Path)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    if args.cmd == "build":
        print(build())
    else:
        print(json.dumps(bench(args.model, args.threads, args.tokens)))


if __name__ == "__main__":
    main()
