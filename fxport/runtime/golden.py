"""Golden functions: the torch computation behind each ttnn op, used for values on a mock device.

ttnn attaches a golden function to almost every op; the few without one are listed here.
"""

from __future__ import annotations

from typing import Any, Callable

# ttnn ops without a golden function in ttnn 0.81.1 that lowerings use, with their torch meaning.
_MISSING: dict[str, Callable[..., Any]] = {}


class NoGoldenFunction(RuntimeError):
    pass


def golden_function(name: str, op: Any) -> Callable[..., Any]:
    fn = getattr(op, "golden_function", None)
    if fn is not None:
        return fn
    if name in _MISSING:
        return _MISSING[name]
    raise NoGoldenFunction(f"ttnn.{name} has no golden function: its values cannot be emulated")
