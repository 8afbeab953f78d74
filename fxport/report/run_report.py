"""A run's documents (run.json, timing.json) and its terminal summary."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from fxport.durable import clear_folder, remove_file, write_json, write_text
from fxport.report.html import PLOTS_DIR
from fxport.report.results import RunResult, run_document
from fxport.report.tables import fmt_dispatch_source, fmt_ms, fmt_output_pcc, fmt_outputs_pcc, fmt_remedy, fmt_speedup
from fxport.report.terminal import TERMINAL_WIDTH, terminal_table

# What is rendered from a run.json (report.md by `fxport run`, the rest by `fxport report`): stale
# once another run.json replaces it. Plots live in PLOTS_DIR.
RENDERINGS = ("report.md", "report.html", "nodes.csv", "oom_nodes.csv")


def write_run(result: RunResult, out_dir: Path, settings: dict | None = None, timing: dict | None = None) -> dict:
    """Write run.json (with `settings`, the block that keys resume: fxport.settings) and
    timing.json, each atomically, run.json last; renderings of a previous run are removed."""
    doc = run_document(result)
    if settings is not None:
        doc["settings"] = settings
    write_run_document(doc, out_dir, {**result.seconds, **(timing or {})})
    return doc


def write_run_document(doc: dict, out_dir: Path, timing: dict) -> None:
    """Write a run document made elsewhere (a sweep's worker) and its timing.json: the volatile
    facts of the run (seconds per stage, verdict cache counts, peak memory), kept out of run.json
    so that it stays deterministic."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in RENDERINGS:  # of the run.json this one replaces
        remove_file(out_dir / name)
    clear_folder(out_dir / PLOTS_DIR, "*.png")
    write_text(out_dir / "timing.json", json.dumps(_rounded(timing), sort_keys=True) + "\n")
    write_json(out_dir / "run.json", doc)


def _rounded(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def run_summary_text(doc: dict, top: int = 15, out: Path | str | None = None) -> str:
    """The terminal summary of a run document: every line fits TERMINAL_WIDTH columns, every
    table that shows the first `top` rows says how many it left out and where they are (`out`:
    the run's directory). Each count is labelled with what it counts, once."""
    dev, cov = doc["device"], doc["coverage"]
    prov = doc["provenance"]
    where = f"{out}/run.json" if out is not None else "run.json"
    distinct = len(doc.get("nodes") or [])
    repeats = (
        ""
        if not distinct or distinct == cov["total"]
        else (
            f" (counting repeated calls: {distinct} distinct nodes in the graph run, nodes of a folded "
            "capture counted once per call)"
        )
    )
    tr = doc["transfers"]
    lines = (
        [f"STOPPED before the end: {doc['stopped']}; nodes not reached count as not run"] if doc.get("stopped") else []
    )
    lines += [
        f"{doc['model']} on {dev['kind']} {dev['arch']}, activations in {doc['memory_config'].upper()}",
        f"  validation: {prov['validation']}; allocation: {prov['allocation']}; values: {prov['values']}",
        f"aten nodes {cov['total']}{repeats}: lowered by the mapping table {cov['planned']} "
        f"({cov['planned_pct']:.1f}%), ran on device {cov['on_device']} ({cov['device_pct']:.1f}%), "
        f"fell back at run time {cov['fallback']}, host {cov['host']}",
        *_pcc_lines(doc, top, where),
        *_accuracy_line(doc),
        f"activation transfers per inference: {tr['to_device']} host -> device, {tr['to_host']} device -> host "
        f"({tr['layout_changes']} layout changes); constants uploaded once: {tr.get('constants', 0)}",
        *_memory_lines(doc, distinct != cov["total"]),
    ]
    calls, graph = doc.get("ttnn_calls"), doc.get("graph")
    if calls:
        lines.append(
            f"ttnn calls per inference: {calls['per_inference']} (compute {calls['compute']}, "
            f"layout conversions {calls['layout']}, transfer calls {calls['transfer']}) for "
            f"{calls['captured_nodes']} aten nodes as captured; weights moved and prepared "
            f"once: {calls['weights_once']} calls ({graph['weights'] if graph else 'bfloat16'})"
        )
    if graph:
        applied = [
            r for r in graph["applied"] if r["error"] or r["removed"] or r["fused"] or r["rewritten"] or r["added"]
        ]
        lines.append(
            f"graph passes: {', '.join(graph['passes']) or 'none'}; aten nodes {graph['captured_nodes']} "
            f"as captured -> {graph['nodes']} after the passes"
        )
        if applied:
            rows = [
                [
                    r["name"],
                    r["removed"],
                    r["fused"],
                    r["rewritten"],
                    r["added"],
                    r["conversions_saved"],
                    r["transfers_saved"],
                    r["error"],
                ]
                for r in applied
            ]
            lines += [
                terminal_table(
                    ["pass", "removed", "fused", "rewritten", "added", "conversions saved", "transfers saved", "error"],
                    rows,
                )
            ]
    lines = [wrapped for line in lines for wrapped in _fit(line)]
    if isinstance(doc.get("localized"), list):
        lines += ["", *_localized_lines(doc["localized"], top, where)]
    lines += [wrapped for line in _estimate_lines(doc, top, where) for wrapped in _fit(line)]
    if doc["unsupported"]:
        rows = [
            [
                u["target"],
                u["count"],
                fmt_ms(u.get("cost_ms")),
                fmt_speedup(u.get("speedup_if_lowered")),
                "; ".join(u["reasons"]),
            ]
            for u in doc["unsupported"][:top]
        ]
        lines += [
            "",
            "Left on the host by the plan (costliest first: host time + the transfers it forces):",
            terminal_table(
                ["aten op", "nodes", "cost ms", "speedup if lowered", "reason"],
                rows,
                len(doc["unsupported"]),
                where,
                what="ops",
            ),
        ]
    if doc["fallbacks"]:
        rows = [
            [
                f["node"],
                f["target"],
                f["kind"],
                fmt_ms(f.get("cost_ms")),
                fmt_speedup(f.get("speedup_if_lowered")),
                f["error"],
            ]
            for f in doc["fallbacks"][:top]
        ]
        lines += [
            "",
            "Fell back at run time (device error, re-ran on the host; costliest first):",
            terminal_table(
                ["node", "aten op", "kind", "cost ms", "speedup if lowered", "error"],
                rows,
                len(doc["fallbacks"]),
                where,
                what="fallbacks",
            ),
        ]
    mem = doc["memory"]
    if mem and mem["oom_nodes"]:
        rows = [
            [
                o["node"],
                o["target"],
                f"{o.get('peak') or o['per_bank']:,}",
                "-" if o.get("allocator_peak") is None else f"{o['allocator_peak']:,}",
                f"{o['bank_size']:,}",
                "OOM" if o["predicted"] else "fits",
                o["observed"],
                fmt_remedy(o),
            ]
            for o in mem["oom_nodes"][:top]
        ]
        agreement = mem["agreement"]
        lines += [
            "",
            *_fit(
                f"Out of memory under {mem['config']} ({len(mem['oom_nodes'])} nodes; model vs "
                f"device: {agreement['agree']} agree, {agreement['predicted_only']} predicted only, "
                f"{agreement['observed_only']} observed only; the failing buffers in "
                "report.md):"
            ),
            terminal_table(
                [
                    "node",
                    "aten op",
                    "peak/bank (model)",
                    "peak/bank (allocator)",
                    "bank size",
                    "model",
                    "device",
                    "remedy",
                ],
                rows,
                len(mem["oom_nodes"]),
                f"{where} and oom_nodes.csv (`fxport report`)",
                what="OOM nodes",
            ),
        ]
    if doc["partitions"]:
        parts = sorted(doc["partitions"], key=lambda p: -p["op_count"])
        rows = [[p["name"], p["op_count"], len(p["inputs"]), len(p["outputs"])] for p in parts[:top]]
        lines += [
            "",
            f"Device partitions: {len(parts)} (largest first):",
            terminal_table(["partition", "ops", "inputs", "outputs"], rows, len(parts), where, what="partitions"),
        ]
    return "\n".join(lines)


def _fit(line: str) -> list[str]:
    """A long line of prose wrapped at TERMINAL_WIDTH, its continuation indented (a table's
    lines already fit)."""
    if len(line) <= TERMINAL_WIDTH or "\n" in line:
        return [line]
    return textwrap.wrap(
        line, TERMINAL_WIDTH, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False
    ) or [line]


def _estimate_lines(doc: dict, top: int, where: str) -> list[str]:
    """The cost model's time: latency, its split, what bounds it, host islands by cost."""
    est = doc.get("estimate")
    if not isinstance(est, dict):
        return []
    lines = [
        "",
        f"estimated time on {est['arch']} (predicted by the cost model; {est['assumptions']['latency']}): "
        f"{est['latency_ms']:.3f} ms per inference at batch {est['batch']}, "
        f"{est['throughput_per_s']:,.1f}/s; device {est['device_ms']:.3f} ms "
        f"(compute {est['device_split_ms']['compute']:.3f}, DRAM {est['device_split_ms']['dram']:.3f}, "
        f"dispatch {est['device_split_ms']['dispatch']:.3f}), host {est['host_ms']:.3f} ms, "
        f"transfers {est['transfer_ms']:.3f} ms ({est['transfers']}); bound: {est['bound']}",
        f"host dispatch of the device ops ({fmt_dispatch_source(est)}): {est['dispatch_ms']:.1f} ms"
        + (
            f" > device time: host-bound without Metal Trace, which would save {est['metal_trace_saves_ms']:.1f} ms"
            if est["host_bound"]
            else ": below device time (not host-bound)"
        ),
    ]
    islands = est.get("host_islands") or []
    if islands:
        rows = [
            [
                i["first"],
                i["nodes"],
                ", ".join(i["modules"])[:50],
                fmt_ms(i["cost_ms"]),
                fmt_ms(i["transfer_ms"]),
                fmt_speedup(i["speedup_if_lowered"]),
            ]
            for i in islands[:top]
        ]
        lines += [
            "Host islands (connected host nodes), costliest first:",
            terminal_table(
                ["first node", "nodes", "modules", "cost ms", "of which transfers ms", "speedup if lowered"],
                rows,
                len(islands),
                where,
                what="host islands",
            ),
        ]
    return lines


def _memory_lines(doc: dict, repeated: bool = False) -> list[str]:
    """The memory model against the allocator, and (L1 or auto) the activations kept in L1."""
    lines = []
    agreement = (doc.get("memory") or {}).get("agreement")
    if agreement:
        judged = agreement["agree"] + agreement["predicted_only"] + agreement["observed_only"]
        lines.append(
            f"memory model vs allocator, node by node"
            + (" (distinct nodes, each judged once)" if repeated else "")
            + f": {agreement['agree']} of {judged} agree"
            + (f" ({100 * agreement['agree'] / judged:.1f}%)" if judged else "")
            + f", {agreement['predicted_only']} predicted only, {agreement['observed_only']} observed only"
        )
    share = doc.get("placement") or {}
    if doc["memory_config"] != "dram" and share.get("device_nodes"):
        plan = share.get("plan") or {}
        lines.append(
            f"activations in L1: {100 * (share['l1_byte_share'] or 0):.1f}% of their bytes, "
            f"{100 * (share['l1_node_share'] or 0):.1f}% of device nodes ({share['l1_nodes']} of "
            f"{share['device_nodes']})"
            + (
                f"; placement took {plan['rounds']} rounds, {plan['demoted']} nodes kept out of L1 to make room"
                if plan
                else ""
            )
            + (f"; {len(share['remedies_applied'])} remedies applied" if share.get("remedies_applied") else "")
        )
    return lines


def _localized_lines(entries: list, top: int, where: str = "run.json") -> list[str]:
    if not entries:
        return ["Localised: no node's accumulated PCC drops below the threshold."]
    rows = [
        [
            e["node"],
            e["target"],
            e["label"],
            f"{e['pcc']:.6f}",
            f"{e['inputs_pcc']:.6f}",
            e["module"] or "<top>",
            e["source"],
        ]
        for e in entries[:top]
    ]
    return [
        *_fit(
            "Where error enters (accumulated PCC vs the fp32 reference drops below the threshold "
            "while its inputs are above; 'rounding': right to bf16, near-constant output):"
        ),
        terminal_table(
            ["node", "aten op", "label", "PCC", "inputs PCC", "module", "source"],
            rows,
            len(entries),
            where,
            what="nodes",
        ),
    ]


def _accuracy_line(doc: dict) -> list[str]:
    acc = doc.get("accuracy")
    if not isinstance(acc, dict) or acc.get("verdict") == "not checked":
        return []
    if acc.get("verdict") == "fail":
        return [
            f"ACCURACY FAILED: end-to-end PCC below {acc['threshold']}: "
            + "; ".join(acc["failing"])
            + " (`fxport run --localize` finds where the error enters)"
        ]
    return [f"accuracy: pass (every output PCC >= {acc['threshold']})"]


def _pcc_lines(doc: dict, top: int, where: str = "run.json") -> list[str]:
    """End-to-end PCC: one line for a single output, a table per output tensor otherwise."""
    outputs = doc.get("outputs") or []
    if not doc["output_pcc"] or len(outputs) <= 1:
        return [
            "end-to-end PCC vs fp32 torch: "
            + (fmt_outputs_pcc(doc) if doc["output_pcc"] else "not computed (no values)")
        ]
    rows = [[o["path"], "x".join(map(str, o["shape"])), o["dtype"], fmt_output_pcc(o)] for o in outputs[:top]]
    table = terminal_table(["output", "shape", "dtype", "PCC"], rows, len(outputs), where, what="outputs")
    return ["end-to-end PCC vs fp32 torch, per output:", *table.splitlines()]
