"""Fault injection (issue 7): untrusted files, broken caches, interrupted and concurrent runs.

Every case drives the real command (in this process through `fxport.cli.main`, or as a
subprocess where a separate process is the point: one mock device per process, a cache of its
own, a signal) and checks the documented exit code and the one `fxport: error:` line. Damaged
caches are always a private $FXPORT_CACHE, never the shared one.

With FXPORT_FAULT_REPORT=<file> the observed result of every case (command, exit code, the line
printed) is written there as a Markdown table.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import io
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fxport.cli import main
from fxport.durable import LOCK_NAME
from fxport.errors import EXIT_ENVIRONMENT, EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_USER
from fxport.passes import PASS_NAMES
from fxport.report.render import render_results
from fxport.runtime.mock.runtime_root import COMPILER_DATA_RELPATH, build_runtime_root
from fxport.runtime.mock.toolchain import minimal_riscv_elf
from fxport.settings import pass_settings, run_settings
from fxport.sweep import saved_result

REPO = Path(__file__).resolve().parents[1]
TINY = ["tests.user_models:TinyCNN", "--input-shape", "1,3,16,16"]
# Names an attacker controls in a document: quotes, triple quotes, newlines, format braces,
# unicode, path separators, markup, mathtext.
HOSTILE = [
    'x""" ; open("owned.txt","w").write("x") ; """',
    "q'\"\n\r\\{}{0}{__import__('os')}",
    "ünï€ødé ✓ 模型",
    "../../etc/passwd",
    "/abs/a\\b",
    "<script>alert(1)</script>|$\\frac{$",
]

OBSERVED: list[tuple[str, str, int, str]] = []


def observe(case: str, command: str, code: int, err: str) -> str:
    """Record a case and return its one error line (asserting there is at most one, and no
    traceback)."""
    assert "Traceback" not in err, err
    errors = [
        ln
        for ln in err.splitlines()
        if ln.startswith(("fxport: error:", "fxport: interrupted;")) or ln == "fxport: interrupted"
    ]
    assert len(errors) <= 1, err
    line = errors[0] if errors else next((ln for ln in err.splitlines() if ln.startswith("fxport: note:")), "")
    OBSERVED.append((case, command, code, line))
    return line


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    target = os.environ.get("FXPORT_FAULT_REPORT")
    if target:
        rows = ["| case | command | exit | line printed |", "|---|---|---|---|"]
        rows += [f"| {c} | `{cmd}` | {code} | {line.replace('|', '/')} |" for c, cmd, code, line in OBSERVED]
        Path(target).write_text("\n".join(rows) + "\n")


def cli(capsys, case: str, *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, observe(case, "fxport " + " ".join(args), code, err)


def fxport(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fxport.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


# -- security ----------------------------------------------------------------------------------


def test_gen_tests_never_runs_code_from_data(tmp_path, monkeypatch, capsys):
    from fxport.testgen.generate import CONFTEST, TEST_FILE

    monkeypatch.chdir(tmp_path)
    assert main(["trace", *TINY, "--out", "src"]) == 0
    doc = json.loads((tmp_path / "src" / "ops.json").read_text())
    doc["model"] = HOSTILE[0]
    for i, name in enumerate(HOSTILE):
        record = copy.deepcopy(doc["ops"][i % len(doc["ops"])])
        record.update(target=name, op=name, module=name, node=f"n{i}", args=name)
        doc["ops"].append(record)
    bad_dtype = copy.deepcopy(doc["ops"][0])
    bad_dtype["inputs"][0]["dtype"] = "load"  # torch.load is an attribute of torch, not a dtype
    doc["ops"].append(bad_dtype)
    (tmp_path / "src" / "ops.json").write_text(json.dumps(doc))
    code, _ = cli(
        capsys,
        "gen-tests: crafted ops.json (names with quotes, triple quotes, newlines, {}, unicode, path separators)",
        "gen-tests",
        "src/ops.json",
        "--out",
        "suite",
    )
    assert code == 0
    sources = sorted((tmp_path / "suite").glob("*.py"))
    assert {p.read_text() for p in sources} == {TEST_FILE, CONFTEST}  # fixed texts: no data in code
    assert all(re.fullmatch(r"(conftest|test_[a-z0-9_]+)\.py", p.name) for p in sources)
    assert [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.is_relative_to(tmp_path / "src") and not p.is_relative_to(tmp_path / "suite")
    ] == []

    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "suite"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert not list(tmp_path.rglob("owned*")) and not (REPO / "owned.txt").exists()
    tail = proc.stdout.strip().splitlines()[-1]
    # TinyCNN's ops pass; each hostile target and the bad dtype are strict xfails (cannot replay)
    assert proc.returncode == 0 and re.search(rf"\b5 passed, {len(HOSTILE) + 1} xfailed\b", tail), proc.stdout[-2000:]


def _sweep_dir(path: Path, runs: dict[str, dict], run_paths: dict[str, str] | None = None) -> None:
    """A sweep directory of `runs` (test_report's documents); `run_paths` overrides entries'
    "run" paths, as a crafted sweep.json would."""
    from test_report import write_sweep

    doc = write_sweep(path, runs)
    for e in doc["entries"]:
        e["run"] = (run_paths or {}).get(e["key"], e["run"])
    (path / "sweep.json").write_text(json.dumps(doc))


def test_sweep_json_pointing_outside_is_refused(tmp_path, capsys):
    from test_report import run_doc

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "run.json").write_text(json.dumps(run_doc("victim")))
    (victim / "report.md").write_text("keep me")
    (tmp_path / "sweep" / "escape").mkdir(parents=True)
    (tmp_path / "sweep" / "escape" / "link").symlink_to(victim)
    before = {p.name: p.stat().st_mtime_ns for p in victim.iterdir()}
    _sweep_dir(
        tmp_path / "sweep",
        {
            "good@16x16": run_doc("good"),
            "abs@16x16": run_doc("abs"),
            "up@16x16": run_doc("up"),
            "link@16x16": run_doc("link"),
        },
        {"abs@16x16": str(victim / "run.json"), "up@16x16": "../victim/run.json", "link@16x16": "escape/link/run.json"},
    )
    code, line = cli(
        capsys,
        "report: sweep.json whose run paths lead outside (absolute, ../, symlink)",
        "report",
        str(tmp_path / "sweep"),
    )
    assert code == EXIT_USER and "3 damaged sweep entries" in line
    assert {p.name: p.stat().st_mtime_ns for p in victim.iterdir()} == before  # nothing written there
    index = (tmp_path / "sweep" / "index.md").read_text()
    assert index.count("DAMAGED") == 3 and "leads outside" in index
    assert (tmp_path / "sweep" / "good@16x16" / "report.html").exists()


def test_renderers_take_hostile_names(tmp_path):
    from test_report import run_doc

    doc = run_doc(HOSTILE[0])
    doc["coverage_by_module"] = dict.fromkeys(HOSTILE, doc["coverage_by_module"]["conv"])
    for node, name in zip(doc["nodes"], HOSTILE[1:]):
        node["module"] = node["target"] = name
    doc["fallbacks"][0]["target"] = doc["unsupported"][0]["target"] = HOSTILE[-1]
    _sweep_dir(tmp_path / "s", {"plain@16x16": run_doc("plain"), f"{HOSTILE[2]}@16x16": doc})
    done = render_results(tmp_path / "s")
    names = {p.name for p in done.written}
    assert not done.damaged and {"index.md", "index.html", "report.md", "report.html"} <= names
    assert all(p.resolve().is_relative_to((tmp_path / "s").resolve()) for p in done.written)
    assert any(p.suffix == ".png" for p in done.written)  # plots with hostile labels drew
    page = (tmp_path / "s" / f"{HOSTILE[2]}@16x16" / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    md = (tmp_path / "s" / "index.md").read_text()
    assert "<script>" not in md and "\\|" in md


def test_umask_000_leaves_nothing_writable_by_others(tmp_path):
    old = os.umask(0)
    try:
        runtime = build_runtime_root(tmp_path)
    finally:
        os.umask(old)
    for path in [runtime.root.parent, *runtime.root.rglob("*")]:
        if not path.is_symlink():
            assert not path.stat().st_mode & 0o022, path
    runtime.root.chmod(0o777)  # as an older fxport left it: rebuilt, and said so
    again = build_runtime_root(tmp_path)
    assert not again.root.stat().st_mode & 0o022 and "writable by others" in again.repaired[0]
    OBSERVED.append(
        (
            "umask 000: cache folders of the executed stand-in compiler",
            "build_runtime_root under umask 000, then over a world-writable root",
            0,
            f"no folder or file writable by group/others; {again.repaired[0]}",
        )
    )


# -- a broken environment: an environment error or a repair, never a verdict, never a hang -------


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private cache with a built runtime root; `_warm` fills its JIT cache when a test needs
    kernels there (the first run of the module does it anyway)."""
    path = tmp_path_factory.mktemp("fxport-cache")
    build_runtime_root(path)
    return path


def _warm(cache: Path) -> None:
    if not list((_base(cache) / "jit-cache").rglob("*.elf")):
        proc = fxport(
            "run", *TINY, "--device", "mock", "--out", str(cache.parent / "warm"), env={"FXPORT_CACHE": str(cache)}
        )
        assert proc.returncode == 0, proc.stderr


def _base(cache: Path) -> Path:
    return next((cache / "mock-runtime").iterdir())


def _truncate_elfs(base: Path) -> int:
    elfs = list((base / "jit-cache").rglob("*.elf"))
    for elf in elfs:
        os.truncate(elf, 20)
    return len(elfs)


def _run_on(cache: Path, out: Path, case: str) -> tuple[subprocess.CompletedProcess, str, float]:
    start = time.monotonic()
    proc = fxport(
        "run", *TINY, "--device", "mock", "--out", str(out), env={"FXPORT_CACHE": str(cache)}, timeout=120
    )  # the bound: a hang fails the test instead of wedging CI
    line = observe(
        case, f"FXPORT_CACHE=<damaged> fxport run {' '.join(TINY)} --out {out.name}", proc.returncode, proc.stderr
    )
    return proc, line, time.monotonic() - start


def _all_on_device(out: Path) -> bool:
    doc = json.loads((out / "run.json").read_text())
    return not doc["fallbacks"] and doc["coverage"]["on_device"] == doc["coverage"]["total"] > 0


def test_deleted_stand_in_elf_and_cleared_jit_cache(cache, tmp_path):
    base = _base(cache)
    (base / "root" / COMPILER_DATA_RELPATH / "minimal.elf").unlink()
    shutil.rmtree(base / "jit-cache")
    proc, line, _ = _run_on(cache, tmp_path / "o", "stand-in ELF deleted, JIT cache cleared (100% fell back before)")
    assert proc.returncode == 0 and "rebuilt the mock runtime root" in line and "minimal.elf is missing" in line
    assert _all_on_device(tmp_path / "o")


def test_truncated_elf_in_jit_cache_is_repaired(cache, tmp_path):
    _warm(cache)
    assert _truncate_elfs(_base(cache)) > 10
    proc, line, _seconds = _run_on(cache, tmp_path / "o", "truncated ELF files in the JIT cache (hung for good before)")
    assert proc.returncode == 0 and "removed" in line and "damaged ELF" in line
    assert _all_on_device(tmp_path / "o")  # no fallback blamed on the model


def test_damaged_runtime_in_use_by_another_process_is_an_environment_error(cache, tmp_path):
    elf = _base(cache) / "root" / COMPILER_DATA_RELPATH / "minimal.elf"
    elf.write_bytes(b"\x7fELF")
    fd = os.open(_base(cache) / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)  # another fxport process holds the runtime: no repair under it
    try:
        proc, line, _ = _run_on(cache, tmp_path / "o", "damaged runtime root while another process uses it")
    finally:
        os.close(fd)
        elf.write_bytes(minimal_riscv_elf())  # as it was: the JIT cache stays warm for the next test
    assert proc.returncode == EXIT_ENVIRONMENT and "cannot be repaired now" in line
    assert not (tmp_path / "o" / "run.json").exists()


CANARY = """if True:
    import sys
    from fxport.runtime.mock import health
    health.repair_jit_cache = lambda jit_cache: []   # damage the checks do not repair
    from fxport.cli import main
    sys.exit(main(sys.argv[1:]))
"""


def test_broken_toolchain_fails_the_canary_not_the_model(cache, tmp_path):
    """Damage that the repair does not fix (here: the repair is switched off) is caught by the
    canary at device open: an environment error before any model is judged."""
    _warm(cache)
    _truncate_elfs(_base(cache))
    args = ["run", *TINY, "--device", "mock", "--out", str(tmp_path / "o")]
    proc = subprocess.run(
        [sys.executable, "-c", CANARY, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO), "FXPORT_CACHE": str(cache)},
    )
    line = observe(
        "broken toolchain not repaired: the canary at device open",
        "FXPORT_CACHE=<damaged, repair off> fxport " + " ".join(args),
        proc.returncode,
        proc.stderr,
    )
    assert proc.returncode == EXIT_ENVIRONMENT and "failed its self-test" in line
    assert "not a verdict" not in line and not (tmp_path / "o" / "run.json").exists()


