"""The entry function: one sweep entry (a model at one input shape) run as `fxport run` would, in
a warm worker process, its outcome returned to the driver, which writes it.

A worker imports torch and ttnn and opens the device once, on its first entry, then runs entries
until its pool retires it (after K entries) or it dies. Every entry starts from the state a fresh
process would have: TT-NN's program cache is cleared (its programs hold conv and pool configs in
L1_SMALL) and refilled with the device canary's program, the allocator must hold no tensor
(checked), and the model is built and seeded afresh; so an entry's run.json is the same whichever worker runs
it and after whatever entries (checked by tests/test_fleet.py and bench/sweep.py).

Crash isolation: an entry that crashes its worker costs that entry only (the pool replaces the
worker and the driver reruns the entries it was running, each alone). An entry that does not end
within its timeout is ended by `faulthandler` (a C-level timer: it fires even when the entry is
stuck inside C++), which writes the stack into the entry's marker and exits the worker.

While an entry runs, its output directory's lock file names the worker (host, pid): the driver
knows from it which entries a dead worker was running, and `fxport sweep` from another shell is
refused on that directory as usual.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import resource
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from fxport.durable import check_output, lock_output, subdir, unlock_output
from fxport.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USER,
    EnvironmentFault,
    FxportError,
    model_code_exit,
)
from fxport.run_options import VERDICT_RUNS, RunOptions

TIMEOUT_NAME = ".fxport-timeout"  # in the entry's directory: the stack of an entry that timed out


@dataclass(frozen=True)
class EntryJob:
    """One entry and the sweep's settings for it (plain data: it crosses process boundaries)."""

    key: str  # the entry's directory name under the sweep's --out
    model: str
    input_shape: tuple[int, ...]  # (): the model's own, or what `inputs` says
    device: str = "mock"
    arch: str | None = None
    options: RunOptions = VERDICT_RUNS  # the run's settings (its caches: the dirs below)
    timeout: float = 1800.0  # seconds for the whole entry
    device_timeout: float | None = None
    cache_dir: str | None = None  # the verdict cache (verdict runs); None: no cache
    run_dir: str | None = None  # where the driver writes it: marked while it runs (best effort)
    host: str = field(default_factory=socket.gethostname)  # the driver's: run_dir is on it
    inputs: tuple[str, ...] = ()  # `fxport run` input options (--input, --inputs, --model-arg)
    capture_cache_dir: str | None = None  # the capture cache (verdict runs); None: no cache

    def input_options(self):
        """The entry's inputs as `fxport run` reads its options."""
        from fxport.capture.loader import InputOptions, parse_input, parse_model_arg

        specs, source, model_args = [], None, {}
        flags = iter(self.inputs)
        for flag, value in zip(flags, flags):
            if flag == "--input":
                specs.append(parse_input(value))
            elif flag == "--inputs":
                source = value
            elif flag == "--model-arg":
                key, arg = parse_model_arg(value)
                model_args[key] = arg
            else:
                raise FxportError(f"unknown input option {flag!r}")
        return InputOptions(
            shape=tuple(self.input_shape) or None, specs=tuple(specs), source=source, model_args=model_args
        )


@dataclass
class EntryOutcome:
    key: str
    doc: dict | None  # the run document (with its settings block); None when the run failed
    error: str = ""  # one line, as `fxport run` says it
    exit_code: int = EXIT_OK  # as `fxport run` would exit (2 bad input, 3 environment, 1 bug)
    stopped: bool = False  # doc is a partial run (Ctrl-C, broken environment)
    seconds: dict = field(default_factory=dict)  # import, device_open, build_capture, ...
    cache: dict = field(default_factory=dict)  # verdict cache counts (CacheStats)
    capture_cache: dict = field(default_factory=dict)  # capture cache counts (CaptureCacheStats)
    peak_rss: int = 0  # bytes: this entry's peak resident memory in its worker
    worker: str = ""  # host:pid
    worker_entry: int = 0  # 1 for a worker's first entry (it paid import and device open)


_warm: dict = {}  # this process: "dev", "import", "device_open", "entries"


def _device(job: EntryJob) -> tuple:
    """The worker's device session, opened on its first entry (import and open timed)."""
    if "dev" not in _warm:
        t = time.perf_counter()
        import fxport.runner  # noqa: F401  (torch, ttnn and the pipeline, imported once)
        from fxport.runtime import devices

        _warm["import"] = time.perf_counter() - t
        t = time.perf_counter()
        dev = devices.open_session_device(job.device, job.arch, timeout=job.device_timeout)
        _warm["device_open"] = time.perf_counter() - t
        _warm["dev"], _warm["entries"] = dev, 0
        import ttnn

        from fxport.runtime.verdict_cache import allocator_state

        _warm["clean"] = allocator_state(ttnn, dev.device)  # nothing allocated but the device's own
        return dev
    from fxport.runtime import devices

    # The warm session if it is the device this entry asks for; a one-line error if not.
    return devices.open_session_device(job.device, job.arch, timeout=job.device_timeout)


