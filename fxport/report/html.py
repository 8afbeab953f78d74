"""HTML renderings of the report pages (fxport/report/pages.py): report.html and index.html.

A page is an HTML file with inline CSS and no scripts or external resources; its plots are PNG
files beside it (`plots/<name>.png`, drawn with matplotlib's Agg canvas through `Figure`, so no
global pyplot state), which `fxport report` writes. Formatting only: every number comes from the
documents or fxport/report/compare.py.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass
from typing import Any

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from tabulate import tabulate

from fxport.durable import atomic_open
from fxport.report import pages as p
from fxport.report import tables as t
from fxport.report.compare import fallback_kinds

PLOTS_DIR = "plots"

COLORS = {"on device": "#2e7d32", "fell back at run time": "#ef6c00", "host (plan)": "#9e9e9e", "not run": "#d7ccc8"}
LOWERED = "#ffb74d"  # lowered by the plan but not on the device
SEVERITY = {"critical": "#b71c1c", "high": "#e65100", "medium": "#f9a825", "low": "#7cb342"}

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1400px;
padding:16px 24px;color:#212121}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 16px;font-size:12.5px}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top;max-width:520px;
overflow-wrap:break-word}
.wide{overflow-x:auto;max-width:100%}
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


def save_png(fig: Figure, path) -> None:
    """The plot as a PNG file; no timestamp or version metadata, so the bytes follow the data.
    Labels hold names read from documents: they are drawn as plain text (a "$" would start
    mathtext, which fails on malformed input), and a glyph the font lacks is a box, not a warning."""
    for text in fig.findobj(Text):
        text.set_parse_math(False)
    with rc_context({"text.parse_math": False}), warnings.catch_warnings(), atomic_open(path, "wb") as f:
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(f, format="png", dpi=96, bbox_inches="tight", metadata={"Software": None})


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


def coverage_plot(labels: list[str], coverages: list[dict | None], title: str) -> Figure:
    """Stacked bars per model: on device / fell back / host / not run (None: a failed entry)."""
    fig, ax = _figure(title, len(labels))
    cov = [c or {} for c in coverages]
    _stacked(
        ax,
        labels,
        [
            ("on device", [c.get("on_device", 0) for c in cov]),
            ("fell back at run time", [c.get("fallback", 0) for c in cov]),
            ("host (plan)", [c.get("host", 0) for c in cov]),
            ("not run", [c.get("not_run", 0) for c in cov]),
        ],
    )
    for i, c in enumerate(coverages):
        if c is None:
            ax.text(0, i, "  FAILED (no result)", va="center", color="#b71c1c", fontsize=9)
        else:
            ax.text(c["total"], i, f"  {c['device_pct']:.1f}% on device", va="center", fontsize=8)
    ax.set_title(title, fontsize=11)
    return fig


def group_plot(groups: dict[str, dict], title: str) -> Figure:
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
    return fig


def off_device_plot(run: dict) -> Figure:
    """Why nodes are off the device: plan declines per op and run-time fallbacks per kind and op."""
    bars = [(f"declined: {u['target']}", u["count"], COLORS["host (plan)"]) for u in run["unsupported"]] + [
        (f"{g['kind']}: {g['target']}", g["nodes"], COLORS["fell back at run time"]) for g in fallback_kinds(run)
    ]
    fig, ax = _figure("off-device reasons", len(bars))
    ax.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    for i, b in enumerate(bars):
        ax.text(b[1], i, f" {b[1]}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("aten nodes (grey: declined by the plan; orange: fell back at run time, by error kind)")
    ax.set_title("Why nodes are not on the device", fontsize=11)
    return fig


def oom_plot(nodes: list[tuple[str, dict]], title: str) -> Figure:
    """Need of the fullest bank vs the bank size, log scale, coloured by severity; `nodes` is
    [(label, oom node)] as they are to be shown."""
    fig, ax = _figure(title, len(nodes))
    labels = [label for label, _ in nodes]
    ax.barh(labels, [o["per_bank"] for _, o in nodes], color=[SEVERITY.get(o["severity"], "#757575") for _, o in nodes])
    ax.scatter(
        [o["bank_size"] for _, o in nodes], labels, marker="|", s=220, color="black", zorder=3, label="bank size"
    )
    for i, (_, o) in enumerate(nodes):
        # Right of both the bar's end and the bank-size marker, so the text never runs into either
        ax.text(
            max(o["per_bank"], o["bank_size"]) * 1.25,
            i,
            f"needs {t.fmt_bytes(o['per_bank'])}; {o['config']} bank {o['bank_size']:,} B",
            va="center",
            fontsize=7.5,
        )
    for sev, color in SEVERITY.items():
        ax.barh([labels[0]], [0], color=color, label=sev)  # legend entries only
    ax.set_xscale("log")
    # Decades only, labelled as plain text ("1 MiB"; no mathtext, which save_png turns off)
    ax.xaxis.set_major_locator(LogLocator(base=10, numticks=12))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _short_bytes(x)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    # Bars start well left of the smallest value, so short bars stay visible on the log axis; the
    # right end leaves room for the labels.
    ax.set_xlim(
        left=min(min(o["per_bank"], o["bank_size"]) for _, o in nodes) / 4,
        right=max(max(o["per_bank"], o["bank_size"]) for _, o in nodes) * 60,
    )
    ax.invert_yaxis()
    ax.set_xlabel("bytes per bank (log scale): bar = need of the fullest bank, | = bank size")
    ax.set_title(title, fontsize=11)
    _legend(fig, 5)
    return fig


def _short_bytes(x: float) -> str:
    """A decade tick of the log axis in SI units: 100 kB, 1 MB, 10 MB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if x >= size:
            return f"{x / size:g} {unit}"
    return f"{x:g} B"


