"""Device calls with a time bound, on one worker thread, so that no device call can hang a run.

TT-Metal can block for good inside C++ (measured with ttnn 0.81.1: a truncated ELF in the JIT cache
makes `get_cached_binary` wait forever). It releases the GIL there, but a Python signal handler
only runs between bytecodes of the main thread, so Ctrl-C did nothing while the main thread was
the one waiting. Here the main thread hands each device call to a worker thread and waits for it
with a deadline: a call that does not return in time raises DeviceTimeout, and Ctrl-C raises
KeyboardInterrupt in the waiting thread at once. A worker stuck in C++ cannot be stopped; the
device is then `wedged`: later calls fail at once, and it is not closed at exit (closing would
wait on the stuck call).

A handoff costs a thread switch each way (measured: 5% of a ResNet-18 inference on a quiet
machine, over 20% under load), so a caller may hand over a whole batch of calls at once (a
device partition) and make its per-node calls inside it: those run directly on the worker, and
each still has its own bound. The waiting thread's deadline follows the latest call started on
the worker: it times out when one call (not the batch) runs longer than the bound, and names that
call. Ctrl-C stops the wait at once, and the worker's next call raises KeyboardInterrupt, so a
batch does not run on after the user stopped it.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from fxport.errors import EnvironmentFault

DEFAULT_TIMEOUT = 300.0  # seconds; the slowest legitimate call measured (a golden conv at 4K) is far below


class DeviceTimeout(EnvironmentFault):
    """A device call did not return within its bound (the device or its runtime stopped
    responding)."""


@dataclass
class _Job:
    fn: Callable[[], Any] | None
    grad: bool  # torch's grad mode is per thread: the worker runs with the caller's
    threads: int  # the caller's torch.set_num_threads (see _work)
    label: str
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class DeviceCalls:
    """Run a callable of no arguments on the device worker: `calls(lambda: ..., label="node x")`."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT):
        self.timeout = timeout
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pending: _Job | None = None  # a call the caller stopped waiting for
        self.stuck = ""  # the label of a call that timed out: the device is wedged
        # The call the worker runs now (a handed-over call or one inside it) and when it began:
        # written by the worker, read by the waiting thread (one tuple: a consistent pair).
        self._current: tuple[str, float] = ("", 0.0)
        self._cancelled = False  # the caller stopped waiting: the worker's next call stops

    @property
    def busy(self) -> bool:
        """A call is still running that nobody waits for (after a timeout or Ctrl-C)."""
        return self._pending is not None and not self._pending.done.is_set()

    def __call__(self, fn: Callable[[], Any], label: str = "", timeout: float | None = None) -> Any:
        if self.stuck:
            raise DeviceTimeout(f"the device stopped responding earlier ({self.stuck})")
        if threading.current_thread() is self._thread:  # a device call inside a device call
            if self._cancelled:
                raise KeyboardInterrupt
            self._current = (label, time.monotonic())
            return fn()
        if self.busy:  # Ctrl-C left a call running: wait for it before starting another
            self._wait(self._pending, timeout)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="fxport-device", daemon=True)
            self._thread.start()
        job = _Job(fn, torch.is_grad_enabled(), torch.get_num_threads(), label)
        self._current, self._cancelled = (label, time.monotonic()), False
        self._jobs.put(job)
        self._wait(job, timeout)
        # Drop the job's references now: a device tensor kept alive past its last use would
        # change the allocator's verdicts on later nodes.
        result, error = job.result, job.error
        job.fn = job.result = job.error = None
        if error is not None:
            try:
                raise error
            finally:
                del error  # no frame -> exception -> traceback -> frame cycle
        return result

    def _wait(self, job: _Job, timeout: float | None) -> None:
        bound = self.timeout if timeout is None else timeout
        self._pending = job
        try:
            while True:
                label, since = self._current
                # Event.wait is interrupted by signals: Ctrl-C raises KeyboardInterrupt here at once.
                if job.done.wait(max(0.0, since + bound - time.monotonic())):
                    break
                if self._current[1] == since:  # no call began since: this one overran its bound
                    self.stuck = f"{label or job.label or 'a device call'} did not return within {bound:g} s"
                    raise DeviceTimeout(self.stuck)
        except KeyboardInterrupt:
            self._cancelled = True
            raise
        self._pending = None

    def _work(self) -> None:
        # torch.set_num_threads reaches OpenMP only in the thread that calls it: a thread of our
        # own runs torch ops with OpenMP's default team whatever the caller set (measured under
        # load with set_num_threads(1): a 64-channel 3x3 conv 110-146 ms here against 9-31 ms in
        # the caller's thread, 15 ms once set here too). The worker applies the caller's setting.
        threads = None
        while True:
            job = self._jobs.get()
            try:
                if job.threads != threads:
                    torch.set_num_threads(job.threads)
                    threads = job.threads
                with torch.set_grad_enabled(job.grad):
                    job.result = job.fn()
            except BaseException as exc:  # handed to the caller, who decides
                job.error = exc
            finally:
                job.done.set()
                del job
