"""Stage 3, partition: device subgraphs and host nodes, by torch.fx's CapabilityBasedPartitioner.

The partitioner takes the plan's verdicts (the mapping table's, decided once per node) for which
nodes run on the device and fuses maximal groups of them into `fused_N` submodules without creating cycles. Host
<-> device transfers happen only where a value crosses a submodule boundary.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass

from torch import fx
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase

from fxport.capture.records import is_op_node
from fxport.plan import Plan


@dataclass(frozen=True)
class DevicePartition:
    name: str  # the submodule name in the partitioned graph ("fused_0")
    op_count: int
    nodes: tuple[str, ...]  # op node names, in graph order
    inputs: tuple[str, ...]  # values entering from the host
    outputs: tuple[str, ...]  # values leaving to the host


@dataclass
class Partitioned:
    graph_module: fx.GraphModule  # top level: host nodes + call_module nodes for partitions
    partitions: list[DevicePartition]

    def partition(self, name: str) -> DevicePartition:
        return next(p for p in self.partitions if p.name == name)


class _PlanSupport(OperatorSupportBase):
    """The plan's verdicts, by node name. Tuple indexing follows the node it indexes into."""

    def __init__(self, plan: Plan):
        self.lowered = {n.node for n in plan.nodes if n.lowered}

    def is_node_supported(self, submodules, node: fx.Node) -> bool:
        if node.op != "call_function":
            return False
        if node.target is operator.getitem:
            return isinstance(node.args[0], fx.Node) and node.args[0].name in self.lowered
        return node.name in self.lowered


def partition(gm: fx.GraphModule, plan: Plan, min_block_size: int = 1) -> Partitioned:
    """Partition a copy of `gm` along `plan`.
    Partitions with fewer than `min_block_size` ops stay on the host (as in Torch-TensorRT: a tiny
    island is not worth its two transfers)."""
    # Node names survive the copy, so the plan's verdicts still apply. Tensors are shared, not
    # copied: constants keep their identity (the runtime keeps their device copies by it).
    gm = copy.deepcopy(gm, {id(t): t for t in [*gm.parameters(), *gm.buffers()]})
    partitioner = CapabilityBasedPartitioner(gm, _PlanSupport(plan), allows_single_node_partition=True)
    proposed = [p for p in partitioner.propose_partitions()
                if sum(is_op_node(n) for n in p.nodes) >= min_block_size]
    fused = partitioner.fuse_partitions(proposed)
    partitions = []
    for node in fused.graph.nodes:
        if node.op == "call_module" and node.target.startswith("fused_"):
            sub = fused.get_submodule(node.target)
            ops = tuple(n.name for n in sub.graph.nodes if is_op_node(n))
            outputs = tuple(u.name for u in node.users) if _returns_tuple(sub) else (node.name,)
            partitions.append(DevicePartition(
                name=node.target, op_count=len(ops), nodes=ops,
                inputs=tuple(a.name for a in node.all_input_nodes), outputs=outputs))
    return Partitioned(fused, partitions)


def _returns_tuple(sub: fx.GraphModule) -> bool:
    out = next(n for n in sub.graph.nodes if n.op == "output")
    return isinstance(out.args[0], (tuple, list))
