"""Capability checks shared by the mapping rules. Each returns a reason string when it declines.

Checks read only the node's metadata (shapes, dtypes, arguments from capture), so planning needs
no device and no real tensors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from fxport.mapping.registry import Check

FLOAT_DTYPES = frozenset({torch.float32, torch.bfloat16, torch.float16})
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
    def check(node: fx.Node) -> str | None:
        for t in tensor_inputs(node):
            if t.dtype not in allowed:
                return f"dtype {str(t.dtype).removeprefix('torch.')} unsupported (needs {what})"
        return None

    return check


def max_rank(limit: int = DEFAULT_MAX_RANK) -> Check:
    def check(node: fx.Node) -> str | None:
        for t in tensor_inputs(node) + [t for t in [output(node)] if t is not None]:
            if t.dim() > limit:
                return f"rank {t.dim()} exceeds {limit}"
        return None

    return check


def has_tensor_input(node: fx.Node) -> str | None:
    return None if tensor_inputs(node) else "no tensor input (a host-side constant)"


def static_shapes(node: fx.Node) -> str | None:
    for t in tensor_inputs(node):
        if any(not isinstance(d, int) for d in t.shape):
            return "dynamic shape"
    return None


def nonempty(node: fx.Node) -> str | None:
    for t in tensor_inputs(node) + [t for t in [output(node)] if t is not None]:
        if t.numel() == 0:
            return "empty tensor"
    return None


def param(index: int, name: str, allowed, default: Any = None, why: str = "") -> Check:
    """Declines when argument `name` is not one of `allowed` (a value, tuple of values, or predicate)."""

    def check(node: fx.Node) -> str | None:
        value = meta(arg(node, index, name, default))
        ok = allowed(value) if callable(allowed) else value in (allowed if isinstance(allowed, tuple) else (allowed,))
        if ok:
            return None
        return f"{name}={value!r} unsupported" + (f" ({why})" if why else "")

    return check


# The checks almost every tensor rule starts with.
BASIC: tuple[Check, ...] = (has_tensor_input, static_shapes, nonempty)
