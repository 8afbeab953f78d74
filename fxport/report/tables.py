"""The tables of a run or sweep document as rows of text, which the report pages
(fxport/report/pages.py) arrange, and the CSV files (raw values, for spreadsheets).

Rows only select and format fields of the document; sorting and truncating are for display.
Escaping belongs to each renderer (Markdown pipes, HTML entities).
"""

from __future__ import annotations

import csv
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from fxport.durable import atomic_open
from fxport.memory.tiles import fmt_bytes as memory_fmt_bytes
from fxport.report.compare import fallback_kinds

Rows = tuple[list[str], list[list]]  # headers, rows

PCC_LIMIT = 10
OOM_PER_ENTRY = 5  # OOM nodes per entry on a sweep's pages; each entry's oom_nodes.csv lists them all

_STATUS = {"device": "on device", "fallback": "fell back", "host": "host (plan)"}


def fmt_bytes(n: int | None) -> str:
    return "-" if n is None else memory_fmt_bytes(n)


def fmt_pct(p: float | None) -> str:
    return "-" if p is None else f"{p:.1f}%"


def fmt_shape(spec: dict) -> str:
    return f"[{','.join(map(str, spec['shape']))}] {spec['dtype']}"


def fmt_inputs(doc: dict) -> str:
    return ", ".join(fmt_shape(s) for s in doc["inputs"])


UNINFORMATIVE = "PCC uninformative"


def fmt_pcc(values: list[float | None]) -> str:
    """PCC figures; None (an output whose PCC means nothing) is never shown as a number."""
    return ", ".join(UNINFORMATIVE if p is None else f"{p:.6f}" for p in values) or "not computed"


def fmt_output_pcc(output: dict) -> str:
    """One output's PCC, or why it has none: 'PCC uninformative: output does not depend on input'."""
    if output.get("informative") is False:
        return f"{UNINFORMATIVE}: {output.get('note', '')}"
    if output.get("pcc") is None:
        return output.get("note") or "not computed"
    return f"{output['pcc']:.6f}"


def fmt_outputs_pcc(run: dict) -> str:
    """Per output tensor, named by its path: "out['logits'] 0.999512; out['aux'] PCC uninformative: ..."."""
    outputs = run.get("outputs")
    if not outputs:
        return fmt_pcc(run["output_pcc"])
    if len(outputs) == 1 and outputs[0]["path"] == "out":
        return fmt_output_pcc(outputs[0])
    return "; ".join(f"{o['path']} {fmt_output_pcc(o)}" for o in outputs)


def fmt_run_pcc(run: dict) -> str:
    """End-to-end PCC with what the values were (emulated, real), or why there is none."""
    values = run["provenance"]["values"]
    return f"{fmt_outputs_pcc(run)} (values {values})" if run["output_pcc"] else values


def accuracy_failed(run: dict) -> bool:
    acc = run.get("accuracy")
    return isinstance(acc, dict) and acc.get("verdict") == "fail"


def fmt_accuracy(run: dict) -> str:
    """The end-to-end verdict, or "" when it was not checked (no values, no informative output)."""
    acc = run.get("accuracy")
    if not isinstance(acc, dict) or acc.get("verdict") not in ("pass", "fail"):
        return ""
    if acc["verdict"] == "fail":
        return f"FAILED: end-to-end PCC below {acc['threshold']}: " + "; ".join(map(str, acc.get("failing", [])))
    return f"Accuracy passes: every output reaches PCC {acc['threshold']}."


def report_link(entry: dict, name: str) -> str | None:
    """Relative URL from the sweep directory to an entry's rendered report (None if it failed)."""
    if not entry.get("run"):
        return None
    return quote(str(PurePosixPath(entry["run"]).parent / name))


def provenance_rows(prov: dict) -> Rows:
    return ["aspect", "what it is"], [[k.replace("_", " "), v] for k, v in sorted(prov.items())]


