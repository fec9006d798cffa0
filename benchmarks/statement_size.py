"""Size of the provenance statement for a real pack and for a synthetic 70B-shaped manifest.

Public Rekor rejects requests over ~100 KB; uc-attest inlines the manifest only below
uc_attest.claims.slsa.INLINE_LIMIT and otherwise signs its digest (the manifest file in the
pack is then checked against it).

    python benchmarks/statement_size.py [PACK_DIR ...]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uc_attest.claims.slsa import INLINE_LIMIT, BuildInfo, ManifestInline, build_statement
from uc_attest.core.digest import Digest
from uc_attest.manifest import Manifest, TensorEntry
from uc_attest.pack import MANIFEST_NAME, load_manifest
from uc_attest.quant import DEFAULT_SCHEME
from uc_attest.testing.synth import llama_shapes

INFO = BuildInfo(
    "https://github.com/bank/models/.github/workflows/release.yml@refs/tags/v1",
    "model",
    "",
    "cuda",
    {"python": "3.12.3", "uc-attest": "0.1.0", "torch": "2.11.0"},
    dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
    dt.datetime(2026, 11, 27, 0, 20, tzinfo=dt.UTC),
    "1",
)


def seventy_b_manifest() -> Manifest:
    """Llama-3-70B shapes (80 layers, hidden 8192, FFN 28672, vocab 128256), 30 shards."""
    entries = []
    shapes = llama_shapes(8192, 28672, 80, 128256)
    for i, (name, shape) in enumerate(shapes):
        d = Digest(hashlib.sha256(name.encode()).hexdigest())
        quant = {"bits": 5, "exponent": -21, "group_size": 128} if len(shape) == 2 and "embed" not in name else None
        entries.append(
            TensorEntry(
                name,
                "BF16",
                shape,
                d,
                Digest(hashlib.sha256(d.raw).hexdigest()),
                f"model-{i * 30 // len(shapes) + 1:05d}-of-00030.safetensors",
                quant,
            )
        )
    files = {
        f"model-{k:05d}-of-00030.safetensors": Digest(hashlib.sha256(str(k).encode()).hexdigest()) for k in range(1, 31)
    }
    for extra in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        files[extra] = Digest(hashlib.sha256(extra.encode()).hexdigest())
    return Manifest(DEFAULT_SCHEME.to_dict(), entries, files, dict(files))


def report(label: str, m: Manifest, mbytes: bytes) -> None:
    sizes = {}
    for inline in (ManifestInline.ALWAYS, ManifestInline.NEVER):
        stmt = build_statement(m, mbytes, INFO, inline)
        sizes[inline] = len(json.dumps(stmt, separators=(",", ":")).encode())
    auto = "inline" if len(mbytes) <= INLINE_LIMIT else "by digest"
    print(f"{label:<38} {len(m.tensors):>7} {len(mbytes):>11,} {sizes['always']:>14,} {sizes['never']:>13,}   {auto}")


def main() -> int:
    print(f"{'model':<38} {'tensors':>7} {'manifest B':>11} {'stmt inline B':>14} {'stmt digest B':>13}   auto")
    for p in sys.argv[1:]:
        m = load_manifest(Path(p) / MANIFEST_NAME)
        report(Path(p).name, m, (Path(p) / MANIFEST_NAME).read_bytes())
    m70 = seventy_b_manifest()
    report("synthetic Llama-3-70B shape (723 tensors)", m70, m70.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
