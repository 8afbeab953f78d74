"""The structure of the report pages, as data: what each page says, in which order, with which
tables and plots. `run_page` (report.md / report.html) and `sweep_page` (index.md / index.html)
are the one description both renderers follow (fxport/report/markdown.py, fxport/report/html.py),
so the Markdown and the HTML page cannot drift apart.

Pages only select and arrange: rows come from fxport/report/tables.py, numbers from the documents.
A renderer decides how a block looks: Markdown has no plots; HTML draws them into image files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fxport.report import tables as t

# Per-node tables on a page show the first rows (largest first); the complete lists are in the
# per-node files `fxport report` writes (nodes.csv, oom_nodes.csv) and in run.json.
NODE_ROWS = 25
OOM_PLOT_BARS = 40  # bars in a run's OOM chart
# Where the rest of a per-node table is.
MORE_NODES = "nodes.csv and report.html (`fxport report`)"
MORE_OOM = "oom_nodes.csv and report.html (`fxport report`)"


# -- cells: table values a renderer shows in its own way -------------------------------------
@dataclass(frozen=True)
class Link:
    text: str
    target: str  # a page's path without its extension: each renderer links its own format


@dataclass(frozen=True)
class Flag:
    """A value that marks a failure (shown emphasised)."""

    text: str


@dataclass(frozen=True)
class Heat:
    """A count shaded by its size relative to the largest of its table (for the eye only)."""

    value: int
    top: int


# -- blocks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Facts:
    items: tuple[tuple[str, Any], ...]  # (label, value) lines; a value is text, a Flag or a tuple of them


@dataclass(frozen=True)
class Text:
    text: str
    note: bool = False  # a side remark
    failed: bool = False  # says that something is missing or failed


@dataclass(frozen=True)
class Bullets:
    items: tuple[tuple[str, Any], ...]  # (bold label, value)


@dataclass(frozen=True)
class Table:
    rows: t.Rows
    limit: int | None = None  # rows shown; the rest are counted and pointed to
    more_in: str = ""
    fold: str = ""  # shown folded (HTML/GitHub <details>) under this summary


@dataclass(frozen=True)
class Plot:
    """A chart for the HTML page: `kind` names a drawing of fxport/report/html.py, `args` its data."""

    name: str  # unique within the page: the image's file name
    kind: str
    args: tuple


@dataclass(frozen=True)
class Provenance:
    provenance: dict


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple
    level: int = 2
    fold: bool = False  # the whole section folded (per-entry details on a sweep page)


@dataclass(frozen=True)
class Page:
    title: str  # the page's <title>
    heading: str
    blocks: tuple = field(default_factory=tuple)


# -- the run page ----------------------------------------------------------------------------
def _device(dev: dict) -> str:
    text = f"{dev['kind']} {dev['arch']}"
    if "l1_bank_count" in dev:
        text += (
            f" (L1: {dev['l1_bank_count']} banks of {dev['l1_bank_size']:,} B; "
            f"DRAM: {dev['dram_bank_count']} banks of {dev['dram_bank_size']:,} B)"
        )
    return text


def _capture(cap: dict) -> tuple:
    problems = "; ".join(f"{p.get('stage', '')}: {p.get('message', '')}" for p in cap.get("problems", []))
    return (
        f"{cap.get('method', '?')}, ",
        "complete" if cap.get("complete") else Flag("INCOMPLETE"),
        f" (problems: {problems})" if problems else "",
    )


def _off_device(run: dict) -> tuple:
    blocks: list = []
    if run["unsupported"] or run["fallbacks"]:
        blocks.append(Plot("off_device", "off_device", (run,)))
    host = (
        [Text("Ops the mapping table declined, with the rule's reason:"), Table(t.unsupported_rows(run))]
        if run["unsupported"]
        else [Text("None: the mapping table lowers every node of this graph.")]
    )
    blocks.append(Section("Left on the host by the plan", tuple(host), level=3))
    if not run["nodes"]:
        fallbacks = [Text("The graph did not run on a device: no node results.", failed=True)]
    elif not run["fallbacks"]:
        fallbacks = [Text("None: every node the plan lowered ran on the device.")]
    else:
        fallbacks = [
            Text(
                "Nodes the plan lowered but the device rejected at run time; each re-ran on the host "
                "and the run went on. By error kind and op:"
            ),
            Table(t.fallback_kind_rows(run)),
            Table(t.fallback_rows(run), NODE_ROWS, MORE_NODES, fold="Every fallback node"),
        ]
    blocks.append(Section("Runtime fallbacks", tuple(fallbacks), level=3))
    return tuple(blocks)


def _memory(run: dict) -> tuple:
    mem = run["memory"]
    if mem is None:
        return (Text("No memory analysis in this run."),)
    a = mem["agreement"]
    blocks: list = [
        Text(
            f"Every node judged under the {mem['config']} config on {mem['device']}: the memory model's "
            "prediction (tile and bank arithmetic) next to the allocator's verdict on the device."
        ),
        Table(
            (
                ["agree", "predicted only", "observed only", "no device verdict"],
                [[a["agree"], a["predicted_only"], a["observed_only"], a["not_run"]]],
            )
        ),
    ]
    if not mem["oom_nodes"]:
        return (*blocks, Text("No node is predicted or observed out of memory."))
    return (
        *blocks,
        Plot(
            "oom",
            "oom",
            (
                [(o["node"], o) for o in mem["oom_nodes"][:OOM_PLOT_BARS]],
                f"Out of memory under {mem['config']}"
                + (
                    f" (the first {OOM_PLOT_BARS} of {len(mem['oom_nodes'])} nodes; all in oom_nodes.csv)"
                    if len(mem["oom_nodes"]) > OOM_PLOT_BARS
                    else ""
                ),
            ),
        ),
        Text("Nodes out of memory (predicted or observed), largest first:"),
        Table(t.oom_rows(run), NODE_ROWS, MORE_OOM),
        Text("Their tensors and totals:"),
        Table(t.oom_shape_rows(run), NODE_ROWS, MORE_OOM),
    )


def _partitions(run: dict) -> tuple:
    tr = run["transfers"]
    blocks: list = [
        Text(
            f"Device partitions: {len(run['partitions'])}; activation transfers per inference: "
            f"{tr['to_device']} host -> device, {tr['to_host']} device -> host; "
            f"{tr['layout_changes']} layout changes; constants uploaded once: "
            f"{tr.get('constants', 0)}."
        )
    ]
    if run["partitions"]:
        blocks.append(Table(t.partition_rows(run), NODE_ROWS, MORE_NODES))
    host = t.host_node_rows(run)
    if host[1]:
        blocks += [Text("Nodes the plan left on the host, with their location:"), Table(host, NODE_ROWS, MORE_NODES)]
    return tuple(blocks)


def _accuracy(run: dict) -> tuple:
    blocks: list = [Text(f"End-to-end PCC vs fp32 torch: {t.fmt_run_pcc(run)}.")]
    verdict = t.fmt_accuracy(run)
    if verdict:
        blocks.append(Text(verdict, failed=t.accuracy_failed(run)))
    rows = t.lowest_pcc_rows(run, t.PCC_LIMIT)
    if rows[1]:
        blocks += [Text("Lowest per-node PCC:"), Table(rows)]
    return tuple(blocks)


def _time(run: dict) -> tuple:
    est = run.get("estimate")
    if not isinstance(est, dict):
        return (Text("No estimate in this run (no cost-model board for its device)."),)
    blocks: list = [
        Text(
            f"Predicted by the cost model (fxport/cost): TT-NN's ideal formulas per device node, as lowered "
            f"and placed, with the efficiency table; host nodes timed on this CPU; transfers over PCIe "
            f"({est['assumptions']['board']['pcie_gb_s']:g} GB/s + {est['assumptions']['board']['pcie_latency_us']:g} "
            f"us each, assumed)."
        ),
        Table(t.estimate_rows(run)),
        Plot("time_modules", "time_modules", (run,)),
        Text("Where the time goes, by module:"),
        Table(t.time_module_rows(run)),
    ]
    if est["host_islands"]:
        blocks += [
            Text("Host islands (connected host nodes), costliest first:"),
            Table(t.island_rows(run), NODE_ROWS, "run.json"),
        ]
    return tuple(blocks)


def _groups(title: str, name: str, label: str, groups: dict) -> Section:
    return Section(title, (Plot(name, "groups", (groups, title)), Table(t.group_rows(groups, label))))


def run_page(run: dict) -> Page:
    cov = run["coverage"]
    stopped = (
        (("STOPPED before the end", Flag(f"{run['stopped']} (nodes not reached count as not run)")),)
        if run.get("stopped")
        else ()
    )
    facts = Facts(
        (
            *stopped,
            ("Inputs", t.fmt_inputs(run)),
            ("Device", _device(run["device"])),
            ("Activations in", run["memory_config"].upper()),
            ("Values", run["values"]),
            ("Capture", _capture(run["capture"])),
            ("End-to-end PCC vs fp32 torch", t.fmt_run_pcc(run)),
            *((("Accuracy", Flag(t.fmt_accuracy(run))),) if t.accuracy_failed(run) else ()),
        )
    )
    return Page(
        f"fxport: {run['model']}",
        f"{run['model']} on {run['device']['kind']} {run['device']['arch']}: "
        f"{t.fmt_pct(cov['device_pct'])} of aten nodes ran on the device",
        (
            facts,
            Provenance(run["provenance"]),
            Section(
                "Coverage",
                (
                    Plot("coverage", "coverage", ([run["model"]], [cov], "aten nodes by where they ran")),
                    Table(t.coverage_rows(cov)),
                ),
            ),
            _groups("Coverage by op family", "families", "family", run["coverage_by_family"]),
            _groups("Coverage by module", "modules", "module", run["coverage_by_module"]),
            Section("Time (estimated)", _time(run)),
            Section("Why nodes are not on the device", _off_device(run)),
            Section("Out of memory", _memory(run)),
            Section("Device partitions (dry run)", _partitions(run)),
            Section("Accuracy", _accuracy(run)),
            Text("Source of truth: run.json; every node: nodes.csv (`fxport report` writes it).", note=True),
        ),
    )


# -- the sweep page --------------------------------------------------------------------------
def _file_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)


def sweep_page(sweep: dict, runs: dict[str, dict]) -> Page:
    dev, entries = sweep["device"], sweep["entries"]
    failed = [e for e in entries if e["status"] != "ok"]
    ok = [k for k in t.ok_keys(sweep) if k in runs]

    def link(e: dict):
        target = t.report_link(e, "report")
        return Link(e["key"], target) if target and e["key"] in runs else e["key"]

    headers, rows = t.overview_rows(sweep, link)
    status = headers.index("status")
    overview = (headers, [[Flag(c) if i == status and c != "OK" else c for i, c in enumerate(r)] for r in rows])
    blocks: list = [
        Provenance(sweep["provenance"]),
        Section(
            "Overview",
            (
                Plot(
                    "coverage",
                    "coverage",
                    ([e["key"] for e in entries], [e["coverage"] for e in entries], "aten nodes by where they ran"),
                ),
                Table(overview),
            ),
        ),
    ]
    if failed:
        blocks.append(Section("Failed entries", (Bullets(tuple((e["key"], Flag(e["error"])) for e in failed)),)))
    missing = [e["key"] for e in entries if e["status"] == "ok" and e["key"] not in runs]
    if missing:
        blocks.append(
            Text(f"Run documents missing (entry listed from sweep.json only): {', '.join(missing)}", failed=True)
        )
    headers, rows = t.matrix_rows(sweep)
    top = max((c for r in rows for c in r[1:] if c != ""), default=0)
    matrix = (headers, [[r[0], *(Heat(c, top) if c != "" else "" for c in r[1:])] for r in rows])
    blocks.append(
        Section(
            "Blocking matrix",
            (
                Text(
                    "Nodes of each op kept off the device (declined by the plan or failed at run time), per entry; "
                    "blank: none." + (" Failed entries have no data." if failed else "")
                ),
                Table(matrix) if rows else Text("No op blocks any entry."),
            ),
        )
    )
    timed = [e for e in entries if isinstance(e.get("estimate"), dict)]
    if timed:
        blocks.append(
            Section(
                "Estimated latency vs coverage",
                (
                    Text(
                        "The cost model's latency per inference (predicted) against the share of nodes on the device."
                    ),
                    Plot("latency_coverage", "latency_coverage", (timed,)),
                ),
            )
        )
    blocks.append(
        Section(
            "Coverage by op family",
            (
                Text("Lowered % (nodes on the device / nodes of the family)."),
                Plot("families", "family_heatmap", (sweep,)),
                Table(t.family_matrix_rows(sweep)),
            ),
        )
    )
    blocks.append(
        Section(
            "Coverage by module",
            tuple(
                Section(
                    key,
                    (
                        Plot(
                            f"modules_{_file_name(key)}",
                            "groups",
                            (runs[key]["coverage_by_module"], f"{key}: coverage by module"),
                        ),
                        Table(t.group_rows(runs[key]["coverage_by_module"], "module")),
                    ),
                    level=3,
                    fold=True,
                )
                for key in ok
            ),
        )
    )
    off = [k for k in ok if runs[k]["fallbacks"] or runs[k]["unsupported"]]
    blocks.append(
        Section(
            "Why nodes are not on the device, per entry",
            tuple(
                Section(
                    key,
                    (
                        Plot(f"off_device_{_file_name(key)}", "off_device", (runs[key],)),
                        *((Table(t.unsupported_rows(runs[key])),) if runs[key]["unsupported"] else ()),
                        *((Table(t.fallback_kind_rows(runs[key])),) if runs[key]["fallbacks"] else ()),
                    ),
                    level=3,
                )
                for key in off
            )
            or (Text("None in the entries with results: no node declined by the plan or fallen back."),),
        )
    )
    with_oom = [k for k in ok if (runs[k]["memory"] or {}).get("oom_nodes")]
    oom_bars = [(f"{k}: {o['node']}", o) for k in with_oom for o in runs[k]["memory"]["oom_nodes"][: t.OOM_PER_ENTRY]]
    blocks.append(
        Section(
            "Out-of-memory nodes per entry (largest first)",
            (
                Plot("oom", "oom", (oom_bars, "Out of memory: the largest nodes of each entry")),
                *(Section(k, (Table(t.oom_rows(runs[k]), t.OOM_PER_ENTRY, "its report"),), level=3) for k in with_oom),
            )
            if with_oom
            else (Text("No entry has a node predicted or observed out of memory."),),
        )
    )
    blocks.append(
        Text("Source of truth: sweep.json and each entry's run.json; CSV: sweep.csv, blocking_matrix.csv.", note=True)
    )
    return Page(
        "fxport sweep",
        f"fxport sweep on {dev.get('kind', '?')} {dev.get('arch', '')}: activations in "
        f"{sweep['memory_config'].upper()}, values {sweep['values']}",
        tuple(blocks),
    )


__all__ = [
    "Bullets",
    "Facts",
    "Flag",
    "Heat",
    "Link",
    "Page",
    "Plot",
    "Provenance",
    "Section",
    "Table",
    "Text",
    "run_page",
    "sweep_page",
]