def coverage_rows(cov: dict) -> Rows:
    return ["aten nodes", "count", "share"], [
        ["in the graph", cov["total"], ""],
        ["lowered by the mapping table (plan)", cov["planned"], fmt_pct(cov["planned_pct"])],
        ["ran on the device", cov["on_device"], fmt_pct(cov["device_pct"])],
        ["fell back at run time (device error, re-ran on host)", cov["fallback"], ""],
        ["left on the host by the plan", cov["host"], ""],
        ["not run", cov["not_run"], ""],
    ]


def group_rows(groups: dict[str, dict], label: str) -> Rows:
    """Coverage by op family or by module."""
    return [label, "nodes", "lowered", "lowered %", "on device"], [
        [name, g["total"], g["lowered"], fmt_pct(g["lowered_pct"]), g["on_device"]] for name, g in groups.items()
    ]


def unsupported_rows(run: dict) -> Rows:
    """Ops the plan declined, costliest first (run.json ranks them): host time + transfers forced."""
    return [
        "aten op",
        "family",
        "nodes",
        "cost ms (est.)",
        "speedup if lowered",
        "why the plan declined it",
        "in modules (first 5)",
    ], [
        [
            u["target"],
            u["family"],
            u["count"],
            fmt_ms(u.get("cost_ms")),
            fmt_speedup(u.get("speedup_if_lowered")),
            "; ".join(u["reasons"]),
            ", ".join(u["modules"]),
        ]
        for u in run["unsupported"]
    ]


def fallback_kind_rows(run: dict) -> Rows:
    return ["error kind", "aten op", "nodes", "cost ms (est.)", "example error"], [
        [g["kind"], g["target"], g["nodes"], fmt_ms(g.get("cost_ms")), g["example"]] for g in fallback_kinds(run)
    ]


def fallback_rows(run: dict, width: int = 160) -> Rows:
    """Every fallback node, costliest first (as run.json ranks them)."""
    rows = [
        [
            f["node"],
            f["target"],
            f["module"],
            f["kind"],
            f["repeat"],
            fmt_ms(f.get("cost_ms")),
            fmt_speedup(f.get("speedup_if_lowered")),
            f["error"][:width],
        ]
        for f in run["fallbacks"]
    ]
    return ["node", "aten op", "module", "kind", "repeat", "cost ms (est.)", "speedup if lowered", "error"], rows


def estimate_rows(run: dict) -> Rows:
    """The cost model's figures for the run (run.json `estimate`)."""
    e = run["estimate"]
    split = e["device_split_ms"]
    rows = [
        ["latency per inference (Metal Trace)", f"{e['latency_ms']:.3f} ms"],
        ["throughput at batch", f"{e['throughput_per_s']:,.1f}/s (batch {e['batch']})"],
        [
            "device",
            f"{e['device_ms']:.3f} ms (compute-bound ops {split['compute']:.3f}, DRAM-bound "
            f"{split['dram']:.3f}, dispatch-bound {split['dispatch']:.3f})",
        ],
        ["host nodes", f"{e['host_ms']:.3f} ms ({e['assumptions']['host_timing']})"],
        ["transfers", f"{e['transfer_ms']:.3f} ms ({e['transfers']} moves between host and device)"],
        ["bound", e["bound"]],
        [
            f"host dispatch ({fmt_dispatch_source(e)})",
            f"{e['dispatch_ms']:.1f} ms: "
            + (
                f"host-bound without Metal Trace (it would save {e['metal_trace_saves_ms']:.1f} ms)"
                if e["host_bound"]
                else "below the device time"
            ),
        ],
    ]
    return ["", f"on {e['arch']}"], rows


def time_module_rows(run: dict) -> Rows:
    """Where the estimated time goes, per top-level module, largest first."""
    mods = run["estimate"]["by_module"]
    total = sum(m["total_ms"] for m in mods.values()) or 1.0
    rows = [
        [
            name,
            f"{m['device_ms']:.3f}",
            f"{m['host_ms']:.3f}",
            f"{m['transfer_ms']:.3f}",
            f"{m['total_ms']:.3f}",
            fmt_pct(100 * m["total_ms"] / total),
        ]
        for name, m in sorted(mods.items(), key=lambda kv: -kv[1]["total_ms"])
    ]
    return ["module", "device ms", "host ms", "transfer ms", "total ms", "share"], rows


