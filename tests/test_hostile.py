"""Hostile-user probes (issue 22): paths that would run a command, writes through links, users'
files deleted, verdicts made from nothing or from damaged data, model code that ends fxport.

Each case drives the real command (in this process through `fxport.cli.main`, or as a subprocess
where a separate process, environment or signal is the point) and checks the documented exit code
and the one `fxport: error:` line, using `test_faults.observe` (so FXPORT_FAULT_REPORT tables these
cases too).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fxport.cli import main
from fxport.errors import EXIT_ENVIRONMENT, EXIT_USER
from test_faults import REPO, TINY, cli, fxport, observe


# -- 1. the runtime root is never a path a shell could misread ---------------------------------

@pytest.mark.parametrize("cache", ["c;touch${IFS}PWNED;x", "with space", "q'uote", "$(id)"])
def test_runtime_root_is_shell_safe_whatever_the_cache_path(cache, tmp_path):
    from fxport.runtime.mock.runtime_root import runtime_paths, shell_safe

    rt = runtime_paths(tmp_path / cache)
    assert shell_safe(rt.root) and shell_safe(rt.jit_cache) and shell_safe(rt.logs)
    assert rt.root.parts[:3] == ("/", "tmp", f"fxport-{os.geteuid()}")
    assert (Path("/tmp") / f"fxport-{os.geteuid()}").stat().st_mode & 0o077 == 0


def test_runtime_root_in_a_cache_writable_by_others_is_not_used(tmp_path):
    from fxport.runtime.mock.runtime_root import runtime_paths

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert not runtime_paths(shared).root.is_relative_to(shared)
    private = tmp_path / "private"
    private.mkdir(mode=0o755)
    assert runtime_paths(private).root.is_relative_to(private)


def test_a_cache_path_with_shell_characters_runs_nothing(tmp_path):
    cache = tmp_path / "c;touch${IFS}PWNED;x"
    proc = fxport("run", *TINY, "--out", str(tmp_path / "o"), env={"FXPORT_CACHE": str(cache)},
                  timeout=300)
    observe("FXPORT_CACHE with `;touch${IFS}PWNED;`", "FXPORT_CACHE='...;touch${IFS}PWNED;x' fxport run",
            proc.returncode, proc.stderr)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not list(tmp_path.rglob("PWNED")) and not (REPO / "PWNED").exists()
