"""Model inputs and outputs as pytrees: tensors named by their path (`args[1]`, `out['logits']`).

Models take and return any nesting of tuples, lists, dicts, dataclasses and Hugging Face
`ModelOutput`s. torch's pytree flattens them; each leaf keeps the path it was found at, which is
how reports name an input or an output. Dataclasses that nobody registered with pytree are
registered here (torch.export refuses outputs it cannot flatten).
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

import torch
import torch.utils._pytree as pytree

from fxport.capture.records import TensorSpec


@dataclass(frozen=True)
class Leaf:
    """One tensor of a model's inputs or outputs, named by its pytree path."""

    path: str  # "args[0]", "kwargs['input_ids']", "out", "out['logits']", "out[1].flow"
    spec: TensorSpec

    def to_dict(self) -> dict:
        return {"path": self.path, **self.spec.to_dict()}


def named_leaves(tree: Any, root: str) -> list[tuple[str, Any]]:
    """(path, leaf) of every leaf of `tree`, tensor or not, in pytree order."""
    register_dataclasses(tree)
    flat, _ = pytree.tree_flatten_with_path(tree)
    return [(root + pytree.keystr(path), leaf) for path, leaf in flat]


def tensor_leaves(tree: Any, root: str) -> tuple[Leaf, ...]:
    return tuple(
        Leaf(path, TensorSpec.of(leaf)) for path, leaf in named_leaves(tree, root) if isinstance(leaf, torch.Tensor)
    )


def input_leaves(args: tuple, kwargs: dict | None = None) -> tuple[Leaf, ...]:
    """The tensors of a call `f(*args, **kwargs)`: `args[0]`, `kwargs['attention_mask']`, ..."""
    return (*tensor_leaves(tuple(args), "args"), *tensor_leaves(dict(kwargs or {}), "kwargs"))


def forward_signature(module: Any) -> str:
    """'forward(image1, image2, num_flow_updates=12)': what a model's caller must pass (names and
    defaults; annotations left out, they make Hugging Face signatures unreadable)."""
    try:
        parameters = inspect.signature(module.forward).parameters.values()
    except (AttributeError, TypeError, ValueError):
        return "forward(...)"
    shown = []
    for p in parameters:
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        default = "" if p.default is p.empty else "=" + repr(p.default)[:20]
        shown.append(f"{prefix}{p.name}{default}")
    return f"forward({', '.join(shown)})"


def register_dataclasses(tree: Any) -> None:
    """Register every dataclass type found in `tree` (not registered yet) as a pytree node whose
    children are its fields, so that flattening, export and path names see inside it."""
    seen: set[int] = set()

    def visit(value: Any) -> None:
        if id(value) in seen:
            return
        seen.add(id(value))
        kind = type(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            if kind not in pytree.SUPPORTED_NODES:
                torch.export.register_dataclass(kind, serialized_type_name=f"{kind.__module__}.{kind.__qualname__}")
            children = [getattr(value, f.name) for f in dataclasses.fields(value)]
        elif isinstance(value, dict):
            children = list(value.values())
        elif isinstance(value, (list, tuple)):
            children = list(value)
        else:
            return
        for child in children:
            visit(child)

    visit(tree)


def map_tensors(fn, tree: Any) -> Any:
    """`tree` with fn applied to every tensor leaf (other leaves unchanged)."""
    return pytree.tree_map(lambda v: fn(v) if isinstance(v, torch.Tensor) else v, tree)