def fmt_dispatch_source(e: dict) -> str:
    """How an estimate's host dispatch was found: measured (an upper bound) or modelled."""
    timing = str((e.get("assumptions") or {}).get("dispatch_timing", ""))
    return "measured, upper bound" if timing.startswith("measured") else "modelled, not measured"


def island_rows(run: dict) -> Rows:
    return ["first node", "nodes", "modules", "cost ms", "of which transfers ms", "speedup if lowered"], [
        [
            i["first"],
            i["nodes"],
            ", ".join(i["modules"]),
            fmt_ms(i["cost_ms"]),
            fmt_ms(i["transfer_ms"]),
            fmt_speedup(i["speedup_if_lowered"]),
        ]
        for i in run["estimate"]["host_islands"]
    ]


def fmt_remedy(o: dict) -> str:
    """The remedy, marked verified when the device re-ran the node with it and the allocator took it."""
    if not o["remedy"]:
        return "-"
    if o.get("remedy_verified"):
        return o["remedy"] if "verified" in o["remedy"] else f"{o['remedy']} (verified on the device)"
    return f"{o['remedy']} (NOT verified)"


def oom_rows(run: dict) -> Rows:
    """Why each OOM node does not fit: the failing buffer, the memory model's peak per bank beside
    the allocator's (from its error), the bank size, and the verified remedy."""
    rows = [
        [
            o["node"],
            o["target"],
            o["config"],
            o.get("buffer") or "-",
            o.get("allocator") or "-",
            fmt_bytes(o.get("peak") or o["per_bank"]),
            fmt_bytes(o.get("allocator_peak")),
            fmt_bytes(o["bank_size"]),
            o["severity"],
            o["cause"],
            o["padding"],
            "OOM" if o["predicted"] else "fits",
            o["observed"],
            fmt_remedy(o),
        ]
        for o in (run["memory"] or {}).get("oom_nodes", [])
    ]
    return [
        "node",
        "aten op",
        "config",
        "failing buffer (model)",
        "failing buffer (allocator)",
        "peak per bank (model, predicted)",
        "peak per bank (allocator, real)",
        "bank size",
        "severity",
        "cause",
        "padding",
        "memory model (predicted)",
        "device verdict (real)",
        "remedy",
    ], rows


def oom_shape_rows(run: dict) -> Rows:
    rows = [
        [
            o["node"],
            o["module"] or "<top>",
            o["repeat"],
            "; ".join(map(fmt_shape, o["inputs"])) + " -> " + "; ".join(map(fmt_shape, o["outputs"])),
            fmt_bytes(o["resident_bytes"]),
            fmt_bytes(o["logical_bytes"]),
            o["banks"],
        ]
        for o in (run["memory"] or {}).get("oom_nodes", [])
    ]
    return [
        "node",
        "module",
        "repeat",
        "inputs -> outputs (as captured)",
        "resident on device (tile-padded)",
        "logical",
        "banks",
    ], rows


def partition_rows(run: dict, names: int = 4) -> Rows:
    def some(items):
        return ", ".join(items[:names]) + (" ..." if len(items) > names else "")

    parts = sorted(run["partitions"], key=lambda p: (-p["op_count"], p["name"]))
    return ["partition", "ops", "first .. last op", "inputs", "inputs (first)", "outputs", "outputs (first)"], [
        [
            p["name"],
            p["op_count"],
            f"{p['nodes'][0]} .. {p['nodes'][-1]}" if p["nodes"] else "",
            len(p["inputs"]),
            some(p["inputs"]),
            len(p["outputs"]),
            some(p["outputs"]),
        ]
        for p in parts
    ]


