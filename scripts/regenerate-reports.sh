#!/usr/bin/env bash
# Regenerates reports/: the zoo's coverage and OOM analysis on a mock n150, as verdict runs of the
# full-size models, with activations in DRAM (what deployments use), in L1 (where the seed
# reports' out-of-memory failures came from) and placed by `auto` (L1 where it fits given
# liveness, DRAM otherwise). The sweeps write what is checked in (sweep.json, index.md, the CSVs,
# each entry's report.md); `.venv/bin/fxport report reports/dram` builds the HTML pages, plots and
# per-node files from the run documents they leave beside them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
for memory in dram l1 auto; do
    # Exit 4: some entries produced no result. The sweep records and reports them, so the
    # regeneration goes on; any other failure stops it.
    .venv/bin/fxport sweep --memory-config "$memory" --out "reports/$memory" --no-resume || [ $? -eq 4 ]
done
# The zoo's per-op test suite (run it with: .venv/bin/python -m pytest reports/op-tests).
.venv/bin/fxport gen-tests --out reports/op-tests
# The README's op count is the mapping table's size.
.venv/bin/python scripts/readme_op_count.py
