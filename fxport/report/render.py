"""`fxport report` and `fxport compare`: read saved results from disk and write their renderings.

A run directory holds run.json; a sweep directory holds sweep.json and one sub-directory per
entry with that entry's run.json. Reading and writing files happens here only; the renderers
are pure functions of the documents.

Two sets of renderings: what people read and diff (report.md; index.md, sweep.csv,
blocking_matrix.csv), which `fxport run` and `fxport sweep` write, and what is built on demand
by `fxport report` (HTML pages with their plots as PNG files under plots/, and the per-node
files nodes.csv and oom_nodes.csv).

Every document read here is untrusted (docs/threat-model.md): it is checked before use
(`schema.problems`), and a path inside it is followed only when it resolves inside the directory
given (`durable.inside`), so a crafted sweep.json can neither make fxport read nor write anywhere
else. A damaged sweep entry (unreadable run.json, a path leading outside, a document that does
not render) is shown as DAMAGED with the reason, and the rest of the sweep renders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from fxport.durable import clear_folder, inside, read_regular, subdir, write_text
from fxport.errors import FxportError
from fxport.report import schema
from fxport.report.compare import RUN_SCHEMA, SWEEP_SCHEMA, Comparison, compare, compare_text
from fxport.report.html import PLOTS_DIR, HtmlPage, run_html, save_png, sweep_html
from fxport.report.markdown import run_markdown, sweep_markdown
from fxport.report.tables import write_blocking_csv, write_nodes_csv, write_oom_csv, write_sweep_csv

DAMAGED = "damaged"  # the status a reader gives a sweep entry it cannot use


def _read(path: Path) -> dict:
    """A run or sweep document, checked; a one-line FxportError naming the file otherwise."""
    try:
        doc = json.loads(read_regular(path))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise FxportError(f"cannot read {path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("schema") not in (RUN_SCHEMA, SWEEP_SCHEMA):
        found = doc.get("schema") if isinstance(doc, dict) else None
        raise FxportError(f"{path}: unknown schema {found!r} (this fxport reads {RUN_SCHEMA} and {SWEEP_SCHEMA})")
    wrong = schema.problems(doc, schema.RUN_FIELDS if doc["schema"] == RUN_SCHEMA else schema.SWEEP_FIELDS)
    if not wrong and doc["schema"] == RUN_SCHEMA and "estimate" in doc:
        wrong = [f"estimate: {w}" for w in schema.problems(doc["estimate"], schema.ESTIMATE_FIELDS)]
    if wrong:
        raise FxportError(f"{path}: damaged document ({'; '.join(wrong[:3])})")
    return doc


def read_run(path: Path) -> dict:
    doc = _read(path)
    if doc["schema"] != RUN_SCHEMA:
        raise FxportError(f"{path}: schema {doc['schema']!r} where {RUN_SCHEMA} belongs")
    return doc


def no_result_entry(key: str, model: str, input_shape: list[int], status: str, error: str) -> dict:
    """A sweep entry with no run behind it (failed, timed out, damaged): every summary field
    empty, so renderers read it like any other entry."""
    return {
        "key": key,
        "model": model,
        "input_shape": input_shape,
        "status": status,
        "error": error,
        "run": None,
        "coverage": None,
        "coverage_by_family": None,
        "coverage_by_module": None,
        "fallbacks": 0,
        "oom_nodes": 0,
        "unsupported_ops": 0,
        "output_pcc": [],
        "memory_agreement": None,
        "l1_share": None,
        "ttnn_calls": None,
        "accuracy": "not checked",
        "estimate": None,
    }


def _damaged(entry: object, index: int, reason: str) -> dict:
    """A placeholder entry for one the reader cannot use; keeps the key when there is one."""
    e = entry if isinstance(entry, dict) else {}
    key = e.get("key") if isinstance(e.get("key"), str) else f"entry {index + 1}"
    shape = e.get("input_shape") if isinstance(e.get("input_shape"), list) else []
    model = e.get("model") if isinstance(e.get("model"), str) else ""
    return no_result_entry(key, model, [d for d in shape if isinstance(d, int)], DAMAGED, reason)


def results_file(path: Path) -> Path:
    """The run.json or sweep.json that `path` (a file, or a run or sweep directory) stands for."""
    path = Path(path)
    if path.is_file():
        return path
    for name in ("sweep.json", "run.json"):
        if (path / name).is_file():
            return path / name
    if path.is_dir():
        raise FxportError(
            f"{path}: no run.json or sweep.json here (give the --out directory of `fxport run` or `fxport sweep`)"
        )
    raise FxportError(f"{path}: no such file or directory")


def load_results(path: Path) -> tuple[str, Path, dict, dict[str, dict]]:
    """(kind "run" or "sweep", directory, document, run documents by entry key) of a run or sweep
    directory, or of its run.json / sweep.json. A sweep entry whose run.json is gone is left out
    of the run documents (the renderings say so); one that is damaged, or whose path leads
    outside the directory, becomes a DAMAGED entry with the reason."""
    file = results_file(path)
    doc, directory = _read(file), file.parent
    if doc["schema"] == RUN_SCHEMA:
        return "run", directory, doc, {}
    runs, entries = {}, []
    for i, e in enumerate(doc["entries"]):
        wrong = schema.problems(e, schema.ENTRY_FIELDS)
        if wrong:
            entries.append(_damaged(e, i, f"damaged entry in sweep.json ({'; '.join(wrong[:3])})"))
            continue
        if e["status"] == "ok" and e["run"] is not None:
            run_path = inside(directory, e["run"])
            if run_path is None:
                entries.append(_damaged(e, i, f"its run path {e['run']!r} leads outside {directory}; not followed"))
                continue
            if run_path.is_file():
                try:
                    runs[e["key"]] = read_run(run_path)
                except FxportError as exc:
                    entries.append(_damaged(e, i, str(exc)))
                    continue
        entries.append(e)
    return "sweep", directory, {**doc, "entries": entries}, runs


@dataclass
class Rendered:
    written: list[Path] = field(default_factory=list)  # top-level files first
    damaged: dict[str, str] = field(default_factory=dict)  # sweep entry key -> why


def _write_html(path: Path, page: HtmlPage) -> list[Path]:
    """The page and its plots (plots/<name>.png beside it); plots of an earlier rendering that
    this one no longer has are removed."""
    plots = path.parent / PLOTS_DIR
    written = []
    if page.plots:
        plots = subdir(path.parent, PLOTS_DIR)
        for name, fig in page.plots.items():
            save_png(fig, plots / name)
            written.append(plots / name)
    clear_folder(plots, "*.png", keep=set(page.plots))
    return [write_text(path, page.text), *written]


# A document missing what a page needs, or holding what no page expects (values nested past the
# recursion limit, integers too large for a float)
_DAMAGE = (
    KeyError,
    TypeError,
    ValueError,
    AttributeError,
    IndexError,
    RecursionError,
    OverflowError,
    ZeroDivisionError,
)


def _render_run(run: dict, directory: Path, html: bool) -> list[Path]:
    """Render everything first, then write: a document that does not render writes nothing."""
    try:
        markdown = run_markdown(run)
        page = run_html(run) if html else None
        written = [write_text(directory / "report.md", markdown)]
        if page is not None:
            written += _write_html(directory / "report.html", page)
            written.append(write_nodes_csv(run, directory / "nodes.csv"))
            if run["memory"] is not None:
                written.append(write_oom_csv(run, directory / "oom_nodes.csv"))
    except _DAMAGE as exc:
        raise _damage_error(directory / "run.json", exc) from None
    return written


def _damage_error(path: Path, exc: BaseException) -> FxportError:
    what = " ".join(str(exc).split())[:160]
    return FxportError(f"{path}: damaged document ({type(exc).__name__}: {what})")


def render_results(path: Path, html: bool = True) -> Rendered:
    """Write the renderings of a run directory (report.md; with `html`, report.html and its plots,
    nodes.csv, oom_nodes.csv) or of a sweep directory (index.md, sweep.csv, blocking_matrix.csv;
    with `html`, index.html and its plots; then each entry's renderings). Damaged sweep entries
    are rendered as DAMAGED and listed in `damaged`."""
    kind, directory, doc, runs = load_results(path)
    if kind == "run":
        return Rendered(_render_run(doc, directory, html))
    _refuse_partial(doc, directory, runs)
    done = Rendered()
    entry_files = []
    for i, e in enumerate(doc["entries"]):
        if e["key"] not in runs:
            continue
        try:
            entry_files += _render_run(runs[e["key"]], inside(directory, e["run"]).parent, html)
        except FxportError as exc:  # marked here, rendered as damaged in the index
            runs.pop(e["key"])
            doc["entries"][i] = _damaged(e, i, str(exc))
    done.damaged = {e["key"]: e["error"] for e in doc["entries"] if e["status"] == DAMAGED}
    try:
        markdown = sweep_markdown(doc, runs)
        page = sweep_html(doc, runs) if html else None
        done.written = [
            write_text(directory / "index.md", markdown),
            write_sweep_csv(doc, directory / "sweep.csv"),
            write_blocking_csv(doc, directory / "blocking_matrix.csv"),
        ]
        if page is not None:
            done.written += _write_html(directory / "index.html", page)
    except _DAMAGE as exc:
        raise _damage_error(directory / "sweep.json", exc) from None
    done.written += entry_files
    return done


def _refuse_partial(sweep: dict, directory: Path, runs: dict[str, dict]) -> None:
    """A sweep whose run documents are gone (the checked-in reports/ keep sweep.json and the
    Markdown only) cannot be rendered again in full: rewriting its index.md from sweep.json alone
    would replace every entry's figures with "missing". So nothing is written."""
    ok = [e["key"] for e in sweep["entries"] if e["status"] == "ok"]
    missing = [k for k in ok if k not in runs]
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise FxportError(
            f"{directory}: the run documents of {len(missing)} of {len(ok)} entries are missing "
            f"({shown}), so its reports cannot be rebuilt in full and nothing was written; "
            f"hint: rerun the sweep into a directory of its own (`fxport sweep ... --out DIR`) "
            f"and render that"
        )


def render_dir(path: Path, html: bool = True) -> list[Path]:
    """The files `render_results` writes (top-level ones first)."""
    return render_results(path, html).written


def compare_dirs(a: Path, b: Path) -> Comparison:
    """Compare two saved runs, or two saved sweeps (entry by entry, node by node where both
    entries' run documents are there)."""
    kind_a, _, doc_a, runs_a = load_results(a)
    kind_b, _, doc_b, runs_b = load_results(b)
    if kind_a != kind_b:
        raise FxportError(f"cannot compare a {kind_a} ({a}) with a {kind_b} ({b})")
    try:
        comparison = compare(doc_a, doc_b, runs_a, runs_b)
    except _DAMAGE as exc:
        raise _compare_error(a, b, exc) from None
    comparison.a, comparison.b = f"{a}: {comparison.a}", f"{b}: {comparison.b}"
    return comparison


def _compare_error(a: Path, b: Path, exc: BaseException) -> FxportError:
    return FxportError(
        f"cannot compare {a} and {b}: a damaged document ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})"
    )


def comparison_text(a: Path, b: Path) -> str:
    """`fxport compare`'s text; a one-line FxportError for a document it cannot use."""
    comparison = compare_dirs(a, b)
    try:
        return compare_text(comparison)
    except _DAMAGE as exc:
        raise _compare_error(a, b, exc) from None
