"""OOM analysis of a whole graph: the memory model's verdict for every device node (the liveness
walk, fxport/memory/liveness.py), next to the allocator's verdict when the graph ran on a (mock)
device, with each failing allocation attributed to the tensor it was for and every disagreement
given its reason.

Predictions use what the device stores: TT-NN's own record of each node's buffers (footprints),
in the dtypes fxport lowers to. `predict` (tile arithmetic on a node's inputs and outputs, no
device) remains for what has no device: generated test suites size their cases with it, and the
reports show its padding figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from fxport.capture.records import OpRecord, TensorSpec
from fxport.dtypes import is_float
from fxport.mapping import REGISTRY
from fxport.memory.devices import DRAM, L1, DeviceMemory
from fxport.memory.footprint_record import Footprint
from fxport.memory.liveness import MEMORY_KINDS, Failure, NodeState, Observation, Walk
from fxport.memory.model import NodeMemory, node_memory, severity

_DEVICE_FLOAT = "bfloat16"
# Padding explains an OOM when it at least doubles the buffer and the unpadded buffer would fit.
_PADDING_CAUSE_FACTOR = 2.0


@dataclass(frozen=True)
class Attribution:
    """The allocation the allocator refused, matched against the node's buffers in flight."""

    role: str  # transfer, constant, intermediate, output, retained, circular buffers, or "unmatched"
    memory: str
    per_bank: int
    largest_free: int | None  # the allocator's largest free block then (None: not in the message)
    allocated: int | None  # bytes per bank the allocator held then
    input: int | None = None
    op: str = ""

    def describe(self, shapes: list[str]) -> str:
        what = (
            self.role
            if self.input is None
            else (f"{self.role} of input {self.input}" + (f" {shapes[self.input]}" if self.input < len(shapes) else ""))
        )
        room = "" if self.largest_free is None else f", largest free block {self.largest_free:,} B"
        held = "" if self.allocated is None else f", {self.allocated:,} B allocated"
        if self.role == "circular buffers":
            return f"circular buffers ({self.op or 'a program'}): {self.per_bank:,} B per core{room}"
        return f"{what}{f' ({self.op})' if self.op else ''}: {self.per_bank:,} B per {self.memory} bank{room}{held}"


@dataclass(frozen=True)
class OomNode:
    node: str
    target: str
    module: str
    repeat: int
    config: str  # where the node's activations were placed: "L1" or "DRAM"
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    resident_bytes: int  # bytes per bank allocated in that memory before the node (live tensors)
    logical_bytes: int
    per_bank: int  # the failing buffer's bytes per bank (model's; else the allocator's)
    bank_size: int
    banks: int
    severity: str  # critical / high / medium / low, by the failing buffer's whole size
    cause: str  # tile padding, L1/DRAM capacity, live tensors, fragmentation, op intermediates, circular buffers
    padding: str  # worst tensor's padding, e.g. "10.45x (H 49->64, W 4->32)"
    remedy: str
    predicted: bool  # the memory model says it does not fit
    observed: str  # the device's verdict: "OUT_OF_MEMORY", "CB_OVERFLOW", "CB_CLASH", "fits", "not run"
    buffer: str = ""  # the model's failing buffer, described
    allocator: str = ""  # the allocator's failing buffer, attributed to the tensor it was for
    peak: int = 0  # model: bytes per bank the node's memory would hold with the failing buffer
    allocator_peak: int | None = None  # allocator: allocated + requested per bank, from its error
    room: int = 0  # model: largest free block (OOM) or room below the lowest L1 buffer (CB clash)
    remedy_verified: bool = False  # the remedy was re-run on the device and the allocator took it
    disagreement: str = ""  # why model and allocator differ ("" when they agree)


@dataclass(frozen=True)
class Disagreement:
    node: str
    predicted: str  # the model's verdict
    observed: str  # the device's
    reason: str


@dataclass(frozen=True)
class MemoryAnalysis:
    device: str
    config: str
    nodes: int
    oom: tuple[OomNode, ...]  # predicted or observed; sorted by bytes, largest first
    agree: int  # prediction and device verdict agree (both fit or both fail)
    predicted_only: int  # model says it fails, device allocated it
    observed_only: int  # device failed, model said it fits
    not_run: int  # no memory verdict: host nodes, nodes that failed validation, or no device run
    disagreements: tuple[Disagreement, ...] = ()
    method: str = "liveness"  # "liveness" (footprints + allocator replay) or "arithmetic"
    peak: dict[str, int] | None = None  # highest bytes per bank any node held, per memory

    @property
    def agreement(self) -> float | None:
        judged = self.agree + self.predicted_only + self.observed_only
        return self.agree / judged if judged else None


def device_spec(spec) -> tuple[tuple[int, ...], str]:
    shape, dtype = (spec.shape, spec.dtype) if isinstance(spec, TensorSpec) else spec
    return tuple(shape), _DEVICE_FLOAT if is_float(dtype) else dtype


