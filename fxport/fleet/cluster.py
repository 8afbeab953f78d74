"""`fxport sweep --cluster ray`: the same entry function as `-j N`, as Ray tasks.

Ray does the scheduling, worker reuse and retries; fxport only says what each entry needs:
- one CPU, and the memory its last measured peak says (Ray's `memory` resource; the default need
  for an entry not measured yet: fxport.fleet.resources), so that Ray does not oversubscribe a host;
- for `--device hardware`, one `tenstorrent` resource: start Ray on each host with a card as
  `ray start --resources '{"tenstorrent": <cards>}'`, and only those hosts take such entries
  (a local cluster started here gets the cards of this host);
- `max_calls=K`: a Ray worker process runs up to K entries with its device open (warm), then Ray
  replaces it, as `--entries-per-worker` does locally;
- `max_retries`: a worker lost mid-entry (a crash, a killed process, a lost node) makes Ray run the
  entry again on another worker; when the retries are spent too, the entry is recorded as failed
  with what happened. An entry that exceeds --timeout ends its worker (fxport.fleet.worker), which
  Ray treats the same way.

Results come back to the driver as values and the driver writes them (atomically, fxport.sweep), so
workers need no shared file system; resume works across cluster runs because it reads only what
the driver wrote. The driver joins the cluster at `--ray-address` or RAY_ADDRESS, else starts a
local one for the sweep (and stops it after); a caller that has already called `ray.init` (the
tests, a notebook) keeps its own.
"""

from __future__ import annotations

import ray
import ray.exceptions

from fxport.errors import EXIT_INTERNAL, FxportError
from fxport.fleet.resources import DEFAULT_NEED, need
from fxport.fleet.worker import EntryJob, EntryOutcome, run_entry
from fxport.runtime.devices import hardware_present

HARDWARE_RESOURCE = "tenstorrent"
MAX_RETRIES = 1  # a worker lost mid-entry: the entry runs once more, then is recorded as failed


def task_options(job: EntryJob, need: int = DEFAULT_NEED, max_retries: int = MAX_RETRIES) -> dict:
    """The Ray task options for one entry (`max_calls`, a property of the remote function, is
    set where it is made)."""
    options = {
        "num_cpus": 1,
        "memory": need,
        "max_retries": max_retries,
        "retry_exceptions": False,
        # Workers of another runtime env are another pool: a warm worker holds one device.
        "runtime_env": {"env_vars": {"FXPORT_WORKER_DEVICE": f"{job.device}:{job.arch or ''}"}},
    }
    if job.device == "hardware":
        options["resources"] = {HARDWARE_RESOURCE: 1}
    return options


def _start(address: str | None) -> bool:
    """Join or start a cluster unless this process already has one; True if started here."""
    if ray.is_initialized():
        return False
    resources = {HARDWARE_RESOURCE: len(_cards())} if not address and _cards() else None
    ray.init(
        address=address, resources=resources, include_dashboard=False, log_to_driver=False, configure_logging=False
    )
    return True


def _cards() -> list[str]:
    import glob

    return glob.glob("/dev/tenstorrent/*") if hardware_present() else []


def run_ray(
    jobs: list[EntryJob],
    address: str | None,
    per_worker: int,
    done,
    measured: dict[str, dict] | None = None,
    max_retries: int = MAX_RETRIES,
) -> str:
    """Run `jobs` as Ray tasks; `done` gets each outcome as it arrives. Returns what ran them."""

    started = _start(address)
    try:
        total = ray.cluster_resources()
        if any(j.device == "hardware" for j in jobs) and not total.get(HARDWARE_RESOURCE):
            raise FxportError(
                f"no host of the Ray cluster offers a {HARDWARE_RESOURCE!r} resource "
                f"for --device hardware; start Ray on card hosts with `ray start "
                f"--resources '{{\"{HARDWARE_RESOURCE}\": 1}}'`"
            )
        memory = int(total.get("memory", 0)) or None
        remote = ray.remote(max_calls=per_worker)(run_entry)
        refs = {}
        for job in jobs:
            want = need([job.key], measured or {})
            options = task_options(job, min(want, memory) if memory else want, max_retries)
            refs[remote.options(**options).remote(job)] = job
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    done(_outcome(ref, refs[ref], max_retries))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        nodes = len([n for n in ray.nodes() if n.get("Alive")])
        return f"Ray ({nodes} node{'s' * (nodes != 1)}, {int(total.get('CPU', 0))} CPUs)"
    finally:
        if started:
            ray.shutdown()


def _outcome(ref, job: EntryJob, max_retries: int) -> EntryOutcome:
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # run_entry raised: an fxport bug
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        return EntryOutcome(
            job.key,
            None,
            exit_code=EXIT_INTERNAL,
            error=f"{type(cause).__name__}: {str(cause).splitlines()[0][:200]} (an "
            "fxport bug: rerun with --debug for the traceback)",
        )
    except ray.exceptions.RayError as exc:  # the worker or its node was lost, every attempt
        return EntryOutcome(
            job.key,
            None,
            exit_code=EXIT_INTERNAL,
            error=f"its Ray worker was lost {max_retries + 1} times while running it "
            f"({type(exc).__name__}: a crash, a killed process, a lost node or "
            f"the --timeout)",
        )
