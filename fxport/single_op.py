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
from fxport.runtime.pcc import pcc


@dataclass
class SingleOpResult:
    plan: NodePlan
    node: NodeResult | None  # None when the plan sent the op to the host
    output: Any  # what the pipeline produced (host tensors; a tuple for multi-output ops)
    expected: Any  # the aten op in fp32 on the host
    pcc: float | None  # first output vs expected

    @property
    def ran_on_device(self) -> bool:
        return self.node is not None and self.node.status == "device"


def op_graph(target: Any, args: tuple, kwargs: dict | None = None) -> tuple[fx.GraphModule, list[torch.Tensor]]:
    """A graph holding one call of `target`; tensor arguments become placeholders."""
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
    if isinstance(value, (list, tuple)):  # read each output through getitem, as captured graphs do
        items = []
        for i, v in enumerate(value):
            item = graph.call_function(operator.getitem, (node, i))
            item.meta["val"] = v
            items.append(item)
        graph.output(tuple(items))
    else:
        graph.output(node)
    return fx.GraphModule(torch.nn.Module(), graph), inputs


def run_graph(ctx: LoweringContext, gm: fx.GraphModule, inputs: list) -> Execution:
    """Plan, partition and execute a small graph (a rule test's hand-built graph)."""
    plan = plan_graph(gm.graph)
    return execute(partition(gm, plan).graph_module, inputs, ctx)


def run_single_op(ctx: LoweringContext, target: Any, args: tuple, kwargs: dict | None = None) -> SingleOpResult:
    gm, inputs = op_graph(target, args, kwargs)
    plan = plan_graph(gm.graph)
    run = execute(partition(gm, plan).graph_module, inputs, ctx)
    expected = target(*args, **(kwargs or {}))
    output = tuple(run.outputs) if isinstance(expected, (list, tuple)) else run.outputs[0]
    first = lambda x: tree_flatten(x)[0][0] if isinstance(x, (list, tuple)) else x  # noqa: E731
    got, want = first(output), first(expected)
    score = None
    if isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor):
        score = pcc(got.float(), want.float()) if want.dtype != torch.bool else float(torch.equal(got, want))
    device_nodes = [r for r in run.nodes if r.partition]
    return SingleOpResult(plan.nodes[0], device_nodes[0] if device_nodes else None, output, expected, score)