def predict(record: OpRecord, device: DeviceMemory) -> NodeMemory:
    """Tile arithmetic for one node on its own (no device): its inputs and outputs as its
    lowering stores them (a rule's `device_layout`), in the dtypes the device holds."""
    rule = REGISTRY.rule_named(record.target)
    if rule is not None and rule.device_layout is not None:
        inputs, outputs = rule.device_layout(record)
    else:
        inputs, outputs = record.inputs, record.outputs
    return node_memory(
        inputs=[device_spec(s) for s in inputs],
        outputs=[device_spec(s) for s in outputs],
        name=record.node,
        device=device,
    )


def observation(status: str, kind: str = "", fields: dict | None = None) -> Observation:
    return Observation(status, kind, dict(fields or {}))


def analyze(
    records: Iterable[OpRecord],
    states: Iterable[NodeState],
    device: DeviceMemory,
    config: str = DRAM,
    observed: dict[str, Observation] | None = None,
    remedies: dict[str, tuple[str, bool]] | None = None,
) -> MemoryAnalysis:
    """The model's verdicts (`states`, from the liveness walk) beside the device's (`observed`:
    node -> what the run did; nodes absent never ran on the device). `remedies`: node -> (text,
    verified) for nodes the run re-ran with a remedy."""
    observed, remedies = observed or {}, remedies or {}
    by_node = {s.node: s for s in states}
    ooms, disagreements = [], []
    agree = predicted_only = observed_only = not_run = 0
    peak: dict[str, int] = {}
    records = list(records)
    for r in records:
        state = by_node.get(r.node)
        seen = observed.get(r.node)
        verdict = _device_verdict(seen)
        if state is not None:
            for memory, held in state.peak.items():
                peak[memory] = max(peak.get(memory, 0), held)
        predicted = state is not None and state.verdict in MEMORY_KINDS
        if state is None or state.verdict == "error" or verdict == "not run":
            not_run += 1
        else:
            device_failed = verdict in MEMORY_KINDS
            if device_failed == predicted:
                agree += 1
            else:
                reason = _disagreement(state, seen, predicted)
                disagreements.append(Disagreement(r.node, state.verdict, verdict, reason))
                if predicted:
                    predicted_only += 1
                else:
                    observed_only += 1
        if predicted or verdict in MEMORY_KINDS:
            ooms.append(
                _oom_node(
                    r,
                    state,
                    device,
                    verdict,
                    seen,
                    remedies.get(r.node),
                    next((d.reason for d in disagreements if d.node == r.node), ""),
                )
            )
    ooms.sort(key=lambda o: (-o.per_bank * o.banks, o.node))
    return MemoryAnalysis(
        device.name,
        config,
        len(records),
        tuple(ooms),
        agree,
        predicted_only,
        observed_only,
        not_run,
        tuple(disagreements),
        "liveness",
        peak,
    )


def _device_verdict(seen: Observation | None) -> str:
    """The allocator's verdict on the node as placed: a node kept on the device by a remedy was
    refused first (its error kind)."""
    if seen is None or seen.status == "host":
        return "not run"
    if seen.status == "device":
        return seen.kind if seen.kind in MEMORY_KINDS else "fits"
    return seen.kind if seen.kind in MEMORY_KINDS else "not run"  # failed before allocating


def attribute(fp: Footprint, seen: Observation) -> Attribution | None:
    """The buffer of `fp` the allocator refused, read from its error: the first allocation in the
    memory and of the per-bank size the error names (transfers, outputs and intermediates are
    told apart by the footprint's roles)."""
    f = seen.fields
    if seen.kind in ("CB_CLASH", "CB_OVERFLOW"):
        cbs = [e for e in fp.events if e.kind == "cbs"]
        largest = max(cbs, key=lambda e: e.cb, default=None)
        return Attribution(
            "circular buffers", "L1", largest.cb if largest else 0, None, None, op=largest.op if largest else ""
        )
    if seen.kind != "OUT_OF_MEMORY":
        return None
    memory, per_bank = str(f.get("buffer_type", "")).upper(), f.get("per_bank")
    for e in fp.events:
        if e.kind == "alloc":
            b = fp.buffers[e.buffer]
            if b.memory == memory and b.per_bank == per_bank:
                return Attribution(
                    b.role, memory, b.per_bank, f.get("largest_free_block"), f.get("allocated"), b.input, b.op
                )
    if per_bank is None:
        return None
    return Attribution("unmatched", memory, int(per_bank), f.get("largest_free_block"), f.get("allocated"))


