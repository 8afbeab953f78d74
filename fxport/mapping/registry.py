"""The aten -> TT-NN mapping table: one registry of rules, keyed by aten overload.

A rule names its aten targets, the ttnn op(s) it lowers to, its op family, its capability checks
and the lowering. A check (`Check`) carries what it requires, for people, and a test that returns
the reason it declines a node (or None when the node meets it); a rule's `conditions` are its
checks' requirements, so what `fxport ops` says cannot drift from what the checks do. Rules are
grouped by op family in sibling modules; each registers itself with the `rule` decorator, so adding
an op touches one place. Nothing here imports ttnn: planning works without a device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch
from torch import fx

from fxport.capture.records import split_target, target_name

Lowering = Callable[..., Any]
# How a rule stores a node's tensors on the device, for the memory model: (input specs, output
# specs) as (shape, dtype) pairs, from an OpRecord. Default: the aten shapes as they are.
DeviceLayout = Callable[[Any], "tuple[list[tuple[tuple[int, ...], str]], list[tuple[tuple[int, ...], str]]]"]


@dataclass(frozen=True)
class NhwcCall:
    """A node's channels-last form: the call computing its output from flattened NHWC inputs
    ([1, 1, N*H*W, C], what TT-NN's conv and pool kernels take and return)."""

    target: Any
    args: tuple
    kwargs: dict = field(default_factory=dict)
    flat_output: bool = True  # its output is flattened too (else: the node's own aten output)
    # Worth running even when no input is channels-last yet: the device's own form of the op
    # (conv, pool), or a permute that becomes a reshape.
    native: bool = False


# The layout pass calls a rule's form with the node and `flat`, which gives an input's value
# flattened; the form returns the NhwcCall, or None when the node needs the aten layout.
NhwcForm = Callable[[fx.Node, Callable[[fx.Node], fx.Node]], "NhwcCall | None"]

FAMILIES = (
    "eltwise",
    "activation",
    "matmul",
    "conv_pool",
    "normalization",
    "attention",
    "embedding",
    "data_movement",
    "reduction",
    "creation",
)
# The family of an op no rule maps, and of which no other overload is mapped either.
UNMAPPED = "unmapped"


@dataclass(frozen=True)
class Check:
    """A capability check. `requires` says what it requires ("rank <= 8"); `test(node)` returns
    why the node does not meet it, or None."""

    requires: str
    test: Callable[[fx.Node], "str | None"]

    def __call__(self, node: fx.Node) -> str | None:
        return self.test(node)


def check(requires: str) -> Callable[[Callable[[fx.Node], "str | None"]], Check]:
    """Decorator: a test function as a Check that requires `requires`."""
    if not requires:
        raise ValueError("a check must say what it requires")
    return lambda test: Check(requires, test)


@dataclass(frozen=True)
class FusedActivation:
    """An aten activation TT-NN applies inside a conv2d or linear kernel (checked on the mock
    device per activation: tests/test_passes.py)."""

    target: torch._ops.OpOverload
    name: str  # the fused op's `activation` argument, TT-NN's name for it ("relu", "silu")
    accepts: Check | None = None  # declines (a reason) parameters TT-NN's fused form lacks


@dataclass(frozen=True)
class Fusion:
    """What a rule's op (conv2d, linear) can absorb: the activations TT-NN fuses into it, and
    `form(node, activation)`, the (target, args) of the fused op."""

    activations: tuple[FusedActivation, ...]
    form: Callable[[fx.Node, str], "tuple[Any, tuple]"]

    def activation_for(self, node: fx.Node) -> str | None:
        """TT-NN's name for the activation `node` computes, when it fuses into this op."""
        for a in self.activations:
            if (
                node.op == "call_function"
                and node.target == a.target
                and (a.accepts is None or a.accepts(node) is None)
            ):
                return a.name
        return None


@dataclass(frozen=True)
class Rule:
    name: str  # the lowering function's name, for messages
    targets: tuple[torch._ops.OpOverload, ...]
    ttnn: str  # the ttnn op(s) used, as shown by `fxport ops` ("ttnn.linear")
    family: str
    checks: tuple[Check, ...]
    lower: Lowering
    device_layout: DeviceLayout | None = None
    # A composite op TT-NN runs as one fused kernel: capture keeps its targets whole instead of
    # decomposing them to core aten (fxport/tracing.py reads this flag).
    fused: bool = False
    # Activations TT-NN applies inside this op (the fuse_activations pass reads it).
    fusion: Fusion | None = None
    # How this op runs on channels-last values (the layout pass reads it); None: aten layout only.
    nhwc: NhwcForm | None = None

    @property
    def conditions(self) -> str:
        """What the rule requires of a node: its checks' requirements, in the order they run."""
        return "; ".join(dict.fromkeys(c.requires for c in self.checks))

    def decline_reason(self, node: fx.Node) -> str | None:
        for c in self.checks:
            reason = c(node)
            if reason:
                return reason
        return None


@dataclass
class Registry:
    rules: dict[torch._ops.OpOverload, Rule] = field(default_factory=dict)
    # Ops no rule maps because TT-NN has no kernel for them: the limit, said when they fall back.
    limits: dict[torch._ops.OpOverload, str] = field(default_factory=dict)
    _by_name: dict[str, Rule] = field(default_factory=dict, repr=False)

    def add(self, rule: Rule) -> None:
        for c in rule.checks:
            if not isinstance(c, Check):
                raise TypeError(f"rule {rule.name}: check {c!r} is not a Check (use @check(requires))")
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
            limit = self.limits.get(node.target) if node.op == "call_function" else None
            return None, f"no TT-NN rule for {target_name(node.target)}" + (f": {limit}" if limit else "")
        return rule, rule.decline_reason(node)

    def targets(self) -> list[torch._ops.OpOverload]:
        return sorted(self.rules, key=target_name)

    def fused_targets(self) -> list[torch._ops.OpOverload]:
        return [t for t in self.targets() if self.rules[t].fused]

    def _names(self) -> dict[str, Rule]:
        if len(self._by_name) != len(self.rules):
            self._by_name = {target_name(t): r for t, r in self.rules.items()}
        return self._by_name

    def rule_named(self, target: str) -> Rule | None:
        """The rule for a target given by name ("aten.conv2d.default"), as records carry it."""
        return self._names().get(target)

    def family_of(self, target: str) -> str:
        """The op family of a target given by name, for reports: its rule's family; for an
        overload no rule maps, the family of a mapped overload of the same op (aten.add.out is
        "eltwise" like aten.add.Tensor); else UNMAPPED."""
        rule = self.rule_named(target)
        if rule is not None:
            return rule.family
        op = split_target(target)[0]
        families = sorted({r.family for name, r in self._names().items() if split_target(name)[0] == op})
        return families[0] if families else UNMAPPED


REGISTRY = Registry()


def no_kernel(*targets: torch._ops.OpOverload, limit: str) -> None:
    """Record that TT-NN has no kernel for `targets`: they stay unmapped (no rule, not counted by
    `fxport ops`) and their fallback reason names the limit."""
    for target in targets:
        REGISTRY.limits[target] = limit


def rule(
    *targets: torch._ops.OpOverload,
    ttnn: str,
    family: str,
    checks: Iterable[Check] = (),
    device_layout: DeviceLayout | None = None,
    fused: bool = False,
    fusion: Fusion | None = None,
    nhwc: NhwcForm | None = None,
) -> Callable[[Lowering], Lowering]:
    """Register the decorated lowering `fn(ctx, node, *args, **kwargs)` for `targets`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown op family {family!r}")

    def register(fn: Lowering) -> Lowering:
        REGISTRY.add(
            Rule(fn.__name__, tuple(targets), ttnn, family, tuple(checks), fn, device_layout, fused, fusion, nhwc)
        )
        return fn

    return register
