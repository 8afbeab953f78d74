"""The memory model on a run: the liveness walk (fxport/memory/liveness.py) over the partitioned
graph with footprints measured by TT-NN (fxport/runtime/footprint_probe.py), judged against what the
run did, node by node."""

from __future__ import annotations

from typing import Callable, Iterable

from torch import fx

from fxport.capture.records import OpRecord
from fxport.memory.analysis import MemoryAnalysis, analyze, observation
from fxport.memory.devices import DeviceMemory
from fxport.memory.liveness import walk
from fxport.memory.placement import Placement, place
from fxport.runtime.devices import DeviceHandle
from fxport.runtime.execute import NodeResult
from fxport.runtime.footprint_probe import FootprintProbe


def observations(nodes: Iterable[NodeResult]) -> dict:
    """node -> what the run did with it (device nodes and fallbacks; host nodes are absent). A
    node the run kept on the device with a remedy is a device node whose planned placement the
    allocator refused (its error kind is kept)."""
    return {n.node: observation(n.status, n.error_kind, n.fields) for n in nodes if n.status != "host"}


def place_activations(
    gm: fx.GraphModule,
    dev: DeviceHandle,
    probe: FootprintProbe | None = None,
    on_device: Callable[[fx.Node], bool] | None = None,
) -> Placement:
    """`auto` placement of a graph's activations on `dev` (fxport.memory.placement), with
    footprints measured on it: a partitioned graph, or with `on_device` an unpartitioned one."""
    own = probe is None
    probe = probe or FootprintProbe(dev)
    try:
        return place(gm, DeviceMemory.from_handle(dev), probe.footprint, probe.refit, on_device)
    finally:
        if own:
            probe.close()
        else:
            probe.flush()


def explain_run(
    gm: fx.GraphModule,
    records: list[OpRecord],
    dev: DeviceHandle,
    memory: str,
    nodes: list[NodeResult],
    placement: Callable[[fx.Node], str] | None = None,
    probe: FootprintProbe | None = None,
) -> MemoryAnalysis:
    """The memory analysis of a run of the partitioned graph `gm`: every device node judged by
    the model in the memory state the run had before it (which earlier nodes ran on the device,
    which fell back), beside the allocator's verdict. `placement`: node -> "l1" / "dram", as
    planned (default: `memory` for every node)."""
    device = DeviceMemory.from_handle(dev)
    default = "dram" if memory == "auto" else memory
    where = placement or (lambda n: default)
    remedies = {n.node: (n.remedy, True) for n in nodes if n.remedy}
    own = probe is None
    probe = probe or FootprintProbe(dev)
    try:
        seen = observations(nodes)
        states = walk(gm, device, probe.footprint, where, seen, probe.refit)
    finally:
        if own:
            probe.close()
        else:
            probe.flush()
    return analyze(records, states, device, memory.upper(), seen, remedies)


__all__ = ["explain_run", "observations", "place_activations"]
