"""Remove no-ops: nodes whose output is their input, reshape chains, and dead code.

Rewrites
- identity views and reshapes (output shape = input shape), identity permutes, transposes of a
  dim with itself, full-range slices, expands to the same shape;
- clones, aliases, `detach`, `contiguous`, `lift_fresh_copy`, casts to the dtype the value already
  has (`_to_copy` whose device and memory format TT-NN has no notion of);
- export's `_assert_tensor_metadata` checks (they compute nothing);
- a reshape of a reshape, into one reshape of the first input;
- views of a removed copy become reshapes (the copy may have made a permuted value contiguous:
  on the host a view would refuse it; the device has no strides);
- nodes nothing reads (dead code).

Why it is exact: a captured graph is functional (no node mutates a value), so a node whose output
equals its input can hand its input to its users. A reshape reorders nothing: reshaping to B and
then to C gives the elements of A in the same row-major order as reshaping A to C directly. Dead
nodes affect no output.
"""

from __future__ import annotations

import torch
from torch import fx

from fxport.capture.records import is_op_node
from fxport.mapping.checks import arg
from fxport.passes.base import RESHAPES, FxportPass, op_count, set_call

aten = torch.ops.aten

_EXPANDS = {aten.expand.default, aten.expand_copy.default}
_ALIASES = {
    aten.clone.default,
    aten.alias.default,
    aten.alias_copy.default,
    aten.detach.default,
    aten.contiguous.default,
    aten.lift_fresh_copy.default,
}
_CHECKS = {aten._assert_tensor_metadata.default}
_COPIES = {aten.clone.default, aten.contiguous.default, aten._to_copy.default}
_VIEWS = {aten.view.default, aten._unsafe_view.default, aten.view_copy.default}


def _val(node):
    return node.meta.get("val") if isinstance(node, fx.Node) else None


def _same(node: fx.Node) -> bool:
    """Does `node` return its first input unchanged?"""
    if node.target in _CHECKS:
        return True
    x, out = _val(node.args[0]) if node.args else None, _val(node)
    if not isinstance(x, torch.Tensor) or not isinstance(out, torch.Tensor):
        return False
    if out.shape != x.shape or out.dtype != x.dtype:
        return False
    if node.target in RESHAPES | _EXPANDS | _ALIASES or node.target == aten._to_copy.default:
        return True
    args = node.args
    if node.target in (aten.permute.default, aten.permute_copy.default):
        return [d % x.dim() for d in args[1]] == list(range(x.dim()))
    if node.target in (aten.transpose.int, aten.transpose_copy.int):
        return args[1] % x.dim() == args[2] % x.dim()
    if node.target in (aten.slice.Tensor, aten.slice_copy.Tensor):
        dim, start, end = arg(node, 1, "dim", 0), arg(node, 2, "start"), arg(node, 3, "end")
        return (start or 0) == 0 and (end is None or end >= x.shape[dim]) and arg(node, 4, "step", 1) == 1
    return False


class RemoveNoOps(FxportPass):
    name = "noops"

    def run(self, gm: fx.GraphModule) -> bool:
        graph = gm.graph
        before = op_count(graph)
        for node in list(graph.nodes):
            if node.op != "call_function":
                continue
            if _same(node):
                if node.target in _COPIES:  # the copy made its input contiguous for a view
                    for user in node.users:
                        if user.target in _VIEWS:
                            user.target = aten.reshape.default
                if node.users:
                    node.replace_all_uses_with(node.args[0])
                self.record.changes.append(f"{node.name}: no-op ({node.target.__name__})")
                graph.erase_node(node)
            elif node.target in RESHAPES and _val(node) is not None:
                inner = node.args[0]
                if isinstance(inner, fx.Node) and inner.op == "call_function" and inner.target in RESHAPES:
                    set_call(node, aten.reshape.default, (inner.args[0], list(_val(node).shape)))
                    self.record.changes.append(f"{node.name}: reshape of {inner.name} from its input")
        live = [n.name for n in graph.nodes if is_op_node(n)]
        graph.eliminate_dead_code()
        kept = {n.name for n in graph.nodes}
        self.record.changes += [f"{name}: dead code" for name in live if name not in kept]
        self.record.removed = before - op_count(graph)
        return bool(self.record.changes)
