#!/usr/bin/env bash
# The deployment artifacts in deploy/: parsed and cross-checked by deploy_check.py (PyYAML in the
# integration venv). No container is built here: this machine has no Docker engine (docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SLUICE=${SLUICE:-$ROOT/.build/debug/sluice}
VENV=$ROOT/.build/venv-integration
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import yaml' 2>/dev/null || "$VENV/bin/pip" install -q pyyaml
echo "deploy:"
if "$VENV/bin/python" Tests/IntegrationTests/deploy_check.py "$ROOT" "$SLUICE"; then
  echo "deploy: all checks passed"
else
  echo "deploy: FAILED"
  exit 1
fi
