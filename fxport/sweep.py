"""`fxport sweep`: the zoo (or a list of models) x resolutions, each entry run as `fxport run`.

Entries run in warm worker processes (fxport.fleet): `-j N` on this host, or `--cluster ray`. A
worker runs the same entry function either way, with its own device session, and returns the run
document; this driver writes it (atomically) and the sweep's documents. A model that fails, or an
op that brings a worker down, costs that entry only. Results already on disk are reused
(`--resume`) when their settings block (fxport.settings: model, full input shape, device, arch,
memory config, values, block size, passes, versions, mapping table) equals this sweep's, so an
interrupted sweep picks up where it stopped and a changed setting is never answered from an old
result. An unreadable result is redone, and said so. The sweep document (`sweep.json`) summarises
every entry, failed ones included, with their error; `timing.json` beside it holds what changes
from one run to the next (wall time, workers, per-entry seconds and peak memory, verdict cache
counts), so that sweep.json and run.json stay deterministic.

A broken environment (an entry ends with the environment code) stops the sweep: every later entry
would fail the same way. Ctrl-C stops it too; both write sweep.json with the entries done so far
and the rest marked "not run".
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fxport.capture.cache import CaptureCacheStats
from fxport.durable import output_dir, read_regular, subdir, write_json, write_text
from fxport.errors import EXIT_ENVIRONMENT, EnvironmentFault, FxportError
from fxport.fleet.local import run_local
from fxport.fleet.resources import choose_workers
from fxport.fleet.worker import EntryJob, EntryOutcome
from fxport.progress import enabled as progress_shown
from fxport.report.render import no_result_entry, read_run
from fxport.report.run_report import write_run_document
from fxport.report.schema import SWEEP_SCHEMA
from fxport.run_options import VERDICT_RUNS, RunOptions
from fxport.runtime.verdict_cache import CacheStats
from fxport.settings import differences

NOT_RUN = "not run"


@dataclass(frozen=True)
class SweepItem:
    model: str
    input_shape: tuple[int, ...]  # () : the model's own, or what `inputs` says
    inputs: tuple[str, ...] = ()  # `fxport run` input options (--input, --inputs, --model-arg)

    @property
    def key(self) -> str:
        shape = "x".join(map(str, self.input_shape[2:] or self.input_shape)) or "default"
        if self.inputs:  # entries with other inputs get their own directory
            shape += "-" + hashlib.sha1("\0".join(self.inputs).encode()).hexdigest()[:8]
        return f"{self.model}@{shape}"


def sweep_items(
    models: list[str] | None = None, shapes: list[tuple[int, ...]] | None = None, inputs: tuple[str, ...] = ()
) -> list[SweepItem]:
    """The zoo's sweep entries (models tagged "zoo", each at its sweep shapes), or the named
    models (zoo names or module.path:callable) at `shapes` (default: each zoo model's own sweep
    shapes), each run with the `fxport run` input options `inputs`."""
    import fxport_models as zoo

    if not models:
        items = [
            SweepItem(e.name, tuple(s), inputs) for e in zoo.entries() if "zoo" in e.tags for s in (shapes or e.sweep)
        ]
    else:
        unknown = [m for m in models if ":" not in m and m not in zoo.names()]
        if unknown:
            raise FxportError(f"unknown model(s) {', '.join(unknown)}; `fxport models` lists the zoo")
        own = lambda m: zoo.get(m).sweep if ":" not in m and not inputs else [()]
        items = [SweepItem(m, tuple(s), inputs) for m in models for s in (shapes or own(m))]
    keys = [i.key for i in items]
    for m in {i.model for i in items if ":" in i.model}:  # its entry's folder is named after it
        module, _, attr = m.partition(":")
        if not all(p.isidentifier() for p in module.split(".")) or not all(p.isidentifier() for p in attr.split(".")):
            raise FxportError(
                f"model {m!r}: expected module.path:callable with Python names only "
                "(an entry's folder is named after it)"
            )
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:  # two shapes that differ only in batch or channels would share one directory
        raise FxportError(
            f"sweep entries {', '.join(twice)} would share a directory: give shapes "
            "that differ in height or width, or sweep them into separate --out folders"
        )
    return items


def _failed(item: SweepItem, error: str, status: str = "failed") -> dict:
    return no_result_entry(item.key, item.model, list(item.input_shape), status, error)


def entry(item: SweepItem, doc: dict) -> dict:
    """The sweep's summary of one successful run document."""
    memory = doc.get("memory") or {}
    return {
        "key": item.key,
        "model": item.model,
        "input_shape": list(item.input_shape),
        "status": "ok",
        "error": "",
        "run": f"{item.key}/run.json",
        "coverage": doc["coverage"],
        "coverage_by_family": doc["coverage_by_family"],
        "coverage_by_module": doc["coverage_by_module"],
        "fallbacks": sum(f["repeat"] for f in doc["fallbacks"]),
        "oom_nodes": len(memory.get("oom_nodes", [])),
        "unsupported_ops": len(doc["unsupported"]),
        "output_pcc": doc["output_pcc"],
        "memory_agreement": memory_agreement(memory),
        "l1_share": l1_share(doc),
        "ttnn_calls": (doc.get("ttnn_calls") or {}).get("per_inference"),
        "accuracy": (doc.get("accuracy") or {}).get("verdict", "not checked"),
        "estimate": estimate_summary(doc.get("estimate")),
    }


