"""Benchmark: wall time and peak RSS of capturing full-size models (meta weights, no storage).

Each model is captured in a fresh process so that its peak RSS is its own. Prints one table.
Target (issue: foundation): full-size PI0 `sample_actions` (10 denoise steps) in under 60 s and
under 3 GB peak RSS on a 2-core machine.

    .venv/bin/python bench/capture.py [MODEL ...]     (default: pi0, pi0 unfolded, resnet50)

A model name ending in "/unfolded" traces every call of repeated blocks (`fxport trace --no-fold`).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tabulate import tabulate

CHILD = r"""
import json, resource, sys, time
start = time.perf_counter()
from fxport.tracing import trace_model
from fxport.capture import op_counts
imported = time.perf_counter()
cap = trace_model(sys.argv[1], fold=sys.argv[2] == "fold")
done = time.perf_counter()
print(json.dumps({
    "model": cap.model + ("" if sys.argv[2] == "fold" else " (unfolded)"), "method": cap.method, "complete": cap.complete,
    "nodes": cap.node_count, "distinct_ops": len(op_counts(cap.records)),
    "import_s": imported - start, "capture_s": done - imported, "total_s": done - start,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def measure(model: str) -> dict:
    name, _, variant = model.partition("/")
    fold = "nofold" if variant == "unfolded" else "fold"
    proc = subprocess.run([sys.executable, "-c", CHILD, name, fold], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"model": model, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    rows = []
    for model in argv or ["pi0", "pi0/unfolded", "resnet50"]:
        r = measure(model)
        if "error" in r:
            rows.append([model, "FAILED: " + r["error"], "", "", "", "", ""])
            continue
        rows.append(
            [
                r["model"],
                r["method"] + ("" if r["complete"] else " (partial)"),
                r["nodes"],
                r["distinct_ops"],
                f"{r['capture_s']:.1f}",
                f"{r['total_s']:.1f}",
                f"{r['peak_rss_mb']:.0f}",
            ]
        )
        print(f"measured {model}", file=sys.stderr)
    print(
        tabulate(
            rows, headers=["model", "method", "aten nodes", "distinct ops", "capture s", "process s", "peak RSS MB"]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
