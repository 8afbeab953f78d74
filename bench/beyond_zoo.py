"""Benchmark: models outside the zoo through `fxport run` on the mock device, as a user brings
them (the cases of tests/test_beyond_zoo.py): inputs, on-device share, and PCC per output leaf
(or why a PCC is uninformative). Each model runs in a fresh process.

    .venv/bin/python bench/beyond_zoo.py [--slow]     (--slow adds the slow cases)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.test_beyond_zoo import CASES, SLOW_CASES


def _pcc(output: dict) -> str:
    if output["informative"] is False:
        return f"{output['path']} uninformative ({output['note']})"
    return f"{output['path']} {output['pcc']:.6f}"


def bench(name: str, args: list[str], out: Path) -> list:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "fxport.cli", "run", *args, "--device", "mock", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    model = args[0]
    if proc.returncode != 0:
        error = (proc.stderr.strip().splitlines() or [""])[-1][:80]
        return [name, model, "", "FAILED", error, f"{seconds:.0f}"]
    doc = json.loads((out / "run.json").read_text())
    inputs = ", ".join(f"{i['path']} {'x'.join(map(str, i['shape']))} {i['dtype']}" for i in doc["inputs"])
    leaves = doc["outputs"]
    shown = "; ".join(_pcc(o) for o in leaves[:3]) + (
        f"; ... {len(leaves) - 3} more (min {min(o['pcc'] for o in leaves):.6f})" if len(leaves) > 3 else ""
    )
    return [name, model, inputs, f"{doc['coverage']['device_pct']:.1f}", shown, f"{seconds:.0f}"]


def main(argv: list[str]) -> int:
    cases = {**CASES, **(SLOW_CASES if "--slow" in argv else {})}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in cases.items():
            rows.append(bench(name, args, Path(tmp) / name))
            print(f"measured {name}", file=sys.stderr)
    print(tabulate(rows, headers=["case", "model", "inputs", "on device %", "PCC per output leaf", "s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
