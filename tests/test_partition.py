"""The partitioner on condensed graphs (fxport/partition): the partitions it proposes are valid
and as few as upstream's on the whole graph, while what upstream sees stays small."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
from torch import fx, nn
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase

from fxport.capture.records import is_op_node
from fxport.partition import partition
from fxport.partition.condense import condense, device_nodes
from fxport.plan import Plan, plan_graph
from fxport.tracing import export


class Residual(nn.Module):
    """Residual blocks, an op no rule maps (lgamma) in every `host_every`-th block's branch, and
    a side branch joining at the end (something for horizontal fusion)."""

    def __init__(self, blocks: int = 12, host_every: int = 3):
        super().__init__()
        self.a = nn.ModuleList(nn.Linear(16, 16) for _ in range(blocks))
        self.b = nn.ModuleList(nn.Linear(16, 16) for _ in range(blocks))
        self.host_every = host_every

    def forward(self, x):
        side = torch.relu(x) * 2
        for i, (a, b) in enumerate(zip(self.a, self.b)):
            h = torch.nn.functional.gelu(a(x))
            if i % self.host_every == 0:
                h = torch.lgamma(h)
            x = x + b(h)
        return x + torch.sigmoid(side)


@pytest.fixture(scope="module")
def residual() -> fx.GraphModule:
    return export(Residual(), (torch.randn(2, 16),)).graph_module


class _Support(OperatorSupportBase):
    def __init__(self, nodes):
        self.nodes = nodes

    def is_node_supported(self, submodules, node):
        return node in self.nodes


def _upstream_count(gm: fx.GraphModule, plan: Plan) -> int:
    """Partitions torch's CapabilityBasedPartitioner proposes on the whole, uncondensed graph."""
    device = device_nodes(gm.graph, {n.node for n in plan.nodes if n.lowered})
    return len(CapabilityBasedPartitioner(gm, _Support(device), allows_single_node_partition=True).propose_partitions())


def _random_plan(plan: Plan, seed: int, host_fraction: float) -> Plan:
    rnd = random.Random(seed)
    return Plan(tuple(dataclasses.replace(n, lowered=n.lowered and rnd.random() >= host_fraction) for n in plan.nodes))


@pytest.mark.parametrize("seed,host_fraction", [(0, 0.0), (1, 0.1), (2, 0.3), (3, 0.6)])
def test_partitions_are_valid_and_as_few_as_upstream(residual, seed, host_fraction):
    plan = _random_plan(plan_graph(residual.graph), seed, host_fraction)
    result = partition(residual, plan)
    lowered = {n.node for n in plan.nodes if n.lowered}
    placed = [name for p in result.partitions for name in p.nodes]
    assert sorted(placed) == sorted(lowered)  # every lowered op in exactly one partition
    top = {n.name for n in result.graph_module.graph.nodes if is_op_node(n)}
    assert top == {n.node for n in plan.nodes} - lowered  # host ops stay at the top level
    result.graph_module.graph.lint()  # topologically ordered: no partition made a cycle
    assert len(result.partitions) == _upstream_count(residual, plan)
    assert residual.graph is not result.graph_module.graph  # the captured graph is left as it was
    assert sum(is_op_node(n) for n in residual.graph.nodes) == len(plan.nodes)


def test_host_ops_in_residual_branches_cut_the_graph_into_segments(residual):
    plan = plan_graph(residual.graph)
    hosts = [n for n in plan.nodes if not n.lowered]
    assert [n.target for n in hosts] == ["aten.lgamma.default"] * 4
    condensed = condense(residual.graph, {n.node for n in plan.nodes if n.lowered})
    # Each lgamma lies between the residual stream before and after it, which it separates.
    assert len(condensed.segments) == 5
    # What upstream sees: groups of nodes, not nodes.
    seen = sum(1 for s in condensed.segments for n in s.graph.nodes if n.op == "call_function")
    assert seen <= 2 * len(hosts) + 3
    assert len(partition(residual, plan).partitions) == len(hosts) + 1


def test_a_graph_whose_every_op_lowers_is_one_group():
    gm = export(nn.LSTM(8, 8, num_layers=2, batch_first=True), (torch.randn(1, 12, 8),)).graph_module
    plan = plan_graph(gm.graph)
    assert plan.coverage == 1.0
    condensed = condense(gm.graph, {n.node for n in plan.nodes})
    assert [sum(1 for n in s.graph.nodes if n.op == "call_function") for s in condensed.segments] == [1]
    assert len(partition(gm, plan).partitions) == 1


def test_min_block_size_leaves_small_partitions_on_the_host(residual):
    plan = plan_graph(residual.graph)
    sizes = sorted(p.op_count for p in partition(residual, plan).partitions)
    kept = partition(residual, plan, min_block_size=sizes[0] + 1).partitions
    assert len(kept) == len([s for s in sizes if s > sizes[0]])


class TwoStreams(nn.Module):
    """Outputs reached by disjoint paths (as in torchvision's RAFT, whose flow predictions leave
    by separate streams): the condensed graph's sink has no dominator but the source."""

    def forward(self, x, y):
        a = torch.relu(x) * 2
        b = torch.lgamma(torch.sigmoid(y)) + 1
        return a, torch.lgamma(b)


def test_outputs_on_disjoint_paths_have_no_dominator_and_one_segment():
    gm = export(TwoStreams(), (torch.randn(2, 4), torch.randn(2, 4))).graph_module
    plan = plan_graph(gm.graph)
    lowered = {n.node for n in plan.nodes if n.lowered}
    assert 0 < len(lowered) < len(plan.nodes)
    condensed = condense(gm.graph, lowered)
    assert len(condensed.segments) == 1
    result = partition(gm, plan)
    result.graph_module.graph.lint()
    assert sorted(name for p in result.partitions for name in p.nodes) == sorted(lowered)
    assert len(result.partitions) == _upstream_count(gm, plan)


class WeightStandardised(nn.Module):
    """A conv whose weight is standardised every call: a weight transform (view) the plan lowers,
    then a training-mode batch norm it cannot, then the conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)

    def forward(self, x):
        w = torch.nn.functional.batch_norm(
            self.conv.weight.reshape(1, 8, -1), None, None, training=True, momentum=0.0
        ).reshape_as(self.conv.weight)
        return torch.nn.functional.conv2d(x, w, self.conv.bias, padding=1)


def test_no_device_partition_ships_only_parameter_transforms():
    from fxport.partition import CONSTANTS_ONLY
    from fxport.run_options import RunOptions
    from fxport.runner import compile_program

    program = export(WeightStandardised(), (torch.randn(1, 4, 8, 8),))
    # With the graph passes the constants pass folds the whole weight transform at compile time
    folded = compile_program(program)
    assert not any(n.target.startswith("aten._native_batch_norm") for n in folded.plan.nodes)
    assert all(not set(p.inputs) <= set(folded.optimized.constants) for p in folded.parts.partitions)
    # The partition policy on its own (no passes): the transform stays on the host, and says why
    compiled = compile_program(program, RunOptions(passes=()))
    params = set(program.graph_signature.inputs_to_parameters)
    assert compiled.parts.partitions
    assert all(not set(p.inputs) <= params for p in compiled.parts.partitions)
    kept = {n.node: n.reason for n in compiled.plan.nodes if n.reason == CONSTANTS_ONLY}
    assert list(kept) == ["view"]  # the weight's reshape before the host batch norm: the report says why
    # Without the policy the partitioner would have shipped it alone.
    plain = partition(program.graph_module, plan_graph(program.graph))
    assert any(set(p.inputs) <= params for p in plain.partitions)