def host_node_rows(run: dict) -> Rows:
    """Nodes the plan left on the host, with their location (Torch-TensorRT's 'nodes left in
    Torch'); run-time fallbacks have their own table."""
    rows = [
        [n["node"], n["target"], module_label(n), n.get("source", ""), n["reason"]]
        for n in run["nodes"]
        if n["status"] == "host"
    ]
    return ["node", "aten op", "module", "source", "why the plan declined it"], rows


def module_label(n: dict) -> str:
    """A node's module as reports show it: its path ("<top>" for the model's own forward) with the
    module's class, marked when inferred from its neighbours (the node was traced in none)."""
    label = n["module"] or "<top>"
    if n.get("module_type"):
        label += f" ({n['module_type']})"
    return label + (" [inferred]" if n.get("module_inferred") else "")


def lowest_pcc_rows(run: dict, limit: int) -> Rows:
    nodes = sorted((n for n in run["nodes"] if n["pcc"] is not None), key=lambda n: (n["pcc"], n["node"]))
    return ["node", "aten op", "module", "status", "PCC vs fp32 torch"], [
        [n["node"], n["target"], n["module"] or "<top>", _STATUS.get(n["status"], n["status"]), f"{n['pcc']:.6f}"]
        for n in nodes[:limit]
    ]


def overview_rows(sweep: dict, link) -> Rows:
    """One row per sweep entry, failed ones with their error; `link(entry)` formats the name."""
    rows = []
    for e in sweep["entries"]:
        c = e["coverage"] or {}
        rows.append(
            [
                link(e),
                "x".join(map(str, e["input_shape"])),
                e["status"].upper(),
                c.get("total", "-"),
                fmt_pct(c.get("planned_pct")),
                fmt_pct(c.get("device_pct")),
                c.get("fallback", "-"),
                c.get("host", "-"),
                c.get("not_run", "-"),
                e["oom_nodes"] if e["status"] == "ok" else "-",
                e["unsupported_ops"] if e["status"] == "ok" else "-",
                fmt_agreement(e.get("memory_agreement")),
                fmt_l1_share(e.get("l1_share")),
                fmt_pcc(e["output_pcc"]) if e["status"] == "ok" else "-",
                fmt_latency(e.get("estimate")),
                e["error"],
            ]
        )
    return [
        "entry",
        "input",
        "status",
        "aten nodes",
        "lowered %",
        "on device %",
        "fell back",
        "host",
        "not run",
        "OOM nodes",
        "ops declined",
        "memory model = allocator",
        "L1 share (bytes / nodes)",
        "output PCC",
        "latency ms (est.)",
        "error",
    ], rows


def fmt_latency(e: dict | None) -> str:
    """An entry's estimated latency and what bounds it."""
    if not isinstance(e, dict) or not isinstance(e.get("latency_ms"), (int, float)):
        return "-"
    return f"{e['latency_ms']:.3f} ({e.get('bound', '?')})"


def fmt_agreement(a: dict | None) -> str:
    """Memory model vs allocator, node by node: share and counts."""
    if not isinstance(a, dict) or not all(isinstance(a.get(k), int) for k in ("agree", "judged")) or not a["judged"]:
        return "-"  # absent (an older sweep, a failed entry) or damaged
    return f"{fmt_pct(100 * a['agree'] / a['judged'])} ({a['agree']}/{a['judged']})"


def fmt_l1_share(s: dict | None) -> str:
    """The activations a run kept in L1: share of bytes / share of device nodes."""
    number = (int, float)
    if not isinstance(s, dict) or not isinstance(s.get("bytes"), number):
        return "-"
    nodes = s.get("nodes") if isinstance(s.get("nodes"), number) else None
    return f"{fmt_pct(100 * s['bytes'])} / {'-' if nodes is None else fmt_pct(100 * nodes)}"


def ok_keys(sweep: dict) -> list[str]:
    return [e["key"] for e in sweep["entries"] if e["status"] == "ok"]


