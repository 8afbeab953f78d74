"""Benchmark: peak host memory and wall time of one elementwise op on a huge activation.

`fxport run` of a model holding a single `relu` on a [1,96,2176,1920] fp32 input (1.6 GB), on
the mock device with values emulated (golden functions), in a fresh process; the peak RSS is
that process's (getrusage of the child). Target (issue 21): peak RSS under 4x the largest
tensor.

    .venv/bin/python bench/elementwise_memory.py [--shape 1,96,2176,1920] [--op relu]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = """
import torch


class One(torch.nn.Module):
    def forward(self, x):
        return torch.{op}(x)
"""


def measure(shape: str, op: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "one_op.py").write_text(MODEL.format(op=op))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([tmp, os.environ.get("PYTHONPATH", "")]))
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "fxport.cli",
                "run",
                "one_op:One",
                "--input-shape",
                shape,
                "--device",
                "mock",
                "--values",
                "emulate",
                "--out",
                str(Path(tmp, "out")),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        seconds = time.perf_counter() - start
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_kb, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime - cpu_before
        timing = Path(tmp, "out", "timing.json")
        stages = json.loads(timing.read_text()) if timing.exists() else {}
    if peak_kb <= before:  # an earlier child was bigger: the figure would be its, not this run's
        raise SystemExit("measure one case per process")
    return {
        "exit": proc.returncode,
        "seconds": seconds,
        "cpu": cpu,
        "peak_bytes": peak_kb * 1024,
        "stderr": proc.stderr.strip().splitlines()[-3:],
        "stages": stages,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="1,96,2176,1920")
    parser.add_argument("--op", default="relu")
    args = parser.parse_args(argv)
    dims = [int(d) for d in args.shape.split(",")]
    largest = math.prod(dims) * 4  # fp32 input and output
    result = measure(args.shape, args.op)
    ratio = result["peak_bytes"] / largest
    print(f"{args.op} on [{args.shape}] fp32, values emulated, mock device")
    print(f"  exit code        {result['exit']}")
    print(
        f"  wall time        {result['seconds']:.1f} s (CPU {result['cpu']:.1f} s: user + system, "
        "what a loaded machine does not inflate)"
    )
    print(f"  largest tensor   {largest / 2**30:.2f} GiB")
    print(f"  peak RSS         {result['peak_bytes'] / 2**30:.2f} GiB ({ratio:.1f}x the largest tensor; target < 4x)")
    stages = ", ".join(f"{k} {v:.1f}" for k, v in sorted(result["stages"].items()) if isinstance(v, (int, float)))
    print(f"  stages (s)       {stages or 'none recorded'}")
    if result["exit"]:
        print("  stderr: " + " | ".join(result["stderr"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
