"""Capability checks shared by the mapping rules. Each says what it requires and returns a reason
string when a node does not meet it (`fxport.mapping.registry.Check`).

Checks read only the node's metadata (shapes, dtypes, arguments from capture), so planning needs
no device and no real tensors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from fxport.dtypes import FLOAT, name_of
from fxport.mapping.registry import Check, check

# The floating-point dtypes TT-NN computes in (bf16; fp32 kept where a rule left it). float64 has
# no TT-NN form (ttnn.from_torch rejects it), so rules decline it.
FLOAT_DTYPES = frozenset(getattr(torch, n) for n in FLOAT - {"float64"})
INT_DTYPES = frozenset({torch.int32, torch.int64, torch.int16, torch.int8, torch.uint8})
# TT-NN tensors are at most rank 8; most ops (tiled kernels) assume rank <= 4 with the last two
# dims tiled. Rules state their own limit.
DEFAULT_MAX_RANK = 4


def arg(node: fx.Node, index: int, name: str, default: Any = None) -> Any:
    """The value of argument `name` (positional `index`) as captured: fx nodes stay nodes."""
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def meta(value: Any) -> Any:
    """The captured example value (a fake/meta tensor) behind an fx node argument."""
    return value.meta.get("val") if isinstance(value, fx.Node) else value


def tensor_inputs(node: fx.Node) -> list[torch.Tensor]:
    out = []
    for a in node.all_input_nodes:
        v = a.meta.get("val")
        if isinstance(v, torch.Tensor):
            out.append(v)
    return out


def output(node: fx.Node) -> torch.Tensor | None:
    v = node.meta.get("val")
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    return v if isinstance(v, torch.Tensor) else None


def dtypes(allowed: frozenset = FLOAT_DTYPES, what: str = "floating-point") -> Check:
    def test(node: fx.Node) -> str | None:
        for t in tensor_inputs(node):
            if t.dtype not in allowed:
                return f"dtype {name_of(t.dtype)} unsupported (needs {what})"
        return None

    return Check(f"{what} inputs", test)


def max_rank(limit: int = DEFAULT_MAX_RANK) -> Check:
    def test(node: fx.Node) -> str | None:
        for t in tensor_inputs(node) + [t for t in [output(node)] if t is not None]:
            if t.dim() > limit:
                return f"rank {t.dim()} exceeds {limit}"
        return None

    return Check(f"rank <= {limit}", test)


@check("static, non-empty tensor inputs")
def tensor_basics(node: fx.Node) -> str | None:
    inputs = tensor_inputs(node)
    if not inputs:
        return "no tensor input (a host-side constant)"
    if any(not isinstance(d, int) for t in inputs for d in t.shape):
        return "dynamic shape"
    if any(t.numel() == 0 for t in inputs + [t for t in [output(node)] if t is not None]):
        return "empty tensor"
    return None


def param(index: int, name: str, allowed, default: Any = None, why: str = "", requires: str = "") -> Check:
    """Declines when argument `name` is not one of `allowed` (a value, a tuple of values, or a
    predicate, which then needs `requires`, the text of what it accepts)."""
    if callable(allowed):
        if not requires:
            raise ValueError(f"param({name!r}): a predicate needs `requires`")
    else:
        values = allowed if isinstance(allowed, tuple) else (allowed,)
        requires = requires or f"{name} " + (
            f"= {values[0]!r}" if len(values) == 1 else "in " + ", ".join(map(repr, values))
        )

    def test(node: fx.Node) -> str | None:
        value = meta(arg(node, index, name, default))
        if allowed(value) if callable(allowed) else value in values:
            return None
        return f"{name}={value!r} unsupported" + (f" ({why})" if why else "")

    return Check(requires, test)


# The checks almost every tensor rule starts with.
BASIC: tuple[Check, ...] = (tensor_basics,)
