"""What the partitioner is given: condensed graphs in which a node stands for a run of graph nodes
that end up together whatever it decides, cut into segments no partition can span.

torch.fx's CapabilityBasedPartitioner is quadratic in the nodes it sees: it keeps, for every node,
the set of all nodes downstream of it (18 GB for a 20k-node unrolled LSTM), and tries to merge every
new node with every partition so far. Two linear steps make what it sees small without changing
what it decides:

1. **Groups.** Every call node has a kind: device (the plan lowers it; a getitem follows the node it
   indexes) or host. Its level is the largest number of device/host changes on a path from the
   graph's inputs: level(v) = max over inputs u of level(u) + (kind(u) != kind(v)) (placeholders
   have no kind). A group is a connected set of nodes of one kind and one level joined by their own
   edges. Levels never decrease along an edge and rise at every change of kind, so an edge between
   two groups rises in level: a path that leaves a group never comes back, the groups form a DAG
   in level order, and a set of groups is acyclic exactly when its nodes are. An unrolled LSTM
   whose every op lowers is one group.
2. **Segments.** Where every path through the graph passes a host group (a host dominator), or
   passes only host groups between two consecutive dominators (a residual stream around a host op:
   `x + f(host(g(x)))`), no partition can hold device nodes on both sides: it would contain a path
   through the host. The partitioner runs once per segment, and since every merge across a cut
   would fail its cycle check, it decides within each segment as it would over the whole graph.
   A deep model with a host op in every block is many small segments, not one quadratic problem.

The cost that remains is quadratic in the largest segment: host and device nodes alternating
many times within one stretch of parallel branches.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import networkx as nx
import torch
from torch import fx
from torch.fx._lazy_graph_module import _make_graph_module, _use_lazy_graph_module
from torch.fx.passes.operator_support import OperatorSupportBase


@dataclass
class Condensed:
    segments: list[fx.GraphModule]  # one call node per group, in level order; walls between them
    members: dict[fx.Node, list[fx.Node]]  # condensed node -> its graph nodes, in graph order
    device: set[fx.Node]  # condensed nodes of device groups
    order: dict[fx.Node, int]  # graph node -> position in the graph


class GroupSupport(OperatorSupportBase):
    """The partitioner's support test on a condensed graph: a device group is supported."""

    def __init__(self, condensed: Condensed):
        self.device = condensed.device

    def is_node_supported(self, submodules, node: fx.Node) -> bool:
        return node in self.device


def _group(*inputs):  # the target of a condensed node; never called
    raise AssertionError("a condensed graph is never run")


def device_nodes(graph: fx.Graph, lowered: set[str]) -> set[fx.Node]:
    """The call nodes that run on the device: lowered ops, and tuple indexing of one."""
    out = set()
    for n in graph.nodes:
        if n.op != "call_function":
            continue
        if n.target is operator.getitem:
            if isinstance(n.args[0], fx.Node) and n.args[0].name in lowered:
                out.add(n)
        elif n.name in lowered:
            out.add(n)
    return out


def condense(graph: fx.Graph, lowered: set[str]) -> Condensed:
    device = device_nodes(graph, lowered)
    order, groups = _groups(graph, device)
    owner: dict[fx.Node, int] = {}
    dag = nx.DiGraph()
    for g, nodes in enumerate(groups):  # level order is a topological order of the groups
        dag.add_node(g)
        # Earlier groups own every input from outside this one; its own nodes are not owned yet.
        dag.add_edges_from((owner[u], g) for n in nodes for u in n.all_input_nodes if u in owner)
        owner.update(dict.fromkeys(nodes, g))
    segment = _segments(dag, {g for g, nodes in enumerate(groups) if nodes[0] not in device})
    graphs = [fx.Graph() for _ in range(max(segment, default=0) + 1)]
    nodes_of: dict[int, fx.Node] = {}
    members, device_groups = {}, set()
    for g, nodes in enumerate(groups):
        graph_ = graphs[segment[g]]
        c = graph_.call_function(_group, tuple(nodes_of[u] for u in dag.predecessors(g) if segment[u] == segment[g]))
        nodes_of[g], members[c] = c, nodes
        if nodes[0] in device:
            device_groups.add(c)
    for graph_ in graphs:
        graph_.output(None)
    with _use_lazy_graph_module(True):  # never run: no code to generate
        segments = [_make_graph_module(torch.nn.Module(), g) for g in graphs]
    return Condensed(segments, members, device_groups, order)