HANG = """if True:
    import glob, os, sys, time
    import torch
    from fxport.runtime.devices import open_session_device
    from fxport.runtime.watchdog import DeviceTimeout
    dev = open_session_device("mock", "n150")
    import ttnn
    a = ttnn.from_torch(torch.ones(32, 64), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=dev.device)
    if sys.argv[1] == "warm":
        ttnn.softmax(a, dim=-1)
        sys.exit(0)
    for elf in glob.glob(f"{dev.mock_runtime.jit_cache}/**/*.elf", recursive=True):
        os.truncate(elf, 20)   # damaged after the checks at open
    try:
        for i in range(2):     # the first load fails, the second waits in TT-Metal for good
            print("call", i, flush=True)
            try:
                dev.calls(lambda: ttnn.softmax(a, dim=-1), label="softmax", timeout=600)
            except RuntimeError as exc:
                print("raised", str(exc).splitlines()[0], flush=True)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    start = time.monotonic()
    try:                       # the next device call waits for the stuck one, within its bound
        dev.calls(lambda: None, label="the next call", timeout=float(sys.argv[2]))
    except DeviceTimeout as exc:
        print(f"DeviceTimeout {exc} (after {time.monotonic() - start:.1f} s)", flush=True)
    print("wedged", dev.wedged, flush=True)
    os._exit(130)   # what the CLI does when a device call is stuck
"""


