"""Progress on stderr for the steps of a command that take more than a moment.

Off by default: library calls, tests and sweep workers print nothing. The command line turns it
on for an interactive terminal (`enable`) unless `--quiet` is given; output goes to stderr, so
that stdout (the summary) stays clean for pipes. A step is one line that says what is being done
and, when it ends, how long it took; a step over many items (the nodes of an execution) counts
them with a tqdm bar.

A leaf module with no heavy import: the command line uses it before torch is imported.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from typing import Any, Iterator, TextIO

_stream: TextIO | None = None  # where progress goes; None: off


def enable(stream: TextIO | None) -> None:
    """Send progress to `stream` (None turns it off)."""
    global _stream
    _stream = stream


def enabled() -> bool:
    return _stream is not None


def wanted(quiet: bool, stream: TextIO | None = None) -> TextIO | None:
    """The stream progress should go to: an interactive stderr unless `quiet`."""
    stream = sys.stderr if stream is None else stream
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):
        interactive = False
    return stream if interactive and not quiet else None


def note(text: str) -> None:
    """One line of progress."""
    if _stream is not None:
        _stream.write(f"fxport: {text}\n")
        _stream.flush()


@contextlib.contextmanager
def step(label: str) -> Iterator[None]:
    """`label...` when the step starts, `label: 2.3 s` when it ends."""
    if _stream is None:
        yield
        return
    start = time.perf_counter()
    note(f"{label}...")
    try:
        yield
    finally:
        note(f"{label}: {time.perf_counter() - start:.1f} s")


class _Counter:
    """A tqdm bar over `total` items; a no-op when progress is off."""

    def __init__(self, label: str, total: int, unit: str):
        self.bar: Any = None
        if _stream is not None and total > 0:
            from tqdm import tqdm

            # A terminal that reports no size (0 x 0, as a bare pseudo-terminal does) still gets a
            # bar: tqdm hides bars below a screen height of 0
            size = shutil.get_terminal_size((100, 24))
            self.bar = tqdm(
                total=total,
                desc=f"fxport: {label}",
                unit=f" {unit}",
                file=_stream,
                leave=True,
                mininterval=0.25,
                ncols=min(size.columns or 100, 120),
                nrows=size.lines or 24,
            )

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@contextlib.contextmanager
def counter(label: str, total: int, unit: str = "nodes") -> Iterator[_Counter]:
    bar = _Counter(label, total, unit)
    try:
        yield bar
    finally:
        bar.close()
