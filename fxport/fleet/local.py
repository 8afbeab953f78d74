"""`fxport sweep -j N`: entries in N warm worker processes on this host.

concurrent.futures' ProcessPoolExecutor with spawned workers (a fork would copy the driver's
state, and TT-Metal's threads do not survive a fork). Workers are retired by running entries in
batches of N x K, one pool per batch, which bounds what a long-lived worker accumulates (memory,
JIT state) to about K entries. (Not `max_tasks_per_child`: with it, CPython 3.12.1's executor
stopped replacing retired workers and hung, measured on the zoo sweep.) The driver submits entries
and receives outcomes as they complete.

A worker that dies (a crash, an entry that hit its timeout) breaks the executor: every entry it
had not finished fails with BrokenProcessPool, the innocent with the guilty. Those the dead pool
had not started go to a new pool; those it was running (their directories still name a holder:
fxport.fleet.worker) are rerun each alone in a one-entry pool, so that a crash is charged to the
entry that causes it, or recorded as a timeout when the entry's marker says so.
"""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Iterable

from fxport.durable import LOCK_NAME, read_regular
from fxport.errors import EXIT_INTERNAL
from fxport.fleet.worker import TIMEOUT_NAME, EntryJob, EntryOutcome, run_entry


def _ignore_sigint() -> None:
    # Ctrl-C goes to the whole foreground group; the driver stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_sigint
    )


def stop(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: cancel what has not started and end its workers."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.kill()


def was_running(job: EntryJob) -> bool:
    """A dead worker was running `job`: its directory's lock file still names a holder."""
    try:
        return bool(job.run_dir and read_regular(Path(job.run_dir) / LOCK_NAME).strip())
    except OSError:
        return False


def timed_out(job: EntryJob) -> bool:
    """The entry's worker ended it at its timeout (faulthandler wrote the stack into its marker)."""
    try:
        return bool(job.run_dir) and (Path(job.run_dir) / TIMEOUT_NAME).stat().st_size > 0
    except OSError:
        return False


def died(job: EntryJob) -> EntryOutcome:
    """The outcome of an entry whose worker died running it: timed out, or crashed alone."""
    if timed_out(job):
        (Path(job.run_dir) / TIMEOUT_NAME).unlink(missing_ok=True)
        error = f"timed out after {job.timeout:g} s"
    else:
        error = "its worker process died while running it (a crash in native code, or killed)"
    (Path(job.run_dir) / LOCK_NAME).unlink(missing_ok=True) if job.run_dir else None
    return EntryOutcome(job.key, None, error=error, exit_code=EXIT_INTERNAL)


def run_local(jobs: Iterable[EntryJob], workers: int, per_worker: int, done: Callable[[EntryOutcome], None]) -> None:
    """Run `jobs` in `workers` processes, each running about `per_worker` entries; `done` gets
    every outcome as it arrives (in the driver's thread). KeyboardInterrupt and exceptions raised
    by `done` stop the workers and propagate."""
    queue = list(jobs)
    suspects: list[EntryJob] = []
    while queue or suspects:
        if suspects:  # alone, one at a time: whatever breaks this pool is this entry's doing
            _run_pool([suspects.pop(0)], 1, done, on_broken=lambda j: done(died(j)))
            continue
        batch, queue = queue[: workers * per_worker], queue[workers * per_worker :]
        broken: list[EntryJob] = []
        _run_pool(batch, workers, done, on_broken=broken.append)
        for job in [j for j in broken if timed_out(j)]:  # known guilty: no rerun
            broken.remove(job)
            done(died(job))
        queue = [j for j in broken if not was_running(j)] + queue
        suspects = [j for j in broken if was_running(j)]
        for j in suspects:  # clear the dead holder's record before the rerun
            (Path(j.run_dir) / LOCK_NAME).unlink(missing_ok=True)


def _run_pool(
    jobs: list[EntryJob], workers: int, done: Callable[[EntryOutcome], None], on_broken: Callable[[EntryJob], None]
) -> None:
    pool = _pool(min(workers, len(jobs)))
    futures: dict[Future, EntryJob] = {}
    try:
        futures = {pool.submit(run_entry, job): job for job in jobs}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in sorted(finished, key=lambda f: jobs.index(futures[f])):
                try:
                    outcome = f.result()
                except BrokenProcessPool:
                    on_broken(futures[f])
                    continue
                done(outcome)
    except BaseException:
        stop(pool)
        raise
    pool.shutdown(wait=True)