def _hang(cache: Path, mode: str, bound: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HANG, mode, str(bound)],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO), "FXPORT_CACHE": str(cache)},
    )


def _lines(proc: subprocess.Popen, seconds: float = 60) -> Callable[[], str]:
    """Read `proc`'s stdout a line at a time, each within `seconds` (a child that never prints
    what the test waits for fails the test instead of hanging the suite); "" at its end."""
    got: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            got.put(line)
        got.put("")

    threading.Thread(target=pump, daemon=True).start()

    def read() -> str:
        try:
            return got.get(timeout=seconds)
        except queue.Empty:
            proc.kill()
            pytest.fail(f"no line from the child within {seconds} s")

    return read


def test_device_call_that_hangs_ctrl_c_and_the_bound(cache):
    """TT-Metal blocked for good (the truncated-ELF hang, damage made after the checks at open):
    Ctrl-C stops the wait at once, and a device call's wait is bounded (DeviceTimeout)."""
    warm = _hang(cache, "warm", 60)
    assert warm.wait(120) == 0, warm.stderr.read()
    proc = _hang(cache, "damage", 3)
    read = _lines(proc)
    lines = [read() for _ in range(3)]
    assert [ln.split()[0] for ln in lines] == ["call", "raised", "call"], lines
    assert "tt_elffile.cpp" in lines[1]  # the first load fails, the second one waits
    time.sleep(1.0)  # now blocked inside TT-Metal
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert read() == "interrupted\n" and time.monotonic() - sent < 5
    OBSERVED.append(
        (
            "Ctrl-C while TT-Metal is blocked (was ignored)",
            "SIGINT during the hang",
            EXIT_INTERRUPTED,
            f"KeyboardInterrupt {time.monotonic() - sent:.1f} s after SIGINT",
        )
    )
    rest = "".join(iter(read, ""))
    proc.wait(30)
    timeout = next(ln for ln in rest.splitlines() if ln.startswith("DeviceTimeout"))
    assert "softmax did not return within 3 s" in timeout and "wedged True" in rest, rest
    assert proc.returncode == EXIT_INTERRUPTED and time.monotonic() - sent < 15
    OBSERVED.append(
        (
            "a device call that never returns (TT-Metal get_cached_binary wait)",
            "DeviceCalls(timeout=3 s) waiting on the stuck call",
            EXIT_ENVIRONMENT,
            timeout,
        )
    )


