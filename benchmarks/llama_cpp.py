"""llama.cpp, the field's reference CPU runtime, built here and measured beside uc-attest (issues 30, 31).

The sources come from PyPI's llama-cpp-python sdist (its vendored llama.cpp: pip reaches PyPI, GitHub is out
of reach), built once into ``build/llama.cpp/`` (``llama-bench``, ``llama-quantize``; ~20 min on 2 cores)
with the host's ISA (``GGML_NATIVE``). A Hugging Face model directory is converted with the vendored
``convert_hf_to_gguf.py`` (the ``gguf`` package) to f16, quantized to q5_K_M, and ``llama-bench`` reports
prompt processing and batch-1 generation tokens/s for both on the same threads.

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
    if binary("llama-bench") and binary("llama-quantize"):
        return HOME / "bin"
    src, out = source(), HOME / "cmake"
    flags = ["-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
             "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_APP=OFF", "-DBUILD_SHARED_LIBS=OFF"]  # fmt: skip
    subprocess.run(["cmake", "-S", src, "-B", out, "-G", "Ninja", *flags], check=True)
    subprocess.run(["cmake", "--build", out, "--target", "llama-bench", "llama-quantize", "-j", str(os.cpu_count() or 2)],
                   check=True)  # fmt: skip
    (HOME / "bin").mkdir(exist_ok=True)
    for name in ("llama-bench", "llama-quantize"):
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
