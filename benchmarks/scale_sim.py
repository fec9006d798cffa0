"""Scale on paper and in simulation: Llama-3-70B- and Llama-3.1-405B-shaped manifests and statements
(real sizes, synthetic digests), and verify/pack time extrapolated from rates measured in the same run
on a generated bf16 model on this machine.

    python benchmarks/scale_sim.py
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from statement_size import INFO

import uc_attest as uc
from uc_attest.claims.slsa import INLINE_LIMIT, ManifestInline, build_statement
from uc_attest.core.digest import Digest
from uc_attest.manifest import Manifest, TensorEntry
from uc_attest.quant import DEFAULT_SCHEME
from uc_attest.testing.synth import write_synth_model

#: (name, hidden, kv dim, FFN, layers, vocab, shards) — the published configurations (GQA k/v).
SHAPES = [("Llama-3-70B", 8192, 1024, 28672, 80, 128256, 30), ("Llama-3.1-405B", 16384, 1024, 53248, 126, 128256, 191)]


def shapes(hidden: int, kv: int, ffn: int, layers: int, vocab: int) -> list[tuple[str, tuple[int, ...]]]:
    out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}"
        out += [(f"{p}.input_layernorm.weight", (hidden,)), (f"{p}.post_attention_layernorm.weight", (hidden,)),
                (f"{p}.self_attn.q_proj.weight", (hidden, hidden)), (f"{p}.self_attn.k_proj.weight", (kv, hidden)),
                (f"{p}.self_attn.v_proj.weight", (kv, hidden)), (f"{p}.self_attn.o_proj.weight", (hidden, hidden)),
                (f"{p}.mlp.gate_proj.weight", (ffn, hidden)), (f"{p}.mlp.up_proj.weight", (ffn, hidden)),
                (f"{p}.mlp.down_proj.weight", (hidden, ffn))]  # fmt: skip
    return [*out, ("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]


def manifest(spec: tuple[str, int, int, int, int, int, int]) -> tuple[Manifest, int, int]:
    _, hidden, kv, ffn, layers, vocab, nshards = spec
    entries, weights, largest = [], 0, 0
    names = shapes(hidden, kv, ffn, layers, vocab)
    for i, (name, shape) in enumerate(names):
        n = math.prod(shape)
        weights += n
        largest = max(largest, n * 2)
        d = Digest(hashlib.sha256(name.encode()).hexdigest())
        quant = None
        if DEFAULT_SCHEME.applies_to(name, "BF16", shape):
            quant = uc.QuantRecord(5, 128, -21, True, Digest(hashlib.sha256(d.raw).hexdigest()), 2800)
        entries.append(TensorEntry(name, "BF16", shape, d, Digest(hashlib.sha256(d.raw).hexdigest()),
                                   f"model-{i * nshards // len(names) + 1:05d}-of-{nshards:05d}.safetensors", quant))  # fmt: skip
    files = {f"model-{k:05d}-of-{nshards:05d}.safetensors": Digest(hashlib.sha256(str(k).encode()).hexdigest())
             for k in range(1, nshards + 1)}  # fmt: skip
    files["config.json"] = Digest(hashlib.sha256(b"config").hexdigest())
    return Manifest(DEFAULT_SCHEME.to_dict(), entries, files, dict(files)), weights, largest


def measured_rates() -> tuple[float, float, int]:
    """(pack s per 10 M weights, verify s per GB of bf16 original, weights) on a generated model, this machine."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "m"
        write_synth_model(src, hidden=1024, inter=2816, layers=4, vocab=8000, dtype=torch.bfloat16)
        t0 = time.perf_counter()
        res = uc.write_pack(src, Path(tmp) / "p", DEFAULT_SCHEME, "cpu", calibration=None, allocation=None)
        pack_s = time.perf_counter() - t0
        q = sum(math.prod(t.shape) for t in res.manifest.tensors if t.quant)
        size = (src / "model.safetensors").stat().st_size
        t0 = time.perf_counter()
        assert uc.check_pack(Path(tmp) / "p").ok
        verify_s = time.perf_counter() - t0
    return pack_s / q * 1e7, verify_s / (size / 1e9), q


def main() -> int:
    pack_rate, verify_rate, q = measured_rates()
    print(
        f"measured here ({torch.get_num_threads()} threads, generated bf16 model, {q / 1e6:.0f} M quantized weights, "
        f"no calibration): pack {pack_rate:.2f} s per 10 M weights, verify {verify_rate:.2f} s per GB of bf16"
    )
    print(
        f"{'model':<16} {'tensors':>7} {'weights':>8} {'bf16 GB':>8} {'manifest':>10} {'stmt inline':>12} "
        f"{'stmt digest':>12} {'auto':>9} {'verify mem':>10} {'verify here':>12} {'pack here':>10}"
    )
    for spec in SHAPES:
        m, weights, largest = manifest(spec)
        mbytes = m.to_json()
        sizes = {k: len(json.dumps(build_statement(m, mbytes, INFO, k), separators=(",", ":")).encode())
                 for k in (ManifestInline.ALWAYS, ManifestInline.NEVER)}  # fmt: skip
        gb = weights * 2 / 1e9
        print(
            f"{spec[0]:<16} {len(m.tensors):>7} {weights / 1e9:>7.1f}B {gb:>8.0f} {len(mbytes) / 1e3:>8.0f}KB "
            f"{sizes['always'] / 1e3:>10.0f}KB {sizes['never'] / 1e3:>10.1f}KB "
            f"{'inline' if len(mbytes) <= INLINE_LIMIT else 'digest':>9} {2 * largest / 1e9:>8.1f}GB "
            f"{gb * verify_rate / 3600:>10.1f} h {weights / 1e7 * pack_rate / 3600:>8.1f} h"
        )
    print(
        "verify mem: the bound the verifier keeps (2x the largest tensor: the embedding / head);"
        " times: this machine's rates scaled linearly (2 cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
