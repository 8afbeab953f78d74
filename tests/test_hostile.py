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
from test_faults import REPO, TINY, cli, fxport, observe

from fxport.errors import EXIT_ENVIRONMENT, EXIT_USER

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


@pytest.mark.slow  # subprocesses: 20-50 s on a loaded machine
def test_a_cache_path_with_shell_characters_runs_nothing(tmp_path):
    cache = tmp_path / "c;touch${IFS}PWNED;x"
    proc = fxport("run", *TINY, "--out", str(tmp_path / "o"), env={"FXPORT_CACHE": str(cache)}, timeout=300)
    observe(
        "FXPORT_CACHE with `;touch${IFS}PWNED;`",
        "FXPORT_CACHE='...;touch${IFS}PWNED;x' fxport run",
        proc.returncode,
        proc.stderr,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not list(tmp_path.rglob("PWNED")) and not (REPO / "PWNED").exists()


# -- 2. nothing written or removed through a link; a user's files are not fxport's -------------


def _outside(tmp_path: Path) -> Path:
    """A folder of someone else's files that links will point at."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.png").write_bytes(b"PNG of the user")
    (victim / "notes.txt").write_text("the user's notes\n")
    return victim


def _untouched(victim: Path) -> bool:
    return (
        sorted(p.name for p in victim.iterdir()) == ["keep.png", "notes.txt"]
        and (victim / "keep.png").read_bytes() == b"PNG of the user"
    )


def test_a_lock_file_that_is_a_link_is_refused(tmp_path, capsys):
    victim = _outside(tmp_path)
    out = tmp_path / "o"
    out.mkdir()
    (out / ".fxport.lock").symlink_to(victim / "notes.txt")
    code, line = cli(capsys, ".fxport.lock is a symlink to a user's file", "trace", *TINY, "--out", str(out))
    assert code == EXIT_USER and "symbolic link" in line
    assert (victim / "notes.txt").read_text() == "the user's notes\n"


def test_report_never_writes_or_removes_through_a_linked_plots_folder(tmp_path, capsys):
    from test_report import run_doc

    victim = _outside(tmp_path)
    res = tmp_path / "R"
    res.mkdir()
    (res / "run.json").write_text(json.dumps(run_doc("m")))
    (res / "plots").symlink_to(victim)
    code, line = cli(capsys, "report R with R/plots a symlink elsewhere", "report", str(res))
    assert code == EXIT_USER and "plots" in line and "symbolic link" in line
    assert _untouched(victim)


def test_a_run_never_replaces_files_through_an_entry_link(tmp_path):
    from test_report import run_doc

    from fxport.durable import OutputError, subdir
    from fxport.report.run_report import write_run_document

    victim = _outside(tmp_path)
    sweep = tmp_path / "S"
    sweep.mkdir()
    (sweep / "tiny@16x16").symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        subdir(sweep, "tiny@16x16")
    entry = tmp_path / "E"
    entry.mkdir()
    (entry / "plots").symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        write_run_document(run_doc("m"), entry, {})
    assert _untouched(victim)


def test_a_folder_of_user_files_is_not_an_output_without_force(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "myproject"
    (project / "plots").mkdir(parents=True)
    (project / "plots" / "figure.png").write_bytes(b"user figure")
    (project / "report.md").write_text("my report\n")
    (project / "nodes.csv").write_text("my,nodes\n")
    suite = tmp_path / "tests"
    suite.mkdir()
    for name in ("conftest.py", "results.json", "timing.json"):
        (suite / name).write_text(f"user's {name}\n")
    (tmp_path / "ops.json").write_text("{}")
    for case, args in (
        ("run --out of a user's project folder", ["run", *TINY, "--out", "myproject"]),
        ("trace --out of a user's project folder", ["trace", *TINY, "--out", "myproject"]),
        ("sweep --out of a user's project folder", ["sweep", "mobilenet_v2", "--out", "myproject"]),
        ("gen-tests --out of a user's tests folder", ["gen-tests", "ops.json", "--out", "tests"]),
    ):
        code, line = cli(capsys, case, *args)
        assert code == EXIT_USER and "--force" in line, (case, line)
    assert (project / "plots" / "figure.png").read_bytes() == b"user figure"
    assert (project / "report.md").read_text() == "my report\n" and (project / "nodes.csv").exists()
    assert all((suite / n).read_text() == f"user's {n}\n" for n in ("conftest.py", "results.json", "timing.json"))


def test_caches_never_write_through_links_or_into_shared_folders(tmp_path, capsys):
    from fxport.capture.cache import CaptureCache
    from fxport.durable import OutputError, subdir
    from fxport.runtime.verdict_cache import VerdictCache

    victim = _outside(tmp_path)
    root = tmp_path / "verdicts"
    root.mkdir(mode=0o700)
    (root / "ab").symlink_to(victim)  # a shard folder that is a link
    with pytest.raises(OutputError):
        subdir(root, "ab")
    VerdictCache(root).write("ab" * 32, {"op": "x"}, {"state_after": "s", "result": None})
    assert _untouched(victim)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    for kind in (CaptureCache, VerdictCache):
        c = kind(shared)
        assert c.read_only
        assert f"cache {shared} is used read-only: it is writable by others" in capsys.readouterr().err
    VerdictCache(shared).write("ab" * 32, {"op": "x"}, {"state_after": "s", "result": None})
    assert list(shared.iterdir()) == []


def test_readers_refuse_fifos_without_blocking(tmp_path):
    from fxport.durable import ReadError, read_regular
    from fxport.sweep import saved_result

    fifo = tmp_path / "run.json"
    os.mkfifo(fifo)
    with pytest.raises(ReadError):
        read_regular(fifo)
    doc, why = saved_result(fifo, {})
    assert doc is None and "not a regular file" in why


# -- 3. accuracy that cannot pass by accident --------------------------------------------------

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "actual, expected, count, first",
    [
        ([NAN, NAN, NAN, NAN], [1.0, 2.0, 3.0, 4.0], 4, [0]),  # all-NaN output, finite reference
        ([1.0, 2.0, INF, 4.0], [1.0, 2.0, 3.0, 4.0], 1, [2]),
        ([1.0, -INF, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], 1, [1]),
    ],
)
def test_nonfinite_device_values_fail_with_count_and_position(actual, expected, count, first):
    import torch

    from fxport.runtime.accuracy import Accuracy, check_outputs

    ref = torch.tensor(expected)
    checks = check_outputs(torch.tensor(actual), ref, ref.flip(0))
    acc = Accuracy.of(checks)
    assert acc.verdict == "fail" and checks[0].pcc == 0.0
    assert f"{count} NaN/inf values differ from the reference (first at {first})" in acc.failing[0]


@pytest.mark.parametrize(
    "actual, expected",
    [([NAN, 1.0, 2.0], [INF, 1.0, 2.0]), ([-INF, 1.0, 2.0], [INF, 1.0, 2.0]), ([NAN, NAN, NAN], [NAN, NAN, NAN])],
)
def test_a_nonfinite_reference_is_never_a_pass(actual, expected):
    import torch

    from fxport.runtime.accuracy import Accuracy, check_outputs
    from fxport.runtime.pcc import pcc

    ref = torch.tensor(expected)
    checks = check_outputs(torch.tensor(actual), ref, ref.flip(0))
    assert Accuracy.of(checks).verdict == "not checked"
    assert checks[0].informative is False and "fp32 reference has" in checks[0].note
    if actual != expected or NAN not in actual:
        assert pcc(torch.tensor(actual), ref) == 0.0  # NaN vs +inf, -inf vs +inf: not the same value


def test_runs_of_models_that_capture_nothing_or_exit(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cases = [
        (
            "run of nn.Identity (captures no op)",
            ["run", "torch.nn:Identity", "--input-shape", "1,4"],
            "captured 0 aten nodes",
        ),
        (
            "run of a forward returning None",
            ["run", "tests.fault_models:ReturnsNone", "--input-shape", "1,4"],
            "captured 0 aten nodes",
        ),
        ("trace sys:exit", ["trace", "sys:exit", "--input-shape", "1,4"], "sys:exit: model code raised SystemExit"),
        (
            "run of a model calling sys.exit(7) in forward",
            ["run", "tests.fault_models:ExitsInForward", "--input-shape", "1,4"],
            "raised SystemExit(7)",
        ),
        (
            "run of a model raising a BaseException",
            ["run", "tests.fault_models:RaisesBaseException", "--input-shape", "1,4"],
            "raised Stop: stop everything",
        ),
    ]
    for case, args, text in cases:
        code, line = cli(capsys, case, *args, "--out", "o")
        assert code == EXIT_USER and text in line, (case, code, line)
    code, line = cli(
        capsys,
        "run of a model whose fp32 output is all NaN",
        "run",
        "tests.fault_models:AllNaN",
        "--input-shape",
        "1,4",
        "--out",
        "nan",
    )
    doc = json.loads((tmp_path / "nan" / "run.json").read_text())
    assert code == 0 and doc["accuracy"]["verdict"] == "not checked"
    assert doc["outputs"][0]["note"].startswith("fp32 reference has 4 NaN/inf values")


@pytest.mark.slow
def test_a_sweep_keeps_every_result_when_an_entry_exits_or_captures_nothing(tmp_path, capsys):
    from fxport.errors import EXIT_INCOMPLETE

    code, line = cli(
        capsys,
        "sweep with an entry calling sys.exit and an nn.Identity entry",
        "sweep",
        "tests.fault_models:ExitsInForward",
        "tests.user_models:TinyCNN",
        "torch.nn:Identity",
        "--input-shape",
        "1,3,16,16",
        "--out",
        str(tmp_path),
    )
    assert code == EXIT_INCOMPLETE and "2 of 3 entries produced no result" in line
    entries = {e["key"]: e for e in json.loads((tmp_path / "sweep.json").read_text())["entries"]}
    assert entries["tests.user_models:TinyCNN@16x16"]["status"] == "ok"
    assert "raised SystemExit(7)" in entries["tests.fault_models:ExitsInForward@16x16"]["error"]
    assert "captured 0 aten nodes" in entries["torch.nn:Identity@16x16"]["error"]


@pytest.mark.slow
def test_sigterm_to_a_sweep_driver_stops_its_workers(tmp_path):
    import signal
    import time

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fxport.cli",
            "sweep",
            "tests.fault_models:Sleeper",
            "--input-shape",
            "1,4",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lock = tmp_path / "tests.fault_models:Sleeper@1x4" / ".fxport.lock"
    deadline = time.monotonic() + 180
    while not (lock.exists() and lock.stat().st_size):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the worker never started its entry"
        time.sleep(0.2)
    worker = json.loads(lock.read_text())["pid"]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    observe("SIGTERM to a sweep driver whose worker is running", "kill -TERM <fxport sweep>", proc.returncode, err)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(worker):
        time.sleep(0.2)
    assert not _alive(worker), "the worker outlived its driver"
    assert proc.returncode == 130 and "interrupted" in err


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


# -- 5. damaged cache entries never become verdicts --------------------------------------------


def test_damaged_verdict_cache_entries_are_rejected_and_rewritten(mock_device, tmp_path):
    import ttnn

    from fxport.runtime.devices import environment_error
    from fxport.runtime.verdict_cache import VerdictCache

    cache = VerdictCache(tmp_path / "verdicts")
    calls = []

    def op(x):
        calls.append(x)
        raise RuntimeError("TT_FATAL: this op declines shape [3]")

    def call():
        return cache.call(
            ttnn,
            mock_device.device,
            "probe_op",
            op,
            (3,),
            {},
            lambda exc: environment_error(mock_device, exc) is not None,
        )

    with pytest.raises(RuntimeError, match="declines"):
        call()
    (entry,) = (tmp_path / "verdicts").rglob("*.json")
    doc = json.loads(entry.read_text())
    with pytest.raises(RuntimeError, match="declines"):  # replayed
        call()
    assert len(calls) == 1 and cache.stats.hits == 1
    # An error text saying the host is out of memory: never replayed (would stop the run as exit 3)
    doc["outcome"]["error"]["message"] = "std::bad_alloc: can't allocate memory"
    entry.write_text(json.dumps(doc))
    with pytest.raises(RuntimeError, match="declines"):
        call()
    assert len(calls) == 2 and cache.stats.rejected == 1
    assert "declines" in json.loads(entry.read_text())["outcome"]["error"]["message"]  # rewritten
    # Nested past the parser's depth: rejected and rewritten, not a RecursionError for every node
    entry.write_text('{"schema": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(RuntimeError, match="declines"):
        call()
    assert len(calls) == 3 and cache.stats.rejected == 2
    assert json.loads(entry.read_text())["outcome"]["error"]["type"] == "RuntimeError"


def test_nested_json_in_documents_is_a_one_line_error(tmp_path, capsys):
    nested = "[" * 5000 + "]" * 5000
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "run.json").write_text(nested)
    (tmp_path / "ops.json").write_text('{"model": "m", "ops": ' + nested + "}")
    for case, args in (
        ("report of a run.json nested 5,000 deep", ["report", str(tmp_path / "r")]),
        ("compare of a run.json nested 5,000 deep", ["compare", str(tmp_path / "r"), str(tmp_path / "r")]),
        (
            "gen-tests of an ops.json nested 5,000 deep",
            ["gen-tests", str(tmp_path / "ops.json"), "--out", str(tmp_path / "g")],
        ),
    ):
        code, line = cli(capsys, case, *args)
        assert code == EXIT_USER and "recursion" in line.lower(), (case, line)
    from fxport.sweep import saved_result

    assert "unreadable" in saved_result(tmp_path / "r" / "run.json", {})[1]  # a resumed entry is redone


# -- 7. inputs, paths and the environment: one line before any work ----------------------------


def test_input_values_and_paths_are_checked_before_any_tensor(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    long_out = "x" * 300
    cases = [
        (
            "--input-shape with a 23-digit dim",
            ["run", "tests.user_models:TinyCNN", "--input-shape", "1," + "9" * 23],
            "too large",
        ),
        (
            "--input range -inf..inf",
            ["run", "torch.nn:Identity", "--input", "1,4:float32:-inf..inf"],
            "does not fit float32",
        ),
        ("--input int8:0..1000", ["run", "torch.nn:Identity", "--input", "1,4:int8:0..1000"], "does not fit int8"),
        ("--input uint8:-5..3", ["run", "torch.nn:Identity", "--input", "1,4:uint8:-5..3"], "does not fit uint8"),
        ("--out name over 255 bytes", ["run", *TINY, "--out", long_out], "longer than 255 bytes"),
        (
            "--inputs nested 5,000 deep",
            ["run", "torch.nn:Identity", "--inputs", "tests.fault_models:nested_inputs"],
            "nested more than 64 deep",
        ),
        (
            "sweep entry key with ../ (a module __getattr__)",
            ["sweep", "probe:../../evil", "--out", "s"],
            "Python names only",
        ),
    ]
    for case, args, text in cases:
        code, line = cli(capsys, case, *args)
        assert code == EXIT_USER and text in line, (case, code, line)
    assert not (tmp_path / long_out[:255]).exists() and not (tmp_path.parent / "evil@default").exists()


def test_cache_paths_that_are_files_name_the_right_cache_and_flag(tmp_path, capsys):
    cache = tmp_path / "c"
    cache.mkdir()
    (cache / "captures").write_text("a file")
    code, line = cli(
        capsys,
        "sweep --cache C where C/captures is a file",
        "sweep",
        "mobilenet_v2",
        "--cache",
        str(cache),
        "--out",
        str(tmp_path / "s"),
    )
    assert code == EXIT_USER and "capture cache" in line and "--no-capture-cache" in line


def test_report_of_a_damaged_file_leaves_no_lock(tmp_path, capsys):
    from test_report import run_doc

    doc = run_doc("m")
    del doc["coverage"]
    (tmp_path / "run.json").write_text(json.dumps(doc))
    code, line = cli(capsys, "report of a damaged run.json given as a file", "report", str(tmp_path / "run.json"))
    assert code == EXIT_USER and "missing 'coverage'" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_module_names_are_not_live_links_in_markdown(tmp_path):
    from test_report import run_doc

    from fxport.report.markdown import run_markdown

    doc = run_doc("[click](https://evil.example)")
    for n in doc["nodes"]:
        n["module"] = "[here](http://evil.example/x)"
    text = run_markdown(doc)
    import re

    assert not re.search(r"(?<!\\)\]\(http", text) and "\\[click\\]" in text and "evil.example" in text


def test_a_model_that_changes_directory_still_writes_to_out(tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("FXPORT_TEST_CHDIR", str(elsewhere))
    code, _ = cli(
        capsys,
        "a model that changes directory in __init__",
        "trace",
        "tests.fault_models:ChangesDirectory",
        "--input-shape",
        "1,4",
        "--out",
        "o",
    )
    assert code == 0 and (work / "o" / "ops.json").exists() and not (elsewhere / "o").exists()


@pytest.mark.slow  # subprocesses: 20-50 s on a loaded machine
def test_environment_faults_are_exit_3_naming_the_cause(tmp_path):
    shadow = tmp_path / "shadow"
    (shadow / "ttnn").mkdir(parents=True)
    (shadow / "ttnn" / "__init__.py").write_text("")
    folder = tmp_path / "mödel"
    folder.mkdir()
    env_home = {k: v for k, v in os.environ.items() if k != "HOME"}
    cases = [
        ("HOME unset", {"env": env_home}, "HOME is not set"),
        ("TMPDIR not a writable folder", {"env": {**os.environ, "TMPDIR": str(tmp_path / "missing")}}, "(TMPDIR)"),
        (
            "an empty ttnn package shadows the real one",
            {"env": {**os.environ, "PYTHONPATH": f"{shadow}:{REPO}"}},
            "is not TT-NN",
        ),
        (
            "a non-ASCII model folder under LC_ALL=C PYTHONUTF8=0",
            {"env": {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONPATH": f"{folder}:{REPO}"}},
            "is not ASCII",
        ),
    ]
    for case, kw, text in cases:
        env = {"PYTHONPATH": str(REPO), **kw["env"]}
        proc = subprocess.run(
            [sys.executable, "-m", "fxport.cli", "run", *TINY, "--out", str(tmp_path / "o")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
        )
        line = observe(case, f"fxport run ({case})", proc.returncode, proc.stderr)
        assert proc.returncode == EXIT_ENVIRONMENT and text in line, (case, proc.returncode, proc.stderr[-600:])


# -- 6. every device call under the watchdog ---------------------------------------------------


def test_footprint_measurement_runs_under_the_watchdog_and_nested_json_rows_are_remeasured(mock_device, tmp_path):
    import dataclasses
    import sqlite3
    import threading

    from test_memory_model import SPEC, _relu_node

    from fxport.runtime.footprint_probe import FootprintProbe
    from fxport.runtime.watchdog import DeviceCalls, DeviceTimeout

    seen = []
    measure = FootprintProbe._measure

    def spy(self, *a, **kw):
        seen.append(threading.current_thread().name)
        return measure(self, *a, **kw)

    cache = tmp_path / "footprints.sqlite"
    probe = FootprintProbe(mock_device, cache)
    probe._measure = spy.__get__(probe)
    fp = probe.footprint(_relu_node(), [SPEC], "l1")
    probe.flush()
    assert seen == ["fxport-device"]  # on the device worker: --device-timeout and Ctrl-C apply
    wedged = dataclasses.replace(mock_device, calls=DeviceCalls())
    wedged.calls.stuck = "an earlier call did not return"
    with pytest.raises(DeviceTimeout):
        FootprintProbe(wedged, None).footprint(_relu_node(), [SPEC], "l1")
    with sqlite3.connect(cache) as db:  # a row nested past the parser's depth: measured again
        db.execute("UPDATE footprints SET footprint = ?", ("[" * 5000 + "]" * 5000,))
    again = FootprintProbe(mock_device, cache)
    assert again.footprint(_relu_node(), [SPEC], "l1") == fp and again.measured == 1