def time_modules_plot(run: dict) -> Figure:
    """Estimated time per module: device, host and transfer milliseconds stacked."""
    mods = sorted(run["estimate"]["by_module"].items(), key=lambda kv: -kv[1]["total_ms"])
    fig, ax = _figure("estimated time by module", len(mods))
    names = [m for m, _ in mods]
    left = [0.0] * len(mods)
    for key, label, color in (
        ("device_ms", "device", COLORS["on device"]),
        ("host_ms", "host", COLORS["host (plan)"]),
        ("transfer_ms", "transfers", COLORS["fell back at run time"]),
    ):
        values = [d[key] for _, d in mods]
        ax.barh(names, values, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, values)]
    for i, (_, d) in enumerate(mods):
        ax.text(d["total_ms"], i, f" {d['total_ms']:.3f} ms", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"estimated ms per inference on {run['estimate']['arch']} (cost model)")
    ax.set_title("Where the time goes (estimated)", fontsize=11)
    _legend(fig, 3)
    return fig


def latency_coverage_plot(entries: list[dict]) -> Figure:
    """Every entry with an estimate: latency (log) against the share of nodes on the device."""
    fig = Figure(figsize=(9.0, 5.5), label="estimated latency vs coverage")
    ax = fig.add_subplot()
    for e in entries:
        x, y = (e["coverage"] or {}).get("device_pct", 0.0), e["estimate"]["latency_ms"]
        ax.scatter([x], [y], color=COLORS["on device"])
        ax.annotate(e["key"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")  # the pages render text without mathtext
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(plain)
    ax.set_xlim(min([0.0, *(ax.get_xlim()[:1])]), 102)
    ax.set_xlabel("aten nodes on the device (%)")
    ax.set_ylabel("estimated latency per inference (ms, log)")
    ax.set_title("Estimated latency vs coverage", fontsize=11)
    fig.tight_layout()
    return fig


def family_heatmap(sweep: dict) -> Figure | None:
    families = sorted({f for e in sweep["entries"] for f in (e["coverage_by_family"] or {})})
    if not families:  # every entry failed: the overview table says so, there is nothing to plot
        return None
    entries = sweep["entries"]
    fig = Figure(
        figsize=(2.5 + 0.9 * max(len(families), 1), 1.4 + 0.35 * len(entries)),
        label="family coverage",
        layout="constrained",
    )
    ax = fig.add_subplot()
    ax.set_facecolor("#eeeeee")  # cells without a value (NaN) show the background
    grid = [
        [(e["coverage_by_family"] or {}).get(f, {}).get("lowered_pct", float("nan")) for f in families] for e in entries
    ]
    image = ax.imshow(grid, cmap="RdYlGn", vmin=0, vmax=100, aspect="auto")
    for i, (e, row) in enumerate(zip(entries, grid)):
        if e["status"] != "ok":
            ax.text(
                (len(families) - 1) / 2, i, "FAILED (no result)", ha="center", va="center", color="#b71c1c", fontsize=9
            )
        for j, v in enumerate(row):
            if v == v:  # not NaN
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(families)), families, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(entries)), [e["key"] for e in entries], fontsize=8)
    fig.colorbar(image, ax=ax, label="lowered % (grey: no node of the family)")
    ax.set_title("Lowered % by op family", fontsize=11)
    return fig


