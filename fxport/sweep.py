"""`fxport sweep`: the zoo (or a list of models) x resolutions through `fxport run`.

Each model runs in its own process: a model that fails, or an op that brings the device down,
costs that entry only, and peak memory is per model. Results already on disk are reused
(`--resume`), so an interrupted sweep picks up where it stopped. The sweep document
(`sweep.json`) summarises every entry, failed ones included, with their error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from fxport.errors import FxportError
from fxport.report.schema import SWEEP_SCHEMA


@dataclass(frozen=True)
class SweepItem:
    model: str
    input_shape: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"{self.model}@{'x'.join(map(str, self.input_shape[2:] or self.input_shape))}"


def sweep_items(models: list[str] | None = None, shapes: list[tuple[int, ...]] | None = None) -> list[SweepItem]:
    """The zoo's sweep entries (models tagged "zoo", each at its sweep shapes), or the named
    models at `shapes` (default: each model's own sweep shapes)."""
    import fxport_models as zoo

    if models:
        unknown = [m for m in models if m not in zoo.names()]
        if unknown:
            raise FxportError(f"unknown model(s) {', '.join(unknown)}; `fxport models` lists the zoo")
        entries = [zoo.get(m) for m in models]
    else:
        entries = [e for e in zoo.entries() if "zoo" in e.tags]
    return [SweepItem(e.name, tuple(s)) for e in entries for s in (shapes or e.sweep)]


def run_item(item: SweepItem, out: Path, device: str, arch: str | None, memory: str, values: str,
             timeout: float) -> tuple[dict, dict | None]:
    """Run one entry in a fresh process; its run.json lands in out/<key>/.
    Returns (the sweep entry, the run document or None when the run failed)."""
    run_dir = out / item.key
    cmd = [sys.executable, "-m", "fxport.cli", "run", item.model,
           "--input-shape", ",".join(map(str, item.input_shape)), "--device", device,
           "--memory-config", memory, "--values", values, "--out", str(run_dir)]
    if arch:
        cmd += ["--arch", arch]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return _failed(item, f"timed out after {timeout:.0f} s"), None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"]
        error = next((ln for ln in reversed(lines) if ln.startswith("fxport: error:")), lines[-1])
        return _failed(item, error.removeprefix("fxport: error: ")
                       + ("" if proc.returncode > 0 else f" (killed by signal {-proc.returncode})")), None
    doc = load_run(out / item.key / "run.json")
    return entry(item, doc), doc


def load_run(path: Path) -> dict:
    return json.loads(path.read_text())


def _failed(item: SweepItem, error: str) -> dict:
    return {"key": item.key, "model": item.model, "input_shape": list(item.input_shape),
            "status": "failed", "error": error, "run": None, "coverage": None,
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


def sweep(items: list[SweepItem], out: Path, device: str = "mock", arch: str | None = None,
          memory: str = "dram", values: str = "none", resume: bool = True,
          timeout: float = 1800.0) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    entries, runs = [], {}
    progress = tqdm(items, desc="sweep", unit="model", file=sys.stderr)
    for item in progress:
        progress.set_postfix_str(item.key)
        done = out / item.key / "run.json"
        saved = load_run(done) if resume and done.exists() else None
        if saved is not None and _matches(saved, memory, values):
            summary, run = entry(item, saved), saved
        else:
            summary, run = run_item(item, out, device, arch, memory, values, timeout)
        entries.append(summary)
        if run is not None:
            runs[item.key] = run
    first = next(iter(runs.values()), None)
    doc = {
        "schema": SWEEP_SCHEMA,
        "device": first["device"] if first else {"kind": device, "arch": arch or ""},
        "memory_config": memory, "values": values,
        "provenance": first["provenance"] if first else {},
        "entries": entries,
        "blocking_matrix": blocking_matrix(runs),
    }
    (out / "sweep.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return doc


def _matches(doc: dict, memory: str, values: str) -> bool:
    """A saved result is reusable only if it was produced with the same settings."""
    return doc.get("memory_config") == memory and doc.get("values") == values
