"""Layout propagation: keep activations channels-last between the ops that can take them so.

TT-NN's conv and pool kernels take and return activations as `[1, 1, N*H*W, C]` (flattened
NHWC). Lowered one aten node at a time, every conv and pool permutes its NCHW input into that form
and its output back: two conversions per node. This pass rewrites the graph itself into the
device's layout: conv, pooling and nearest upsampling become fxport's channels-last ops,
elementwise ops, concatenation and splits along channels take flattened operands (each rule's
`nhwc` form in the mapping table says how, or that it cannot), and explicit conversion nodes
(`fxport.to_nhwc` / `fxport.to_nchw`) appear only where a value crosses between an op that needs
the aten layout and one that runs channels-last. Each value converts at most once per direction,
whatever number of consumers it has. The device layout of the values (TILE or ROW_MAJOR) is the
producers': lowerings pass flattened values on without converting them.

Only nodes the mapping table lowers are rewritten: host nodes keep the aten layout. A
layout-agnostic op moves to channels-last only when one of its operands already is (otherwise it
would only add conversions).

Why it is exact: every rewritten node computes the same values, held in another order
(`fxport.to_nhwc` is a permutation of the elements, `to_nchw` its inverse), and each node's
`meta["val"]` carries the shape it really has.
"""

from __future__ import annotations

import contextlib
import operator
from typing import Any, Iterator

import torch
from torch import fx

from fxport.capture.records import is_op_node
from fxport.mapping import REGISTRY
from fxport.mapping.fused_ops import REFERENCES, nchw_shape
from fxport.mapping.fused_ops import ops as fxport_ops
from fxport.mapping.registry import NhwcCall
from fxport.passes.base import FxportPass, constant_name, insert_call, set_call


class _Probe:
    """Records which inputs a form would take flattened, without inserting anything."""

    def __init__(self) -> None:
        self.asked: list[fx.Node] = []

    def __call__(self, node: fx.Node) -> fx.Node:
        self.asked.append(node)
        return node


def _flat_val(value: Any) -> Any:
    """The value of a flattened NHWC node, from its aten-layout value (rank <= 4 as NCHW)."""
    if isinstance(value, (list, tuple)):
        return type(value)(_flat_val(v) for v in value)
    n, c, h, w = nchw_shape(value.shape)
    return torch.empty((1, 1, n * h * w, c), dtype=value.dtype, device="meta")


class PropagateLayout(FxportPass):
    name = "layout"

    def run(self, gm: fx.GraphModule) -> bool:
        self.gm, self.graph = gm, gm.graph
        self.flat: dict[fx.Node, fx.Node] = {}  # node -> the node holding its value flattened
        self.nchw: dict[fx.Node, Any] = {}  # a node rewritten in place -> its aten-layout value
        self.back: dict[fx.Node, fx.Node] = {}  # flattened node -> its to_nchw conversion
        native = 0
        for node in list(self.graph.nodes):
            if node.op == "output":
                self._aten_inputs(node)
            elif node.op == "call_function" and node.target is operator.getitem:
                self._getitem(node)
            elif node.op == "call_function":
                call = self._rewrite(node)
                native += bool(call and getattr(call.target, "namespace", "") == "fxport")
                if call is None:  # (a rewritten node's inputs are what its form asked for)
                    self._aten_inputs(node)
        # Nodes whose users all moved to a flattened form (a reshape read as tokens) are dead now.
        live = {n.name for n in self.graph.nodes if is_op_node(n)}
        self.graph.eliminate_dead_code()
        self.record.removed = len(live - {n.name for n in self.graph.nodes})
        conversions = sum(
            1 for n in self.graph.nodes if n.target in (fxport_ops.to_nhwc.default, fxport_ops.to_nchw.default)
        )
        self.record.added = conversions
        self.record.conversions_saved = 2 * native - conversions
        return self.record.rewritten > 0

    # -- rewriting -------------------------------------------------------------------------------
    def _rewrite(self, node: fx.Node) -> NhwcCall | None:
        rule = REGISTRY.rule_for(node)
        if rule is None or rule.nhwc is None or not is_op_node(node):
            return None
        probe = _Probe()
        with self._captured_shapes(node):
            if REGISTRY.decide(node)[1]:  # checks read the captured shapes too
                return None
            call = rule.nhwc(node, probe)
            if call is None or not (call.native or any(a in self.flat for a in probe.asked)):
                return None
            self.current = node
            call = rule.nhwc(node, self._flattened)
        value = node.meta["val"]
        set_call(node, call.target, call.args, call.kwargs, val=_flat_val(value) if call.flat_output else value)
        if call.flat_output:
            self.nchw[node] = value
            self.flat[node] = node
        self.record.rewritten += 1
        self.record.changes.append(f"{node.name}: channels-last")
        return call

    @contextlib.contextmanager
    def _captured_shapes(self, node: fx.Node) -> Iterator[None]:
        """Forms read their inputs' shapes as captured (NCHW): show them those of the inputs (and
        their inputs: a form may look through a reshape) already rewritten in place."""
        near = {b for a in node.all_input_nodes for b in (a, *a.all_input_nodes)}
        saved = {a: a.meta["val"] for a in near if a in self.nchw}
        for a in saved:
            a.meta["val"] = self.nchw[a]
        try:
            yield
        finally:
            for a, val in saved.items():
                a.meta["val"] = val

    def _getitem(self, node: fx.Node) -> None:
        """An output of a node rewritten channels-last is channels-last too."""
        source = node.args[0]
        if source in self.nchw:
            self.nchw[node] = node.meta["val"]
            node.meta["val"] = source.meta["val"][node.args[1]]
            self.flat[node] = node

    def _flattened(self, node: fx.Node) -> fx.Node:
        """`node`'s value flattened: itself when rewritten; for a constant, a flattened copy made
        now (a constant of the model, moved once); else one to_nhwc shared by all users (inserted
        before the node being rewritten, the first user visited in graph order)."""
        if node not in self.flat:
            if self.constant(node) is not None:
                name, val, source = f"{node.name}_nhwc", _flat_val(node.meta["val"]), constant_name(node)
                constants = self.env.constants
                self.env.new_constants(
                    self.gm, {name: val}, lambda: (REFERENCES[fxport_ops.to_nhwc.default](constants[source]),)
                )
                with self.graph.inserting_before(self.current):
                    self.flat[node] = self.graph.get_attr(name)
                self.flat[node].meta["val"] = val
                self.record.changes.append(f"{node.name}: constant flattened")
            else:
                with self.graph.inserting_before(self.current):
                    self.flat[node] = insert_call(
                        self.graph, fxport_ops.to_nhwc.default, (node,), node, val=_flat_val(node.meta["val"])
                    )
        return self.flat[node]

    def _aten_inputs(self, node: fx.Node) -> None:
        """`node` needs the aten layout: its channels-last inputs convert back (once each)."""
        for a in node.all_input_nodes:
            if a in self.nchw and isinstance(self.nchw[a], torch.Tensor):
                node.replace_input_with(a, self._to_nchw(a))

    def _to_nchw(self, node: fx.Node) -> fx.Node:
        if node not in self.back:
            n, _, h, w = self.nchw[node].shape
            with self.graph.inserting_after(node):
                back = insert_call(self.graph, fxport_ops.to_nchw.default, (node, [n, h, w]), node, val=self.nchw[node])
            self.back[node] = back
            self.flat[back] = node  # a later channels-last user takes the flattened value directly
        return self.back[node]
