"""Benchmark: how fast the command line answers. Times, each in a fresh process:

- refusals of bad input (an unknown model, a malformed shape), which are checked before torch is
  imported (issue 21 target: under 2 s);
- time to the first progress line of `fxport run MODEL` on a terminal (stderr is a pseudo-terminal
  here, as in an interactive shell; target: under 2 s), and to the first node counted by the
  execution's counter. The run is stopped (Ctrl-C) once the execution has started.

    .venv/bin/python bench/startup.py [--model resnet50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

FXPORT = [sys.executable, "-m", "fxport.cli"]
REFUSALS = {
    "fxport trace nosuchmodel": ["trace", "nosuchmodel"],
    "fxport run resnet50 --input-shape 1,3,two,224": ["run", "resnet50", "--input-shape", "1,3,two,224"],
    "fxport run resnt50 (a typo)": ["run", "resnt50"],
}


def refusal_seconds(args: list[str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run([*FXPORT, *args], capture_output=True, text=True)
    return time.perf_counter() - start, proc.returncode, proc.stderr.strip()


def progress_seconds(model: str, out: str) -> tuple[float | None, float | None]:
    """Seconds to the first progress line and to the execution's counter, stderr on a pty."""
    leader, follower = pty.openpty()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*FXPORT, "run", model, "--device", "mock", "--out", out],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        stdin=subprocess.DEVNULL,
    )
    os.close(follower)
    first = counting = None
    text = b""
    try:
        while proc.poll() is None and time.perf_counter() - start < 600:
            ready, _, _ = select.select([leader], [], [], 0.05)
            if not ready:
                continue
            try:
                text += os.read(leader, 4096)
            except OSError:
                break
            now = time.perf_counter() - start
            if first is None and b"fxport:" in text:
                first = now
            if b"executing on the" in text:
                counting = now
                break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        os.close(leader)
    return first, counting


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"{'command':<58} {'median s':>9} {'max s':>7}  exit  message")
    for label, cmd in REFUSALS.items():
        runs = [refusal_seconds(cmd) for _ in range(args.repeat)]
        times = [r[0] for r in runs]
        print(f"{label:<58} {statistics.median(times):>9.2f} {max(times):>7.2f}  {runs[0][1]:>4}  {runs[0][2][:70]}")
    with tempfile.TemporaryDirectory() as tmp:
        first, counting = progress_seconds(args.model, os.path.join(tmp, "out"))
    show = lambda v: "never" if v is None else f"{v:.2f}"
    print(
        f"fxport run {args.model} --device mock: first progress line after {show(first)} s, "
        f"execution counter after {show(counting)} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
