"""`fxport sweep --cluster ray` on a local Ray cluster started here (no network, 2 CPUs): the same
entry function and documents as a local sweep, a worker killed mid-entry retried and then recorded
as failed, resume across cluster runs, card hosts taking `--device hardware` entries."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import ray

from fxport.durable import LOCK_NAME
from fxport.fleet.cluster import HARDWARE_RESOURCE, task_options
from fxport.fleet.worker import EntryJob
from fxport.sweep import Fleet, SweepItem, run_sweep

ITEMS = [SweepItem("siglip-tiny", (1, 3, 56, 56)), SweepItem("siglip-tiny", (1, 3, 28, 28))]


@pytest.fixture(scope="module")
def cluster():
    # A local cluster of this host only; a fake card resource lets hardware entries be placed.
    ray.init(
        num_cpus=2,
        resources={HARDWARE_RESOURCE: 1},
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}},
    )
    yield
    ray.shutdown()


class Killer(threading.Thread):
    """SIGKILLs the worker running an entry (named by the entry directory's lock file), up to
    `times[key]` times per entry: a worker lost mid-entry."""

    def __init__(self, out: Path, times: dict[str, int]):
        super().__init__(daemon=True)
        self.out, self.times, self.killed = out, times, {k: [] for k in times}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for key, n in self.times.items():
                try:
                    holder = json.loads((self.out / key / LOCK_NAME).read_text() or "null")
                except (OSError, ValueError):
                    holder = None
                if (
                    holder
                    and holder["command"].startswith("fxport sweep worker")
                    and len(self.killed[key]) < n
                    and holder["pid"] not in self.killed[key]
                ):
                    time.sleep(1.0)  # mid-entry: past the start
                    os.kill(holder["pid"], signal.SIGKILL)
                    self.killed[key].append(holder["pid"])
            time.sleep(0.1)


@pytest.mark.slow  # a Ray cluster losing workers; default twin: hardware entries go to hosts with a card
def test_lost_workers_are_retried_then_recorded_and_the_sweep_resumes(cluster, tmp_path):
    local = run_sweep(ITEMS, tmp_path / "local", fleet=Fleet(workers=2)).doc

    out = tmp_path / "ray"
    killer = Killer(out, {"siglip-tiny@56x56": 1, "siglip-tiny@28x28": 2})
    killer.start()
    try:
        done = run_sweep(ITEMS, out, fleet=Fleet(cluster="ray"))
    finally:
        killer.stop.set()
    assert [len(p) for p in killer.killed.values()] == [1, 2]
    once, twice = done.doc["entries"]
    assert once == local["entries"][0]  # killed once, retried by Ray: the local result
    assert (out / "siglip-tiny@56x56" / "run.json").read_text() == (
        tmp_path / "local" / "siglip-tiny@56x56" / "run.json"
    ).read_text()
    assert twice["status"] == "failed" and "Ray worker was lost 2 times" in twice["error"]
    assert done.timing["workers"].startswith("Ray (1 node, 2 CPUs)")

    stamp = (out / "siglip-tiny@56x56" / "run.json").stat().st_mtime_ns
    again = run_sweep(ITEMS, out, fleet=Fleet(cluster="ray"))  # resume
    assert (out / "siglip-tiny@56x56" / "run.json").stat().st_mtime_ns == stamp  # reused
    assert again.doc == local  # the failed entry ran again, on the cluster
    assert again.timing["entries_run"] == 1


def test_hardware_entries_go_to_hosts_with_a_card(cluster, tmp_path):
    job = EntryJob("x", "siglip-tiny", (1, 3, 28, 28), device="hardware")
    assert task_options(job)["resources"] == {HARDWARE_RESOURCE: 1}
    assert "resources" not in task_options(EntryJob("x", "siglip-tiny", (1, 3, 28, 28)))
    # Placed on the one host offering the resource; it has no card, which the entry then says.
    done = run_sweep(ITEMS[1:], tmp_path, device="hardware", fleet=Fleet(cluster="ray"))
    assert "no Tenstorrent card found" in done.doc["entries"][0]["error"]
