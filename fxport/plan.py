"""Stage 2, plan: the mapping table's verdict for every op node of a captured graph, and the
numerics policy over it.

Numerics policy: index arithmetic is exact. TT-NN's float ops compute in bf16, whose 8-bit
mantissa cannot hold a coordinate above 256 to the unit: a bicubic resize 240->224 whose
coordinates (arange, mul, sub, floor, clamp) ran in bf16 moved 85 of 224 floor indices and ended
at PCC 0.55. So the nodes that compute index operands from constants (an index, gather,
embedding, index_select or scatter op's indices, walked back through nodes that read no graph
input), and the constant-only nodes derived from them (the interpolation weights `x - floor(x)`
and their polynomials), stay on the host, where they are computed in fp32/int64 exactly, and the
plan says why. Indices computed from data (argmax, topk) are not index arithmetic and keep their
verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import networkx as nx
import torch
from torch import fx

from fxport.capture.records import attribute_modules, is_op_node, module_of, target_name
from fxport.gcpause import without_gc
from fxport.mapping import REGISTRY


@dataclass(frozen=True)
class NodePlan:
    node: str
    target: str
    module: str
    lowered: bool
    rule: str  # the rule that lowers (or declined) it, "" when no rule maps the op
    ttnn: str  # the ttnn op(s) it lowers to, "" when it falls back
    family: str  # the op family for reports: the rule's, see Registry.family_of for unmapped ops
    reason: str  # why it falls back, "" when lowered
    memory: str = ""  # where its activations go ("l1" / "dram"), when placed per node (`auto`)


@dataclass(frozen=True)
class Plan:
    nodes: tuple[NodePlan, ...]

    @property
    def lowered(self) -> int:
        return sum(n.lowered for n in self.nodes)

    @property
    def coverage(self) -> float:
        return self.lowered / len(self.nodes) if self.nodes else 1.0

    def by_node(self) -> dict[str, NodePlan]:
        return {n.node: n for n in self.nodes}

    def placed(self, memory: dict[str, str]) -> "Plan":
        """This plan with each node's placement (node -> "l1" / "dram")."""
        return Plan(tuple(replace(n, memory=memory.get(n.node, n.memory)) for n in self.nodes))

    def on_host(self, reasons: dict[str, str]) -> "Plan":
        """This plan with the nodes in `reasons` left on the host, each for its reason."""
        if not reasons:
            return self
        return Plan(
            tuple(
                replace(n, lowered=False, ttnn="", reason=reasons[n.node]) if n.node in reasons else n
                for n in self.nodes
            )
        )

    @property
    def placement(self) -> dict[str, str]:
        return {n.node: n.memory for n in self.nodes if n.memory}


aten = torch.ops.aten
# Ops that read a tensor operand as indices: target -> (position, name) of that operand.
INDEX_OPERANDS = {
    aten.index.Tensor: (1, "indices"),
    aten._unsafe_index.Tensor: (1, "indices"),
    aten.index_put.default: (1, "indices"),
    aten._unsafe_index_put.default: (1, "indices"),
    aten.index_select.default: (2, "index"),
    aten.gather.default: (2, "index"),
    aten.scatter.src: (2, "index"),
    aten.scatter.value: (2, "index"),
    aten.scatter_add.default: (2, "index"),
    aten.embedding.default: (1, "indices"),
}
INDEX_ARITHMETIC = (
    "index arithmetic, computed exactly on the host (TT-NN's float ops are bf16, "
    "which rounds coordinates and moves the indices floor/clamp take from them)"
)
INDEX_DERIVED = (
    "derived from index arithmetic (interpolation weights from the same coordinates), "
    "computed exactly on the host with it"
)


def exact_nodes(graph: fx.Graph) -> dict[fx.Node, str]:
    """The nodes the numerics policy keeps on the host (see the module docstring), with why.
    Linear: one pass for the constant-only nodes, one backward and one forward walk."""
    constant: set[fx.Node] = set()  # nodes that read no graph input, parameter or buffer
    operands: list[fx.Node] = []
    for n in graph.nodes:
        if n.op == "call_function" and all(u in constant for u in n.all_input_nodes):
            constant.add(n)
        where = INDEX_OPERANDS.get(n.target) if n.op == "call_function" else None
        if where is not None:
            value = n.args[where[0]] if len(n.args) > where[0] else n.kwargs.get(where[1])
            fx.node.map_arg(value, operands.append)
    if not operands:
        return {}
    flow = nx.DiGraph((u, n) for n in constant for u in n.all_input_nodes)
    flow.add_nodes_from(constant)
    flow.add_edges_from((u, "indices") for u in operands if u in constant)
    feeding = nx.ancestors(flow, "indices") if "indices" in flow else set()
    flow.add_edges_from(("feeding", u) for u in feeding)
    derived = (nx.descendants(flow, "feeding") - feeding - {"indices"}) if feeding else set()
    exact = {**{n: INDEX_DERIVED for n in derived}, **{n: INDEX_ARITHMETIC for n in feeding}}
    # Integer creation (an int arange, full) runs on the device in int32: exact already.
    return {n: why for n, why in exact.items() if not (_integer(n) and not n.all_input_nodes)}


def _integer(n: fx.Node) -> bool:
    val = n.meta.get("val")
    return isinstance(val, torch.Tensor) and not val.is_floating_point() and val.dtype != torch.bool


@without_gc
def plan_graph(graph: fx.Graph) -> Plan:
    nodes = []
    attribute_modules(graph)  # nodes the passes made have no module of their own
    exact = exact_nodes(graph)
    names: dict = {}  # target -> (name, family): once per op, not per node
    for node in graph.nodes:
        if not is_op_node(node):
            continue
        rule, reason = REGISTRY.decide(node)
        if reason is None and node in exact:
            reason = exact[node]
        if node.target not in names:
            name = target_name(node.target)
            names[node.target] = name, REGISTRY.family_of(name)
        target, family = names[node.target]
        nodes.append(
            NodePlan(
                node=node.name,
                target=target,
                module=module_of(node)[0],
                lowered=reason is None,
                rule=rule.name if rule else "",
                ttnn=rule.ttnn if rule and reason is None else "",
                family=family,
                reason=reason or "",
            )
        )
    return Plan(tuple(nodes))
