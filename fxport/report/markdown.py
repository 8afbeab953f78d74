"""Markdown renderings of the report pages (fxport/report/pages.py): report.md and index.md.

Formatting only. Tables are GitHub pipe tables without column padding, so that a change to one
cell changes one line of the file, not every row of its table; plots are HTML-only.
"""

from __future__ import annotations

from typing import Any

from fxport.report import pages as p


def _cell(v: Any) -> str:
    # GitHub Markdown: a pipe ends a cell, a newline ends the row, <...> would be read as HTML,
    # [text](target) and a bare http:// would be live links (names come from the model's code).
    text = str(v).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")
    return text.replace("[", "\\[").replace("]", "\\]").replace("://", ":\\/\\/")


def _value(v: Any) -> str:
    if isinstance(v, p.Link):
        return f"[{_cell(v.text)}]({v.target}.md)"
    if isinstance(v, p.Flag):
        return _cell(v.text)
    if isinstance(v, p.Heat):
        return str(v.value)
    if isinstance(v, tuple):
        return "".join(_value(x) for x in v)
    return _cell(v)


def _row(cells: list) -> str:
    return "| " + " | ".join(cells) + " |"


def table(rows, limit: int | None = None, more_in: str = "") -> list[str]:
    headers, body = rows
    shown = body if limit is None else body[:limit]
    lines = [
        _row([_cell(h) for h in headers]),
        "|" + "---|" * len(headers),
        *(_row([_value(c) for c in r]) for r in shown),
    ]
    if len(body) > len(shown):
        lines += ["", f"_{len(body) - len(shown)} more in {more_in}._"]
    return lines


def _folded(summary: str, lines: list[str]) -> list[str]:
    return [f"<details><summary>{_cell(summary)}</summary>", "", *lines, "", "</details>"]


def _block(b: Any) -> list[str]:
    if isinstance(b, p.Facts):
        return [f"- **{label}:** {_value(v)}" for label, v in b.items]
    if isinstance(b, p.Provenance):
        return [
            "## What is real, predicted and emulated",
            "",
            *table((["aspect", "what it is"], [[k.replace("_", " "), v] for k, v in sorted(b.provenance.items())])),
        ]
    if isinstance(b, p.Text):
        return [f"_{_cell(b.text)}_" if b.note else _cell(b.text)]
    if isinstance(b, p.Bullets):
        return [f"- **{_cell(label)}**: {_value(v)}" for label, v in b.items]
    if isinstance(b, p.Table):
        lines = table(b.rows, b.limit, b.more_in)
        return _folded(b.fold, lines) if b.fold else lines
    if isinstance(b, p.Plot):
        return []
    if isinstance(b, p.Section):
        body = _blocks(b.blocks)
        if b.fold:
            return _folded(b.title, body)
        return ["#" * b.level + " " + _cell(b.title), "", *body]
    raise TypeError(f"no Markdown for {type(b).__name__}")


def _blocks(blocks) -> list[str]:
    lines: list[str] = []
    for b in blocks:
        rendered = _block(b)
        if rendered:
            lines += [*rendered, ""]
    return lines[:-1]


def render(page: p.Page) -> str:
    return "\n".join([f"# {_cell(page.heading)}", "", *_blocks(page.blocks)]) + "\n"


def run_markdown(run: dict) -> str:
    return render(p.run_page(run))


def sweep_markdown(sweep: dict, runs: dict[str, dict]) -> str:
    return render(p.sweep_page(sweep, runs))
