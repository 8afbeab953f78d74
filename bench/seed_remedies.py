"""Benchmark: the seeds' catalogued OOM cases (tests/seed_oom_models.py) on the mock device.

Each case is a one-op model at the catalogued shape, run twice as a verdict run (real validation
and allocation, meta weights): with activations in L1, where the table shows the allocator's
verdict (real), the memory model's (predicted) and the remedy the device confirmed by re-running
the node with it (verified); and under `--memory-config auto`, where it shows where the node ran.

    PYTHONPATH=$PWD .venv/bin/python bench/seed_remedies.py [--arch n150|p150] [CASE ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.seed_oom_models

from fxport.run_options import RunOptions
from fxport.runner import run_model
from fxport.runtime.devices import open_session_device
from tests.seed_oom_models import CASES, SEEDS


def case_rows(dev, name: str) -> list[list]:
    spec = f"tests.seed_oom_models:{name}"
    start = time.perf_counter()
    l1 = run_model(spec, dev, CASES[name], RunOptions(memory="l1", values="none"))
    auto = run_model(spec, dev, CASES[name], RunOptions(memory="auto", values="none"))
    seconds = time.perf_counter() - start
    ooms = {o.node: o for o in l1.memory_analysis.oom}
    where = {n.node: (n.status, n.memory, n.remedy_applied) for n in auto.nodes}
    rows = []
    for n in l1.nodes:
        if n.status == "host":
            continue
        o = ooms.get(n.node)
        status, memory, remedied = where.get(n.node, ("-", "", False))
        rows.append(
            [
                name,
                SEEDS[name][0],
                n.target.removeprefix("aten."),
                n.error_kind or "fits",
                ("OOM" if o.predicted else "fits") if o else "fits",
                (o.remedy + ("" if o.remedy_verified else " [NOT verified]")) if o and o.remedy else "-",
                f"{status} ({memory.upper()}{', remedied' if remedied else ''})",
                f"{seconds:.1f}",
            ]
        )
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="n150", choices=("n150", "p150"))
    parser.add_argument("cases", nargs="*", default=list(SEEDS))
    args = parser.parse_args(argv)
    dev = open_session_device("mock", args.arch)
    rows = []
    for name in args.cases:
        rows += case_rows(dev, name)
        print(f"measured {name}", file=sys.stderr)
    print(
        tabulate(
            rows,
            headers=[
                "case",
                "catalogued",
                "op",
                "L1: allocator (real)",
                "L1: model (predicted)",
                "L1: verified remedy",
                "auto: ran",
                "s",
            ],
        )
    )
    verified = sum(1 for r in rows if r[3] != "fits" and "verified" in r[5] and "NOT" not in r[5])
    refused = sum(1 for r in rows if r[3] != "fits")
    on_device = sum(1 for r in rows if r[6].startswith("device"))
    print(
        f"\n{refused} nodes refused in L1, {verified} with a verified remedy; "
        f"under auto {on_device}/{len(rows)} nodes ran on the device"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
