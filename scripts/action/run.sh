#!/usr/bin/env bash
# The uc-attest action's work: pack + attest, or verify; outputs, job summary, exit code passed through.
set -uo pipefail
if [ "${UC_ATTEST_USE_PATH:-0}" = "1" ]; then UC=uc-attest; else UC="${UC_ATTEST_VENV}/bin/uc-attest"; fi
OUT_DIR="${RUNNER_TEMP:-/tmp}/uc-attest"
mkdir -p "${OUT_DIR}"
trust=(--trust-config "${TRUST_CONFIG}")
[ -n "${INSTANCE:-}" ] && trust=(--instance "${INSTANCE}")
summary="${GITHUB_STEP_SUMMARY:-/dev/null}"

if [ "${MODE}" = "pack-and-attest" ]; then
  cal=()
  [ -n "${CALIBRATION:-}" ] && cal=(--calibration "${CALIBRATION}")
  "$UC" pack "${SOURCE}" -o "${OUTPUT}" --bits "${BITS}" --group-size "${GROUP_SIZE}" --device "${DEVICE}" \
    "${cal[@]}" --json > "${OUT_DIR}/pack.json" || exit $?
  "$UC" attest "${OUTPUT}" "${trust[@]}" --pack-device "${DEVICE}" --json > "${OUT_DIR}/attest.json" || exit $?
  echo '{}' > "${OUT_DIR}/push.json"
  if [ -n "${PUSH_TO:-}" ]; then
    plain=()
    [ "${UC_ATTEST_PLAIN_HTTP:-0}" = "1" ] && plain=(--plain-http)  # tests: a registry on loopback
    "$UC" push "${OUTPUT}" "${PUSH_TO}" "${plain[@]}" --json > "${OUT_DIR}/push.json" || exit $?
  fi
  python3 - "${OUT_DIR}/pack.json" "${OUT_DIR}/attest.json" "${GITHUB_OUTPUT:-/dev/null}" "${summary}" \
    "${OUT_DIR}/push.json" <<'PY'
import json, sys
pack, att = (json.load(open(p)) for p in sys.argv[1:3])
push = json.load(open(sys.argv[5]))
with open(sys.argv[3], "a") as out:
    out.write(f"bundle-path={att['bundle']}\nmanifest-root={att['root']}\nlog-index={att['log_index']}\n")
    out.write(f"oms-signature-path={att.get('oms_signature') or ''}\n")
    out.write(f"pushed-digest={push.get('digest', '')}\n")
with open(sys.argv[4], "a") as s:
    s.write("### uc-attest: pack and attest\n\n| | |\n|---|---|\n")
    s.write(f"| manifest root | `{att['root']}` |\n| tensors | {pack['tensors']} ({pack['quantized']} quantized, {pack.get('calibrated', 0)} with calibration feedback) |\n")
    s.write(f"| scheme | `{pack['scheme']['id']}` {pack['scheme']['bits']} bits, group {pack['scheme']['group_size']} |\n")
    s.write(f"| signer | `{att['identity']}` |\n| log index | {att['log_index']} |\n| bundle | `{att['bundle']}` |\n")
    if att.get("oms_signature"):
        s.write(f"| OpenSSF Model Signing signature | `{att['oms_signature']}` (log index {att['oms_log_index']}) |\n")
    if push.get("digest"):
        s.write(f"| pushed | `{push['reference']}` @ `{push['digest']}` ({push['uploaded_bytes']} bytes uploaded) |\n")
PY
  exit 0
fi

args=(verify "${PACK}" --policy "${POLICY}" --json)
[ -n "${BUNDLE:-}" ] && args+=(--bundle "${BUNDLE}")
[ -n "${REBUILD_FROM:-}" ] && args+=(--rebuild-from "${REBUILD_FROM}" --device "${DEVICE}")
[ -n "${INSTANCE:-}" ] && args+=(--instance "${INSTANCE}")
[ "${UC_ATTEST_PLAIN_HTTP:-0}" = "1" ] && [[ "${PACK}" == oci://* ]] && args+=(--plain-http)
"$UC" "${args[@]}" > "${OUT_DIR}/verify.json"
rc=$?
python3 - "${OUT_DIR}/verify.json" "${GITHUB_OUTPUT:-/dev/null}" "${summary}" "${rc}" <<'PY'
import json, sys
path, out_path, summary, rc = sys.argv[1:5]
try:
    v = json.load(open(path))
except ValueError:
    v = {"ok": False, "checks": [], "findings": [], "message": "uc-attest verify produced no verdict"}
with open(out_path, "a") as out:
    out.write(f"verified={'true' if rc == '0' and v.get('ok') else 'false'}\nreport-path={path}\n")
with open(summary, "a") as s:
    s.write(f"### uc-attest verify: {'ALLOWED' if rc == '0' else 'DENIED'}\n\n")
    if v.get("message"):
        s.write(f"{v['message']}\n\n")
    s.write("| rule | result | detail | expected / actual / hint |\n|---|---|---|---|\n")
    for c in v.get("checks", []):
        res = "skipped" if c.get("skipped") else ("pass" if c["ok"] else "**FAIL**")
        extra = " ".join(f"{k}: `{c[k]}`" for k in ("expected", "actual", "hint") if c.get(k) and not c["ok"])
        s.write(f"| {c['rule']} | {res} | {c.get('detail', '')} | {extra} |\n")
    for f in v.get("findings", []):
        s.write(f"| finding: `{f['subject']}` | **FAIL** | {f['problem']} | |\n")
PY
exit "${rc}"