def test_values_device_on_a_mock_is_refused(capsys, tmp_path):
    code, line = cli(
        capsys,
        "--values device on the mock (reported PCC 0 as real before)",
        "run",
        *TINY,
        "--device",
        "mock",
        "--values",
        "device",
        "--out",
        str(tmp_path),
    )
    assert code == EXIT_USER and "a mock device runs no kernels" in line
    assert not any(tmp_path.iterdir())


# -- lost or wrong results ---------------------------------------------------------------------

ENTRIES = ["siglip-tiny", "--input-shape", "1,3,56,56", "--input-shape", "1,3,28,28"]


def _sweep_proc(out: Path, *extra: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fxport.cli", "sweep", *ENTRIES, "--out", str(out), *extra],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        **kw,
    )


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not (path.exists() and path.stat().st_size):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def clean_sweep(tmp_path_factory):
    """A clean two-entry sweep; while it runs, second writers on its --out are refused. One
    worker runs both entries (a worker process costs seconds of imports; -j 2 is the same driver)."""
    out = tmp_path_factory.mktemp("clean")
    proc = _sweep_proc(out, "-j", "1")
    _wait_for(out / LOCK_NAME, proc)
    second = []
    for args in (["trace", *TINY, "--out", str(out)], ["report", str(out)]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            start = time.monotonic()
            code = main(args)
        second.append((args, code, err.getvalue(), time.monotonic() - start))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out, proc.pid, second


def test_second_writer_on_one_out_fails_fast_naming_the_holder(clean_sweep):
    out, pid, second = clean_sweep
    for args, code, err, seconds in second:
        line = observe(
            f"a second writer ({args[0]}) on the --out of a running sweep (mixed or overwrote before)",
            "fxport " + " ".join(args[:1] + ["...", "--out", "<sweep dir>"]),
            code,
            err,
        )
        assert code == EXIT_USER and seconds < 5
        assert f"is in use by `fxport sweep` (pid {pid}" in line
    assert not (out / "ops.json").exists()


def _docs(out: Path) -> dict[str, str]:
    """The documents (timing.json holds wall times, so it is left out)."""
    return {
        p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*.json")) if p.name != "timing.json"
    }


@pytest.mark.slow  # Ctrl-C and SIGKILL mid-sweep, then two resumes; default twin: the resume test below
def test_interrupted_and_killed_sweeps_resume_to_the_clean_result(clean_sweep, tmp_path, capsys):
    clean = clean_sweep[0]
    out = tmp_path / "s"
    first, second = out / "siglip-tiny@56x56" / "run.json", out / "siglip-tiny@28x28" / "run.json"

    # -j 1: entry 2 must still be running when entry 1 is written (parallel workers finish together)
    proc = _sweep_proc(out, "-j", "1", start_new_session=True)  # SIGKILL to the group, as a crash
    _wait_for(first, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL and not second.exists()
    OBSERVED.append(
        (
            "SIGKILL mid-sweep",
            "fxport sweep ... (SIGKILL to its group after entry 1)",
            proc.returncode,
            "(killed; resumed below)",
        )
    )

    (second.parent / LOCK_NAME).unlink(missing_ok=True)  # so that the wait below sees a new writer
    proc = _sweep_proc(out, "-j", "1")  # reuses entry 1; interrupted while entry 2 runs
    _wait_for(second.parent / LOCK_NAME, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    observe("SIGINT mid-sweep", "fxport sweep ... (SIGINT during entry 2)", proc.returncode, err)
    assert proc.returncode == EXIT_INTERRUPTED and time.monotonic() - sent < 15, err
    stopped = json.loads((out / "sweep.json").read_text())
    assert [e["status"] for e in stopped["entries"]] == ["ok", "not run"]

    code = main(["sweep", *ENTRIES, "--out", str(out)])
    err = capsys.readouterr().err
    observe("resume after SIGKILL and SIGINT", "fxport sweep ... (resume)", code, err)
    assert code == 0 and "redoing" not in err  # entry 1 reused, entry 2 run
    assert _docs(out) == _docs(clean)  # byte-identical documents to the clean sweep


def test_resume_never_reuses_results_of_other_settings(clean_sweep, tmp_path, capsys):
    clean = clean_sweep[0]
    out = tmp_path / "s"
    shutil.copytree(clean, out)
    saved = out / "siglip-tiny@28x28" / "run.json"
    other_batch = run_settings(
        "siglip-tiny", (2, 3, 28, 28), "mock", None, "dram", "none", passes=pass_settings(PASS_NAMES)
    )
    assert saved_result(saved, other_batch)[1].endswith("(input_shape)")  # another batch: redone

    torn = out / "siglip-tiny@56x56" / "run.json"
    torn.write_text(torn.read_text()[:100])  # a torn document: redone, and said so

    code = main(["sweep", *ENTRIES, "--arch", "p150", "-j", "1", "--out", str(out)])
    err = capsys.readouterr().err
    observe(
        "resume with a torn run.json (exit 1 for every later resume before) and another --arch "
        "(reported n150 for a p150 sweep before)",
        "fxport sweep siglip-tiny --input-shape 1,3,56,56 --input-shape 1,3,28,28 --arch p150 -j 1 (over n150)",
        code,
        err,
    )
    assert code == 0 and "other settings (arch)" in err
    assert "redoing siglip-tiny@56x56: its saved result is unreadable (cannot read" in err
    OBSERVED.append(
        (
            "  the torn entry",
            "(same run)",
            code,
            next(ln for ln in err.splitlines() if ln.startswith("fxport: redoing siglip-tiny@56x56")),
        )
    )
    doc = json.loads(saved.read_text())
    assert doc["device"]["arch"] == "p150" and doc["settings"]["arch"] == "p150"
    assert json.loads((out / "sweep.json").read_text())["device"]["arch"] == "p150"


def test_sweep_with_failed_entries_exits_non_zero_naming_them(tmp_path, capsys):
    code, line = cli(
        capsys,
        "a sweep where every entry failed (exited 0 before)",
        "sweep",
        "vit_b_16",
        "--input-shape",
        "1,3,30,30",
        "--out",
        str(tmp_path),
    )
    assert code == EXIT_INCOMPLETE and "1 of 1 entries produced no result: vit_b_16@30x30" in line


def test_unusable_out_is_found_before_any_work(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "built"
    monkeypatch.setenv("FXPORT_TEST_MARKER", str(marker))
    (tmp_path / "file").write_text("x")
    for case, out, expect in (
        ("--out is an existing file", tmp_path / "file", "is a file"),
        ("--out under a file", tmp_path / "file" / "sub", "is under"),
        ("--out not writable", Path("/proc/fxport-out"), "cannot write"),
    ):
        code, line = cli(
            capsys,
            case,
            "run",
            "tests.fault_models:Marker",
            "--input-shape",
            "1,4",
            "--device",
            "mock",
            "--out",
            str(out),
        )
        assert code == EXIT_USER and expect in line
    assert not marker.exists()  # the model was never built


def test_rerun_into_a_directory_removes_renderings_of_the_other_model(tmp_path, capsys):
    assert main(["run", *TINY, "--device", "mock", "--out", str(tmp_path)]) == 0
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "report.html").exists() and (tmp_path / "plots").is_dir()
    code, _ = cli(
        capsys,
        "a rerun into a directory holding another model's report",
        "run",
        "tests.user_models:tiny_mlp",
        "--input-shape",
        "1,16",
        "--device",
        "mock",
        "--out",
        str(tmp_path),
    )
    assert code == 0 and json.loads((tmp_path / "run.json").read_text())["model"] == "tests.user_models:tiny_mlp"
    assert "tiny_mlp" in (tmp_path / "report.md").read_text() and "TinyCNN" not in (tmp_path / "report.md").read_text()
    assert not any((tmp_path / name).exists() for name in ("report.html", "nodes.csv", "oom_nodes.csv", "plots"))


@pytest.mark.parametrize("stop", ["ctrl-c", "device timeout"])
def test_a_stopped_run_keeps_what_was_computed(stop, tmp_path, monkeypatch, capsys):
    """Ctrl-C reaches the main thread while it waits for a device call, and a call that does not
    return within its bound raises DeviceTimeout there (watchdog.DeviceCalls; both shown on a
    real TT-Metal hang above). Here they are raised at the 12th node's call, as they would be."""
    from fxport.runtime.watchdog import DeviceCalls, DeviceTimeout

    calls = {"n": 0}
    real = DeviceCalls.__call__

    def stopped(self, fn, label="", timeout=None):
        calls["n"] += label.startswith("node ")
        if calls["n"] == 12:
            raise KeyboardInterrupt if stop == "ctrl-c" else DeviceTimeout(f"{label} did not return within 300 s")
        return real(self, fn, label, timeout)

    monkeypatch.setattr(DeviceCalls, "__call__", stopped)
    code, line = cli(
        capsys,
        f"{stop} during a run",
        "run",
        "siglip-tiny",
        "--device",
        "mock",
        "--values",
        "none",
        "--out",
        str(tmp_path),
    )
    doc = json.loads((tmp_path / "run.json").read_text())
    assert code == (EXIT_INTERRUPTED if stop == "ctrl-c" else EXIT_ENVIRONMENT)
    assert "the 11 nodes run before are in" in line and "(marked stopped)" in line
    assert doc["stopped"].startswith("interrupted (Ctrl-C) after 11 nodes" if stop == "ctrl-c" else "node ")
    assert len(doc["nodes"]) == 11 and doc["coverage"]["not_run"] == doc["coverage"]["total"] - 11
    assert saved_result(tmp_path / "run.json", doc["settings"])[1] == "its saved run stopped before the end"
    assert main(["report", str(tmp_path)]) == 0 and "STOPPED before the end" in (tmp_path / "report.md").read_text()


# -- inconsistent errors -----------------------------------------------------------------------


def test_one_line_errors_with_documented_codes(tmp_path, monkeypatch, capsys):
    from test_report import run_doc

    monkeypatch.chdir(tmp_path)
    (tmp_path / "syntax_error.py").write_text("def f(:\n")
    (tmp_path / "import_error.py").write_text("import no_such_package_here\n")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    doc = run_doc("m")
    del doc["coverage"]
    (damaged / "run.json").write_text(json.dumps(doc))
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "sweep.json").write_text('{"schema": "fxport.sweep/1", "entr')
    (tmp_path / "bad_ops.json").write_text("[1, 2")
    cases = [
        ("a user module with a SyntaxError", ["trace", "syntax_error:Model"], EXIT_USER, "SyntaxError"),
        ("a user module with an import error", ["trace", "import_error:Model"], EXIT_USER, "No module named"),
        ("a hand-damaged run.json", ["report", str(damaged)], EXIT_USER, "missing 'coverage'"),
        ("a torn sweep.json", ["report", str(torn)], EXIT_USER, "cannot read"),
        ("a torn ops.json", ["gen-tests", "bad_ops.json", "--out", "t"], EXIT_USER, "cannot read"),
        ("--min-block-size -5", ["run", *TINY, "--min-block-size", "-5"], EXIT_USER, "not >= 1"),
        ("gen-tests --pcc 7", ["gen-tests", "--pcc", "7"], EXIT_USER, "in (0, 1]"),
        ("gen-tests --pcc nan", ["gen-tests", "--pcc", "nan"], EXIT_USER, "in (0, 1]"),
        ("sweep --timeout -5", ["sweep", "--timeout", "-5"], EXIT_USER, "positive number of seconds"),
        (
            "trace of a model with no tensor outputs",
            ["trace", "tests.fault_models:NoTensorOutput", "--input-shape", "1,4", "--out", "o"],
            EXIT_USER,
            "0 aten nodes",
        ),
        (
            "a run that cannot allocate host memory",
            ["run", "tests.fault_models:Huge", "--input-shape", "1,1048576", "--device", "mock", "--out", "h"],
            EXIT_ENVIRONMENT,
            "not enough host memory",
        ),
    ]
    for case, args, expected, text in cases:
        code, line = cli(capsys, case, *args)
        assert code == expected and text in line, (case, code, line)
    if not list(Path("/dev").glob("tenstorrent/*")):  # a new process: this one holds a mock
        proc = fxport("run", *TINY, "--device", "hardware", "--out", str(tmp_path / "hw"))
        line = observe(
            "--device hardware without a card",
            f"fxport run {' '.join(TINY)} --device hardware",
            proc.returncode,
            proc.stderr,
        )
        assert proc.returncode == EXIT_USER and "use --device mock" in line


def test_a_damaged_sweep_entry_renders_as_damaged_with_the_rest(tmp_path, capsys):
    from test_report import run_doc

    _sweep_dir(tmp_path, {"a@16x16": run_doc("a"), "b@16x16": run_doc("b")})
    (tmp_path / "b@16x16" / "run.json").write_text('{"schema": "fxport.run/1"')
    code, line = cli(capsys, "a sweep with one damaged entry (failed whole before)", "report", str(tmp_path))
    assert code == EXIT_USER and "1 damaged sweep entries" in line and "b@16x16" in line
    assert (tmp_path / "a@16x16" / "report.html").exists() and "DAMAGED" in (tmp_path / "index.md").read_text()


def test_backend_options_are_validated():
    from fxport.backend import BackendOptions
    from fxport.errors import FxportError

    for options, text in (
        ({"memory_config": "sram"}, "expected one of 'dram', 'l1'"),
        ({"device": "gpu"}, "expected one of"),
        ({"min_block_size": -1}, ">= 1"),
        ({"min_block_size": "3"}, ">= 1"),
        ({"colour": 1}, "unknown fxport backend option"),
    ):
        with pytest.raises(FxportError, match=re.escape(text)) as err:
            BackendOptions.parse(options)
        OBSERVED.append(("torch.compile backend option", f"options={options}", EXIT_USER, str(err.value)))


def test_compare_warns_when_model_inputs_arch_or_memory_differ(tmp_path, capsys):
    from test_report import run_doc

    a, b = run_doc("a"), run_doc("b")
    b["inputs"][0]["shape"] = [2, 3, 16, 16]
    b["device"]["arch"], b["memory_config"] = "p150", "dram"
    for name, doc in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.json").write_text(json.dumps(doc))
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    warnings = [ln for ln in out.splitlines() if ln.startswith("warning:")]
    assert [w.split()[1] for w in warnings] == ["model", "inputs", "memory_config", "device"], warnings
    OBSERVED.append(("compare of two different models", "fxport compare a b", 0, " / ".join(warnings)))


def test_calls_handed_over_together_keep_their_own_bound():
    """A partition is handed to the device worker once and its nodes' calls run inside it: the
    bound applies to each of those calls (a batch longer than the bound is fine), a call that
    overruns it is named, and the device is then wedged."""
    from fxport.runtime.watchdog import DeviceCalls, DeviceTimeout

    calls = DeviceCalls(timeout=0.5)

    def batch(*seconds):
        for i, s in enumerate(seconds):
            calls(lambda s=s: time.sleep(s), label=f"node n{i}")
        return len(seconds)

    assert calls(lambda: batch(0.3, 0.3, 0.3), label="partition fused_0") == 3  # 0.9 s in all
    with pytest.raises(DeviceTimeout, match=r"node n1 did not return within 0.5 s"):
        calls(lambda: batch(0.1, 2.0), label="partition fused_1")
    with pytest.raises(DeviceTimeout, match="stopped responding earlier"):
        calls(lambda: None, label="later")
