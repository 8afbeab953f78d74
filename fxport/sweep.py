"""`fxport sweep`: the zoo (or a list of models) x resolutions through `fxport run`.

Each model runs in its own process: a model that fails, or an op that brings the device down,
costs that entry only, and peak memory is per model. Results already on disk are reused
(`--resume`) when their settings block (fxport.settings: model, full input shape, device, arch,
memory config, values, block size, passes, versions, mapping table) equals this sweep's, so an
interrupted sweep picks up where it stopped and a changed setting is never answered from an old
result. An unreadable result is redone, and said so. The sweep document (`sweep.json`) summarises
every entry, failed ones included, with their error.

A broken environment (a child exits with the environment code) stops the sweep: every later entry
would fail the same way. Ctrl-C stops it too; both write sweep.json with the entries done so far
and the rest marked "not run".
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from fxport.durable import write_json
from fxport.errors import EXIT_ENVIRONMENT, EnvironmentFault, FxportError
from fxport.report.render import read_run
from fxport.report.schema import SWEEP_SCHEMA
from fxport.settings import differences, run_settings

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


def sweep_items(models: list[str] | None = None, shapes: list[tuple[int, ...]] | None = None,
                inputs: tuple[str, ...] = ()) -> list[SweepItem]:
    """The zoo's sweep entries (models tagged "zoo", each at its sweep shapes), or the named
    models (zoo names or module.path:callable) at `shapes` (default: each zoo model's own sweep
    shapes), each run with the `fxport run` input options `inputs`."""
    import fxport_models as zoo

    if not models:
        items = [SweepItem(e.name, tuple(s), inputs) for e in zoo.entries() if "zoo" in e.tags
                 for s in (shapes or e.sweep)]
    else:
        unknown = [m for m in models if ":" not in m and m not in zoo.names()]
        if unknown:
            raise FxportError(f"unknown model(s) {', '.join(unknown)}; `fxport models` lists the zoo")
        own = lambda m: zoo.get(m).sweep if ":" not in m and not inputs else [()]  # noqa: E731
        items = [SweepItem(m, tuple(s), inputs) for m in models for s in (shapes or own(m))]
    keys = [i.key for i in items]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:  # two shapes that differ only in batch or channels would share one directory
        raise FxportError(f"sweep entries {', '.join(twice)} would share a directory: give shapes "
                          "that differ in height or width, or sweep them into separate --out folders")
    return items


def run_item(item: SweepItem, out: Path, device: str, arch: str | None, memory: str, values: str,
             timeout: float, device_timeout: float | None = None) -> tuple[dict, dict | None]:
    """Run one entry in a fresh process; its run.json lands in out/<key>/.
    Returns (the sweep entry, the run document or None when the run failed). A child that
    reports a broken environment raises EnvironmentFault with its line."""
    run_dir = out / item.key
    cmd = [sys.executable, "-m", "fxport.cli", "run", item.model, *item.inputs, "--device", device,
           "--memory-config", memory, "--values", values, "--out", str(run_dir)]
    if item.input_shape:
        cmd += ["--input-shape", ",".join(map(str, item.input_shape))]
    if arch:
        cmd += ["--arch", arch]
    if device_timeout:
        cmd += ["--device-timeout", f"{device_timeout:g}"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return _failed(item, f"timed out after {timeout:g} s"), None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
        error = next((ln for ln in reversed(lines) if ln.startswith("fxport: error:")), lines[-1])
        error = error.removeprefix("fxport: error: ")
        if proc.returncode == EXIT_ENVIRONMENT:
            raise EnvironmentFault(f"{item.key}: {error}")
        return _failed(item, error + ("" if proc.returncode > 0 else
                                      f" (killed by signal {-proc.returncode})")), None
    try:
        doc = read_run(run_dir / "run.json")
    except FxportError as exc:
        return _failed(item, f"its run.json cannot be read after the run: {exc}"), None
    return entry(item, doc), doc


def _failed(item: SweepItem, error: str, status: str = "failed") -> dict:
    return {"key": item.key, "model": item.model, "input_shape": list(item.input_shape),
            "status": status, "error": error, "run": None, "coverage": None,
            "coverage_by_family": None, "coverage_by_module": None, "fallbacks": 0,
            "oom_nodes": 0, "unsupported_ops": 0, "output_pcc": []}


def entry(item: SweepItem, doc: dict) -> dict:
    """The sweep's summary of one successful run document."""
    memory = doc.get("memory") or {}
    return {"key": item.key, "model": item.model, "input_shape": list(item.input_shape),
            "status": "ok", "error": "", "run": f"{item.key}/run.json",
            "coverage": doc["coverage"], "coverage_by_family": doc["coverage_by_family"],
            "coverage_by_module": doc["coverage_by_module"],
            "fallbacks": sum(f["repeat"] for f in doc["fallbacks"]),
            "oom_nodes": len(memory.get("oom_nodes", [])),
            "unsupported_ops": len(doc["unsupported"]), "output_pcc": doc["output_pcc"]}


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
    """What `sweep` did besides the document: entries redone and why (for the terminal)."""
    doc: dict
    redone: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [e["key"] for e in self.doc["entries"] if e["status"] != "ok"]