def _groups(graph: fx.Graph, device: set[fx.Node]) -> tuple[dict[fx.Node, int], list[list[fx.Node]]]:
    """Graph positions, and the groups (see the module docstring) in topological order."""
    order: dict[fx.Node, int] = {}
    level: dict[fx.Node, int] = {}
    links = nx.Graph()
    for i, n in enumerate(graph.nodes):
        order[n] = i
        if n.op != "call_function":
            continue
        kind = n in device
        links.add_node(n)
        inputs = [u for u in n.all_input_nodes if u in level]
        lv = max((level[u] + ((u in device) != kind) for u in inputs), default=0)
        level[n] = lv
        links.add_edges_from((u, n) for u in inputs if level[u] == lv and (u in device) == kind)
    groups = [sorted(c, key=order.__getitem__) for c in nx.connected_components(links)]
    owner = {n: g for g, nodes in enumerate(groups) for n in nodes}
    # A group that reads only the graph's inputs and feeds one group of its kind (a weight's
    # transpose feeding its matmul, an arange feeding its user) joins it: nothing can come between.
    joined: dict[int, int] = {}
    for g, nodes in enumerate(groups):
        if any(owner.get(u, g) != g for n in nodes for u in n.all_input_nodes):
            continue
        users = {owner[u] for n in nodes for u in n.users if owner.get(u, g) != g}
        if len(users) == 1 and ((nodes[0] in device) == (groups[next(iter(users))][0] in device)):
            joined[g] = users.pop()
    for g, into in joined.items():
        groups[into] = sorted(groups[into] + groups[g], key=order.__getitem__)
    kept = [nodes for g, nodes in enumerate(groups) if g not in joined]
    # Level order is topological: an edge between two groups rises in level (a joined group's
    # sources have no edge to another group, and a level no higher than the group's).
    kept.sort(key=lambda nodes: (max(level[n] for n in nodes), order[nodes[0]]))
    return order, kept


def _segments(dag: nx.DiGraph, host: set[int]) -> list[int]:
    """The segment of every group (groups are numbered in topological order).

    The dominators of the condensed graph's sink (from a source joined to every source) are the
    groups on every path; every group is an ancestor of the first (unit 0), or is dominated by the
    k-th and an ancestor of the (k+1)-th (unit k+1, the k-th dominator first). There may be no
    dominator at all (outputs reached by disjoint paths): then everything is unit 0. A partition
    cannot hold device groups on both sides of the start of unit k >= 1 when its dominator is a
    host group, or when the other groups of unit k-1 are all host groups: every device group
    before reaches them and they reach every group after."""
    if not dag:
        return []
    flow = dag.copy()
    flow.add_edges_from(("source", g) for g in dag if dag.in_degree(g) == 0)
    flow.add_edges_from((g, "sink") for g in dag if dag.out_degree(g) == 0)
    idom = nx.immediate_dominators(flow, "source")
    chain, g = [], idom["sink"]
    while g != "source":
        chain.append(g)
        g = idom[g]
    chain.reverse()
    unit_of = {d: k + 1 for k, d in enumerate(chain)}
    unit = [0] * len(dag)
    others = [[False, False] for _ in range(len(chain) + 1)]  # per unit: holds a non-dominator host / device group
    for g in range(len(dag)):  # a group's inputs are in its unit, or are that unit's dominator
        if g in unit_of:
            unit[g] = unit_of[g]
        else:
            unit[g] = max((unit[u] for u in dag.predecessors(g)), default=0)
            others[unit[g]][g not in host] = True
    start, count = [0] * (len(chain) + 1), 0
    for k, d in enumerate(chain, start=1):
        host_before = others[k - 1][0] and not others[k - 1][1]
        count += d in host or host_before
        start[k] = count
    return [start[u] for u in unit]
