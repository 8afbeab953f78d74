"""The result data model of a model run: what ran where, why, how accurately, what ran out of memory.

One `RunResult` per model (and resolution); `run_document` turns it into the JSON document that is
the source of truth for every rendering (deterministic: sorted keys, no timings, which go to
timing.json). Aggregations live here, so that renderers only format. Node counts are weighted by
`repeat` (a folded capture traces PI0's denoise step twice and counts it ten times).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from fxport.capture.pytrees import Leaf
from fxport.capture.records import OpRecord
from fxport.cost import Estimate
from fxport.memory.analysis import MemoryAnalysis, device_spec
from fxport.memory.devices import BankSpec
from fxport.memory.tiles import padded_bytes
from fxport.partition import DevicePartition
from fxport.passes import PassRecord
from fxport.plan import Plan
from fxport.report.schema import RUN_SCHEMA
from fxport.runtime.accuracy import PCC_THRESHOLD, Accuracy, ControlValue, OutputCheck
from fxport.runtime.context import CallCounts, TransferLog
from fxport.runtime.execute import NodeResult
from fxport.runtime.localize import EntryPoint


def provenance(device_kind: str, values: str) -> dict:
    """What each part of a result is: real, predicted or emulated (the report's honesty labels)."""
    real = "real (TT-NN host stack)" if device_kind == "mock" else "real"
    return {
        "device": f"{device_kind} ({'no card: TT-NN host stack and allocator, kernels not run' if device_kind == 'mock' else 'Tenstorrent card'})",
        "validation": real,
        "allocation": "real (TT-Metal allocator)" if device_kind == "mock" else "real",
        "memory_model": "predicted (tile and bank arithmetic, fxport/memory)",
        "values": {
            "emulate": "emulated (ttnn golden functions, rounded to the device dtype)",
            "device": "real (read back from the device)",
            "none": "not computed (verdict run: meta weights, empty device tensors)",
        }[values],
        "timing": "real" if device_kind == "hardware" else "not measured (no kernels run)",
        "estimate": "predicted (cost model, fxport/cost: TT-NN's ideal formulas and an efficiency "
        "table; host nodes and host dispatch measured on this CPU)",
    }


@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # "mock" or "hardware"
    arch: str
    banks: BankSpec

    def to_dict(self) -> dict:
        return {"kind": self.kind, "arch": self.arch, **asdict(self.banks)}


@dataclass(frozen=True)
class RunResult:
    model: str
    inputs: tuple[Leaf, ...]  # input tensors by path ("args[0]", "kwargs['attention_mask']")
    device: DeviceInfo
    memory: str  # "dram" or "l1": where activations were placed
    values: str  # "emulate", "device" or "none"
    plan: Plan
    partitions: list[DevicePartition]
    nodes: list[NodeResult]  # in execution order; empty when the graph did not run
    output_checks: list[OutputCheck]  # end to end, per output tensor (by path), vs fp32 torch
    transfers: TransferLog
    records: list[OpRecord] = field(default_factory=list)
    memory_analysis: MemoryAnalysis | None = None
    capture: dict = field(default_factory=dict)  # method, complete, problems
    seconds: dict[str, float] = field(default_factory=dict)  # per stage; volatile
    outputs: Any = field(default=None, repr=False)  # the outputs, as the model returns them (not saved)
    stopped: str = ""  # why the run stopped before its end (Ctrl-C, a broken environment)
    # torch.compile: outputs Python branches on, computed on the host (fxport.runner.HostControl)
    control_values: list[ControlValue] = field(default_factory=list)
    placement: dict | None = None  # `auto`: how the placement pass went (rounds, demoted nodes)
    ttnn_report: dict | None = None  # `--ttnn-report`: TT-NN's own report database of the run
    passes: tuple[str, ...] = ()  # the graph passes asked for
    pass_records: list[PassRecord] = field(default_factory=list)  # what each changed
    captured_nodes: int = 0  # aten nodes as captured (before the passes), counting repeats
    calls: CallCounts = field(default_factory=CallCounts)  # ttnn calls issued by this run
    weights: str = "bfloat16"  # dtype of constant conv and linear weights on the device
    pcc_threshold: float = PCC_THRESHOLD  # end-to-end PCC every informative output must reach
    localized: list[EntryPoint] | None = None  # where error enters (`--localize`); None: not asked
    estimate: Estimate | None = None  # the run's time on its board (fxport.cost); None: no board

    @property
    def accuracy(self) -> Accuracy:
        return Accuracy.of(self.output_checks, self.pcc_threshold)

    @property
    def output_pcc(self) -> list[float | None]:
        """PCC per output tensor; None where it is uninformative or was not computed."""
        return [c.shown_pcc for c in self.output_checks if c.pcc is not None or c.informative is False]


def module_group(module: str) -> str:
    """The top-level submodule an op belongs to (PI0: siglip, projector, gemma, expert, prefix,
    suffix, denoise); "<top>" for ops of the root module's own forward."""
    return module.split(".")[0] if module else "<top>"


def _repeats(result: RunResult) -> dict[str, int]:
    return {r.node: r.repeat for r in result.records}


def coverage(result: RunResult) -> dict:
    """Counts of aten nodes: total, lowered by the plan, ran on device, fell back, host."""
    rep = _repeats(result)
    status = {n.node: n.status for n in result.nodes}
    out = {"total": 0, "planned": 0, "on_device": 0, "fallback": 0, "host": 0, "not_run": 0}
    for p in result.plan.nodes:
        w = rep.get(p.node, 1)
        out["total"] += w
        out["planned"] += w * p.lowered
        s = status.get(p.node)
        out[{"device": "on_device", "fallback": "fallback", "host": "host"}.get(s, "not_run")] += w
    total = out["total"] or 1
    out["planned_pct"] = round(100.0 * out["planned"] / total, 2)
    out["device_pct"] = round(100.0 * out["on_device"] / total, 2)
    return out


def coverage_by(result: RunResult, key) -> dict[str, dict]:
    """Coverage grouped by key(NodePlan): {group: {total, lowered, on_device, pct}}."""
    rep = _repeats(result)
    status = {n.node: n.status for n in result.nodes}
    groups: dict[str, dict] = defaultdict(lambda: {"total": 0, "lowered": 0, "on_device": 0})
    for p in result.plan.nodes:
        w = rep.get(p.node, 1)
        g = groups[key(p)]
        g["total"] += w
        g["lowered"] += w * p.lowered
        g["on_device"] += w * (status.get(p.node) == "device")
    for g in groups.values():
        g["lowered_pct"] = round(100.0 * g["lowered"] / g["total"], 2)
    return dict(sorted(groups.items()))


def unsupported_ops(result: RunResult) -> list[dict]:
    """Ops the plan leaves on the host: per target, count and distinct reasons."""
    rep = _repeats(result)
    groups: dict[str, list] = defaultdict(list)
    for n in result.plan.nodes:
        if not n.lowered:
            groups[n.target].append(n)
    rows = [
        {
            "target": t,
            "family": ns[0].family,
            "count": sum(rep.get(n.node, 1) for n in ns),
            "reasons": sorted({n.reason for n in ns}),
            "modules": sorted({n.module for n in ns})[:5],
        }
        for t, ns in groups.items()
    ]
    return sorted(rows, key=lambda d: (-d["count"], d["target"]))


def placement_share(result: RunResult) -> dict:
    """Where the run kept its activations: the share of device nodes whose outputs were in L1,
    and of the bytes of those outputs (tile-padded, as the device stores them), by repeat."""
    rep = _repeats(result)
    outs = {r.node: sum(padded_bytes(*device_spec(s)) for s in r.outputs) for r in result.records}
    nodes = {"L1": 0, "DRAM": 0}
    nbytes = {"L1": 0, "DRAM": 0}
    for n in result.nodes:
        if n.status != "device" or n.memory.upper() not in nodes:
            continue
        nodes[n.memory.upper()] += rep.get(n.node, 1)
        nbytes[n.memory.upper()] += rep.get(n.node, 1) * outs.get(n.node, 0)
    total_nodes, total_bytes = sum(nodes.values()), sum(nbytes.values())
    remedied = [n for n in result.nodes if n.remedy_applied]
    return {
        "l1_nodes": nodes["L1"],
        "device_nodes": total_nodes,
        "l1_node_share": round(nodes["L1"] / total_nodes, 4) if total_nodes else None,
        "l1_bytes": nbytes["L1"],
        "activation_bytes": total_bytes,
        "l1_byte_share": round(nbytes["L1"] / total_bytes, 4) if total_bytes else None,
        "remedies_applied": [{"node": n.node, "remedy": n.remedy} for n in remedied],
        "plan": result.placement,
    }


def memory_document(analysis: MemoryAnalysis | None) -> dict | None:
    if analysis is None:
        return None
    return {
        "device": analysis.device,
        "config": analysis.config,
        "nodes": analysis.nodes,
        "method": analysis.method,
        "peak": dict(sorted((analysis.peak or {}).items())),
        "agreement": {
            "agree": analysis.agree,
            "predicted_only": analysis.predicted_only,
            "observed_only": analysis.observed_only,
            "not_run": analysis.not_run,
        },
        "disagreements": [asdict(d) for d in analysis.disagreements],
        "oom_nodes": [
            {
                **{k: v for k, v in asdict(o).items() if k not in ("inputs", "outputs")},
                "inputs": [s.to_dict() for s in o.inputs],
                "outputs": [s.to_dict() for s in o.outputs],
            }
            for o in analysis.oom
        ],
    }


def graph_document(result: RunResult) -> dict:
    """What the passes did: the nodes before and after, and each pass's record."""
    return {
        "captured_nodes": result.captured_nodes,
        "nodes": coverage(result)["total"],
        "passes": list(result.passes),
        "weights": result.weights,
        "applied": [r.to_dict() for r in result.pass_records],
    }


def calls_document(result: RunResult) -> dict:
    """ttnn calls of one inference by kind (weights: once per compiled model), beside the aten
    nodes as captured. Both count a folded capture's repeated nodes `repeat` times."""
    return {**result.calls.to_dict(), "captured_nodes": result.captured_nodes}


def _module_facts(record: OpRecord | None) -> dict:
    """Where a node comes from beyond its module path: the module's class (the model's own at top
    level), the source line, and whether the module is inferred (the node was traced in none)."""
    if record is None:
        return {}
    return {"module_type": record.module_type, "module_inferred": record.module_inferred, "source": record.source}


def _ranked(rows: list[dict], costs: list[dict | None]) -> list[dict]:
    """Rows with their cost (cost_ms, speedup_if_lowered, ...), the costliest first."""
    rows = [{**r, **(c or {})} for r, c in zip(rows, costs)]
    return sorted(rows, key=lambda r: -(r.get("cost_ms") or 0.0))


def estimate_document(result: RunResult) -> dict | None:
    """The run's estimate, with its split by top-level module (device, host, transfer ms)."""
    est = result.estimate
    if est is None:
        return None
    modules: dict[str, dict] = defaultdict(lambda: {"device_ms": 0.0, "host_ms": 0.0, "transfer_ms": 0.0})
    for t in est.nodes.values():
        modules[module_group(t.module)][f"{t.where}_ms"] += t.est_ns * t.repeat / 1e6
    for t in est.transfers:
        owner = est.nodes.get(t.charged_to) or est.nodes.get(t.value)
        modules[module_group(owner.module) if owner else "<top>"]["transfer_ms"] += t.ns(est.board) / 1e6
    by_module = {
        m: {k: round(v, 4) for k, v in d.items()} | {"total_ms": round(sum(d.values()), 4)}
        for m, d in sorted(modules.items())
    }
    return {**est.to_dict(), "by_module": by_module}


def unsupported_costs(result: RunResult, rows: list[dict]) -> list[dict | None]:
    """Each unsupported target's cost: its nodes' host time and the transfers they force."""
    est = result.estimate
    if est is None:
        return [None] * len(rows)
    by_target: dict[str, list[str]] = defaultdict(list)
    for n in result.plan.nodes:
        if not n.lowered:
            by_target[n.target].append(n.node)
    return [est.cost_of(by_target[r["target"]]) for r in rows]


# What the estimate measures on this CPU (host nodes, host dispatch) and what follows from it: the
# rest of run.json is deterministic (the same run twice gives the same document without these).
MEASURED_ESTIMATE = (
    "host_ms",
    "dispatch_ms",
    "latency_ms",
    "throughput_per_s",
    "untraced_latency_ms",
    "metal_trace_saves_ms",
    "host_bound",
    "bound",
    "host_islands",
)
MEASURED_COST = ("cost_ms", "host_ms", "speedup_if_lowered")


def without_measured(doc: dict) -> dict:
    """A run document without its measured times (see MEASURED_ESTIMATE), for comparing runs."""
    doc = json.loads(json.dumps(doc))
    est = doc.get("estimate")
    if isinstance(est, dict):
        for k in MEASURED_ESTIMATE:
            est.pop(k, None)
        est.get("assumptions", {}).pop("host_timing", None)
        for m in est.get("by_module", {}).values():
            m.pop("host_ms", None)
            m.pop("total_ms", None)
    for key in ("unsupported", "fallbacks"):
        for row in doc.get(key, []):
            for k in MEASURED_COST:
                row.pop(k, None)
        doc[key] = sorted(doc.get(key, []), key=lambda r: json.dumps(r, sort_keys=True))
    for n in doc.get("nodes", []):
        if n.get("bound") == "host":
            n.pop("est_ns", None)
    return doc


def run_document(result: RunResult) -> dict:
    """The run.json document. A run stopped early (Ctrl-C, a broken environment) has "stopped"
    with the reason: its unreached nodes count as not run, and it is never reused as a result."""
    plan_by_node = result.plan.by_node()
    rep = _repeats(result)
    records = {r.node: r for r in result.records}
    stopped = {"stopped": result.stopped} if result.stopped else {}
    est = result.estimate
    times = est.nodes if est is not None else {}
    unsupported = unsupported_ops(result)
    fallbacks = [
        {
            "node": n.node,
            "target": n.target,
            "module": n.module,
            "kind": n.error_kind,
            "error": n.error,
            "repeat": rep.get(n.node, 1),
            "fields": n.fields,
            "remedy": n.remedy,
            "remedy_tried": list(n.remedy_tried),
        }
        for n in result.nodes
        if n.status == "fallback"
    ]
    return {
        **stopped,
        "graph": graph_document(result),
        "ttnn_calls": calls_document(result),
        "schema": RUN_SCHEMA,
        "model": result.model,
        "inputs": [s.to_dict() for s in result.inputs],
        "device": result.device.to_dict(),
        "memory_config": result.memory,
        "values": result.values,
        "provenance": provenance(result.device.kind, result.values),
        "capture": result.capture,
        "coverage": coverage(result),
        "coverage_by_family": coverage_by(result, lambda p: p.family),
        "coverage_by_module": coverage_by(result, lambda p: module_group(p.module)),
        "output_pcc": [None if p is None else round(p, 6) for p in result.output_pcc],
        "outputs": [c.to_dict() for c in result.output_checks],
        "accuracy": result.accuracy.to_dict(),
        **({"localized": [e.to_dict() for e in result.localized]} if result.localized is not None else {}),
        "control_values": [c.to_dict() for c in result.control_values],
        "unsupported": _ranked(unsupported, unsupported_costs(result, unsupported)),
        "fallbacks": _ranked(fallbacks, [est.cost_of([f["node"]]) if est else None for f in fallbacks]),
        **({"estimate": estimate_document(result)} if est is not None else {}),
        "memory": memory_document(result.memory_analysis),
        "placement": placement_share(result),
        **({"ttnn_report": result.ttnn_report} if result.ttnn_report else {}),
        "partitions": [asdict(p) for p in result.partitions],
        "transfers": asdict(result.transfers),
        "nodes": [
            {
                "node": n.node,
                "target": n.target,
                "module": n.module,
                **_module_facts(records.get(n.node)),
                "partition": n.partition,
                "status": n.status,
                "ttnn": plan_by_node[n.node].ttnn if n.node in plan_by_node else "",
                "reason": plan_by_node[n.node].reason if n.node in plan_by_node else "",
                "error_kind": n.error_kind,
                "error": n.error,
                "pcc": n.pcc,
                "repeat": rep.get(n.node, 1),
                "memory": n.memory,
                **({"remedy": n.remedy, "remedy_applied": n.remedy_applied} if n.remedy else {}),
                **({"est_ns": round(times[n.node].est_ns, 1), "bound": times[n.node].bound} if n.node in times else {}),
            }
            for n in result.nodes
        ],
    }