def sweep(items: list[SweepItem], out: Path, device: str = "mock", arch: str | None = None,
          memory: str = "dram", values: str = "none", resume: bool = True,
          timeout: float = 1800.0, device_timeout: float | None = None) -> dict:
    """Run the entries and write sweep.json; returns the sweep document."""
    return run_sweep(items, out, device, arch, memory, values, resume, timeout, device_timeout).doc


def run_sweep(items: list[SweepItem], out: Path, device: str = "mock", arch: str | None = None,
              memory: str = "dram", values: str = "none", resume: bool = True,
              timeout: float = 1800.0, device_timeout: float | None = None) -> SweepRun:
    out.mkdir(parents=True, exist_ok=True)
    entries, runs, redone = [], {}, {}
    progress = tqdm(items, desc="sweep", unit="model", file=sys.stderr)
    try:
        for item in progress:
            progress.set_postfix_str(item.key)
            expected = run_settings(item.model, item.input_shape, device, arch, memory, values, inputs=item.inputs)
            saved, why = saved_result(out / item.key / "run.json", expected) if resume else (None, "")
            if saved is not None:
                summary, run = entry(item, saved), saved
            else:
                if why:
                    redone[item.key] = why
                    tqdm.write(f"fxport: redoing {item.key}: {why}", file=sys.stderr)
                summary, run = run_item(item, out, device, arch, memory, values, timeout, device_timeout)
            entries.append(summary)
            if run is not None:
                runs[item.key] = run
    except (KeyboardInterrupt, EnvironmentFault) as exc:
        reason = "interrupted (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else "stopped: the environment is broken"
        done = len(entries)
        entries += [_failed(i, reason, NOT_RUN) for i in items[done:]]
        _write(out, entries, runs, device, arch, memory, values)
        exc.kept = (f"{out}/sweep.json lists the {done} entries done and {len(items) - done} not run; "
                    "the same command resumes")
        raise
    finally:
        progress.close()
    return SweepRun(_write(out, entries, runs, device, arch, memory, values), redone)


def _write(out: Path, entries: list[dict], runs: dict[str, dict], device: str, arch: str | None,
           memory: str, values: str) -> dict:
    first = next(iter(runs.values()), None)
    doc = {
        "schema": SWEEP_SCHEMA,
        "device": first["device"] if first else {"kind": device, "arch": arch or ""},
        "memory_config": memory, "values": values,
        "provenance": first["provenance"] if first else {},
        "entries": entries,
        "blocking_matrix": blocking_matrix(runs),
    }
    write_json(out / "sweep.json", doc)
    return doc
