"""OOM analysis of a whole graph: the memory model's prediction for every node, next to the
allocator's verdict when the graph ran on a (mock) device.

Predictions use the dtype the device stores: fxport lowers float activations and weights to
bf16, so a float32 record is sized as bf16 (integers as ttnn stores them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from fxport.capture.records import OpRecord, TensorSpec
from fxport.dtypes import is_float
from fxport.mapping import REGISTRY
from fxport.memory.devices import DRAM, L1, DeviceMemory
from fxport.memory.model import NodeMemory, node_memory

_DEVICE_FLOAT = "bfloat16"
# Padding explains an OOM when it at least doubles the node's bytes and the unpadded node fits.
_PADDING_CAUSE_FACTOR = 2.0


@dataclass(frozen=True)
class OomNode:
    node: str
    target: str
    module: str
    repeat: int
    config: str  # "L1" or "DRAM": the memory config it was judged under
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    resident_bytes: int  # tile-padded bytes of its inputs + outputs (bf16 on device)
    logical_bytes: int
    per_bank: int  # predicted need of the fullest bank
    bank_size: int
    banks: int
    severity: str  # critical / high / medium / low
    cause: str  # "tile padding", "L1 capacity", "DRAM capacity", "circular buffers", "other live tensors"
    padding: str  # worst tensor's padding, e.g. "10.45x (H 49->64, W 4->32)"
    remedy: str
    predicted: bool  # the memory model says it does not fit
    observed: str  # the device's verdict: "OUT_OF_MEMORY", "CB_OVERFLOW", "CB_CLASH", "fits", "not run"


@dataclass(frozen=True)
class MemoryAnalysis:
    device: str
    config: str
    nodes: int
    oom: tuple[OomNode, ...]  # predicted or observed; sorted by bytes, largest first
    agree: int  # prediction and device verdict agree (both fit or both OOM)
    predicted_only: int  # model says OOM, device allocated it
    observed_only: int  # device OOM'd, model said it fits
    not_run: int  # no memory verdict: host nodes, nodes that failed validation, or no device run


def device_spec(spec) -> tuple[tuple[int, ...], str]:
    shape, dtype = (spec.shape, spec.dtype) if isinstance(spec, TensorSpec) else spec
    return tuple(shape), _DEVICE_FLOAT if is_float(dtype) else dtype


def predict(record: OpRecord, device: DeviceMemory) -> NodeMemory:
    """Memory of the node as its lowering stores it (a rule's `device_layout`, e.g. conv2d's
    flattened NHWC activations), in the dtypes the device holds."""
    rule = REGISTRY.rule_named(record.target)
    if rule is not None and rule.device_layout is not None:
        inputs, outputs = rule.device_layout(record)
    else:
        inputs, outputs = record.inputs, record.outputs
    return node_memory(inputs=[device_spec(s) for s in inputs],
                       outputs=[device_spec(s) for s in outputs], name=record.node, device=device)


_MEMORY_KINDS = {"OUT_OF_MEMORY", "CB_OVERFLOW", "CB_CLASH"}


def analyze(records: Iterable[OpRecord], device: DeviceMemory, config: str = DRAM,
            observed: dict[str, str] | None = None) -> MemoryAnalysis:
    """`observed` maps node names to the device's verdict: "" when the node ran, else the error
    kind of its fallback; nodes absent from it never ran on the device."""
    observed = observed or {}
    ooms, agree, predicted_only, observed_only, not_run = [], 0, 0, 0, 0
    records = list(records)
    for r in records:
        mem = predict(r, device)
        predicted = not mem.fits(config)
        verdict = _verdict(observed.get(r.node))
        if verdict not in _MEMORY_KINDS and verdict != "fits":  # host node, or failed before allocating
            not_run += 1
        else:
            device_oom = verdict in _MEMORY_KINDS
            if device_oom == predicted:
                agree += 1
            elif predicted:
                predicted_only += 1
            else:  # includes circular-buffer errors, which the model does not predict
                observed_only += 1
        if predicted or verdict in _MEMORY_KINDS:
            ooms.append(_oom_node(r, mem, config, predicted, verdict))
    ooms.sort(key=lambda o: (-o.resident_bytes, o.node))
    return MemoryAnalysis(device.name, config, len(records), tuple(ooms), agree, predicted_only,
                          observed_only, not_run)


def _verdict(kind: str | None) -> str:
    if kind is None:
        return "not run"
    return kind or "fits"


def _oom_node(r: OpRecord, mem: NodeMemory, config: str, predicted: bool, verdict: str) -> OomNode:
    v = mem.verdicts[config]
    worst = mem.worst_padding
    fix = mem.remedy(config)
    return OomNode(
        node=r.node, target=r.target, module=r.module, repeat=r.repeat, config=config,
        inputs=r.inputs, outputs=r.outputs, resident_bytes=mem.resident_bytes,
        logical_bytes=mem.logical_bytes, per_bank=v.per_bank, bank_size=v.bank_size, banks=v.banks,
        severity=mem.severity, cause=_cause(mem, config, predicted, verdict),
        padding=str(worst) if worst is not None else "",
        remedy=fix.text if fix is not None else ("" if predicted else "none predicted"),
        predicted=predicted, observed=verdict)


def _cause(mem: NodeMemory, config: str, predicted: bool, verdict: str) -> str:
    if verdict in ("CB_OVERFLOW", "CB_CLASH"):
        return "circular buffers"
    if not predicted:
        return "other live tensors"  # the allocator saw more than this node's own tensors
    banks = mem.device.banks(config)
    unpadded_per_bank = -(-mem.logical_bytes // banks.count)
    if mem.resident_bytes >= _PADDING_CAUSE_FACTOR * mem.logical_bytes and unpadded_per_bank <= banks.size:
        return "tile padding"
    return f"{config} capacity" if config in (L1, DRAM) else "capacity"
