"""One harness for the mapping table's rule tests: one case format, one assertion per outcome.

A case is one aten call and what the table must do with it:

    lowers("add_bcast_row", aten.add.Tensor, T(1, 96, 32, 64), T(1, 1, 1, 64))
    declines("add_float64", aten.add.Tensor, T(4, dtype=f64), T(4, dtype=f64), reason="dtype float64")

`T(*shape, dtype=...)` is an input tensor whose values come from the table generated suites use
(`fxport.testgen.values`: restricted domains such as log's positive input, index bounds such as
an embedding's row count), bf16-exact; a real tensor in its place gives the values a test needs
(ties for comparisons, distinct values for arg-reductions, negative indices).

`assert_lowers` runs the call through the whole pipeline on the mock n150 (plan, partition,
execute: values from ttnn's golden functions at device precision) and compares every output the
graph reads with the aten op on the same inputs (`fxport.runtime.pcc.agreement`);
`assert_declines` plans it and checks the reason. Each tests/test_rules_*.py holds a `CASES`
table and gets both tests from `rule_tests(CASES)`; tests/test_rule_coverage.py walks the
registry and requires a lowering case and a decline case for every mapped overload.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pytest
import torch

from fxport.capture.records import TensorSpec, target_name
from fxport.dtypes import name_of
from fxport.plan import plan_graph
from fxport.runtime.context import LoweringContext
from fxport.single_op import op_graph, run_single_op
from fxport.testgen.values import make_tensor, value_plan

PCC = 0.99


class Made(NamedTuple):
    """An input tensor the harness makes from the shared value table."""

    shape: tuple[int, ...]
    dtype: torch.dtype


def T(*shape: int, dtype: torch.dtype = torch.float32) -> Made:
    return Made(tuple(shape), dtype)


@dataclass(frozen=True)
class Case:
    id: str
    target: torch._ops.OpOverload
    args: tuple
    kwargs: dict = field(default_factory=dict)
    expect: str = "lowers"  # or "declines"
    reason: str = ""  # declines: a part of the plan's reason
    reads: tuple[int, ...] | None = None  # which outputs of a multi-output op the graph reads
    memory: str = "dram"  # where activations live ("dram" or "l1")

    @property
    def name(self) -> str:
        return target_name(self.target)


def lowers(id: str, target, *args, reads: tuple[int, ...] | None = None, memory: str = "dram", **kwargs) -> Case:
    return Case(id, target, args, kwargs, "lowers", reads=reads, memory=memory)


def declines(id: str, target, *args, reason: str, reads: tuple[int, ...] | None = None, **kwargs) -> Case:
    return Case(id, target, args, kwargs, "declines", reason, reads=reads)


def inputs(case: Case) -> tuple[tuple, dict]:
    """The call's arguments with every T made: values chosen by `value_plan` for the op and the
    argument each tensor is passed as, drawn with a seed of the case id."""
    given: list[Any] = []  # T or tensor, in the order op_graph lifts them into placeholders

    def encode(v: Any) -> Any:
        if isinstance(v, (Made, torch.Tensor)):
            given.append(v)
            return {"tensor": len(given) - 1}
        if isinstance(v, (list, tuple)):
            return [encode(x) for x in v]
        if isinstance(v, torch.dtype):
            return {"dtype": name_of(v)}
        return v

    call = {"args": encode(list(case.args)), "kwargs": {k: encode(v) for k, v in case.kwargs.items()}}
    specs = tuple(TensorSpec(tuple(g.shape), name_of(g.dtype)) for g in given)
    values = value_plan(case.name, specs, (), call, has_rule=lambda _: True)
    gen = torch.Generator().manual_seed(zlib.crc32(case.id.encode()))
    made = iter(
        [
            make_tensor(tuple(g.shape), name_of(g.dtype), v, gen) if isinstance(g, Made) else g
            for g, v in zip(given, values)
        ]
    )

    def fill(v: Any) -> Any:
        if isinstance(v, (Made, torch.Tensor)):
            return next(made)
        if isinstance(v, (list, tuple)):
            return type(v)(fill(x) for x in v)
        return v

    return fill(case.args), {k: fill(v) for k, v in case.kwargs.items()}


def _tensors(value: Any) -> list[torch.Tensor]:
    flat = value if isinstance(value, (list, tuple)) else (value,)
    return [t for t in flat if isinstance(t, torch.Tensor)]


def assert_lowers(device, case: Case, threshold: float = PCC) -> None:
    """Lowered by the plan, ran on the device, and every output read matches the aten op."""
    args, kwargs = inputs(case)
    ctx = LoweringContext(device, memory=case.memory)
    r = run_single_op(ctx, case.target, args, kwargs, case.reads)
    assert r.plan.lowered, f"the plan declines it: {r.plan.reason}"
    assert r.ran_on_device, (
        f"{r.node.status}: {r.node.error_kind} {r.node.error}" if r.node else "the partitioner left it on the host"
    )
    got, want = _tensors(r.output), _tensors(r.expected)
    assert [(tuple(t.shape), t.dtype) for t in got] == [(tuple(t.shape), t.dtype) for t in want]
    assert all(s >= threshold for s in r.scores), f"agreement per output {r.scores} < {threshold}"


def assert_declines(case: Case) -> None:
    """The plan leaves it on the host, with a reason that says why."""
    args, kwargs = inputs(case)
    gm, _ = op_graph(case.target, args, kwargs, case.reads)
    node = plan_graph(gm.graph).nodes[0]
    assert not node.lowered, f"lowered by {node.rule}; expected a decline: {case.reason}"
    assert case.reason in node.reason, node.reason


def rule_tests(cases: list[Case]):
    """The two tests of a rule-test module, parametrised by its case table."""
    ids = [c.id for c in cases]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"case ids used twice: {duplicated}")

    @pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in cases if c.expect == "lowers"])
    def test_lowers(mock_device, case):
        assert_lowers(mock_device, case)

    @pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in cases if c.expect == "declines"])
    def test_declines(case):
        assert_declines(case)

    return test_lowers, test_declines
