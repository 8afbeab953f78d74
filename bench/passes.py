"""Benchmark: what the graph passes change, per zoo model at its default input on the mock device.

Each model runs twice in fresh processes (`fxport run --passes none`, then `--passes all`; real
random weights, values emulated by golden functions). Printed per model and setting: aten nodes
as captured, graph nodes after the passes, ttnn calls issued per inference (all kinds) with the
layout conversions and transfers among them, the one-time weight calls (uploads and conv weight
preparation, reused by later inferences), end-to-end PCC against fp32 torch, and the pass
pipeline's time against capture time. Full-size PI0 runs as a verdict run (`--values none`: its
fp32 weights would take 13 GB), so it has no PCC. With `--weights bfloat8_b` a third row per
model runs all passes with bfloat8_b conv and linear weights (the PCC cost of block floats).

Targets (issue: graph passes): ResNet-50 at most 150 ttnn calls per inference in all; every YOLO
model at least 40% fewer calls than without passes; PCC >= 0.99 with all passes on; the pass
pipeline under 5% of capture time.

    .venv/bin/python bench/passes.py [--weights bfloat8_b] [MODEL ...]
        (default: every zoo model at its input shape, and pi0-tiny)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate

VERDICT_ONLY = {"pi0"}  # too large for real weights on this machine


def run(model: str, out: Path, passes: str, weights: str = "bfloat16") -> dict:
    values = "none" if model in VERDICT_ONLY else "emulate"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fxport.cli",
            "run",
            model,
            "--device",
            "mock",
            "--values",
            values,
            "--passes",
            passes,
            "--weights",
            weights,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:100]}
    doc = json.loads((out / "run.json").read_text())
    seconds = json.loads((out / "timing.json").read_text())
    return {"doc": doc, "seconds": seconds}


def _pcc(doc: dict) -> str:
    """The lowest output PCC. One marked * is of an output the model's fp32 forward barely
    changes when its input does (a YOLO head at random weights): compared, but uninformative."""
    outputs = [o for o in doc.get("outputs", []) if o.get("pcc") is not None]
    if not outputs:
        return "n/a (verdict run)"
    low = min(outputs, key=lambda o: o["pcc"])
    return f"{low['pcc']:.4f}" + ("*" if low.get("informative") is False else "")


def row(model: str, setting: str, r: dict, baseline: dict | None) -> list:
    if "error" in r:
        return [model, setting, "FAILED", "", "", "", "", "", "", r["error"], ""]
    doc, seconds = r["doc"], r["seconds"]
    calls = doc["ttnn_calls"]
    fewer = ""
    if baseline and "doc" in baseline:
        before = baseline["doc"]["ttnn_calls"]["per_inference"]
        fewer = f"{100 * (before - calls['per_inference']) / before:.0f}%"
    pcc = _pcc(doc)
    share = 100 * seconds.get("passes", 0) / seconds["capture"] if seconds.get("capture") else 0
    return [
        model,
        setting,
        calls["captured_nodes"],
        doc["coverage"]["total"],
        calls["per_inference"],
        fewer,
        calls["layout"],
        calls["transfer"],
        calls["weights_once"],
        pcc,
        f"{1000 * seconds.get('passes', 0):.0f} ms ({share:.1f}%)",
    ]


def main(argv: list[str]) -> int:
    import fxport_models

    weights = "bfloat16"
    if argv[:1] == ["--weights"]:
        weights, argv = argv[1], argv[2:]
    names = argv or [e.name for e in fxport_models.entries() if "zoo" in e.tags] + ["pi0-tiny"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            base = run(name, Path(tmp) / name / "none", "none")
            rows.append(row(name, "no passes", base, None))
            rows.append(row(name, "all passes", run(name, Path(tmp) / name / "all", "all"), base))
            if weights != "bfloat16":
                rows.append(row(name, f"all + {weights}", run(name, Path(tmp) / name / "bf8", "all", weights), base))
            print(f"measured {name}", file=sys.stderr)
    print(
        tabulate(
            rows,
            headers=[
                "model",
                "passes",
                "aten nodes",
                "graph nodes",
                "ttnn calls",
                "fewer",
                "layout conv.",
                "transfers",
                "weights (once)",
                "end-to-end PCC",
                "pass time (% of capture)",
            ],
            disable_numparse=True,
        )
    )
    print("* uninformative: the output barely depends on the input (fxport.runtime.accuracy)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
