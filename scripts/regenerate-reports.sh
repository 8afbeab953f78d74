#!/usr/bin/env bash
# Regenerates reports/: the zoo's coverage and OOM analysis on a mock n150, as verdict runs of the
# full-size models, with activations in DRAM (what deployments use) and in L1 (where the seed
# reports' out-of-memory failures came from).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
for memory in dram l1; do
    .venv/bin/fxport sweep --memory-config "$memory" --out "reports/$memory" --no-resume
done
# The zoo's per-op test suite (run it with: .venv/bin/python -m pytest reports/op-tests).
.venv/bin/fxport gen-tests --out reports/op-tests
