"""One aten op through the whole pipeline: plan, partition, execute on a device, compare.

Used by the rule tests (each rule's argument translation checked against ttnn's golden function
on a real ttnn device) and by generated per-op test suites.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx
from torch.utils._pytree import tree_flatten

from fxport.partition import partition
from fxport.plan import NodePlan, plan_graph
from fxport.runtime.context import LoweringContext
from fxport.runtime.execute import Execution, NodeResult, execute
from fxport.runtime.pcc import agreement


@dataclass
class SingleOpResult:
    plan: NodePlan
    node: NodeResult | None  # None when the plan sent the op to the host
    output: Any  # what the pipeline produced (host tensors; a tuple for multi-output ops)
    expected: Any  # the aten op in fp32 on the host, in the same structure
    scores: list[float]  # agreement of each output tensor with the expected one (runtime.pcc)

    @property
    def ran_on_device(self) -> bool:
        return self.node is not None and self.node.status == "device"

    @property
    def pcc(self) -> float | None:
        """The first output's score."""
        return self.scores[0] if self.scores else None


def op_graph(
    target: Any, args: tuple, kwargs: dict | None = None, reads: tuple[int, ...] | None = None
) -> tuple[fx.GraphModule, list[torch.Tensor]]:
    """A graph holding one call of `target`; tensor arguments become placeholders. A
    multi-output op's outputs are read through getitem, as in captured graphs: `reads` says
    which (default: all)."""
    kwargs = kwargs or {}
    graph = fx.Graph()
    inputs: list[torch.Tensor] = []

    def lift(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            node = graph.placeholder(f"arg{len(inputs)}")
            node.meta["val"] = value
            inputs.append(value)
            return node
        if isinstance(value, (list, tuple)):
            return type(value)(lift(v) for v in value)
        return value

    node_args, node_kwargs = lift(args), {k: lift(v) for k, v in kwargs.items()}
    node = graph.call_function(target, node_args, node_kwargs)
    node.meta["val"] = value = target(*args, **kwargs)
    if isinstance(value, (list, tuple)):
        items = []
        for i in range(len(value)) if reads is None else reads:
            item = graph.call_function(operator.getitem, (node, i))
            item.meta["val"] = value[i]
            items.append(item)
        graph.output(tuple(items))
    else:
        graph.output(node)
    return fx.GraphModule(torch.nn.Module(), graph), inputs


def run_graph(ctx: LoweringContext, gm: fx.GraphModule, inputs: list) -> Execution:
    """Plan, partition and execute a small graph (a rule test's hand-built graph)."""
    plan = plan_graph(gm.graph)
    return execute(partition(gm, plan).graph_module, inputs, ctx)


def run_single_op(
    ctx: LoweringContext, target: Any, args: tuple, kwargs: dict | None = None, reads: tuple[int, ...] | None = None
) -> SingleOpResult:
    gm, inputs = op_graph(target, args, kwargs, reads)
    plan = plan_graph(gm.graph)
    run = execute(partition(gm, plan).graph_module, inputs, ctx)
    expected = target(*args, **(kwargs or {}))
    if isinstance(expected, (list, tuple)):
        expected = tuple(expected[i] for i in (range(len(expected)) if reads is None else reads))
        output = tuple(run.outputs)
    else:
        output = run.outputs[0]
    scores = [agreement(g, w) for g, w in zip(_tensors(output), _tensors(expected))]
    device_nodes = [r for r in run.nodes if r.partition]
    return SingleOpResult(plan.nodes[0], device_nodes[0] if device_nodes else None, output, expected, scores)


def _tensors(value: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]
