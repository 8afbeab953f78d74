"""Where error enters a run (`fxport run --localize`).

Per-node PCC compares each device op with the aten op on the *same* inputs, so an error that one
node makes and later nodes carry (a moved index, a wrong lowering whose output still correlates)
is invisible until the final output. Localisation compares instead every node's output as the run
computed it (the device's own upstream values) with the fp32 reference computed from reference
values all along: the accumulated PCC. Error enters at a node whose accumulated PCC falls below
the threshold while every input's is still above it.

A node whose reference output is nearly constant (a sigmoid gate at 0.5 +- 0.003) has a PCC
that says nothing; when its values agree with the reference to bf16 rounding it is labelled
"rounding", not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import fx

from fxport.capture.records import is_op_node, module_of, target_name
from fxport.runtime.pcc import agreement

_BF16_STEP = 2.0**-8
ERROR, ROUNDING = "error", "rounding"


@dataclass(frozen=True)
class EntryPoint:
    """A node where the accumulated PCC drops below the threshold."""

    node: str
    target: str
    module: str
    source: str  # "file.py:12 in forward"
    pcc: float  # its output as the run computed it vs the fp32 reference
    inputs_pcc: float  # the lowest accumulated PCC of its inputs (1.0: graph inputs)
    label: str  # ERROR, or ROUNDING (values right to bf16 rounding; PCC meaningless)

    def to_dict(self) -> dict:
        return {
            "node": self.node,
            "target": self.target,
            "module": self.module,
            "source": self.source,
            "pcc": round(self.pcc, 6),
            "inputs_pcc": round(self.inputs_pcc, 6),
            "label": self.label,
        }


def reference_values(gm: fx.GraphModule, flat: list[Any]) -> dict[str, Any]:
    """Every op node's fp32 output, computed from reference values all along (by node name)."""
    values: dict[str, Any] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            out = super().run_node(n)
            if is_op_node(n):
                values[n.name] = out
            return out

    with torch.no_grad():
        Recorder(gm).run(*flat)
    return values


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    return []


def _rounding_only(got: torch.Tensor, ref: torch.Tensor) -> bool:
    """Agrees with the reference to a few bf16 steps of its magnitude, everywhere."""
    if tuple(got.shape) != tuple(ref.shape) or not ref.is_floating_point():
        return False
    g, r = got.detach().double(), ref.detach().double()
    scale = max(float(r.abs().max()) if r.numel() else 0.0, 1e-6)
    return bool(((g - r).abs() <= 4 * _BF16_STEP * scale).all())


def localize(
    graph: fx.Graph,
    observed: dict[str, Any],
    reference: dict[str, Any],
    sources: dict[str, str],
    threshold: float,
    limit: int = 10,
) -> list[EntryPoint]:
    """The first nodes (graph order) where the accumulated PCC drops below `threshold`:
    `observed` holds each node's output as the run computed it, `reference` the fp32 one."""
    accumulated: dict[str, float] = {}
    entries: list[EntryPoint] = []
    for n in graph.nodes:
        if not is_op_node(n) or n.name not in observed or n.name not in reference:
            continue
        pairs = list(zip(_tensors(observed[n.name]), _tensors(reference[n.name])))
        if not pairs:
            continue
        score = min(agreement(g.detach().cpu(), r) for g, r in pairs)
        accumulated[n.name] = score
        upstream = min((accumulated.get(u.name, 1.0) for u in n.all_input_nodes), default=1.0)
        if score >= threshold or upstream < threshold:
            continue
        label = ROUNDING if all(_rounding_only(g, r) for g, r in pairs) else ERROR
        if label == ROUNDING:
            accumulated[n.name] = 1.0  # right to bf16: nothing downstream inherits an error from it
        entries.append(
            EntryPoint(n.name, target_name(n.target), module_of(n)[0], sources.get(n.name, ""), score, upstream, label)
        )
        if sum(e.label == ERROR for e in entries) >= limit:
            break
    return entries
