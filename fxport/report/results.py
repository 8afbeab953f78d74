"""The result data model of `fxport run`: what ran where, why, and how accurately.

One `RunResult` per model run; `run_document` turns it into the JSON document that is the source
of truth (deterministic: sorted keys, no timings: those go to timing.json). Aggregations live
here, so that renderers only format.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

from fxport.capture.records import TensorSpec
from fxport.partition import DevicePartition
from fxport.plan import Plan
from fxport.runtime.context import TransferLog
from fxport.runtime.execute import NodeResult

# What each kind of device can vouch for. A mock device runs the real TT-NN host stack (argument
# validation, program selection, the allocator) but no kernels.
PROVENANCE = {
    "mock": {"validation": "real (TT-NN host stack)", "allocation": "real (TT-Metal allocator)",
             "values": "emulated (ttnn golden functions, rounded to the device dtype)",
             "timing": "not measured (no kernels run)"},
    "hardware": {"validation": "real", "allocation": "real", "values": "real (read back from device)",
                 "timing": "real"},
}


@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # "mock" or "hardware"
    arch: str
    l1_bank_count: int
    l1_bank_size: int
    dram_bank_count: int
    dram_bank_size: int


@dataclass
class RunResult:
    model: str
    inputs: tuple[TensorSpec, ...]
    device: DeviceInfo
    memory: str  # "dram" or "l1"
    plan: Plan
    partitions: list[DevicePartition]
    nodes: list[NodeResult]
    output_pcc: list[float]  # end to end, per model output, vs fp32 torch
    transfers: TransferLog
    seconds: dict[str, float] = field(default_factory=dict)  # per stage; volatile
    outputs: list = field(default_factory=list, repr=False)  # the run's output tensors (not saved)


@dataclass(frozen=True)
class Coverage:
    total: int  # aten op nodes
    planned: int  # the mapping table lowers them
    on_device: int  # ran through TT-NN
    fallback: int  # lowered, failed on the device, re-ran on the host
    host: int  # not lowered (plan)

    @property
    def planned_pct(self) -> float:
        return 100.0 * self.planned / self.total if self.total else 100.0

    @property
    def device_pct(self) -> float:
        return 100.0 * self.on_device / self.total if self.total else 100.0


def coverage(result: RunResult) -> Coverage:
    status = Counter(n.status for n in result.nodes)
    return Coverage(total=len(result.plan.nodes), planned=result.plan.lowered,
                    on_device=status["device"], fallback=status["fallback"], host=status["host"])


def unsupported_ops(plan: Plan) -> list[dict]:
    """Ops the plan leaves on the host: per target, count and distinct reasons."""
    groups: dict[str, list] = defaultdict(list)
    for n in plan.nodes:
        if not n.lowered:
            groups[n.target].append(n)
    return sorted(({"target": t, "count": len(ns), "reasons": sorted({n.reason for n in ns}),
                    "modules": sorted({n.module for n in ns})[:5]} for t, ns in groups.items()),
                  key=lambda d: (-d["count"], d["target"]))


def run_document(result: RunResult) -> dict:
    cov = coverage(result)
    plan_by_node = result.plan.by_node()
    return {
        "model": result.model,
        "inputs": [{"shape": list(s.shape), "dtype": s.dtype} for s in result.inputs],
        "device": asdict(result.device),
        "memory_config": result.memory,
        "provenance": PROVENANCE[result.device.kind],
        "coverage": {**asdict(cov), "planned_pct": round(cov.planned_pct, 2),
                     "device_pct": round(cov.device_pct, 2)},
        "output_pcc": [round(p, 6) for p in result.output_pcc],
        "unsupported": unsupported_ops(result.plan),
        "fallbacks": [
            {"node": n.node, "target": n.target, "module": n.module, "kind": n.error_kind,
             "error": n.error} for n in result.nodes if n.status == "fallback"],
        "partitions": [asdict(p) for p in result.partitions],
        "transfers": asdict(result.transfers),
        "nodes": [
            {"node": n.node, "target": n.target, "module": n.module, "partition": n.partition,
             "status": n.status, "ttnn": plan_by_node[n.node].ttnn if n.node in plan_by_node else "",
             "reason": plan_by_node[n.node].reason if n.node in plan_by_node else "",
             "error_kind": n.error_kind, "error": n.error, "pcc": n.pcc}
            for n in result.nodes],
    }
