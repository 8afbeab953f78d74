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
    """Register every container type found in `tree` that pytree does not know yet, so that
    flattening, export and path names see inside it: dataclasses as nodes whose children are their
    fields, and other objects that hold tensors in their attributes (a Hugging Face
    `DynamicCache`, its layers, `EncoderDecoderCache`) as nodes whose children are those
    attributes (`out.past_key_values.layers[0].keys`); their other attributes stay as they are."""
    seen: set[int] = set()

    def visit(value: Any) -> None:
        if id(value) in seen or isinstance(value, torch.Tensor):
            return
        seen.add(id(value))
        kind = type(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            if kind not in pytree.SUPPORTED_NODES:
                torch.export.register_dataclass(kind, serialized_type_name=f"{kind.__module__}.{kind.__qualname__}")
            children = [getattr(value, f.name) for f in dataclasses.fields(value)]
        elif kind in pytree.SUPPORTED_NODES:  # dicts, lists, tuples, types registered before
            children = pytree.SUPPORTED_NODES[kind].flatten_fn(value)[0]
        elif isinstance(value, dict):
            children = list(value.values())
        elif isinstance(value, (list, tuple)):  # named tuples
            children = list(value)
        elif _holds_tensors(value):
            pytree.register_pytree_node(
                kind,
                _flatten_object,
                _unflatten_object(kind),
                serialized_type_name=f"{kind.__module__}.{kind.__qualname__}",
                flatten_with_keys_fn=_flatten_object_with_keys,
            )
            children = _flatten_object(value)[0]
        else:
            return
        for child in children:
            visit(child)

    visit(tree)


def _holds_tensors(value: Any, depth: int = 0) -> bool:
    """Whether an object's attributes (or their lists, dicts and attributes) hold a tensor."""
    if isinstance(value, torch.Tensor):
        return True
    if depth > 4 or isinstance(value, (str, bytes, int, float, bool, type, torch.dtype, torch.device)):
        return False
    if isinstance(value, dict):
        return any(_holds_tensors(v, depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_tensors(v, depth + 1) for v in value)
    attributes = getattr(value, "__dict__", None)
    return (
        isinstance(attributes, dict)
        and not isinstance(value, torch.nn.Module)
        and any(_holds_tensors(v, depth + 1) for v in attributes.values())
    )


def _tensor_attributes(value: Any) -> list[str]:
    return sorted(k for k, v in vars(value).items() if _holds_tensors(v, 1))


def _flatten_object(value: Any) -> tuple[list, Any]:
    keys = _tensor_attributes(value)
    static = tuple((k, v) for k, v in vars(value).items() if k not in keys)
    return [getattr(value, k) for k in keys], (tuple(keys), _Static(static))


def _flatten_object_with_keys(value: Any) -> tuple[list, Any]:
    children, context = _flatten_object(value)
    return [(pytree.GetAttrKey(k), c) for k, c in zip(context[0], children)], context


def _unflatten_object(kind: type):
    def unflatten(children, context) -> Any:
        keys, static = context
        obj = kind.__new__(kind)
        obj.__dict__.update(dict(static.items))
        obj.__dict__.update(zip(keys, children))
        return obj

    return unflatten


class _Static:
    """An object's attributes that hold no tensor, carried in its pytree context. Equal to any
    other: two specs of the same container type are the same whatever flags it carries."""

    def __init__(self, items: tuple):
        self.items = items

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Static)

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return f"<{len(self.items)} static attributes>"


def map_tensors(fn, tree: Any) -> Any:
    """`tree` with fn applied to every tensor leaf (other leaves unchanged)."""
    return pytree.tree_map(lambda v: fn(v) if isinstance(v, torch.Tensor) else v, tree)
