"""Benchmark: wall time of the zoo sweep (verdict runs on the mock device, as `fxport sweep`) for
-j 1, -j 2 and Ray with 2 local workers, each with a cold and then a warm cache (verdicts and
captured programs), against the sequential reference (a fresh process per entry, one at a time, no
cache: the sweep as it was).

Prints, per configuration: wall time, verdict and capture cache hit rates, where the entries' time went
(import, device open, capture, plan, execute, write; summed over entries, so more than the wall
time when workers run in parallel), peak memory per entry, and whether every document (sweep.json
and each run.json) is byte-identical to the reference's.

    .venv/bin/python bench/sweep.py [MODEL ...] [--memory-config dram|l1] [--configs ref,j1,j2,ray]
                                    [--reference DIR]

`--reference DIR` compares with the documents of an earlier sweep instead of running `ref` (for
example reports/dram, whose sweep.json is checked in: only the documents DIR holds are compared).

Run it on a quiet machine (it prints the load average before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

STAGES = ["import", "device_open", "build_capture", "plan_partition", "execute", "write"]
CONFIGS = {  # name -> (label, sweep options, uses the cache)
    "ref": (
        "sequential: fresh process per entry, no cache",
        ["-j", "1", "--entries-per-worker", "1", "--no-cache"],
        False,
    ),
    "j1": ("-j 1, warm worker", ["-j", "1"], True),
    "j2": ("-j 2, warm workers", ["-j", "2"], True),
    "ray": ("Ray, 2 local workers", ["--cluster", "ray"], True),
}


def documents(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*.json")) if p.name != "timing.json"
    }


def _same(docs: dict[str, str], reference: dict[str, str]) -> str:
    """Whether every reference document has an identical twin (parsed JSON, so that an older
    writer's formatting does not count), and how many of how many were compared."""
    differ = [k for k, v in reference.items() if k not in docs or json.loads(docs[k]) != json.loads(v)]
    extra = len(set(docs) - set(reference))
    return (
        f"yes ({len(reference)} documents)"
        if not differ and not extra
        else f"NO: {len(differ)} of {len(reference)} differ ({', '.join(differ[:3])})"
        if differ
        else f"yes ({len(reference)} documents compared; {extra} not in the reference)"
    )


def sweep(models: list[str], memory: str, out: Path, options: list[str], cache: Path | None) -> float:
    cmd = [
        sys.executable,
        "-m",
        "fxport.cli",
        "sweep",
        *models,
        "--memory-config",
        memory,
        "--out",
        str(out),
        "--no-resume",
        *options,
    ]
    if cache is not None:
        cmd += ["--cache", str(cache)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 4):
        raise SystemExit(f"sweep failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
    return wall


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*")
    parser.add_argument("--memory-config", choices=["dram", "l1"], default="dram")
    parser.add_argument("--configs", default="ref,j1,j2,ray")
    parser.add_argument("--reference", type=Path, help="a sweep directory to compare with")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)", flush=True)
    rows, stage_rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        reference = documents(args.reference) if args.reference else None
        for name in args.configs.split(","):
            label, options, cached = CONFIGS[name]
            cache = tmp / f"cache-{name}" if cached else None
            for temperature in ("cold", "warm") if cached else ("-",):
                out = tmp / f"{name}-{temperature}"
                wall = sweep(args.models, args.memory_config, out, options, cache)
                timing = json.loads((out / "timing.json").read_text())
                docs = documents(out)
                if name == "ref":
                    reference = docs
                same = "reference" if name == "ref" else "-" if reference is None else _same(docs, reference)
                entries = timing["entries"].values()
                vc = timing["verdict_cache"]
                cc = timing.get("capture_cache") or {}
                peak = max((e["peak_rss"] for e in entries), default=0)
                rows.append(
                    [
                        label,
                        temperature,
                        f"{wall:.1f}",
                        len(timing["entries"]),
                        f"{100 * vc['hit_rate']:.1f}%" if cached else "-",
                        f"{100 * cc.get('hit_rate', 0):.1f}%" if cached else "-",
                        f"{peak / 2**30:.2f}",
                        same,
                    ]
                )
                sums = {s: sum(e["seconds"].get(s, 0.0) for e in entries) for s in STAGES}
                stage_rows.append(
                    [
                        label,
                        temperature,
                        *(f"{sums[s]:.1f}" for s in STAGES),
                        f"{sum(e['seconds'].get('entry', 0) for e in entries):.1f}",
                    ]
                )
                print(f"{label} ({temperature}): {wall:.1f} s", file=sys.stderr, flush=True)
    print(
        tabulate(
            rows,
            headers=[
                "configuration",
                "cache",
                "wall s",
                "entries",
                "verdict hits",
                "capture hits",
                "peak RSS per entry GiB",
                "documents identical to sequential",
            ],
        )
    )
    print()
    print("Where the entries' time went (seconds summed over entries, in their workers):")
    print(
        tabulate(
            stage_rows,
            headers=[
                "configuration",
                "cache",
                "import",
                "device open",
                "capture",
                "plan",
                "execute",
                "write (driver)",
                "entry total",
            ],
        )
    )
    print(f"\n{args.memory_config}, mock n150, verdict runs; load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