def matrix_rows(sweep: dict) -> Rows:
    """The blocking matrix, ops most widely blocking first; blank = no node of it blocked there."""
    keys = ok_keys(sweep)
    ops = sorted(sweep["blocking_matrix"].items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return ["aten op", *keys], [[op, *(row.get(k, "") for k in keys)] for op, row in ops]


def family_matrix_rows(sweep: dict) -> Rows:
    """Lowered % per op family per entry, with on-device / total nodes."""
    families = sorted({f for e in sweep["entries"] for f in (e["coverage_by_family"] or {})})
    rows = []
    for e in sweep["entries"]:
        fam = e["coverage_by_family"] or {}
        rows.append(
            [
                e["key"],
                *(
                    f"{fmt_pct(fam[f]['lowered_pct'])} ({fam[f]['on_device']}/{fam[f]['total']})"
                    if f in fam
                    else ("" if e["status"] == "ok" else "failed")
                    for f in families
                ),
            ]
        )
    return ["entry", *families], rows


# --- CSV (raw values) ---


def write_sweep_csv(sweep: dict, path: Path) -> Path:
    """One row per entry; a failed entry has its error and empty numbers (no result, not zero)."""
    cov_fields = ["total", "planned", "planned_pct", "on_device", "device_pct", "fallback", "host", "not_run"]
    with atomic_open(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "key",
                "model",
                "input_shape",
                "status",
                "error",
                *cov_fields,
                "fallback_nodes",
                "oom_nodes",
                "unsupported_ops",
                "output_pcc",
                "run",
            ]
        )
        for e in sweep["entries"]:
            c = e["coverage"] or {}
            counts = [e["fallbacks"], e["oom_nodes"], e["unsupported_ops"]] if e["status"] == "ok" else ["", "", ""]
            w.writerow(
                [
                    e["key"],
                    e["model"],
                    "x".join(map(str, e["input_shape"])),
                    e["status"],
                    e["error"],
                    *(c.get(k, "") for k in cov_fields),
                    *counts,
                    ";".join(map(str, e["output_pcc"])),
                    e["run"] or "",
                ]
            )
    return path


def write_blocking_csv(sweep: dict, path: Path) -> Path:
    """Ops x entries; 0 = not blocking there, empty = no data (the entry failed)."""
    keys = [e["key"] for e in sweep["entries"]]
    ok = set(ok_keys(sweep))
    with atomic_open(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(["target", *keys])
        for op, row in sorted(sweep["blocking_matrix"].items()):
            w.writerow([op, *(row.get(k, 0) if k in ok else "" for k in keys)])
    return path


NODE_FIELDS = [
    "node",
    "target",
    "module",
    "partition",
    "status",
    "ttnn",
    "reason",
    "error_kind",
    "error",
    "pcc",
    "repeat",
]


def write_nodes_csv(run: dict, path: Path) -> Path:
    """Every node of the run, one row each."""
    with atomic_open(path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=NODE_FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(run["nodes"])
    return path


OOM_FIELDS = [
    "node",
    "target",
    "module",
    "repeat",
    "config",
    "inputs",
    "outputs",
    "resident_bytes",
    "logical_bytes",
    "per_bank",
    "bank_size",
    "banks",
    "severity",
    "cause",
    "padding",
    "remedy",
    "remedy_verified",
    "predicted",
    "observed",
    "buffer",
    "allocator",
    "peak",
    "allocator_peak",
    "disagreement",
]


def write_oom_csv(run: dict, path: Path) -> Path:
    with atomic_open(path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=OOM_FIELDS, extrasaction="ignore")
        w.writeheader()
        for o in (run["memory"] or {}).get("oom_nodes", []):
            w.writerow(
                {
                    **o,
                    "inputs": "; ".join(map(fmt_shape, o["inputs"])),
                    "outputs": "; ".join(map(fmt_shape, o["outputs"])),
                }
            )
    return path


def fmt_ms(ms) -> str:
    """A cost in milliseconds ("-" when not estimated)."""
    return "-" if ms is None else f"{ms:.3f}"


def fmt_speedup(x) -> str:
    return "-" if x is None else f"{x:.3f}x"
