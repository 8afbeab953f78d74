"""Python's cyclic garbage collector paused for a graph stage (plan, partition, memory walk).

Those stages make hundreds of thousands of small objects (fx nodes, verdicts, allocator blocks)
next to a captured graph of as many more (nodes, their metadata, fake tensors), and almost none of
them becomes cyclic garbage while the stage runs. The collector's full collections trace that
whole heap, again and again as it grows: on a 20k-node graph they were 40% of the partition and
memory stages (measured with bench/scale.py). Paused, the stage allocates as it did; whatever
cycles it dropped are collected when the collector runs next, after the stage.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from typing import Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside; the collector's state (on, or off by a caller) is restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def without_gc(fn: F) -> F:
    """Decorator: `fn` runs with the collector paused (see gc_paused)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with gc_paused():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


__all__ = ["gc_paused", "without_gc"]
