#!/usr/bin/env bash
# The README's first command: set up, write the real digits dataset, check it, then run the example
# AutoML job on this machine (4 trials, 2 at a time, on the CPU) and print the best model and report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
kubevision datasets digits --out data/digits
kubevision data check data/digits/train.jsonl --task image_classification
kubevision validate examples/digits-classification.yaml
# A fresh output folder per run, so the demo can be run again (`kubevision run --resume` continues one).
kubevision run examples/digits-classification.yaml --output "runs/digits-$(date +%Y%m%d-%H%M%S)"
