"""Benchmark: what math fidelity does to the emulated values (end-to-end PCC vs fp32 torch).

Each case is one `fxport run` with values emulated on the mock device, once per
`--math-fidelity`, and once with none (the operands' exact products). LoFi multiplies the
weights' top 4 and the activations' top 6 mantissa bits (fxport/runtime/fidelity.py), so its
PCC should be measurably lower than HiFi4's; HiFi4 on bfloat16 operands is exact.

    .venv/bin/python bench/fidelity.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tabulate import tabulate

CASES = (("resnet50", "1,3,64,64"), ("vit_b_16", "1,3,64,64"))
FIDELITIES = ("", "lofi", "hifi2", "hifi3", "hifi4")


def pcc(model: str, shape: str, fidelity: str, out: Path) -> float:
    cmd = [sys.executable, "-m", "fxport.cli", "run", model, "--input-shape", shape, "--device", "mock", "-q"]
    cmd += ["--out", str(out)] + (["--math-fidelity", fidelity] if fidelity else [])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{model} {fidelity or 'default'}: fxport run failed ({done.returncode})")
    return json.loads((out / "run.json").read_text())["output_pcc"][0]


def main() -> int:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, shape in CASES:
            row = [model, shape]
            for f in FIDELITIES:
                row.append(f"{pcc(model, shape, f, Path(tmp) / f'{model}-{f or "none"}'):.6f}")
            rows.append(row)
    print(tabulate(rows, headers=["model", "input", "no option (exact products)", *FIDELITIES[1:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
