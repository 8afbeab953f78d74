"""Style and lint: the tree passes `ruff check` and `ruff format --check` under the settings in
pyproject.toml ([tool.ruff]). Fix with `.venv/bin/ruff check --fix .` and `.venv/bin/ruff format .`."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    # ruff comes with the `test` extra; a missing ruff fails here rather than skipping.
    return subprocess.run([sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_ruff_check():
    done = _ruff("check", "--output-format", "concise", ".")
    assert done.returncode == 0, f"ruff check found problems:\n{done.stdout}{done.stderr}"


def test_ruff_format():
    done = _ruff("format", "--check", ".")
    assert done.returncode == 0, f"ruff format would change files:\n{done.stdout}{done.stderr}"
