"""The aten -> TT-NN mapping table: one registry of rules, keyed by aten overload.

A rule names its aten targets, the ttnn op(s) it lowers to, a capability check that returns the
reason it declines a node (or None when it accepts), and the lowering. Rules are grouped by op
family in sibling modules; each registers itself with the `rule` decorator, so adding an op
touches one place. Nothing here imports ttnn: planning works without a device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import fx

from fxport.capture.records import target_name

Check = Callable[[fx.Node], "str | None"]
Lowering = Callable[..., Any]
# How a rule stores a node's tensors on the device, for the memory model: (input specs, output
# specs) as (shape, dtype) pairs, from an OpRecord. Default: the aten shapes as they are.
DeviceLayout = Callable[[Any], "tuple[list[tuple[tuple[int, ...], str]], list[tuple[tuple[int, ...], str]]]"]

FAMILIES = ("eltwise", "activation", "matmul", "conv_pool", "normalization", "attention",
            "embedding", "data_movement", "reduction", "creation")


@dataclass(frozen=True)
class Rule:
    name: str  # the lowering function's name, for messages
    targets: tuple[torch._ops.OpOverload, ...]
    ttnn: str  # the ttnn op(s) used, as shown by `fxport ops` ("ttnn.linear")
    family: str
    checks: tuple[Check, ...]
    lower: Lowering
    conditions: str  # human-readable summary of what the checks require
    device_layout: DeviceLayout | None = None
    # A composite op TT-NN runs as one fused kernel: capture keeps its targets whole instead of
    # decomposing them to core aten (fxport/capture/decompositions.py reads this flag).
    fused: bool = False

    def decline_reason(self, node: fx.Node) -> str | None:
        for check in self.checks:
            reason = check(node)
            if reason:
                return reason
        return None


@dataclass
class Registry:
    rules: dict[torch._ops.OpOverload, Rule] = field(default_factory=dict)
    _by_name: dict[str, Rule] | None = field(default=None, repr=False)

    def add(self, rule: Rule) -> None:
        for target in rule.targets:
            if target in self.rules:
                raise ValueError(f"{target} is mapped twice ({self.rules[target].name}, {rule.name})")
            self.rules[target] = rule

    def rule_for(self, node: fx.Node) -> Rule | None:
        return self.rules.get(node.target) if node.op == "call_function" else None

    def decide(self, node: fx.Node) -> tuple[Rule | None, str | None]:
        """(rule, None) when the node lowers; (rule or None, reason) when it falls back."""
        rule = self.rule_for(node)
        if rule is None:
            return None, f"no TT-NN rule for {target_name(node.target)}"
        return rule, rule.decline_reason(node)

    def targets(self) -> list[torch._ops.OpOverload]:
        return sorted(self.rules, key=target_name)

    def fused_targets(self) -> list[torch._ops.OpOverload]:
        return [t for t in self.targets() if self.rules[t].fused]

    def rule_named(self, target: str) -> Rule | None:
        """The rule for a target given by name ("aten.conv2d.default"), as records carry it."""
        if self._by_name is None or len(self._by_name) != len(self.rules):
            self._by_name = {target_name(t): r for t, r in self.rules.items()}
        return self._by_name.get(target)


REGISTRY = Registry()


def rule(*targets: torch._ops.OpOverload, ttnn: str, family: str,
         checks: Iterable[Check] = (), conditions: str = "",
         device_layout: DeviceLayout | None = None, fused: bool = False) -> Callable[[Lowering], Lowering]:
    """Register the decorated lowering `fn(ctx, node, *args, **kwargs)` for `targets`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown op family {family!r}")

    def register(fn: Lowering) -> Lowering:
        REGISTRY.add(Rule(fn.__name__, tuple(targets), ttnn, family, tuple(checks), fn, conditions,
                          device_layout, fused))
        return fn

    return register

