"""The benchmark scripts the docs quote still run (they read fxport's internals, which move)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # about a minute: ResNet-18 and an MLP compiled, 10 and 50 timed calls
def test_compile_bench_steady_state_prints_its_tables():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compile.py"), "--steady"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "steady state, ms/call" in proc.stdout and "where a call's time goes" in proc.stdout
    assert "MLP 3x Linear 512, batch 32" in proc.stdout
