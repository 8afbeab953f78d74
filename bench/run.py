"""Benchmark: `fxport run` on each zoo model on the mock device: coverage, PCC and wall time.

Each model runs in a fresh process (`fxport run`, real random weights, values emulated by golden
functions). Full-size PI0 would need 13 GB of fp32 weights for values, so it runs as a verdict run
(`--values none`: meta weights, real validation and allocation, no PCC); the table says which.
Targets (issue: core pipeline): ResNet-50 and ViT-B/16 at 224x224 lower >= 95% of aten nodes and
reach end-to-end PCC >= 0.99 against fp32 torch.

    .venv/bin/python bench/run.py [MODEL ...]      (default: every zoo model at its input shape, and pi0-tiny)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

VERDICT_ONLY = {"pi0"}  # too large for real weights on this machine


def bench(model: str, out: Path) -> list:
    values = "none" if model in VERDICT_ONLY else "emulate"
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fxport.cli", "run", model, "--device", "mock", "--values", values, "--out", str(out)],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return [
            model,
            values,
            "FAILED",
            "",
            "",
            "",
            (proc.stderr.strip().splitlines() or [""])[-1][:80],
            f"{seconds:.1f}",
        ]
    doc = json.loads((out / "run.json").read_text())
    cov = doc["coverage"]
    pcc = ", ".join("uninformative" if p is None else f"{p:.4f}" for p in doc["output_pcc"]) or "n/a (no values)"
    return [
        model,
        values,
        cov["total"],
        f"{cov['planned_pct']:.1f}",
        f"{cov['device_pct']:.1f}",
        cov["fallback"],
        pcc,
        f"{seconds:.1f}",
    ]


def main(argv: list[str]) -> int:
    import fxport_models

    names = argv or [e.name for e in fxport_models.entries() if "zoo" in e.tags] + ["pi0-tiny"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows.append(bench(name, Path(tmp) / name))
            print(f"measured {name}", file=sys.stderr)
    print(
        tabulate(
            rows,
            headers=[
                "model",
                "values",
                "aten nodes",
                "lowered %",
                "on device %",
                "fallbacks",
                "end-to-end PCC",
                "wall s",
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
