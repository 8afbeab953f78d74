"""Markdown renderings of a run document (report.md) and of a sweep document (index.md).

Formatting only: every number comes from the documents (fxport/report/results.py, fxport/sweep.py)
or from fxport/report/compare.py. Failures are listed, never left out.
"""

from __future__ import annotations

from tabulate import tabulate

from fxport.report import tables as t


def _cell(v) -> str:
    # GitHub Markdown: a pipe ends a cell, a newline ends the row, <...> would be read as HTML.
    return str(v).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def table(rows: t.Rows, raw_first: bool = False) -> str:
    """A GitHub table; `raw_first` leaves the first column unescaped (it holds links)."""
    headers, body = rows
    body = [[c if raw_first and i == 0 else _cell(c) for i, c in enumerate(r)] for r in body]
    return tabulate(body, headers=[_cell(h) for h in headers], tablefmt="github", disable_numparse=True)


def _more(shown: int, total_rows: list, where: str) -> list[str]:
    return [f"\n_{len(total_rows) - shown} more in {where}._"] if len(total_rows) > shown else []


def _device(dev: dict) -> str:
    text = f"{dev['kind']} {dev['arch']}"
    if "l1_bank_count" in dev:
        text += (f" (L1: {dev['l1_bank_count']} banks of {dev['l1_bank_size']:,} B; "
                 f"DRAM: {dev['dram_bank_count']} banks of {dev['dram_bank_size']:,} B)")
    return text


def _header_lines(run: dict) -> list[str]:
    cap = run["capture"]
    problems = "; ".join(f"{p.get('stage', '')}: {p.get('message', '')}" for p in cap.get("problems", []))
    return [
        f"- **Inputs:** {_cell(t.fmt_inputs(run))}",
        f"- **Device:** {_device(run['device'])}",
        f"- **Activations in:** {run['memory_config'].upper()}",
        f"- **Values:** {run['values']}",
        f"- **Capture:** {cap.get('method', '?')}, {'complete' if cap.get('complete') else 'INCOMPLETE'}"
        + (f" (problems: {_cell(problems)})" if problems else ""),
        f"- **End-to-end PCC vs fp32 torch:** {t.fmt_run_pcc(run)}",
    ]


def _provenance(prov: dict) -> list[str]:
    return ["## What is real, predicted and emulated", "", table(t.provenance_rows(prov)), ""]


def _fallbacks(run: dict) -> list[str]:
    out = ["## Runtime fallbacks", ""]
    if not run["nodes"]:
        return out + ["The graph did not run on a device: no node results.", ""]
    if not run["fallbacks"]:
        return out + ["None: every node the plan lowered ran on the device.", ""]
    rows = t.fallback_rows(run)
    return out + [
        "Nodes the plan lowered but the device rejected at run time; each re-ran on the host and the "
        "run went on. By error kind and op:", "", table(t.fallback_kind_rows(run)), "",
        "<details><summary>Every fallback node</summary>", "", table(t.limited(rows, t.NODE_LIMIT)),
        *_more(t.NODE_LIMIT, rows[1], "run.json"), "", "</details>", ""]


def _memory(run: dict) -> list[str]:
    out = ["## Out of memory", ""]
    mem = run["memory"]
    if mem is None:
        return out + ["No memory analysis in this run.", ""]
    agreement = mem["agreement"]
    out += [f"Every node judged under the **{mem['config']}** config on {mem['device']}: the memory model's "
            "prediction (tile and bank arithmetic) next to the allocator's verdict on the device.", "",
            table((["agree", "predicted only", "observed only", "no device verdict"],
                   [[agreement["agree"], agreement["predicted_only"], agreement["observed_only"],
                     agreement["not_run"]]])), ""]
    if not mem["oom_nodes"]:
        return out + ["No node is predicted or observed out of memory.", ""]
    return out + ["Nodes out of memory (predicted or observed), largest first:", "", table(t.oom_rows(run)), "",
                  "Their tensors and totals:", "", table(t.oom_shape_rows(run)), ""]


def _partitions(run: dict) -> list[str]:
    tr = run["transfers"]
    out = ["## Device partitions (dry run)", "",
           f"Device partitions: {len(run['partitions'])}; transfers: {tr['to_device']} to the device, "
           f"{tr['to_host']} to the host, {tr['layout_changes']} layout changes.", ""]
    if run["partitions"]:
        out += [table(t.partition_rows(run)), ""]
    rows = t.host_node_rows(run)
    if rows[1]:
        out += ["Nodes the plan left on the host, with their location:", "", table(t.limited(rows, t.NODE_LIMIT)),
                *_more(t.NODE_LIMIT, rows[1], "nodes.csv"), ""]
    return out


