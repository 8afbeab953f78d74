"""Stage 3, partition: device subgraphs and host nodes, by torch.fx's CapabilityBasedPartitioner.

The partitioner takes the plan's verdicts (the mapping table's, decided once per node) for which
nodes run on the device and fuses maximal groups of them into `fused_N` submodules without creating
cycles. Host <-> device transfers happen only where a value crosses a submodule boundary.

The upstream partitioner is quadratic in the nodes it sees, so it is given condensed graphs
(`fxport.partition.condense`): runs of nodes that end up together whatever it decides become one
node each, and the graph is cut at host nodes no partition can span. It decides over those runs
(merging, cycle checks, horizontal fusion) as it would over their nodes, and torch.fx's
`fuse_by_partitions` builds the submodules on the real graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from unittest.mock import patch

from torch import fx
from torch.fx._lazy_graph_module import _make_graph_module, _use_lazy_graph_module
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.utils import common as fx_common
from torch.fx.passes.utils import fuser_utils
from torch.fx.passes.utils.fuser_utils import fuse_by_partitions

from fxport.capture.records import is_op_node
from fxport.gcpause import without_gc
from fxport.partition.condense import Condensed, GroupSupport, condense
from fxport.plan import Plan


@dataclass(frozen=True)
class DevicePartition:
    name: str  # the submodule name in the partitioned graph ("fused_0")
    op_count: int
    nodes: tuple[str, ...]  # op node names, in graph order
    inputs: tuple[str, ...]  # values entering from the host
    outputs: tuple[str, ...]  # values leaving to the host


# Why a partition the partitioner proposed stays on the host (`constants` policy, below).
CONSTANTS_ONLY = (
    "reads only parameters and constants and every output goes back to the host: "
    "computed on the host, it ships nothing to the device and back every inference"
)


@dataclass
class Partitioned:
    graph_module: fx.GraphModule  # top level: host nodes + call_module nodes for partitions
    partitions: list[DevicePartition]
    kept_on_host: dict[str, str] = field(default_factory=dict)  # lowered node -> why it stays on the host

    def partition(self, name: str) -> DevicePartition:
        return next(p for p in self.partitions if p.name == name)


@without_gc
def partition(
    gm: fx.GraphModule, plan: Plan, min_block_size: int = 1, constants: frozenset[str] | None = None
) -> Partitioned:
    """Partition a copy of `gm` along `plan`.
    Partitions with fewer than `min_block_size` ops stay on the host (as in Torch-TensorRT: a tiny
    island is not worth its two transfers). With `constants` (placeholder names of parameters,
    buffers and lifted constants), so does a partition that reads nothing else and feeds no other
    partition: weight transforms and shape constants whose every output goes straight back to the
    host (`kept_on_host` says why). Without, every proposed partition is kept (single-op runs)."""
    gm = _copy(gm)  # node names survive the copy, so the plan's verdicts still apply
    condensed = condense(gm.graph, {n.node for n in plan.nodes if n.lowered})
    proposed = []
    for segment in condensed.segments:
        partitioner = CapabilityBasedPartitioner(segment, GroupSupport(condensed), allows_single_node_partition=True)
        proposed += [_expand(condensed, p.nodes) for p in partitioner.propose_partitions()]
    proposed = [p for p in proposed if sum(is_op_node(n) for n in p) >= min_block_size]
    kept = _constant_only(proposed, constants) if constants is not None else {}
    proposed = [p for i, p in enumerate(proposed) if i not in kept]
    fused = _fuse(gm, proposed) if proposed else gm
    partitions = []
    for node in fused.graph.nodes:
        if node.op == "call_module" and node.target.startswith("fused_"):
            sub = fused.get_submodule(node.target)
            ops = tuple(n.name for n in sub.graph.nodes if is_op_node(n))
            outputs = tuple(u.name for u in node.users) if _returns_tuple(sub) else (node.name,)
            partitions.append(
                DevicePartition(
                    name=node.target,
                    op_count=len(ops),
                    nodes=ops,
                    inputs=tuple(a.name for a in node.all_input_nodes),
                    outputs=outputs,
                )
            )
    return Partitioned(fused, partitions, {n.name: CONSTANTS_ONLY for i in kept for n in kept[i] if is_op_node(n)})


def _constant_only(proposed: list[dict[fx.Node, None]], constants: frozenset[str]) -> dict[int, dict]:
    """The proposed partitions whose inputs are all constants (or none) and whose outputs no other
    partition reads."""
    owner = {n: i for i, p in enumerate(proposed) for n in p}
    kept = {}
    for i, p in enumerate(proposed):
        inputs = {u for n in p for u in n.all_input_nodes if owner.get(u) != i}
        if not all(u.op == "get_attr" or (u.op == "placeholder" and u.name in constants) for u in inputs):
            continue
        if any(owner.get(u, i) != i for n in p for u in n.users):
            continue  # a device consumer: the values stay on the device
        kept[i] = p
    return kept


def _fuse(gm: fx.GraphModule, partitions: list[dict[fx.Node, None]]) -> fx.GraphModule:
    """torch.fx's `fuse_by_partitions`, with one cycle check of the result instead of one per
    partition: `fuse_as_graphmodule` validates each partition by a walk of every node downstream of
    it (nodes x partitions in all, seconds on a long graph with a host op in every block). These
    partitions passed the partitioner's own cycle checks, and the stable topological sort that ends
    `fuse_by_partitions` raises on any cycle in the fused graph."""
    # Each submodule's code is generated when it is first run (lazily), not once per partition
    # as `lift_subgraph_as_module`'s plain GraphModule would (seconds for a thousand partitions).
    with (
        _use_lazy_graph_module(True),
        patch.object(fuser_utils, "validate_partition", lambda nodes: True),
        patch.object(fx_common, "GraphModule", _make_graph_module),
    ):
        return fuse_by_partitions(gm, partitions, prefix="fused_")


def _expand(condensed: Condensed, groups) -> dict[fx.Node, None]:
    """The graph nodes of a partition of the condensed graph, in graph order."""
    nodes = [n for g in groups for n in condensed.members[g]]
    nodes.sort(key=condensed.order.__getitem__)
    return dict.fromkeys(nodes)


def _copy(gm: fx.GraphModule) -> fx.GraphModule:
    """A new module over a copy of the graph (node metadata is shared, not deep-copied: it is
    never mutated here, and deep-copying every node's fake tensors costs seconds on large graphs)."""
    graph = fx.Graph()
    graph.output(graph.graph_copy(gm.graph, {}))
    with _use_lazy_graph_module(True):  # its code is generated if anything asks for it
        return _make_graph_module(gm, graph)


def _returns_tuple(sub: fx.GraphModule) -> bool:
    out = next(n for n in sub.graph.nodes if n.op == "output")
    return isinstance(out.args[0], (tuple, list))
