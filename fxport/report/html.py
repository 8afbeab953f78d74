"""HTML renderings of a run document (report.html) and a sweep document (index.html).

Each page is one self-contained file: inline CSS, plots as base64 PNG (matplotlib's Agg canvas
through `Figure`, so no global pyplot state), no scripts, no external resources. Formatting
only: every number comes from the documents or fxport/report/compare.py.
"""

from __future__ import annotations

import base64
import html
import io

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from tabulate import tabulate

from fxport.report import tables as t
from fxport.report.compare import fallback_kinds

OOM_PLOT_LIMIT = 40  # bars in a run's OOM chart; the table lists every node

COLORS = {"on device": "#2e7d32", "fell back at run time": "#ef6c00", "host (plan)": "#9e9e9e",
          "not run": "#d7ccc8"}
LOWERED = "#ffb74d"  # lowered by the plan but not on the device
SEVERITY = {"critical": "#b71c1c", "high": "#e65100", "medium": "#f9a825", "low": "#7cb342"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;
padding:16px 24px;color:#212121}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:12.5px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top;max-width:520px;
overflow-wrap:anywhere}
th{background:#f5f5f5;position:sticky;top:0}
tr:nth-child(even) td{background:#fafafa}
.provenance{background:#e3f2fd;border-left:4px solid #1565c0;padding:6px 12px;margin:12px 0}
.provenance table{margin:4px 0}
.failed{color:#b71c1c;font-weight:600}
.note{color:#616161;font-style:italic}
.heat{display:block;margin:-3px -7px;padding:3px 7px}
img{max-width:100%;display:block;margin:8px 0}
ul.facts{list-style:none;padding:0}ul.facts li{margin:2px 0}
details{margin:6px 0}summary{cursor:pointer}
"""


def _esc(v) -> str:
    return html.escape(str(v))


def _table(rows: t.Rows, raw: tuple[int, ...] = ()) -> str:
    """An HTML table; columns in `raw` hold markup made here (links, shading), the rest is escaped."""
    headers, body = rows
    body = [[c if i in raw else _esc(c) for i, c in enumerate(r)] for r in body]
    return tabulate(body, headers=[_esc(h) for h in headers], tablefmt="unsafehtml", disable_numparse=True)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight", metadata={"Software": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_esc(fig.get_label())}" src="data:image/png;base64,{data}">'


def _figure(label: str, rows: int, width: float = 10.0) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, 1.4 + 0.3 * max(rows, 1)), label=label, layout="constrained")
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _legend(fig: Figure, columns: int) -> None:
    # Below the plot, so it never hides a bar or a label.
    fig.legend(loc="outside lower center", fontsize=8, frameon=False, ncols=columns)


def _stacked(ax, labels: list[str], series: list[tuple[str, list]]) -> None:
    """Horizontal stacked bars; `series` = [(name, counts per label)] drawn left to right."""
    left = [0] * len(labels)
    for name, counts in series:
        ax.barh(labels, counts, left=left, color=COLORS[name], label=name)
        left = [a + b for a, b in zip(left, counts)]  # bar positions, not reported numbers
    ax.invert_yaxis()
    ax.set_xlabel("aten nodes")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(ax.figure, len(series))


def coverage_plot(labels: list[str], coverages: list[dict | None], title: str) -> str:
    """Stacked bars per model: on device / fell back / host / not run (None: a failed entry)."""
    fig, ax = _figure(title, len(labels))
    cov = [c or {} for c in coverages]
    _stacked(ax, labels, [("on device", [c.get("on_device", 0) for c in cov]),
                          ("fell back at run time", [c.get("fallback", 0) for c in cov]),
                          ("host (plan)", [c.get("host", 0) for c in cov]),
                          ("not run", [c.get("not_run", 0) for c in cov])])
    for i, c in enumerate(coverages):
        if c is None:
            ax.text(0, i, "  FAILED (no result)", va="center", color="#b71c1c", fontsize=9)
        else:
            ax.text(c["total"], i, f"  {c['device_pct']:.1f}% on device", va="center", fontsize=8)
    ax.set_title(title, fontsize=11)
    return _png(fig)


def group_plot(groups: dict[str, dict], title: str) -> str:
    """Per module or family: bars drawn over each other (total, lowered, on device), which shows
    the three shares without computing differences."""
    names = list(groups)
    fig, ax = _figure(title, len(names))
    ax.barh(names, [g["total"] for g in groups.values()], color=COLORS["host (plan)"], label="left on host by the plan")
    ax.barh(names, [g["lowered"] for g in groups.values()], color=LOWERED, label="lowered, not on device")
    ax.barh(names, [g["on_device"] for g in groups.values()], color=COLORS["on device"], label="on device")
    for i, g in enumerate(groups.values()):
        ax.text(g["total"], i, f"  {g['lowered_pct']:.0f}% lowered", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("aten nodes")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=11)
    _legend(fig, 3)
    return _png(fig)


def off_device_plot(run: dict) -> str:
    """Why nodes are off the device: plan declines per op and run-time fallbacks per kind and op."""
    bars = ([(f"declined: {u['target']}", u["count"], COLORS["host (plan)"]) for u in run["unsupported"]]
            + [(f"{g['kind']}: {g['target']}", g["nodes"], COLORS["fell back at run time"])
               for g in fallback_kinds(run)])
    fig, ax = _figure("off-device reasons", len(bars))
    ax.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    for i, b in enumerate(bars):
        ax.text(b[1], i, f" {b[1]}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("aten nodes (grey: declined by the plan; orange: fell back at run time, by error kind)")
    ax.set_title("Why nodes are not on the device", fontsize=11)
    return _png(fig)


def oom_plot(nodes: list[tuple[str, dict]], title: str) -> str:
    """Need of the fullest bank vs the bank size, log scale, coloured by severity; `nodes` is
    [(label, oom node)] as they are to be shown."""
    fig, ax = _figure(title, len(nodes))
    labels = [label for label, _ in nodes]
    ax.barh(labels, [o["per_bank"] for _, o in nodes], color=[SEVERITY.get(o["severity"], "#757575") for _, o in nodes])
    ax.scatter([o["bank_size"] for _, o in nodes], labels, marker="|", s=220, color="black", zorder=3,
               label="bank size")
    for i, (_, o) in enumerate(nodes):
        ax.text(o["per_bank"], i, f" needs {t.fmt_bytes(o['per_bank'])}; {o['config']} bank {o['bank_size']:,} B",
                va="center", fontsize=7.5)
    for sev, color in SEVERITY.items():
        ax.barh([labels[0]], [0], color=color, label=sev)  # legend entries only
    ax.set_xscale("log")
    # Bars start well left of the smallest value, so short bars stay visible on the log axis.
    ax.set_xlim(left=min(min(o["per_bank"], o["bank_size"]) for _, o in nodes) / 4)
    ax.invert_yaxis()
    ax.set_xlabel("bytes per bank (log scale): bar = need of the fullest bank, | = bank size")
    ax.set_title(title, fontsize=11)
    _legend(fig, 5)
    return _png(fig)


def family_heatmap(sweep: dict) -> str:
    families = sorted({f for e in sweep["entries"] for f in (e["coverage_by_family"] or {})})
    if not families:  # every entry failed: the overview table says so, there is nothing to plot
        return "<p>No entry produced a result.</p>"
    entries = sweep["entries"]
    fig = Figure(figsize=(2.5 + 0.9 * max(len(families), 1), 1.4 + 0.35 * len(entries)),
                 label="family coverage", layout="constrained")
    ax = fig.add_subplot()
    ax.set_facecolor("#eeeeee")  # cells without a value (NaN) show the background
    grid = [[(e["coverage_by_family"] or {}).get(f, {}).get("lowered_pct", float("nan")) for f in families]
            for e in entries]
    image = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
    for i, (e, row) in enumerate(zip(entries, grid)):
        if e["status"] != "ok":
            ax.text((len(families) - 1) / 2, i, "FAILED (no result)", ha="center", va="center",
                    color="#b71c1c", fontsize=9)
        for j, v in enumerate(row):
            if v == v:  # not NaN
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(families)), families, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(entries)), [e["key"] for e in entries], fontsize=8)
    fig.colorbar(image, ax=ax, label="lowered % (grey: no node of the family)")
    ax.set_title("Lowered % by op family", fontsize=11)
    return _png(fig)


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _provenance(prov: dict) -> str:
    return ('<div class="provenance"><b>What is real, predicted and emulated</b>'
            + _table(t.provenance_rows(prov)) + "</div>")


def _more(shown: int, items: list, where: str) -> str:
    return f'<p class="note">{len(items) - shown} more in {where}.</p>' if len(items) > shown else ""


def _run_sections(run: dict) -> list[str]:
    dev, cov, cap = run["device"], run["coverage"], run["capture"]
    problems = "; ".join(f"{p.get('stage', '')}: {p.get('message', '')}" for p in cap.get("problems", []))
    out = ['<ul class="facts">',
           f"<li><b>Inputs:</b> {_esc(t.fmt_inputs(run))}</li>",
           f"<li><b>Device:</b> {_esc(dev['kind'])} {_esc(dev['arch'])}; L1 {dev['l1_bank_count']} banks of "
           f"{dev['l1_bank_size']:,} B; DRAM {dev['dram_bank_count']} banks of {dev['dram_bank_size']:,} B</li>",
           f"<li><b>Activations in:</b> {_esc(run['memory_config'].upper())}; <b>values:</b> {_esc(run['values'])}</li>",
           f"<li><b>Capture:</b> {_esc(cap.get('method', '?'))}, "
           + ("complete" if cap.get("complete") else '<span class="failed">INCOMPLETE</span>')
           + (f" ({_esc(problems)})" if problems else "") + "</li>",
           f"<li><b>End-to-end PCC vs fp32 torch:</b> {_esc(t.fmt_run_pcc(run))}</li></ul>",
           _provenance(run["provenance"]),
           "<h2>Coverage</h2>", coverage_plot([run["model"]], [cov], "aten nodes by where they ran"),
           _table(t.coverage_rows(cov)),
           "<h2>Coverage by module</h2>", group_plot(run["coverage_by_module"], "Coverage by module"),
           _table(t.group_rows(run["coverage_by_module"], "module")),
           "<h2>Coverage by op family</h2>", group_plot(run["coverage_by_family"], "Coverage by op family"),
           _table(t.group_rows(run["coverage_by_family"], "family")),
           "<h2>Why nodes are not on the device</h2>"]
    if run["unsupported"] or run["fallbacks"]:
        out.append(off_device_plot(run))
    out.append("<h3>Left on the host by the plan</h3>")
    out.append(_table(t.unsupported_rows(run)) if run["unsupported"]
               else "<p>None: the mapping table lowers every node of this graph.</p>")
    out.append("<h3>Runtime fallbacks</h3>")
    if not run["nodes"]:
        out.append('<p class="failed">The graph did not run on a device: no node results.</p>')
    elif not run["fallbacks"]:
        out.append("<p>None: every node the plan lowered ran on the device.</p>")
    else:
        rows = t.fallback_rows(run)
        out += ["<p>Lowered by the plan, rejected by the device at run time, re-run on the host:</p>",
                _table(t.fallback_kind_rows(run)), "<details><summary>every fallback node</summary>",
                _table(t.limited(rows, t.NODE_LIMIT)), _more(t.NODE_LIMIT, rows[1], "run.json"), "</details>"]
    out += _memory_sections(run)
    tr = run["transfers"]
    out += ["<h2>Device partitions (dry run)</h2>",
            f"<p>Device partitions: {len(run['partitions'])}; transfers: {tr['to_device']} to the device, "
            f"{tr['to_host']} to the host, {tr['layout_changes']} layout changes.</p>"]
    if run["partitions"]:
        out.append(_table(t.partition_rows(run)))
    host = t.host_node_rows(run)
    if host[1]:
        out += ["<h3>Nodes the plan left on the host</h3>", _table(t.limited(host, t.NODE_LIMIT)),
                _more(t.NODE_LIMIT, host[1], "nodes.csv")]
    out += ["<h2>Accuracy</h2>", f"<p>End-to-end PCC vs fp32 torch: {_esc(t.fmt_run_pcc(run))}.</p>"]
    pcc = t.lowest_pcc_rows(run, t.PCC_LIMIT)
    if pcc[1]:
        out += ["<h3>Lowest per-node PCC</h3>", _table(pcc)]
    return out


def _memory_sections(run: dict) -> list[str]:
    mem = run["memory"]
    out = ["<h2>Out of memory</h2>"]
    if mem is None:
        return out + ["<p>No memory analysis in this run.</p>"]
    a = mem["agreement"]
    out += [f"<p>Every node judged under the <b>{_esc(mem['config'])}</b> config on {_esc(mem['device'])}: "
            "the memory model's prediction next to the allocator's verdict on the device.</p>",
            _table((["agree", "predicted only", "observed only", "no device verdict"],
                    [[a["agree"], a["predicted_only"], a["observed_only"], a["not_run"]]]))]
    if not mem["oom_nodes"]:
        return out + ["<p>No node is predicted or observed out of memory.</p>"]
    return out + [oom_plot([(o["node"], o) for o in mem["oom_nodes"][:OOM_PLOT_LIMIT]],
                           f"Out of memory under {mem['config']}"),
                  _more(OOM_PLOT_LIMIT, mem["oom_nodes"], "the table (plot shows the largest)"),
                  _table(t.oom_rows(run)), "<h3>Their tensors</h3>", _table(t.oom_shape_rows(run))]


def run_html(run: dict) -> str:
    title = f"{run['model']}: {t.fmt_pct(run['coverage']['device_pct'])} of aten nodes on the device"
    return _page(f"fxport: {run['model']}", [f"<h1>{_esc(title)}</h1>", *_run_sections(run),
                                             "<hr><p class=\"note\">Source of truth: run.json; every node: nodes.csv.</p>"])


def _heat(value, top: int) -> str:
    """A matrix cell shaded by its count (relative to the largest cell, for the eye only)."""
    if value == "":
        return ""
    alpha = 0.15 + 0.75 * value / top if top else 0.15
    return f'<span class="heat" style="background:rgba(239,108,0,{alpha:.2f})">{value}</span>'


def sweep_html(sweep: dict, runs: dict[str, dict]) -> str:
    dev = sweep["device"]
    entries = sweep["entries"]

    def link(e):
        href = t.report_link(e, "report.html")
        name = _esc(e["key"])
        return f'<a href="{_esc(href)}">{name}</a>' if href and e["key"] in runs else name

    overview = t.overview_rows(sweep, link)
    status_col = overview[0].index("status")
    for row in overview[1]:
        if row[status_col] != "OK":
            row[status_col] = f'<span class="failed">{_esc(row[status_col])}</span>'
    body = [f"<h1>fxport sweep on {_esc(dev.get('kind', '?'))} {_esc(dev.get('arch', ''))}: activations in "
            f"{_esc(sweep['memory_config'].upper())}, values {_esc(sweep['values'])}</h1>",
            _provenance(sweep["provenance"]),
            "<h2>Coverage per model</h2>",
            coverage_plot([e["key"] for e in entries], [e["coverage"] for e in entries], "aten nodes by where they ran"),
            _table(overview, raw=(0, status_col))]
    failed = [e for e in entries if e["status"] != "ok"]
    if failed:
        body += ["<h2>Failed entries</h2><ul>",
                 *[f'<li><b>{_esc(e["key"])}</b>: <span class="failed">{_esc(e["error"])}</span></li>' for e in failed],
                 "</ul>"]
    missing = [e["key"] for e in entries if e["status"] == "ok" and e["key"] not in runs]
    if missing:
        body.append(f'<p class="failed">Run documents missing (listed from sweep.json only): {_esc(", ".join(missing))}</p>')
    headers, rows = t.matrix_rows(sweep)
    top = max((c for r in rows for c in r[1:] if c != ""), default=0)
    body += ["<h2>Blocking matrix</h2>",
             "<p>Nodes of each op kept off the device (declined by the plan or failed at run time), per entry; "
             "blank: none." + (" Failed entries have no data." if failed else "") + "</p>",
             _table((headers, [[r[0], *(_heat(c, top) for c in r[1:])] for r in rows]),
                    raw=tuple(range(1, len(headers)))) if rows else "<p>No op blocks any entry.</p>",
             "<h2>Coverage by op family</h2>", family_heatmap(sweep), _table(t.family_matrix_rows(sweep))]
    body.append("<h2>Coverage by module</h2>")
    for key in t.ok_keys(sweep):
        if key in runs:
            body += [f"<details><summary>{_esc(key)}</summary>",
                     group_plot(runs[key]["coverage_by_module"], f"{key}: coverage by module"),
                     _table(t.group_rows(runs[key]["coverage_by_module"], "module")), "</details>"]
    body.append("<h2>Why nodes are not on the device, per entry</h2>")
    off = [k for k in t.ok_keys(sweep) if k in runs and (runs[k]["fallbacks"] or runs[k]["unsupported"])]
    for key in off:
        body += [f"<h3>{_esc(key)}</h3>", off_device_plot(runs[key])]
        if runs[key]["fallbacks"]:
            body.append(_table(t.fallback_kind_rows(runs[key])))
    if not off:
        body.append("<p>None in the entries with results: no node declined by the plan or fallen back.</p>")
    body.append("<h2>Out of memory</h2>")
    with_oom = [k for k in t.ok_keys(sweep) if k in runs and (runs[k]["memory"] or {}).get("oom_nodes")]
    oom = [(f"{k}: {o['node']}", o) for k in with_oom for o in runs[k]["memory"]["oom_nodes"][:t.OOM_PER_ENTRY]]
    if oom:
        body += [oom_plot(oom, "Out of memory: the largest nodes of each entry"),
                 '<p class="note">Per entry the largest OOM nodes; every node is in its report.</p>']
        for key in with_oom:
            rows = t.oom_rows(runs[key])
            body += [f"<h3>{_esc(key)}</h3>", _table(t.limited(rows, t.OOM_PER_ENTRY)),
                     _more(t.OOM_PER_ENTRY, rows[1], "its report")]
    else:
        body.append("<p>No entry has a node predicted or observed out of memory.</p>")
    body.append('<hr><p class="note">Source of truth: sweep.json and each entry\'s run.json; '
                "CSV: sweep.csv, blocking_matrix.csv.</p>")
    return _page("fxport sweep", body)
