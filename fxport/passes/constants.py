"""Fold the subgraphs that depend only on constants into constants, computed once at compile time.

A node whose every input is a parameter, a buffer, a lifted constant or another such node (weight
reshapes and transposes, weight standardisation, arange-based coordinates and the index
arithmetic on them, shape arithmetic) computes the same value on every inference. Each maximal
such subgraph is replaced by the constants it hands to the rest of the graph (its frontier:
constant nodes with a non-constant user or read by the output), computed once on the host in the
model's dtypes (fp32 weights, int64 indices) by the aten ops themselves: never re-run, and never
shipped to the device as a partition of its own every inference.

Why it is exact: the folded values are what those same aten ops compute on the same inputs, on
the host in fp32/int64, which is the reference the device is compared with.
On meta weights (verdict runs) the fold is structural: each constant is an empty meta tensor of
the shape and dtype capture recorded, so the device sees the ops and sizes a folded model has.

Not folded: random ops (a fresh value per call), nodes whose output outgrows their inputs (an
`expand` of a bias to activation size, a large `full`): materialising them would cost memory and
transfers the graph does not spend.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx
from torch.fx._lazy_graph_module import _make_graph_module, _use_lazy_graph_module

from fxport.capture.records import is_op_node
from fxport.passes.base import FxportPass, constant_name

_SMALL = 4096  # elements: a constant this small may be made from nothing (an arange)
_GROWTH = 2  # a larger one may be at most this many times its largest input


def _numel(value: Any) -> int:
    if isinstance(value, (list, tuple)):
        return sum(map(_numel, value))
    return value.numel() if isinstance(value, torch.Tensor) else 0


def _foldable_call(n: fx.Node) -> bool:
    if n.target is operator.getitem:
        return True
    if not isinstance(n.target, torch._ops.OpOverload):
        return False
    tags = n.target.tags
    return torch.Tag.nondeterministic_seeded not in tags and not n.target._schema.is_mutable


class FoldConstants(FxportPass):
    name = "constants"

    def run(self, gm: fx.GraphModule) -> bool:
        graph = gm.graph
        constant: set[fx.Node] = set()
        for n in graph.nodes:
            if n.op in ("placeholder", "get_attr"):
                if constant_name(n) in self.env.constants:
                    constant.add(n)
            elif n.op == "call_function" and _foldable_call(n) and all(u in constant for u in n.all_input_nodes):
                size = _numel(n.meta.get("val"))
                largest = max((_numel(u.meta.get("val")) for u in n.all_input_nodes), default=0)
                if size <= _SMALL or size <= _GROWTH * largest:
                    constant.add(n)
        frontier = [
            n
            for n in graph.nodes
            if n in constant
            and n.op == "call_function"
            and isinstance(n.meta.get("val"), torch.Tensor)
            and any(u not in constant for u in n.users)
        ]
        if not frontier:
            return False
        folded = self._fold(gm, constant, frontier)
        self.record.removed += folded
        self.record.changes.append(
            f"{folded} op nodes on constants -> {len(frontier)} constants "
            f"({', '.join(n.name for n in frontier[:5])}{', ...' if len(frontier) > 5 else ''})"
        )
        return True

    def _fold(self, gm: fx.GraphModule, constant: set[fx.Node], frontier: list[fx.Node]) -> int:
        graph = gm.graph
        # The constant subgraph, alone, to compute the frontier's values (after the passes).
        sub, env, sources = fx.Graph(), {}, []
        for n in graph.nodes:
            if n not in constant:
                continue
            if n.op in ("placeholder", "get_attr"):
                env[n] = sub.placeholder(f"c{len(sources)}")
                sources.append(constant_name(n))
            else:
                env[n] = sub.node_copy(n, lambda a: env[a])
        sub.output(tuple(env[n] for n in frontier))
        sub.eliminate_dead_code()
        with _use_lazy_graph_module(True):
            compute_module = _make_graph_module(torch.nn.Module(), sub)
        likes = [n.meta["val"] for n in frontier]
        names = {
            f"{n.name}_folded": torch.empty(tuple(v.shape), dtype=v.dtype, device="meta")
            for n, v in zip(frontier, likes)
        }

        def compute() -> tuple[torch.Tensor, ...]:
            values = [self.env.constants[name] for name in sources]  # read now: earlier folds are made
            if any(isinstance(v, torch.Tensor) and v.is_meta for v in values):  # structural
                return tuple(names.values())
            with torch.no_grad():
                out = compute_module(*values)
            # Tensors of their own (a view's base would be what the runtime knows them by).
            return tuple(o.clone(memory_format=torch.contiguous_format) for o in out)

        self.env.new_constants(gm, names, compute)
        for n, name in zip(frontier, names):
            with graph.inserting_before(n):
                attr = graph.get_attr(name)
            attr.meta["val"] = n.meta["val"]
            for key in ("nn_module_stack", "stack_trace"):
                if key in n.meta:
                    attr.meta[key] = n.meta[key]
            n.replace_all_uses_with(attr)
        erased = 0
        for n in reversed(list(graph.nodes)):
            if n in constant and n.op == "call_function" and not n.users:
                erased += is_op_node(n)
                graph.erase_node(n)
        return erased
