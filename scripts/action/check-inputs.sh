#!/usr/bin/env bash
# Fail early, naming the input, on missing or contradictory inputs of the uc-attest action.
set -euo pipefail
fail() { echo "::error title=uc-attest::$1"; exit 2; }
case "${MODE:-}" in
  pack-and-attest)
    [ -n "${SOURCE:-}" ] || fail "input 'source' is required with mode pack-and-attest"
    [ -n "${OUTPUT:-}" ] || fail "input 'output' is required with mode pack-and-attest"
    [ -z "${PACK:-}" ] || fail "input 'pack' belongs to mode verify, not pack-and-attest"
    ;;
  verify)
    [ -n "${PACK:-}" ] || fail "input 'pack' is required with mode verify"
    [ -n "${POLICY:-}" ] || fail "input 'policy' is required with mode verify"
    [ -z "${SOURCE:-}" ] || fail "input 'source' belongs to mode pack-and-attest (use 'rebuild-from' to rebuild)"
    ;;
  *) fail "input 'mode' must be pack-and-attest or verify, got '${MODE:-}'" ;;
esac
echo "inputs ok (mode ${MODE})"
