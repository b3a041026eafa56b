#!/usr/bin/env bash
# The README's first command: set up, write the real digits dataset, validate and check the example job.
# (When the embedded runner lands, this runs the whole AutoML job and prints the best model and report.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
kubevision datasets digits --out data/digits
kubevision data check data/digits/train.jsonl --task image_classification
kubevision validate examples/digits-classification.yaml
