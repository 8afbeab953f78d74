"""Tables for the terminal: every line fits TERMINAL_WIDTH columns and nothing is dropped silently.

A long cell wraps onto more lines (words are never split, so a number is never cut in two); a
table showing the first rows of many ends with a line saying how many were left out and where
the rest is.
"""

from __future__ import annotations

from tabulate import tabulate

TERMINAL_WIDTH = 120
_GAP = 2  # between columns, tabulate's "simple" format


def more_line(left_out: int, where: str, what: str = "rows") -> str:
    return f"... {left_out} more {what} in {where}"


def terminal_table(
    headers: list[str],
    rows: list[list],
    total: int | None = None,
    where: str = "",
    width: int = TERMINAL_WIDTH,
    what: str = "rows",
) -> str:
    """`rows` as a table at most `width` columns wide. `total`: how many rows there are in all
    (when `rows` are the first of them); `where`: where the rest is (a file)."""
    cells = [[_text(c) for c in row] for row in rows]
    # tabulate makes a column 2 wider than its header's longest line
    widths = [max([_longest_line(headers[i]) + 2] + [_longest_line(r[i]) for r in cells]) for i in range(len(headers))]
    # The narrowest a column can be: its longest word (a header may wrap too)
    floors = [max([_longest_word(headers[i]) + 2] + [_longest_word(r[i]) for r in cells]) for i in range(len(headers))]
    budget = width
    while True:
        limits = _limits(widths, floors, budget)
        wrapped = [[_wrap(c, limits[i]) for i, c in enumerate(row)] for row in rows]
        table = tabulate(wrapped, headers=[_wrap(h, limits[i] - 2) for i, h in enumerate(headers)], tablefmt="simple")
        excess = max((len(line) for line in table.splitlines()), default=0) - width
        # tabulate pads some columns beyond their cells: take the excess off the budget and retry
        if excess <= 0 or limits == floors or budget <= 0:
            break
        budget -= excess
    left_out = (total or 0) - len(rows)
    if left_out > 0:
        table += "\n" + more_line(left_out, where or "the report", what)
    return table


def _limits(widths: list[int], floors: list[int], budget: int) -> list[int]:
    """Column widths that fit `budget` (with the gaps), taken off the widest columns first,
    never below a column's longest word."""
    limits = list(widths)
    while sum(limits) + _GAP * (len(limits) - 1) > budget:
        shrinkable = [i for i in range(len(limits)) if limits[i] > floors[i]]
        if not shrinkable:
            break  # single words wider than the terminal: nothing to wrap at
        widest = max(shrinkable, key=lambda i: limits[i])
        limits[widest] -= 1
    return limits


def _text(cell) -> str:
    return "" if cell is None else str(cell)


def _longest_line(text) -> int:
    return max((len(line) for line in _text(text).splitlines()), default=0)


def _longest_word(text) -> int:
    return max((len(w) for w in _text(text).split()), default=0)


def _wrap(cell, limit: int):
    """Wrap text at spaces within `limit`; numbers stay numbers (right-aligned)."""
    if not isinstance(cell, str) or len(cell) <= limit:
        return cell
    import textwrap

    return "\n".join(textwrap.wrap(cell, limit, break_long_words=False, break_on_hyphens=False))
