"""`fxport report` and `fxport compare`: read saved results from disk and write their renderings.

A run directory holds run.json; a sweep directory holds sweep.json and one sub-directory per
entry with that entry's run.json. Reading and writing files happens here only; the renderers
are pure functions of the documents.

Two sets of renderings: what people read and diff (report.md; index.md, sweep.csv,
blocking_matrix.csv), which `fxport run` and `fxport sweep` write, and what is built on demand
by `fxport report` (HTML pages with their plots as PNG files under plots/, and the per-node
files nodes.csv and oom_nodes.csv).
"""

from __future__ import annotations

import json
from pathlib import Path

from fxport.errors import FxportError
from fxport.report.compare import RUN_SCHEMA, SWEEP_SCHEMA, Comparison, compare
from fxport.report.html import PLOTS_DIR, HtmlPage, run_html, save_png, sweep_html
from fxport.report.markdown import run_markdown, sweep_markdown
from fxport.report.tables import write_blocking_csv, write_nodes_csv, write_oom_csv, write_sweep_csv


def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FxportError(f"cannot read {path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("schema") not in (RUN_SCHEMA, SWEEP_SCHEMA):
        found = doc.get("schema") if isinstance(doc, dict) else None
        raise FxportError(f"{path}: unknown schema {found!r} (this fxport reads {RUN_SCHEMA} and {SWEEP_SCHEMA})")
    return doc


def load_results(path: Path) -> tuple[str, Path, dict, dict[str, dict]]:
    """(kind "run" or "sweep", directory, document, run documents by entry key) of a run or sweep
    directory, or of its run.json / sweep.json. A sweep entry whose run.json is gone is left out
    of the run documents; the renderings say so."""
    path = Path(path)
    if path.is_file():
        file = path
    elif (path / "sweep.json").is_file():
        file = path / "sweep.json"
    elif (path / "run.json").is_file():
        file = path / "run.json"
    elif path.is_dir():
        raise FxportError(f"{path}: no run.json or sweep.json here (give the --out directory of "
                          "`fxport run` or `fxport sweep`)")
    else:
        raise FxportError(f"{path}: no such file or directory")
    doc, directory = _read(file), file.parent
    if doc["schema"] == RUN_SCHEMA:
        return "run", directory, doc, {}
    runs = {}
    for e in doc["entries"]:
        if e["status"] == "ok" and e["run"] and (directory / e["run"]).is_file():
            run = _read(directory / e["run"])
            if run["schema"] != RUN_SCHEMA:
                raise FxportError(f"{directory / e['run']}: schema {run['schema']!r} where {RUN_SCHEMA} belongs")
            runs[e["key"]] = run
    return "sweep", directory, doc, runs


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _write_html(path: Path, page: HtmlPage) -> list[Path]:
    """The page and its plots (plots/<name>.png beside it); plots of an earlier rendering that
    this one no longer has are removed."""
    plots = path.parent / PLOTS_DIR
    written = []
    if page.plots:
        plots.mkdir(exist_ok=True)
        for name, fig in page.plots.items():
            save_png(fig, plots / name)
            written.append(plots / name)
    for old in plots.glob("*.png") if plots.is_dir() else ():
        if old.name not in page.plots:
            old.unlink()
    return [_write(path, page.text), *written]


def _render_run(run: dict, directory: Path, html: bool) -> list[Path]:
    written = [_write(directory / "report.md", run_markdown(run))]
    if html:
        written += _write_html(directory / "report.html", run_html(run))
        written.append(write_nodes_csv(run, directory / "nodes.csv"))
        if run["memory"] is not None:
            written.append(write_oom_csv(run, directory / "oom_nodes.csv"))
    return written


def render_dir(path: Path, html: bool = True) -> list[Path]:
    """Write the renderings of a run directory (report.md; with `html`, report.html and its plots,
    nodes.csv, oom_nodes.csv) or of a sweep directory (index.md, sweep.csv, blocking_matrix.csv;
    with `html`, index.html and its plots; then each entry's renderings); returns the files
    written, the top-level ones first."""
    kind, directory, doc, runs = load_results(path)
    if kind == "run":
        return _render_run(doc, directory, html)
    written = [_write(directory / "index.md", sweep_markdown(doc, runs)),
               write_sweep_csv(doc, directory / "sweep.csv"),
               write_blocking_csv(doc, directory / "blocking_matrix.csv")]
    if html:
        written += _write_html(directory / "index.html", sweep_html(doc, runs))
    for e in doc["entries"]:
        if e["key"] in runs:
            written += _render_run(runs[e["key"]], (directory / e["run"]).parent, html)
    return written


def compare_dirs(a: Path, b: Path) -> Comparison:
    """Compare two saved runs, or two saved sweeps (entry by entry, node by node where both
    entries' run documents are there)."""
    kind_a, _, doc_a, runs_a = load_results(a)
    kind_b, _, doc_b, runs_b = load_results(b)
    if kind_a != kind_b:
        raise FxportError(f"cannot compare a {kind_a} ({a}) with a {kind_b} ({b})")
    comparison = compare(doc_a, doc_b, runs_a, runs_b)
    comparison.a, comparison.b = f"{a}: {comparison.a}", f"{b}: {comparison.b}"
    return comparison
