"""The memory model on a run: the liveness walk (fxport/memory/liveness.py) over the partitioned
graph with footprints measured by TT-NN (fxport/runtime/footprint.py), judged against what the
run did, node by node."""

from __future__ import annotations

from typing import Callable, Iterable

from torch import fx

from fxport.capture.records import OpRecord
from fxport.memory.analysis import MemoryAnalysis, analyze, observation
from fxport.memory.devices import DeviceMemory
from fxport.memory.liveness import walk
from fxport.runtime.devices import DeviceHandle
from fxport.runtime.execute import NodeResult
from fxport.runtime.footprint import FootprintProbe


def observations(nodes: Iterable[NodeResult]) -> dict:
    """node -> what the run did with it (device nodes and fallbacks; host nodes are absent)."""
    return {n.node: observation(n.status, n.error_kind, n.fields) for n in nodes if n.status != "host"}


def explain_run(gm: fx.GraphModule, records: list[OpRecord], dev: DeviceHandle, memory: str,
                nodes: list[NodeResult], placement: Callable[[fx.Node], str] | None = None,
                probe: FootprintProbe | None = None,
                remedies: dict[str, tuple[str, bool]] | None = None) -> MemoryAnalysis:
    """The memory analysis of a run of the partitioned graph `gm`: every device node judged by
    the model in the memory state the run had before it (which earlier nodes ran on the device,
    which fell back), beside the allocator's verdict. `placement`: node -> "l1" / "dram" (default:
    `memory` for every node)."""
    device = DeviceMemory.from_handle(dev)
    own = probe is None
    probe = probe or FootprintProbe(dev)
    try:
        seen = observations(nodes)
        states = walk(gm, device, probe.footprint, placement or (lambda n: memory), seen, probe.refit)
    finally:
        if own:
            probe.close()
        else:
            probe.flush()
    return analyze(records, states, device, memory.upper(), seen, remedies)


__all__ = ["explain_run", "observations"]
