#!/usr/bin/env bash
# Create .venv (if missing) and install kubevision with everything its tests and demo need.
# Idempotent: a second run only checks that the install is complete. torch/torchvision are pinned
# to the builds this project is developed against (2.14.1 / 0.29.1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.kubevision-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  python -m pip install -q -e ".[dev,operator,trainer,local]"
  echo "$want" > "$stamp"
fi