def estimate_summary(est: dict | None) -> dict | None:
    """An entry's estimate in the sweep: latency, device time, throughput, bound, board."""
    if not isinstance(est, dict):
        return None
    return {
        k: est.get(k)
        for k in ("arch", "batch", "latency_ms", "device_ms", "host_ms", "transfer_ms", "throughput_per_s", "bound")
    }


def memory_agreement(memory: dict) -> dict | None:
    """Nodes where the memory model and the allocator agree, of those both judged."""
    a = memory.get("agreement") or {}
    if not isinstance(a.get("agree"), int):
        return None
    judged = a["agree"] + a.get("predicted_only", 0) + a.get("observed_only", 0)
    return {"agree": a["agree"], "judged": judged, "share": round(a["agree"] / judged, 4) if judged else None}


def l1_share(doc: dict) -> dict | None:
    """The share of the device nodes' activation bytes, and of the nodes, kept in L1."""
    p = doc.get("placement") or {}
    if "l1_byte_share" not in p:
        return None
    return {"bytes": p["l1_byte_share"], "nodes": p.get("l1_node_share")}


def blocking_matrix(runs: dict[str, dict]) -> dict[str, dict[str, int]]:
    """For every op, how many nodes of it stay off the device in each entry (run documents by
    entry key): declined by the plan or failed on the device at run time."""
    matrix: dict[str, dict[str, int]] = defaultdict(dict)
    for key, doc in runs.items():
        counts: dict[str, int] = defaultdict(int)
        for u in doc["unsupported"]:
            counts[u["target"]] += u["count"]
        for f in doc["fallbacks"]:
            counts[f["target"]] += f["repeat"]
        for target, n in counts.items():
            matrix[target][key] = n
    return {t: dict(sorted(row.items())) for t, row in sorted(matrix.items())}


def saved_result(path: Path, expected: dict) -> tuple[dict | None, str]:
    """(the saved run document if it can be reused, else None; why not, "" when there was
    nothing to reuse)."""
    if not path.exists():
        return None, ""
    try:
        doc = read_run(path)
    except FxportError as exc:
        return None, f"its saved result is unreadable ({exc})"
    if doc.get("stopped"):
        return None, "its saved run stopped before the end"
    changed = differences(doc.get("settings"), expected)
    if changed:
        return None, f"its saved result was computed with other settings ({', '.join(changed)})"
    return doc, ""


@dataclass
class SweepRun:
    """What `sweep` did besides the document: entries redone and why, and the sweep's volatile
    facts (timing.json: wall time, workers, per-entry seconds and memory, verdict cache counts)."""

    doc: dict
    redone: dict[str, str] = field(default_factory=dict)
    timing: dict = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [e["key"] for e in self.doc["entries"] if e["status"] != "ok"]


@dataclass(frozen=True)
class Fleet:
    """How entries run: `workers` warm processes on this host (None: from the cores and the
    memory), each for up to `per_worker` entries (1: a fresh process per entry), or on a Ray
    cluster (`cluster="ray"`, `address` None: a local one); `cache_dir` is the verdict cache
    (verdict runs only; None: none)."""

    workers: int | None = None
    per_worker: int = 16
    cluster: str = ""
    address: str | None = None
    cache_dir: str | None = None
    capture_cache_dir: str | None = None  # the capture cache (verdict runs only; None: none)


def sweep(items: list[SweepItem], out: Path, **options: Any) -> dict:
    """Run the entries and write sweep.json; returns the sweep document. The options are
    run_sweep's."""
    return run_sweep(items, out, **options).doc


