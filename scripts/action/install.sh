#!/usr/bin/env bash
# Install uc-attest from the action's own checkout into a private venv (pinned CPU torch).
# UC_ATTEST_USE_PATH=1 uses the uc-attest already on PATH (local runs and tests).
set -euo pipefail
if [ "${UC_ATTEST_USE_PATH:-0}" = "1" ]; then
  command -v uc-attest >/dev/null || { echo "::error title=uc-attest::uc-attest is not on PATH"; exit 4; }
  echo "using $(command -v uc-attest)"
  exit 0
fi
python3 -m venv "${UC_ATTEST_VENV}"
"${UC_ATTEST_VENV}/bin/python" -m pip install -q --upgrade pip
"${UC_ATTEST_VENV}/bin/python" -m pip install -q "torch==2.13.0" ${TORCH_PIP_ARGS:-}
"${UC_ATTEST_VENV}/bin/python" -m pip install -q "${GITHUB_ACTION_PATH}[torch]"
