"""Benchmark: wall time of the full zoo sweep on the mock device (verdict runs, as `fxport sweep`).

Runs every zoo entry (model x sweep resolution) in its own process, as the sweep does, and prints
the wall time of each and the total, with node counts and the device outcome.

    .venv/bin/python bench/sweep.py [MODEL ...] [--memory-config dram|l1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from fxport.sweep import run_item, sweep_items


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*")
    parser.add_argument("--memory-config", choices=["dram", "l1"], default="dram")
    args = parser.parse_args(argv)
    rows, total = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for item in sweep_items(args.models or None):
            start = time.perf_counter()
            entry, _ = run_item(item, Path(tmp), "mock", None, args.memory_config, "none", 3600)
            seconds = time.perf_counter() - start
            cov = entry["coverage"] or {}
            rows.append([item.key, entry["status"], cov.get("total", ""), cov.get("on_device", ""),
                         entry["fallbacks"], entry["oom_nodes"], f"{seconds:.1f}", entry["error"][:60]])
            print(f"{item.key}: {seconds:.1f} s", file=sys.stderr)
    print(tabulate(rows, headers=["entry", "status", "aten nodes", "on device", "fallbacks",
                                  "OOM nodes", "wall s", "error"]))
    print(f"total wall time: {time.perf_counter() - total:.1f} s for {len(rows)} entries "
          f"({args.memory_config}, mock n150, verdict runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
