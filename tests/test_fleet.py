"""Sweeps at fleet scale: warm parallel workers, crash isolation, the verdict cache, memory budget.
(The Ray path: tests/test_ray.py.)"""

import gc
import json
import re
from pathlib import Path

import pytest
import torch

from fxport.capture.loader import load_model
from fxport.cli import main
from fxport.fleet.local import run_local
from fxport.fleet.resources import GIB, choose_workers
from fxport.fleet.worker import EntryJob
from fxport.report.results import run_document
from fxport.run_options import RunOptions
from fxport.runner import compile_program, run_compiled
from fxport.runtime.verdict_cache import VerdictCache
from fxport.tracing import trace

ENTRIES = [
    "resnet50",
    "siglip-tiny",
    "--input-shape",
    "1,3,64,64",
    "--input-shape",
    "1,3,32,32",
    "--memory-config",
    "l1",
]


def documents(out: Path) -> dict[str, str]:
    """Every document of a sweep directory but the volatile timing.json files."""
    return {
        p.relative_to(out).as_posix(): p.read_text() for p in sorted(out.rglob("*.json")) if p.name != "timing.json"
    }


@pytest.mark.slow  # a 3-entry sweep twice; default twin: test_capture_cache's cached sweep against the fresh one
def test_parallel_warm_workers_give_the_sequential_documents(tmp_path, capsys):
    # Reference: one entry per fresh process, one at a time, no cache (the sweep as it was).
    assert (
        main(["sweep", *ENTRIES, "-j", "1", "--entries-per-worker", "1", "--no-cache", "--out", str(tmp_path / "seq")])
        == 0
    )
    # Two warm workers sharing a cold verdict cache, each running several entries.
    cache = tmp_path / "cache"
    assert main(["sweep", *ENTRIES, "-j", "2", "--cache", str(cache), "--out", str(tmp_path / "par")]) == 0
    out = capsys.readouterr().out
    assert "on 2 local workers; verdict cache:" in out
    seq, par = documents(tmp_path / "seq"), documents(tmp_path / "par")
    assert len(seq) == 5 and seq == par  # sweep.json and 4 run.json, byte for byte
    timing = json.loads((tmp_path / "par" / "timing.json").read_text())
    workers = {t["worker"] for t in timing["entries"].values()}
    assert len(workers) <= 2 and timing["verdict_cache"]["calls"] > 0
    for t in timing["entries"].values():  # where an entry's time went, and its memory
        assert {"build_capture", "plan_partition", "execute", "write", "entry"} <= set(t["seconds"])
        assert t["peak_rss"] > 100 * 2**20


@pytest.mark.slow  # worker crash and hang; default twin: test_faults' sweep with failed entries
def test_a_crash_or_a_hang_costs_that_entry_only(tmp_path):
    jobs = [
        EntryJob("good", "siglip-tiny", (1, 3, 32, 32), run_dir=str(tmp_path / "good")),
        EntryJob("crash", "tests.fault_models:Crasher", (1, 4), run_dir=str(tmp_path / "crash")),
        EntryJob("hang", "tests.fault_models:Sleeper", (1, 4), timeout=20, run_dir=str(tmp_path / "hang")),
        EntryJob("after", "siglip-tiny", (1, 3, 28, 28), run_dir=str(tmp_path / "after")),
    ]
    outcomes = {}
    run_local(jobs, 2, 8, lambda o: outcomes.setdefault(o.key, o))
    assert set(outcomes) == {"good", "crash", "hang", "after"}
    assert outcomes["good"].doc and outcomes["after"].doc
    assert outcomes["crash"].doc is None and "worker process died" in outcomes["crash"].error
    assert outcomes["hang"].doc is None and outcomes["hang"].error == "timed out after 20 s"


def _captured(model: str, shape: tuple):
    """A verdict run's capture (as run_model does it for --values none)."""
    torch.manual_seed(0)
    loaded = load_model(model, shape, device="meta")
    cap = trace(loaded.module, loaded.inputs, name=loaded.name, repeated=loaded.repeated, kwargs=loaded.kwargs)
    return loaded, cap


