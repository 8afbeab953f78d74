"""Renderings of a capture: the op inventory as JSON (source of truth), CSV and tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tabulate import tabulate

from fxport.capture import Capture, UniqueOp, op_counts, unique_ops
from fxport.durable import atomic_open, write_text


def inventory_document(cap: Capture) -> dict:
    """The deterministic JSON document of a capture (no timings: see timing.json)."""
    return {
        "model": cap.model,
        "inputs": [s.to_dict() for s in cap.inputs],
        "outputs": [s.to_dict() for s in cap.outputs],
        "capture": {
            "method": cap.method,
            "complete": cap.complete,
            "graphs": [g.label for g in cap.graphs],
            "problems": [p.to_dict() for p in cap.problems],
        },
        "summary": {
            "nodes": cap.node_count,
            "distinct_ops": len(op_counts(cap.records)),
            "op_counts": op_counts(cap.records),
        },
        "ops": [r.to_dict() for r in cap.records],
        "unique_ops": [_unique_dict(u) for u in unique_ops(cap.records)],
    }


def capture_seconds(cap: Capture) -> float:
    """The capture's time as timing.json records it; the terminal prints this same figure."""
    return round(cap.seconds, 3)


def write_inventory(cap: Capture, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = inventory_document(cap)
    paths = {
        "ops.json": json.dumps(doc, indent=1, sort_keys=True) + "\n",
        "timing.json": json.dumps({"capture_seconds": capture_seconds(cap)}, sort_keys=True) + "\n",
        "unique_ops.md": unique_ops_table(doc["unique_ops"], fmt="github") + "\n",
    }
    for name, text in paths.items():
        write_text(out_dir / name, text)
    _write_csv(out_dir / "ops.csv", [_record_row(r) for r in doc["ops"]])
    _write_csv(out_dir / "unique_ops.csv", [_unique_row(u) for u in doc["unique_ops"]])
    return [out_dir / n for n in (*paths, "ops.csv", "unique_ops.csv")]


def summary_text(doc: dict, seconds: float | None = None, top: int = 25) -> str:
    cap = doc["capture"]
    how = "whole, by torch.export" if cap["complete"] else f"in {len(cap['graphs'])} graph(s) by {cap['method']}"
    # The capture's own time, as timing.json records it (building the model and writing are not in it)
    took = f" in {seconds:.3f} s (timing.json capture_seconds)" if seconds is not None else ""
    head = (
        f"{doc['model']}: {doc['summary']['nodes']} aten nodes, {doc['summary']['distinct_ops']} "
        f"distinct ops, {len(doc['unique_ops'])} unique signatures; captured {how}{took}"
    )
    counts = sorted(doc["summary"]["op_counts"].items(), key=lambda kv: (-kv[1], kv[0]))
    rows = counts[:top]
    if len(counts) > top:
        rows.append((f"... {len(counts) - top} more ops", sum(c for _, c in counts[top:])))
    lines = [head, "inputs: " + _leaves(doc["inputs"])]
    if doc.get("outputs"):
        lines.append("outputs: " + _leaves(doc["outputs"]))
    lines.append(tabulate(rows, headers=["aten op", "nodes"], tablefmt="simple"))
    for p in cap["problems"]:
        lines.append(f"{p['stage']}: {p['message']}" + (f" (at {p['location']})" if p["location"] else ""))
    return "\n".join(lines)


def unique_ops_table(unique: list[dict], fmt: str = "simple") -> str:
    rows = [
        [u["op"], u["overload"], _shapes(u["inputs"]), u["args"], u["count"], _modules(u["modules"])] for u in unique
    ]
    return tabulate(rows, headers=["op", "overload", "input shapes", "args", "count", "modules"], tablefmt=fmt)


def _unique_dict(u: UniqueOp) -> dict:
    return {
        "target": u.target,
        "op": u.op,
        "overload": u.overload,
        "inputs": [s.to_dict() for s in u.inputs],
        "outputs": [s.to_dict() for s in u.outputs],
        "args": u.args,
        "count": u.count,
        "modules": list(u.modules),
    }


def _leaves(leaves: list[dict], limit: int = 8) -> str:
    shown = [f"{leaf.get('path', '')} {leaf['shape']}:{leaf['dtype']}".strip() for leaf in leaves[:limit]]
    return ", ".join(shown) + (f" (+{len(leaves) - limit} more)" if len(leaves) > limit else "")


def _shapes(specs: list[dict]) -> str:
    return " ".join(f"{s['shape']}:{s['dtype']}" for s in specs)


def _modules(modules: list[str], limit: int = 3) -> str:
    shown = [m or "<top>" for m in modules[:limit]]
    return ", ".join(shown) + (f" (+{len(modules) - limit})" if len(modules) > limit else "")


def _record_row(r: dict) -> dict:
    return {
        "index": r["index"],
        "graph": r["graph"],
        "node": r["node"],
        "op": r["op"],
        "overload": r["overload"],
        "input_shapes": _shapes(r["inputs"]),
        "output_shapes": _shapes(r["outputs"]),
        "args": r["args"],
        "module": r["module"],
        "module_type": r["module_type"],
        "source": r["source"],
        "repeat": r["repeat"],
    }


def _unique_row(u: dict) -> dict:
    return {
        "op": u["op"],
        "overload": u["overload"],
        "input_shapes": _shapes(u["inputs"]),
        "output_shapes": _shapes(u["outputs"]),
        "args": u["args"],
        "count": u["count"],
        "modules": ";".join(u["modules"]),
    }


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_open(path, newline="") as f:
        if not rows:
            return
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
