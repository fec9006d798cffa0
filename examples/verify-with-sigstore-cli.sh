#!/usr/bin/env bash
# Verify a uc-attest bundle with the stock sigstore CLI (sigstore-python), offline.
# The CLI checks the signature, the certificate identity and issuer, the log proof, and that a
# statement subject's sha256 equals the file you name: any pack file works (here the shard).
# Usage: bash examples/verify-with-sigstore-cli.sh [build/demo]   (after `make demo`)
set -euo pipefail
WORK="${1:-build/demo}"
"${PYTHON:-python}" -m sigstore --trust-config "$WORK/instance/trust_config.json" verify identity --offline \
  --bundle "$WORK/pack.sigstore.json" \
  --cert-identity release-bot@bank.example \
  --cert-oidc-issuer https://dev-oidc.uc-attest.invalid \
  "$WORK/pack/model.safetensors" > /dev/null   # the CLI prints the verified statement on stdout
