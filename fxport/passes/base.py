"""What every fxport graph pass shares: torch.fx's `PassBase` with a record of what it changed,
the environment it reads (the values of the graph's constants), and node helpers that keep every
node's `meta["val"]` true (the plan, the memory model and the records read shapes from it)."""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import fx
from torch.fx.passes.infra.pass_base import PassBase, PassResult

from fxport.capture.records import is_op_node
from fxport.mapping.data_movement import RESHAPES as RESHAPE_TARGETS
from fxport.mapping.fused_ops import REFERENCES

aten = torch.ops.aten

# Op groups the passes match on (one list each, shared by the passes that read them).
RESHAPES = frozenset(RESHAPE_TARGETS)
# Reorders of the dims.
PERMUTES = frozenset({aten.permute.default, aten.transpose.int})


@dataclass
class PassRecord:
    """What one pass changed in one graph (op nodes; bookkeeping like getitem is not counted)."""

    name: str
    removed: int = 0  # op nodes erased: no-ops, dead code
    fused: int = 0  # op nodes absorbed into another op (a batch norm into its conv, an activation)
    rewritten: int = 0  # op nodes replaced by another form of the same computation (channels-last)
    added: int = 0  # op nodes inserted (layout conversions)
    conversions_saved: int = 0  # NCHW <-> NHWC conversions the lowerings no longer make
    transfers_saved: int = 0  # constant tensors no longer moved to the device
    changes: list[str] = field(default_factory=list)  # what happened, node by node
    error: str = ""  # the pass failed on this graph; the pipeline went on without it
    seconds: float = 0.0  # volatile: reported in timing, never in run.json

    @property
    def changed(self) -> bool:
        return bool(self.removed or self.fused or self.rewritten or self.added)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "removed": self.removed,
            "fused": self.fused,
            "rewritten": self.rewritten,
            "added": self.added,
            "conversions_saved": self.conversions_saved,
            "transfers_saved": self.transfers_saved,
            "changes": list(self.changes),
            "error": self.error,
        }


@dataclass
class PassEnv:
    """What passes may read besides the graph. `constants`: the values of the graph's constant
    inputs (parameters, buffers, lifted constants; placeholder or attribute name -> tensor, real
    or meta). `memory`: where activations will live ("dram" or "l1"), for passes that place them."""

    constants: dict[str, torch.Tensor]
    memory: str = "dram"
    # Constants passes made (folded weights): names and how to compute their values.
    recipes: list[tuple[tuple[str, ...], Callable[[], tuple[torch.Tensor, ...]]]] = field(default_factory=list)

    def new_constants(
        self, gm: fx.GraphModule, shapes: dict[str, torch.Tensor], compute: Callable[[], tuple[torch.Tensor, ...]]
    ) -> None:
        """Register constants a pass makes: `shapes` (name -> a meta tensor of the value's shape
        and dtype) now, the values from `compute` in `materialize`, after the passes. Rewrites
        stay cheap; the arithmetic on real weights (weight preparation) is done once, timed apart."""
        for name, like in shapes.items():
            gm.register_buffer(name, like)
            self.constants[name] = like
        self.recipes.append((tuple(shapes), compute))

    def materialize(self, gm: fx.GraphModule) -> None:
        """Compute the constants passes made, in the order they were made (a recipe may read an
        earlier one's value through `constants`)."""
        for names, compute in self.recipes:
            with torch.no_grad():
                values = compute()
            for name, value in zip(names, values):
                gm.register_buffer(name, value)
                self.constants[name] = value
        self.recipes.clear()


class FxportPass(PassBase):
    """A graph rewrite that keeps values exact. Subclasses set `name` (what `--no-pass` takes) and
    implement `run`, returning whether the graph changed, and fill `self.record`."""

    name: ClassVar[str]

    def __init__(self, env: PassEnv):
        self.env = env
        self.record = PassRecord(self.name)
        self.done = False  # set when `run` returned (the pipeline tells a failed pass by it)

    def call(self, graph_module: fx.GraphModule) -> PassResult:
        start = time.perf_counter()
        modified = self.run(graph_module)
        self.record.seconds = time.perf_counter() - start
        self.done = True
        return PassResult(graph_module, modified)

    @abc.abstractmethod
    def run(self, gm: fx.GraphModule) -> bool: ...

    def constant(self, node: Any) -> torch.Tensor | None:
        """The value of a constant input (placeholder of a parameter, or an attribute), else None."""
        return self.env.constants.get(constant_name(node)) if isinstance(node, fx.Node) else None


def constant_name(node: fx.Node) -> str:
    """The key of a constant input in `PassEnv.constants`."""
    return node.target if node.op == "get_attr" else node.name if node.op == "placeholder" else ""


def meta_value(target: Any, args: tuple, kwargs: dict) -> Any:
    """The output of `target` on meta tensors shaped like its inputs: a new node's `meta["val"]`.
    fxport's own ops run their reference directly (what their fake implementation runs, without
    the custom-op dispatch: passes stay cheap)."""
    target = REFERENCES.get(target, target)

    def as_meta(a: Any) -> Any:
        v = a.meta.get("val") if isinstance(a, fx.Node) else a
        if isinstance(v, torch.Tensor):
            return torch.empty(tuple(v.shape), dtype=v.dtype, device="meta")
        if isinstance(v, (list, tuple)):
            return type(v)(as_meta(x) for x in v)
        return v

    return target(*as_meta(tuple(args)), **{k: as_meta(v) for k, v in kwargs.items()})


def set_call(node: fx.Node, target: Any, args: tuple, kwargs: dict | None = None, val: Any = None) -> None:
    """Turn `node` into another call in place: its name, module path and source location stay,
    so records, reports and `fxport compare` follow the node through the rewrite. `val`: its new
    output value when known (else computed on meta tensors)."""
    kwargs = kwargs or {}
    node.meta["val"] = meta_value(target, args, kwargs) if val is None else val
    node.target, node.args, node.kwargs = target, tuple(args), kwargs


def insert_call(graph: fx.Graph, target: Any, args: tuple, like: fx.Node, val: Any = None) -> fx.Node:
    """A new call node (at the graph's insertion point) attributed to the module of `like`."""
    node = graph.call_function(target, tuple(args))
    for key in ("nn_module_stack", "stack_trace", "source_fn_stack"):
        if key in like.meta:
            node.meta[key] = like.meta[key]
    node.meta["val"] = meta_value(target, args, {}) if val is None else val
    return node


def op_count(graph: fx.Graph) -> int:
    return sum(is_op_node(n) for n in graph.nodes)
