"""A run's documents (run.json, timing.json) and its terminal summary."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tabulate import tabulate

from fxport.durable import write_json, write_text
from fxport.report.html import PLOTS_DIR
from fxport.report.results import RunResult, run_document
from fxport.report.tables import fmt_output_pcc, fmt_outputs_pcc, fmt_remedy

# What is rendered from a run.json (report.md by `fxport run`, the rest by `fxport report`): stale
# once another run.json replaces it. Plots live in PLOTS_DIR.
RENDERINGS = ("report.md", "report.html", "nodes.csv", "oom_nodes.csv")


def write_run(result: RunResult, out_dir: Path, settings: dict | None = None,
              timing: dict | None = None) -> dict:
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
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / PLOTS_DIR, ignore_errors=True)
    write_text(out_dir / "timing.json", json.dumps(_rounded(timing), sort_keys=True) + "\n")
    write_json(out_dir / "run.json", doc)


def _rounded(value):
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def run_summary_text(doc: dict, top: int = 15) -> str:
    dev, cov = doc["device"], doc["coverage"]
    prov = doc["provenance"]
    lines = [f"STOPPED before the end: {doc['stopped']}; nodes not reached count as not run"] if doc.get("stopped") else []
    lines += [
        f"{doc['model']} on {dev['kind']} {dev['arch']}, activations in {doc['memory_config'].upper()}",
        f"  validation: {prov['validation']}; allocation: {prov['allocation']}; values: {prov['values']}",
        f"graph nodes {cov['total']}: lowered by the mapping table {cov['planned']} "
        f"({cov['planned_pct']:.1f}%), ran on device {cov['on_device']} ({cov['device_pct']:.1f}%), "
        f"fell back at run time {cov['fallback']}, host {cov['host']}",
        *_redrawn_lines(doc),
        *_control_lines(doc),
        *_pcc_lines(doc, top),
        *_accuracy_line(doc),
        f"transfers: {doc['transfers']['to_device']} to device, {doc['transfers']['to_host']} to host, "
        f"{doc['transfers']['layout_changes']} layout changes; {len(doc['partitions'])} device partitions",
        *_memory_lines(doc),
    ]
    calls, graph = doc.get("ttnn_calls"), doc.get("graph")
    if calls:
        lines.append(f"ttnn calls per inference: {calls['per_inference']} (compute {calls['compute']}, "
                     f"layout conversions {calls['layout']}, transfers {calls['transfer']}) for "
                     f"{calls['captured_nodes']} aten nodes as captured; weights moved and prepared "
                     f"once: {calls['weights_once']} calls ({graph['weights'] if graph else 'bfloat16'})")
    if graph:
        applied = [r for r in graph["applied"] if r["error"] or r["removed"] or r["fused"] or r["rewritten"]
                   or r["added"]]
        lines.append(f"graph passes: {', '.join(graph['passes']) or 'none'}; nodes {graph['captured_nodes']} "
                     f"as captured -> {graph['nodes']}")
        if applied:
            rows = [[r["name"], r["removed"], r["fused"], r["rewritten"], r["added"], r["conversions_saved"],
                     r["transfers_saved"], r["error"][:60]] for r in applied]
            lines += [tabulate(rows, headers=["pass", "removed", "fused", "rewritten", "added",
                                              "conversions saved", "transfers saved", "error"],
                               tablefmt="simple")]
    if doc.get("pieces"):
        lines += ["", *_pieces_lines(doc)]
    if isinstance(doc.get("localized"), list):
        lines += ["", *_localized_lines(doc["localized"], top)]
    if doc["unsupported"]:
        rows = [[u["target"], u["count"], "; ".join(u["reasons"])[:90]] for u in doc["unsupported"][:top]]
        lines += ["", "Left on the host by the plan:",
                  tabulate(rows, headers=["aten op", "nodes", "reason"], tablefmt="simple")]
    if doc["fallbacks"]:
        rows = [[f["node"], f["target"], f["kind"], f["error"][:90]] for f in doc["fallbacks"][:top]]
        more = len(doc["fallbacks"]) - top
        lines += ["", "Fell back at run time (device error, re-ran on the host):",
                  tabulate(rows, headers=["node", "aten op", "kind", "error"], tablefmt="simple")]
        if more > 0:
            lines.append(f"... {more} more in run.json")
    mem = doc["memory"]
    if mem and mem["oom_nodes"]:
        rows = [[o["node"], o["target"], (o.get("allocator") or o.get("buffer") or "-")[:40],
                 f"{o.get('peak') or o['per_bank']:,}",
                 "-" if o.get("allocator_peak") is None else f"{o['allocator_peak']:,}", f"{o['bank_size']:,}",
                 "OOM" if o["predicted"] else "fits", o["observed"], fmt_remedy(o)[:80]]
                for o in mem["oom_nodes"][:top]]
        agreement = mem["agreement"]
        lines += ["", f"Out of memory under {mem['config']} ({len(mem['oom_nodes'])} nodes; model vs "
                      f"device: {agreement['agree']} agree, {agreement['predicted_only']} predicted only, "
                      f"{agreement['observed_only']} observed only):",
                  tabulate(rows, headers=["node", "aten op", "failing buffer", "peak/bank (model)",
                                          "peak/bank (allocator)", "bank size", "model", "device", "remedy"],
                           tablefmt="simple")]
    if doc["partitions"]:
        parts = sorted(doc["partitions"], key=lambda p: -p["op_count"])
        rows = [[p["name"], p["op_count"], len(p["inputs"]), len(p["outputs"])] for p in parts[:top]]
        lines += ["", "Device partitions (largest first):",
                  tabulate(rows, headers=["partition", "ops", "inputs", "outputs"], tablefmt="simple")]
    return "\n".join(lines)


def _memory_lines(doc: dict) -> list[str]:
    """The memory model against the allocator, and (L1 or auto) the activations kept in L1."""
    lines = []
    agreement = (doc.get("memory") or {}).get("agreement")
    if agreement:
        judged = agreement["agree"] + agreement["predicted_only"] + agreement["observed_only"]
        lines.append(f"memory model vs allocator, node by node: {agreement['agree']} of {judged} agree"
                     + (f" ({100 * agreement['agree'] / judged:.1f}%)" if judged else "")
                     + f", {agreement['predicted_only']} predicted only, {agreement['observed_only']} observed only")
    share = doc.get("placement") or {}
    if doc["memory_config"] != "dram" and share.get("device_nodes"):
        plan = share.get("plan") or {}
        lines.append(f"activations in L1: {100 * (share['l1_byte_share'] or 0):.1f}% of their bytes, "
                     f"{100 * (share['l1_node_share'] or 0):.1f}% of device nodes ({share['l1_nodes']} of "
                     f"{share['device_nodes']})"
                     + (f"; placement took {plan['rounds']} rounds, {plan['demoted']} nodes kept out of L1 "
                        "to make room" if plan else "")
                     + (f"; {len(share['remedies_applied'])} remedies applied" if share.get("remedies_applied") else ""))
    return lines


def _localized_lines(entries: list, top: int) -> list[str]:
    if not entries:
        return ["Localised: no node's accumulated PCC drops below the threshold."]
    rows = [[e["node"], e["target"], e["label"], f"{e['pcc']:.6f}", f"{e['inputs_pcc']:.6f}",
             e["module"] or "<top>", e["source"]] for e in entries[:top]]
    return ["Where error enters (accumulated PCC vs the fp32 reference drops below the threshold "
            "while its inputs are above; 'rounding': right to bf16, near-constant output):",
            tabulate(rows, headers=["node", "aten op", "label", "PCC", "inputs PCC", "module", "source"],
                     tablefmt="simple")]


def _control_lines(doc: dict) -> list[str]:
    values = doc.get("control_values") or []
    if not values:
        return []
    differ = [c["path"] for c in values if not c["agreed"]]
    return [f"values Python decides on (bool, integer, 0-d outputs): {len(values)} computed on the host in "
            f"fp32 and handed back; the device's differed for {len(differ)}"
            + (f" ({', '.join(differ[:5])}{' ...' if len(differ) > 5 else ''})" if differ else "")]


def _redrawn_lines(doc: dict) -> list[str]:
    redrawn = doc.get("weights_redrawn") or []
    if not redrawn:
        return []
    return [f"WEIGHTS CHANGED: {len(redrawn)} all-zero weight matrices redrawn from N(0, 0.02) before the "
            f"run, so that outputs vary with the input: {', '.join(redrawn[:5])}"
            + (f" and {len(redrawn) - 5} more" if len(redrawn) > 5 else "")]


def _pieces_lines(doc: dict) -> list[str]:
    """A model run as several graphs: each piece, and the break that ended it."""
    capture = doc.get("capture") or {}
    rows = [[p["label"], p["nodes"], p["on_device"], p["calls"],
             "-" if not [x for x in p["pcc"] if x is not None] else f"{min(x for x in p['pcc'] if x is not None):.6f}",
             (p["break"] or {}).get("location", "") or "-", ((p["break"] or {}).get("message", "") or "")[:60]]
            for p in doc["pieces"]]
    return [f"Ran as {len(doc['pieces'])} graphs ({capture.get('breaks', 0)} graph breaks), the Python "
            "between them on the host (torch.export: "
            + next((p["message"][:100] for p in capture.get("problems", []) if p["stage"] == "export"), "failed")
            + "):",
            tabulate(rows, headers=["graph", "nodes", "on device", "calls", "min PCC", "ended by a break at",
                                    "reason"], tablefmt="simple")]


def _accuracy_line(doc: dict) -> list[str]:
    acc = doc.get("accuracy")
    if isinstance(acc, dict) and acc.get("data_dependent"):
        return [*_accuracy_line({**doc, "accuracy": {**acc, "data_dependent": []}}),
                "outputs of data-dependent size (not part of the verdict): " + "; ".join(acc["data_dependent"])]
    if not isinstance(acc, dict) or acc.get("verdict") == "not checked":
        return []
    if acc.get("verdict") == "fail":
        return [f"ACCURACY FAILED: end-to-end PCC below {acc['threshold']}: " + "; ".join(acc["failing"])
                + " (`fxport run --localize` finds where the error enters)"]
    return [f"accuracy: pass (every output PCC >= {acc['threshold']})"]


def _pcc_lines(doc: dict, top: int) -> list[str]:
    """End-to-end PCC: one line for a single output, a table per output tensor otherwise."""
    # A model run in pieces: its own outputs here; each piece's are in the pieces table and run.json
    outputs = [o for o in doc.get("outputs") or [] if "/" not in o["path"]] if doc.get("pieces") else doc.get("outputs") or []
    if not doc["output_pcc"] or len(outputs) <= 1:
        return ["end-to-end PCC vs fp32 torch: "
                + (fmt_outputs_pcc(doc) if doc["output_pcc"] else "not computed (no values)")]
    rows = [[o["path"], "x".join(map(str, o["shape"])), o["dtype"], fmt_output_pcc(o)] for o in outputs[:top]]
    if len(outputs) > top:
        rows.append([f"... {len(outputs) - top} more in run.json", "", "", ""])
    table = tabulate(rows, headers=["output", "shape", "dtype", "PCC"], tablefmt="simple")
    return ["end-to-end PCC vs fp32 torch, per output:", *table.splitlines()]
