"""The unique-op inventory: op records grouped by (target, input specs, arguments)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from fxport.capture.records import OpRecord, TensorSpec, split_target


@dataclass(frozen=True)
class UniqueOp:
    target: str
    inputs: tuple[TensorSpec, ...]
    args: str
    outputs: tuple[TensorSpec, ...]
    count: int  # nodes with this signature, counting repeats
    modules: tuple[str, ...]  # distinct module paths where it occurs, sorted

    @property
    def op(self) -> str:
        return split_target(self.target)[0]

    @property
    def overload(self) -> str:
        return split_target(self.target)[1]


def unique_ops(records: list[OpRecord]) -> list[UniqueOp]:
    groups: dict[tuple, list[OpRecord]] = defaultdict(list)
    for r in records:
        groups[(r.target, r.inputs, r.args)].append(r)
    rows = [
        UniqueOp(target, inputs, args, rs[0].outputs, sum(r.repeat for r in rs), tuple(sorted({r.module for r in rs})))
        for (target, inputs, args), rs in groups.items()
    ]
    return sorted(rows, key=lambda u: (u.target, -u.count, str(u.inputs), u.args))


def op_counts(records: list[OpRecord]) -> dict[str, int]:
    """Node count per aten target, counting repeats."""
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r.target] += r.repeat
    return dict(sorted(counts.items()))