def run_sweep(
    items: list[SweepItem],
    out: Path,
    device: str = "mock",
    arch: str | None = None,
    options: RunOptions = VERDICT_RUNS,
    resume: bool = True,
    timeout: float = 1800.0,
    device_timeout: float | None = None,
    fleet: Fleet = Fleet(),
) -> SweepRun:
    """Run the entries, each with `options` (its caches come from `fleet`), and write sweep.json."""
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    summaries: dict[str, dict] = {}
    runs: dict[str, dict] = {}
    redone: dict[str, str] = {}
    timing: dict[str, dict] = {}
    jobs = []
    for item in items:
        expected = options.settings(item.model, item.input_shape, device, arch, item.inputs)
        saved, why = saved_result(out / item.key / "run.json", expected) if resume else (None, "")
        if saved is not None:
            summaries[item.key], runs[item.key] = entry(item, saved), saved
            continue
        if why:
            redone[item.key] = why
            tqdm.write(f"fxport: redoing {item.key}: {why}", file=sys.stderr)
        jobs.append(
            EntryJob(
                item.key,
                item.model,
                tuple(item.input_shape),
                device,
                arch,
                options,
                timeout,
                device_timeout,
                fleet.cache_dir,
                str(out / item.key),
                inputs=item.inputs,
                capture_cache_dir=fleet.capture_cache_dir,
            )
        )
    by_key = {i.key: i for i in items}
    previous = _read_timing(out)
    progress = tqdm(
        total=len(items),
        initial=len(summaries),
        desc="sweep",
        unit="entry",
        file=sys.stderr,
        disable=not progress_shown(),
    )  # a terminal, not --quiet

    def done(o: EntryOutcome) -> None:
        item = by_key[o.key]
        if o.doc is not None:
            t = time.perf_counter()
            with output_dir(subdir(out, o.key), f"fxport sweep ({o.key})"):
                write_run_document(
                    o.doc,
                    out / o.key,
                    {
                        **o.seconds,
                        "verdict_cache": o.cache,
                        "capture_cache": o.capture_cache,
                        "peak_rss": o.peak_rss,
                        "worker": o.worker,
                    },
                )
            o.seconds["write"] = time.perf_counter() - t
        timing[o.key] = {
            "seconds": o.seconds,
            "peak_rss": o.peak_rss,
            "worker": o.worker,
            "verdict_cache": o.cache,
            "capture_cache": o.capture_cache,
        }
        if o.exit_code == EXIT_ENVIRONMENT:
            raise EnvironmentFault(f"{o.key}: {o.error}")
        if o.doc is not None and not o.stopped:
            summaries[o.key], runs[o.key] = entry(item, o.doc), o.doc
        else:
            summaries[o.key] = _failed(item, o.error or "no result")
        progress.set_postfix_str(o.key)
        progress.update()

    used = ""
    try:
        if jobs and fleet.cluster == "ray":
            try:
                from fxport.fleet.cluster import run_ray  # Ray is an optional extra
            except ImportError as exc:
                raise FxportError(f"--cluster ray needs Ray ({exc}): pip install 'fxport[ray]'") from None
            used = run_ray(jobs, fleet.address, fleet.per_worker, done, previous)
        elif jobs:
            workers, note = choose_workers(fleet.workers, [j.key for j in jobs], previous)
            if note:
                tqdm.write(f"fxport: note: {note}", file=sys.stderr)
            used = f"{workers} local workers"
            run_local(jobs, workers, fleet.per_worker, done)
    except (KeyboardInterrupt, EnvironmentFault) as exc:
        reason = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else "stopped: the environment is broken"
        entries = [summaries.get(i.key) or _failed(i, reason, NOT_RUN) for i in items]
        _write(out, entries, runs, device, arch, options)
        finished = sum(1 for i in items if i.key in summaries)
        exc.kept = (
            f"{out}/sweep.json lists the {finished} entries done and "
            f"{len(items) - finished} not run; the same command resumes"
        )
        raise
    finally:
        progress.close()
    entries = [summaries[i.key] for i in items]
    doc = _write(out, entries, runs, device, arch, options)
    return SweepRun(doc, redone, _write_timing(out, timing, previous, used, time.perf_counter() - start))


def _read_timing(out: Path) -> dict:
    """The per-entry facts a previous sweep left in timing.json (peak memory of each entry);
    untrusted: anything malformed is ignored."""
    try:
        doc = json.loads(read_regular(out / "timing.json"))
        entries = doc["entries"]
        return {k: v for k, v in entries.items() if isinstance(k, str) and isinstance(v, dict)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return {}


def _write_timing(out: Path, timing: dict, previous: dict, used: str, wall: float) -> dict:
    """timing.json of the sweep: what changes from one run of the same sweep to the next."""
    totals = CacheStats()
    captures = CaptureCacheStats()
    for t in timing.values():
        totals.add(t.get("verdict_cache") or {})
        captures.add(t.get("capture_cache") or {})
    doc = {
        "wall_seconds": round(wall, 3),
        "workers": used,
        "entries_run": len(timing),
        "verdict_cache": totals.to_dict(),
        "capture_cache": captures.to_dict(),
        "entries": {
            **previous,
            **{k: {**v, "seconds": {s: round(x, 3) for s, x in v["seconds"].items()}} for k, v in timing.items()},
        },
    }
    write_text(out / "timing.json", json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc


def _write(
    out: Path,
    entries: list[dict],
    runs: dict[str, dict],
    device: str,
    arch: str | None,
    options: RunOptions,
) -> dict:
    first = next(iter(runs.values()), None)
    doc = {
        "schema": SWEEP_SCHEMA,
        "device": first["device"] if first else {"kind": device, "arch": arch or ""},
        "memory_config": options.memory,
        "values": options.values,
        "passes": list(options.passes),
        "provenance": first["provenance"] if first else {},
        "entries": entries,
        "blocking_matrix": blocking_matrix(runs),
    }
    write_json(out / "sweep.json", doc)
    return doc
