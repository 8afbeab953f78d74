"""Benchmark: the cost model's device throughput against TT-NN's published figures.

The calibration set (the only figures fxport/cost/constants.py is fitted to): ResNet-50 at batch
16 on n150 and p150, and ViT-base at batch 8 on n150, each as the published runs make them:
bfloat8_b weights and activations, LoFi. Each case is one `fxport run --values none` (verdict
run: meta weights, real validation and allocation on the mock device) in a fresh process; its
run.json `estimate` block gives the device time. Target (issue 18): every case within 1.5x.

Published figures are device throughputs (tt-metal's device perf tests: kernel time, no host), so
the comparison is against the estimate's device time, not its end-to-end latency.

    .venv/bin/python bench/cost.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

TARGET = 1.5
COMPUTE = ("--memory-config", "auto", "--weights", "bfloat8_b", "--activations", "bfloat8_b", "--math-fidelity", "lofi")


@dataclass(frozen=True)
class Case:
    model: str
    shape: str
    arch: str
    published: float  # images per second
    source: str

    @property
    def name(self) -> str:
        return f"{self.model}-b{self.shape.split(',')[0]}-{self.arch}"


CASES = (
    Case(
        "resnet50",
        "16,3,224,224",
        "n150",
        5180.0,
        "tt-metal models/demos/wormhole/resnet50/tests/test_perf_device_resnet50.py",
    ),
    Case(
        "resnet50",
        "16,3,224,224",
        "p150",
        10193.0,
        "tt-metal models/demos/blackhole/resnet50/tests/test_perf_device_resnet50.py",
    ),
    Case("vit_b_16", "8,3,224,224", "n150", 1370.0, "tt-metal models/README.md (about November 2025)"),
)


def costliest(doc: dict) -> str:
    """The aten op whose device nodes take the most estimated time, and its share of the device time."""
    by_op: dict[str, float] = {}
    for n in doc["nodes"]:
        if n["status"] == "device":
            by_op[n["target"]] = by_op.get(n["target"], 0.0) + n.get("est_ns", 0.0) * n["repeat"] / 1e6
    op, ms = max(by_op.items(), key=lambda kv: kv[1])
    return f"{op.split('.')[1]} {ms:.2f} ms ({100 * ms / doc['estimate']['device_ms']:.0f}%)"


def run(case: Case, out: Path) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "fxport.cli",
        "run",
        case.model,
        "--input-shape",
        case.shape,
        "--arch",
        case.arch,
        "--device",
        "mock",
        "--values",
        "none",
        *COMPUTE,
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if done.returncode != 0:
        raise SystemExit(f"{case.name}: fxport run failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return json.loads((out / "run.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the runs' directories here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        rows, ok = [], True
        for case in CASES:
            doc = run(case, root / case.name)
            est = doc["estimate"]
            got = est["device_throughput_per_s"]
            ratio = got / case.published
            within = 1 / TARGET <= ratio <= TARGET
            ok &= within
            split = est["device_split_ms"]
            rows.append(
                [
                    case.model,
                    case.arch,
                    est["batch"],
                    f"{est['device_ms']:.3f}",
                    f"{split['compute']:.2f}/{split['dram']:.2f}/{split['dispatch']:.2f}",
                    f"{got:,.0f}",
                    f"{case.published:,.0f}",
                    f"{ratio:.2f}x",
                    "yes" if within else "NO",
                    f"{est['latency_ms']:.3f}",
                    costliest(doc),
                ]
            )
    print(
        tabulate(
            rows,
            headers=[
                "model",
                "board",
                "batch",
                "device ms",
                "compute/dram/dispatch-bound ms",
                "estimate img/s",
                "published img/s",
                "estimate/published",
                f"within {TARGET}x",
                "latency ms (with host, transfers)",
                "costliest op on the device",
            ],
        )
    )
    print(
        "\ncompute: bfloat8_b weights and activations, LoFi, activations placed in L1 where they fit "
        "(--memory-config auto); verdict runs (--values none) on the mock"
    )
    for case in CASES:
        print(f"  {case.name}: {case.source}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
