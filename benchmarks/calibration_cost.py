"""What the default calibration of a causal LM costs: self-sampling (32 x 256 tokens) + moments, measured on
a random-init Llama of ~58 M parameters saved by transformers, on one thread (as `pack` runs it), and the
rate per million parameters (the cost is linear in parameters at a fixed token count).

    python benchmarks/calibration_cost.py [--hidden 512 --layers 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    args = ap.parse_args()
    import torch
    import transformers

    from uc_attest.calibration import default
    from uc_attest.quant.scheme import LDLQ_ID, Scheme

    cfg = transformers.LlamaConfig(hidden_size=args.hidden, intermediate_size=args.hidden * 11 // 4,
                                   num_hidden_layers=args.layers, num_attention_heads=8, num_key_value_heads=8,
                                   vocab_size=32000, max_position_embeddings=512, bos_token_id=1)  # fmt: skip
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        n = sum(p.numel() for p in model.parameters())
        t0 = time.perf_counter()
        r = default.measure(Path(tmp), json.loads((Path(tmp) / "config.json").read_text()), Scheme(id=LDLQ_ID))
        dt = time.perf_counter() - t0
    tokens = int(r.record.params["sequences"]) * int(r.record.params["length"])
    print(
        f"{n / 1e6:.1f} M parameters, {tokens} self-sampled tokens, {len(r.moments)} layers: {dt:.1f} s = "
        f"{dt / (n / 1e6):.3f} s per M parameters; 1.24 B parameters (Llama-3.2-1B): ~{dt / n * 1.24e9 / 60:.0f} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