def _reset_peak_rss() -> None:
    """Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def error_line(exc: BaseException) -> tuple[int, str]:
    """(exit code, the line) as the CLI says it for an exception (fxport.cli._run)."""
    text = " ".join(str(exc).split())
    if isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "DefaultCPUAllocator" in text)
    ):
        return EXIT_ENVIRONMENT, (
            "not enough host memory; free memory, or use --values none "
            "(weights stay on meta) or a smaller --input-shape"
        )
    if isinstance(exc, FxportError):
        return exc.exit_code, text
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return EXIT_INTERNAL, " ".join(
        f"{type(exc).__name__}: {first} (an fxport bug: rerun with --debug for the traceback)".split()
    )


def run_entry(job: EntryJob) -> EntryOutcome:
    """Run one entry in this (warm) process; never raises for the entry's own failure."""
    start = time.perf_counter()
    outcome = EntryOutcome(job.key, None, worker=f"{socket.gethostname()}:{os.getpid()}")
    marked = _mark(job)
    timer = None
    if marked:
        try:  # never through a link or into a FIFO someone left there
            timer = os.fdopen(
                os.open(
                    timer_path := Path(job.run_dir) / TIMEOUT_NAME,
                    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                    0o644,
                ),
                "w",
            )
        except OSError:
            timer = None
    if timer is not None:
        faulthandler.dump_traceback_later(job.timeout, exit=True, file=timer)
    try:
        _run(job, outcome)
    finally:
        if timer is not None:
            faulthandler.cancel_dump_traceback_later()
            timer.close()
            timer_path.unlink(missing_ok=True)
        if marked:
            unlock_output(job.run_dir)
    outcome.seconds["entry"] = time.perf_counter() - start
    return outcome


def _mark(job: EntryJob) -> bool:
    """Lock the entry's directory for the run (its lock file names this worker). Best effort: a
    Ray worker on another host may not see the driver's --out."""
    if not job.run_dir or socket.gethostname() != job.host:
        return False
    try:
        run_dir = Path(job.run_dir)
        check_output(run_dir.parent)
        subdir(run_dir.parent, run_dir.name)
        lock_output(job.run_dir, f"fxport sweep worker ({job.key})")
        return True
    except (OSError, FxportError):
        return False


def _run(job: EntryJob, outcome: EntryOutcome) -> None:
    first = "dev" not in _warm
    try:
        dev = _device(job)
    except Exception as exc:
        outcome.exit_code, outcome.error = error_line(exc)
        return
    _warm["entries"] += 1
    outcome.worker_entry = _warm["entries"]
    if first:
        outcome.seconds.update({"import": _warm["import"], "device_open": _warm["device_open"]})
    import ttnn

    from fxport.capture.cache import CaptureCache
    from fxport.report.results import run_document
    from fxport.runner import run_model
    from fxport.runtime.devices import canary
    from fxport.runtime.verdict_cache import VerdictCache, allocator_state

    # As a fresh process starts: an empty program cache (cached programs hold conv and pool
    # config buffers in L1_SMALL) and no tensor of the previous entry on the device.
    dev.device.clear_program_cache()
    gc.collect()
    if allocator_state(ttnn, dev.device) != _warm["clean"]:
        outcome.exit_code = EXIT_ENVIRONMENT
        outcome.error = (
            "a warm worker's device still holds tensors of an earlier entry; rerun with --entries-per-worker 1"
        )
        return
    verdict_only = job.options.values == "none"
    cache = VerdictCache(Path(job.cache_dir)) if job.cache_dir and verdict_only else None
    captures = CaptureCache(Path(job.capture_cache_dir)) if job.capture_cache_dir and verdict_only else None
    _reset_peak_rss()

    def document(result) -> dict:
        doc = run_document(result)
        # As `fxport run` keys it: inputs given as options are keyed by those options.
        full = job.input_shape or (() if job.inputs else result.inputs[0].spec.shape if result.inputs else ())
        doc["settings"] = job.options.settings(job.model, full, dev.kind, job.arch, job.inputs)
        return doc

    try:
        canary(dev)  # a fresh process's program cache holds the device canary's program
        options = replace(job.options, cache=cache, capture_cache=captures)
        result = run_model(job.model, dev, job.input_options(), options)
        outcome.doc = document(result)
        outcome.seconds.update(result.seconds)
    except (KeyboardInterrupt, EnvironmentFault) as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:
            outcome.doc, outcome.stopped = document(partial), True
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome.exit_code, outcome.error = error_line(exc)
    except Exception as exc:
        outcome.exit_code, outcome.error = error_line(exc)
    except BaseException as exc:  # SystemExit & co. from model code: this entry's error, not the sweep's end
        outcome.exit_code, outcome.error = EXIT_USER, model_code_exit(job.model, exc)
    finally:
        outcome.peak_rss = _peak_rss()
        if cache is not None:
            outcome.cache = cache.stats.to_dict()
        if captures is not None:
            outcome.capture_cache = captures.stats.to_dict()
        if dev.wedged:  # a stuck device call: this worker cannot run another entry
            outcome.exit_code = EXIT_ENVIRONMENT
