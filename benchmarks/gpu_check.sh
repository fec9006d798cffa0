#!/usr/bin/env bash
# One command, <= 5 minutes: pack a deterministic ~1 GB model on CUDA and on CPU, compare every
# digest and pack byte, check the GPU decoder, time both, print the manifest root.
# Runs from the repository root with only torch + numpy (no install: PYTHONPATH=.).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
PYTHONPATH=. exec timeout 300 "$PY" benchmarks/gpu_check.py "$@"