def _accuracy(run: dict) -> list[str]:
    out = ["## Accuracy", "", f"End-to-end PCC vs fp32 torch: {t.fmt_run_pcc(run)}.", ""]
    rows = t.lowest_pcc_rows(run, t.PCC_LIMIT)
    if rows[1]:
        out += ["Lowest per-node PCC:", "", table(rows), ""]
    return out


def run_markdown(run: dict) -> str:
    cov = run["coverage"]
    lines = [f"# {run['model']} on {run['device']['kind']} {run['device']['arch']}: "
             f"{t.fmt_pct(cov['device_pct'])} of aten nodes ran on the device", "",
             *_header_lines(run), "", *_provenance(run["provenance"]),
             "## Coverage", "", table(t.coverage_rows(cov)), "",
             "## Coverage by op family", "", table(t.group_rows(run["coverage_by_family"], "family")), "",
             "## Coverage by module", "", table(t.group_rows(run["coverage_by_module"], "module")), "",
             "## Left on the host by the plan", ""]
    if run["unsupported"]:
        lines += ["Ops the mapping table declined, with the rule's reason:", "", table(t.unsupported_rows(run)), ""]
    else:
        lines += ["None: the mapping table lowers every node of this graph.", ""]
    lines += [*_fallbacks(run), *_memory(run), *_partitions(run), *_accuracy(run),
              "---", "Source of truth: `run.json`; every node: `nodes.csv`."]
    return "\n".join(lines) + "\n"


def sweep_markdown(sweep: dict, runs: dict[str, dict]) -> str:
    dev = sweep["device"]
    failed = [e for e in sweep["entries"] if e["status"] != "ok"]

    def link(e):
        href = t.report_link(e, "report.md")
        return f"[{_cell(e['key'])}]({href})" if href and e["key"] in runs else _cell(e["key"])

    lines = [f"# fxport sweep on {dev.get('kind', '?')} {dev.get('arch', '')}: activations in "
             f"{sweep['memory_config'].upper()}, values {sweep['values']}", "",
             *_provenance(sweep["provenance"]),
             "## Overview", "", table(t.overview_rows(sweep, link), raw_first=True), ""]
    if failed:
        lines += ["## Failed entries", "", *[f"- **{_cell(e['key'])}**: {_cell(e['error'])}" for e in failed], ""]
    missing = [e["key"] for e in sweep["entries"] if e["status"] == "ok" and e["key"] not in runs]
    if missing:
        lines += [f"Run documents missing (entry listed from sweep.json only): {_cell(', '.join(missing))}", ""]
    lines += ["## Blocking matrix", "",
              "Nodes of each op kept off the device (declined by the plan or failed at run time), per entry; "
              "blank: none." + (" Failed entries have no data." if failed else ""), ""]
    lines += [table(t.matrix_rows(sweep)), ""] if sweep["blocking_matrix"] else ["No op blocks any entry.", ""]
    lines += ["## Coverage by op family", "", "Lowered % (nodes on the device / nodes of the family).", "",
              table(t.family_matrix_rows(sweep)), ""]
    lines += ["## Runtime fallbacks per entry", ""]
    with_fallbacks = [(k, runs[k]) for k in t.ok_keys(sweep) if k in runs and runs[k]["fallbacks"]]
    for key, run in with_fallbacks:
        lines += [f"### {_cell(key)}", "", table(t.fallback_kind_rows(run)), ""]
    if not with_fallbacks:
        lines += ["None.", ""]
    lines += ["## Out-of-memory nodes per entry (largest first)", ""]
    with_oom = [(k, runs[k]) for k in t.ok_keys(sweep) if k in runs and (runs[k]["memory"] or {}).get("oom_nodes")]
    for key, run in with_oom:
        rows = t.oom_rows(run)
        lines += [f"### {_cell(key)}", "", table(t.limited(rows, t.OOM_PER_ENTRY)),
                  *_more(t.OOM_PER_ENTRY, rows[1], "its report"), ""]
    if not with_oom:
        lines += ["None.", ""]
    lines += ["---", "Source of truth: `sweep.json` and each entry's `run.json`; CSV: `sweep.csv`, "
              "`blocking_matrix.csv`."]
    return "\n".join(lines) + "\n"