def _disagreement(state: NodeState, seen: Observation | None, predicted: bool) -> str:
    if predicted:
        return (
            f"the model runs out at {state.failure.describe()} ({state.failure.allocated:,} B "
            f"allocated); the device ran the node"
        )
    if seen is None:
        return "no device verdict"
    att = attribute(state.footprint, seen)
    if seen.kind in ("CB_CLASH", "CB_OVERFLOW"):
        f = seen.fields
        return (
            f"the device's circular buffers end at {f.get('region_end', '?')} and meet an L1 buffer at "
            f"{f.get('l1_buffer_address', '?')}; the model's largest CB region ({state.cb:,} B per core) "
            f"fit below its lowest L1 buffer"
        )
    if att is None:
        return "the device error names no allocation"
    if att.role == "unmatched":
        return (
            f"the allocator refused {att.per_bank:,} B per {att.memory} bank, which matches none of the "
            f"node's buffers in TT-NN's capture of it"
        )
    at = state.at_observed
    if at is not None and att.allocated is not None:
        return (
            f"at the {att.role} buffer ({att.per_bank:,} B per {att.memory} bank) the allocator held "
            f"{att.allocated:,} B with a largest free block of {att.largest_free or 0:,} B; the model "
            f"held {at[0]:,} B with {at[1]:,} B free in one block"
        )
    return f"the allocator refused the {att.role} buffer ({att.per_bank:,} B per {att.memory} bank)"


def _oom_node(
    r: OpRecord,
    state: NodeState | None,
    device: DeviceMemory,
    verdict: str,
    seen: Observation | None,
    remedy: tuple[str, bool] | None,
    disagreement: str,
) -> OomNode:
    arithmetic = predict(r, device)
    worst = arithmetic.worst_padding
    shapes = [f"{list(s.shape)}" for s in r.inputs]
    fail = state.failure if state is not None else None
    att = (
        attribute(state.footprint, seen)
        if (state is not None and seen is not None and verdict in MEMORY_KINDS)
        else None
    )
    memory = (
        fail.memory
        if fail is not None
        else att.memory
        if att is not None
        else (state.memory if state is not None else L1)
    )
    memory = memory if memory in (L1, DRAM) else L1
    banks = device.banks(memory)
    per_bank = fail.per_bank if fail is not None else (att.per_bank if att is not None else 0)
    resident = state.resident.get(memory, 0) if state is not None else 0
    allocated = fail.allocated if fail is not None else resident
    allocator_peak = (att.allocated + att.per_bank) if att is not None and att.allocated is not None else None
    cause = _cause(state, fail, att, device, worst, verdict)
    text, verified = remedy if remedy is not None else ("", False)
    if not text:
        fix = arithmetic.remedy(memory)
        text = (
            f"{fix.text} (predicted, not re-run)" if fix is not None else "DRAM instead of L1 (predicted, not re-run)"
        )
    return OomNode(
        node=r.node,
        target=r.target,
        module=r.module,
        repeat=r.repeat,
        config=state.memory if state else memory,
        inputs=r.inputs,
        outputs=r.outputs,
        resident_bytes=resident,
        logical_bytes=arithmetic.logical_bytes,
        per_bank=per_bank,
        bank_size=banks.size,
        banks=banks.count,
        severity=severity(per_bank * banks.count),
        cause=cause,
        padding=str(worst) if worst is not None else "",
        remedy=text,
        predicted=fail is not None,
        observed=verdict,
        buffer=fail.describe(shapes) if fail is not None else "",
        allocator=att.describe(shapes) if att is not None else "",
        peak=allocated + per_bank if fail is not None and fail.kind == "OUT_OF_MEMORY" else allocated,
        allocator_peak=allocator_peak,
        room=fail.room if fail is not None else 0,
        remedy_verified=verified,
        disagreement=disagreement,
    )


def _cause(
    state: NodeState | None, fail: Failure | None, att: Attribution | None, device: DeviceMemory, worst, verdict: str
) -> str:
    kind = fail.kind if fail is not None else verdict
    if kind in ("CB_CLASH", "CB_OVERFLOW"):
        return "circular buffers"
    role = fail.role if fail is not None else (att.role if att is not None else "")
    memory = fail.memory if fail is not None else (att.memory if att is not None else L1)
    per_bank = fail.per_bank if fail is not None else (att.per_bank if att is not None else 0)
    bank = device.banks(memory if memory in (L1, DRAM) else L1).size
    if per_bank > bank:
        if worst is not None and worst.factor >= _PADDING_CAUSE_FACTOR and per_bank / worst.factor <= bank:
            return "tile padding"
        return f"{memory} capacity"
    if state is not None and state.footprint is not None and not _fits_alone(state.footprint, device):
        return "op intermediates" if role == "intermediate" else f"{memory} capacity"
    room = fail.room if fail is not None else (att.largest_free if att is not None else None)
    allocated = fail.allocated if fail is not None else (att.allocated if att is not None else None)
    if room is not None and allocated is not None and bank - allocated >= per_bank > room:
        return "fragmentation"
    return "live tensors"


def _fits_alone(fp: Footprint, device: DeviceMemory) -> bool:
    """Whether the node's own buffers fit an otherwise empty device (no live tensors)."""
    return Walk(device).trial(fp, []) is None


__all__ = [
    "Attribution",
    "Disagreement",
    "MemoryAnalysis",
    "OomNode",
    "analyze",
    "attribute",
    "device_spec",
    "observation",
    "predict",
]
