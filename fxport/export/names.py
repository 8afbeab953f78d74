"""Names and literals for generated code. Everything taken from a model (module paths, node names,
state_dict keys) reaches the program as an escaped identifier, a `repr` string literal or a
one-line comment: never as code."""

from __future__ import annotations

import keyword
import math
import re

_UNSAFE = re.compile(r"[^0-9A-Za-z_]")


def identifier(text: str, default: str = "t") -> str:
    """A Python identifier made from `text` (ASCII letters, digits and underscores only)."""
    name = _UNSAFE.sub("_", str(text)).strip("_") or default
    name = re.sub(r"_+", "_", name)
    if name[0].isdigit():
        name = f"{default}_{name}"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in ("self", "ttnn", "torch", "params"):
        name = f"{name}_"
    return name


def class_name(text: str) -> str:
    name = identifier(text, "Model")
    return name[0].upper() + name[1:]


def comment(text: str, limit: int = 160) -> str:
    """One line of comment text: control characters (newlines) replaced, length bounded."""
    line = "".join(c if c.isprintable() else " " for c in str(text))
    return " ".join(line.split())[:limit]


def float_literal(value: float) -> str:
    if math.isnan(value):
        return 'float("nan")'
    if math.isinf(value):
        return 'float("inf")' if value > 0 else 'float("-inf")'
    return repr(value)


class Namer:
    """Unique names in one scope."""

    def __init__(self, taken: tuple[str, ...] = ()):
        self._used: dict[str, int] = dict.fromkeys(taken, 1)

    def __call__(self, base: str) -> str:
        root = identifier(base)
        name, n = root, self._used.get(root, 0)
        while name in self._used:
            n += 1
            name = f"{root}_{n}"
        self._used[root] = n
        self._used[name] = 0
        return name
