"""Benchmark: what the memory model costs in a run, for the largest models of the zoo.

Each case is one `fxport run --memory-config auto --values none` (verdict run: real validation
and allocation on the mock device, meta weights) in a fresh process. From the run's timing.json:
the auto placement (liveness walk with trial placements, fxport/memory/placement.py) and the
memory analysis after the run (the walk again, judged against the allocator's verdicts), against
the whole run. Target (issue 10): memory analysis + placement under 10% of the run.

The footprints of nodes (one NO_DISPATCH graph capture per op signature) are cached on disk
($FXPORT_CACHE/footprints); "footprints measured" says how many this run had to measure (0: all
from the cache). `--cold` points FXPORT_CACHE at an empty folder so that every footprint is
measured (the mock runtime root is rebuilt there too, which the run's own time includes).

    .venv/bin/python bench/memory.py [--cold] [MODEL@HxW ...]   (default: pi0, yolov12x@2176x3840)
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

CASES = ("pi0", "yolov12x@2176x3840")
TARGET = 0.10


def footprint_rows(cache: Path) -> int:
    db = cache / "footprints" / "footprints.sqlite"
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        try:
            return con.execute("SELECT COUNT(*) FROM footprints").fetchone()[0]
        except sqlite3.Error:
            return 0


def bench(case: str, out: Path, env: dict) -> list:
    model, _, size = case.partition("@")
    shape = ["--input-shape", f"1,3,{size.replace('x', ',')}"] if size else []
    cache = Path(env.get("FXPORT_CACHE") or Path.home() / ".cache" / "fxport")
    before = footprint_rows(cache)
    start = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fxport.cli",
            "run",
            model,
            *shape,
            "--device",
            "mock",
            "--memory-config",
            "auto",
            "--values",
            "none",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return [
            case,
            "FAILED: " + ((proc.stderr.strip().splitlines() or [""])[-1][:80]),
            "",
            "",
            "",
            "",
            "",
            f"{wall:.1f}",
        ]
    timing = json.loads((out / "timing.json").read_text())
    doc = json.loads((out / "run.json").read_text())
    run = sum(timing.values())
    memory = timing.get("placement", 0.0) + timing.get("memory_analysis", 0.0)
    share = memory / run if run else 0.0
    cov, placed = doc["coverage"], doc["placement"]
    return [
        case,
        cov["total"],
        f"{cov['device_pct']:.1f}",
        len(doc["memory"]["oom_nodes"]) if doc["memory"] else "-",
        f"{timing.get('placement', 0.0):.1f}",
        f"{timing.get('memory_analysis', 0.0):.1f}",
        f"{run:.1f}",
        f"{100 * share:.1f}% ({'meets' if share < TARGET else 'MISSES'} < {100 * TARGET:.0f}%)",
        footprint_rows(cache) - before,
        f"{100 * (placed['l1_byte_share'] or 0):.1f}% / {100 * (placed['l1_node_share'] or 0):.1f}%",
        f"{wall:.1f}",
    ]


def main(argv: list[str]) -> int:
    cold = "--cold" in argv
    cases = [a for a in argv if a != "--cold"] or list(CASES)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if cold:
            env["FXPORT_CACHE"] = str(Path(tmp) / "cache")
        for case in cases:
            rows.append(bench(case, Path(tmp) / case.replace("@", "_"), env))
            print(f"measured {case}", file=sys.stderr)
    print(
        tabulate(
            rows,
            headers=[
                "model",
                "aten nodes",
                "on device %",
                "OOM nodes",
                "placement s",
                "memory analysis s",
                "run s (stages)",
                "memory share of run",
                "footprints measured",
                "L1 share bytes / nodes",
                "wall s",
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