# What each pages.Plot kind draws.
PLOTS = {
    "coverage": coverage_plot,
    "groups": group_plot,
    "off_device": off_device_plot,
    "oom": oom_plot,
    "family_heatmap": family_heatmap,
    "time_modules": time_modules_plot,
    "latency_coverage": latency_coverage_plot,
}


@dataclass
class HtmlPage:
    text: str
    plots: dict[str, Figure]  # file name under PLOTS_DIR -> figure


def _value(v: Any) -> str:
    if isinstance(v, p.Link):
        return f'<a href="{_esc(v.target)}.html">{_esc(v.text)}</a>'
    if isinstance(v, p.Flag):
        return f'<span class="failed">{_esc(v.text)}</span>'
    if isinstance(v, p.Heat):
        alpha = 0.15 + 0.75 * v.value / v.top if v.top else 0.15
        return f'<span class="heat" style="background:rgba(239,108,0,{alpha:.2f})">{v.value}</span>'
    if isinstance(v, tuple):
        return "".join(_value(x) for x in v)
    return _esc(v)


def _table(rows: t.Rows) -> str:
    """A table that never breaks a word to fit (a column is as wide as its longest word, up to
    the cell's max-width; a wider table scrolls sideways inside its box)."""
    headers, body = rows
    return (
        '<div class="wide">'
        + tabulate(
            [[_value(c) for c in r] for r in body],
            headers=[_esc(h) for h in headers],
            tablefmt="unsafehtml",
            disable_numparse=True,
        )
        + "</div>"
    )


class _Renderer:
    def __init__(self) -> None:
        self.plots: dict[str, Figure] = {}

    def block(self, b: Any) -> list[str]:
        if isinstance(b, p.Facts):
            return [
                '<ul class="facts">',
                *(f"<li><b>{_esc(label)}:</b> {_value(v)}</li>" for label, v in b.items),
                "</ul>",
            ]
        if isinstance(b, p.Provenance):
            rows = (["aspect", "what it is"], [[k.replace("_", " "), v] for k, v in sorted(b.provenance.items())])
            return ['<div class="provenance"><b>What is real, predicted and emulated</b>' + _table(rows) + "</div>"]
        if isinstance(b, p.Text):
            css = "note" if b.note else "failed" if b.failed else ""
            return [f'<p class="{css}">{_esc(b.text)}</p>' if css else f"<p>{_esc(b.text)}</p>"]
        if isinstance(b, p.Bullets):
            return ["<ul>", *(f"<li><b>{_esc(label)}</b>: {_value(v)}</li>" for label, v in b.items), "</ul>"]
        if isinstance(b, p.Table):
            shown = b.rows[1] if b.limit is None else b.rows[1][: b.limit]
            out = [_table((b.rows[0], shown))]
            if len(b.rows[1]) > len(shown):
                out.append(f'<p class="note">{len(b.rows[1]) - len(shown)} more in {_esc(b.more_in)}.</p>')
            return [f"<details><summary>{_esc(b.fold)}</summary>", *out, "</details>"] if b.fold else out
        if isinstance(b, p.Plot):
            fig = PLOTS[b.kind](*b.args)
            if fig is None:
                return ['<p class="note">Nothing to plot: no entry produced a result.</p>']
            name = f"{b.name}.png"
            self.plots[name] = fig
            return [f'<img alt="{_esc(fig.get_label())}" src="{PLOTS_DIR}/{_esc(name)}">']
        if isinstance(b, p.Section):
            body = [line for x in b.blocks for line in self.block(x)]
            if b.fold:
                return [f"<details><summary>{_esc(b.title)}</summary>", *body, "</details>"]
            return [f"<h{b.level}>{_esc(b.title)}</h{b.level}>", *body]
        raise TypeError(f"no HTML for {type(b).__name__}")


def render(page: p.Page) -> HtmlPage:
    r = _Renderer()
    body = [f"<h1>{_esc(page.heading)}</h1>", *(line for b in page.blocks for line in r.block(b))]
    text = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(page.title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    return HtmlPage(text, r.plots)


def run_html(run: dict) -> HtmlPage:
    return render(p.run_page(run))


def sweep_html(sweep: dict, runs: dict[str, dict]) -> HtmlPage:
    return render(p.sweep_page(sweep, runs))