def _fresh(cap):
    """Compiled anew for each run: a compiled model keeps its device weights for later runs (the
    previous one's are freed first, as a warm worker frees them between entries)."""
    gc.collect()
    return compile_program(cap.graphs[0].program, repeats=cap.repeats)


@pytest.mark.parametrize("memory", ["dram", pytest.param("l1", marks=pytest.mark.slow)])
def test_cached_verdict_runs_give_the_uncached_documents(memory, mock_device, tmp_path):
    # YOLOv8n at 1280 in L1 has real allocator OOMs (fallbacks) to cache and replay.
    loaded, cap = _captured("yolov8n", (1, 3, 1280, 1280))

    def run(cache):
        mock_device.device.clear_program_cache()
        result = run_compiled(
            _fresh(cap),
            loaded.inputs,
            None,
            mock_device,
            RunOptions(memory=memory, values="none", cache=cache),
            loaded.name,
            None,
            loaded.kwargs,
        )
        # A CB-clash message names its program by TT-Metal's process-wide program counter, which
        # differs between any two runs in one process, cached or not: compared without it.
        text = json.dumps(run_document(result), sort_keys=True)
        return re.sub(r'"program": \d+', '"program": 0', re.sub(r"program \d+", "program N", text))

    uncached = run(None)
    cold, warm = VerdictCache(tmp_path), VerdictCache(tmp_path)
    assert run(cold) == uncached
    assert run(warm) == uncached
    assert cold.stats.misses > 0 and warm.stats.misses == 0
    assert warm.stats.hits > cold.stats.hits and warm.stats.hit_rate > 0.5
    if memory == "l1":
        assert json.loads(uncached)["fallbacks"]  # OOMs were among the replayed verdicts


def test_damaged_or_foreign_cache_entries_are_ignored_and_rewritten(mock_device, tmp_path):
    loaded, cap = _captured("siglip-tiny", (1, 3, 32, 32))

    def run(cache):
        mock_device.device.clear_program_cache()
        return json.dumps(
            run_document(
                run_compiled(
                    _fresh(cap),
                    loaded.inputs,
                    None,
                    mock_device,
                    RunOptions(memory="l1", values="none", cache=cache),
                    loaded.name,
                    None,
                    loaded.kwargs,
                )
            ),
            sort_keys=True,
        )

    uncached = run(None)
    assert run(VerdictCache(tmp_path)) == uncached
    files = sorted(tmp_path.rglob("*.json"))
    torn, foreign, lying = files[0], files[1], files[2]
    torn.write_text(torn.read_text()[:50])
    foreign.write_text(files[3].read_text())  # another call's entry under this address
    entry = json.loads(lying.read_text())  # right key, an outcome of the wrong form
    entry["outcome"] = {"error": {"type": "os.system", "message": "x"}, "state_after": ""}
    lying.write_text(json.dumps(entry))
    again = VerdictCache(tmp_path)
    assert run(again) == uncached
    assert again.stats.rejected == 3
    for path in (torn, foreign, lying):  # rewritten by the real call
        assert json.loads(path.read_text())["key"]["op"]
    assert run(VerdictCache(tmp_path)) == uncached


def test_workers_are_chosen_to_fit_memory():
    keys = ["a", "b", "c", "d"]
    measured = {"a": {"peak_rss": 3 * GIB}, "b": {"peak_rss": GIB}}
    assert choose_workers(None, keys, measured, available=64 * GIB)[0] >= 1
    workers, note = choose_workers(4, keys, measured, available=7 * GIB)
    assert workers == 2 and "not 4" in note and "3.0 GiB" in note  # 2 x 3 GiB fit in 7
    assert choose_workers(8, keys[:2], {}, available=64 * GIB) == (2, "")  # no more than entries
    workers, note = choose_workers(2, keys, {"a": {"peak_rss": "lots"}}, available=GIB)
    assert workers == 1 and "only 1.0 GiB" in note  # a malformed record counts as unmeasured


def test_unusable_cache_or_jobs_are_one_line_user_errors(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["sweep", "resnet50", "--cache", str(tmp_path / "file"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot use verdict cache" in capsys.readouterr().err
    assert main(["sweep", "resnet50", "-j", "0", "--out", str(tmp_path / "o")]) == 2
    assert "0 is not >= 1" in capsys.readouterr().err
