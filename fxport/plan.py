"""Stage 2, plan: the mapping table's verdict for every op node of a captured graph."""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import fx

from fxport.capture.records import is_op_node, module_of, target_name
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

    @property
    def placement(self) -> dict[str, str]:
        return {n.node: n.memory for n in self.nodes if n.memory}


def plan_graph(graph: fx.Graph) -> Plan:
    nodes = []
    for node in graph.nodes:
        if not is_op_node(node):
            continue
        rule, reason = REGISTRY.decide(node)
        target = target_name(node.target)
        nodes.append(NodePlan(
            node=node.name, target=target, module=module_of(node)[0],
            lowered=reason is None, rule=rule.name if rule else "",
            ttnn=rule.ttnn if rule and reason is None else "",
            family=REGISTRY.family_of(target), reason=reason or "",
        ))
    return Plan(tuple(nodes))
