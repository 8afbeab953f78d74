"""Auto placement: every activation in L1 when it fits there, given all that is live at that point
and the allocator's rules, and in DRAM otherwise.

The liveness walk (fxport/memory/liveness.py) decides as it goes: at each device node it tries the
node with its activations in L1 on a copy of the allocator state (TT-NN's footprint of the node in
L1: its output, intermediates, transfers and circular buffers) and keeps L1 when that fits,
DRAM otherwise. An L1 tensor stays until its last consumer, so a later node can find L1 too full
for its own buffers, or its circular buffers blocked by a tensor low in L1, even in DRAM. Then the
tensors held in L1 at that point are taken out of L1, largest first (or lowest first, for
circular buffers), until the node fits, and the walk starts again with their producers in DRAM.
Some ops put their output where their input is whatever they are asked (TT-NN's reshape): when
such a producer, kept out of L1, still leaves its output in L1, its own L1 inputs' producers go
to DRAM in the next walk, until the tensor in the way is gone. Rounds end when every node fits (or nothing more can be moved out of L1: those nodes are reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import fx

from fxport.memory.devices import DeviceMemory
from fxport.memory.footprint_record import InputSpec
from fxport.memory.liveness import FootprintOf, NodeState, Placer, RefitOf, Walk

MAX_ROUNDS = 12
L1, DRAM = "l1", "dram"


@dataclass(frozen=True)
class Placement:
    memory: dict[str, str]  # device node -> "l1" or "dram"
    rounds: int  # walks it took
    demoted: tuple[str, ...]  # nodes kept out of L1 to make room for a later node
    unresolved: tuple[str, ...]  # nodes that fit neither in L1 nor in DRAM (left to the run)
    states: tuple[NodeState, ...]  # the final walk

    @property
    def nodes(self) -> int:
        return len(self.memory)

    @property
    def l1_nodes(self) -> int:
        return sum(m == L1 for m in self.memory.values())

    def activation_bytes(self) -> dict[str, int]:
        """Bytes of the node outputs placed in each memory (device buffers, as TT-NN sizes them)."""
        out = {"L1": 0, "DRAM": 0}
        for s in self.states:
            for b in s.footprint.buffers:
                if b.role == "output" and b.memory in out:
                    out[b.memory] += b.size
        return out

    def summary(self) -> dict:
        act = self.activation_bytes()
        total = sum(act.values())
        return {
            "nodes": self.nodes,
            "l1_nodes": self.l1_nodes,
            "l1_node_share": round(self.l1_nodes / self.nodes, 4) if self.nodes else None,
            "activation_bytes": total,
            "l1_bytes": act["L1"],
            "l1_byte_share": round(act["L1"] / total, 4) if total else None,
            "rounds": self.rounds,
            "demoted": len(self.demoted),
            "unresolved": list(self.unresolved),
        }


class _Greedy(Placer):
    def __init__(self, footprint_of: FootprintOf, refit: RefitOf | None, forced: set[str]):
        self.footprint_of, self.refit, self.forced = footprint_of, refit, forced
        self.failures: list[str] = []
        self.blame: set[str] = set()

    def choose(self, walk: Walk, node: fx.Node, inputs: list, specs: list[InputSpec]) -> str:
        if node.name in self.forced:
            self._pass_on(node, inputs, specs)
            return DRAM
        fp = self.footprint_of(node, specs, L1)
        if fp.error:  # fails in L1 (DRAM may not)
            return DRAM
        failure = walk.trial(fp, inputs)
        if failure is not None and failure.kind == "CB_CLASH" and self.refit is not None:
            tighter = self.refit(node, specs, L1, walk.l1_layout())
            failure = walk.trial(tighter, inputs) if tighter is not None and not tighter.error else failure
        return L1 if failure is None else DRAM

    def _pass_on(self, node: fx.Node, inputs: list, specs: list[InputSpec]) -> None:
        """A node kept out of L1 whose op still puts its output in L1 (reshape and other ops whose
        output follows their input's memory): the L1 tensor a later node needed gone is still
        there, so its L1 inputs' producers go to DRAM too (in the next walk)."""
        if any(out.memory == "L1" for out in self.footprint_of(node, specs, DRAM).outputs):
            self.blame |= {b.owner for v in inputs for b in v.blocks if b.memory == "L1" and b.owner}

    def failed(self, walk: Walk, node: fx.Node, inputs: list, state: NodeState) -> None:
        """Find the L1 tensors to keep out of L1 (their producers go to DRAM) so that `node`
        fits: the largest first (lowest first for circular buffers), each time measuring the node
        again with its own inputs where they would then be."""
        self.failures.append(node.name)
        held = walk.held("L1")
        clash = state.failure is not None and state.failure.kind == "CB_CLASH"
        order = sorted(held, key=(lambda b: b.address) if clash else (lambda b: -b.size))
        chosen: list = []
        for block in order:
            chosen.append(block)
            owners = {b.owner for b in chosen if b.owner}
            specs = [_moved(v, owners) for v in inputs]
            fp = self.footprint_of(node, specs, state.memory.lower())
            if not fp.error and walk.trial(fp, inputs, without=chosen) is None:
                self.blame |= owners
                return


def _moved(value, owners: set[str]) -> InputSpec:
    """The spec of an input once its producer's output goes to DRAM (when it is among `owners`)."""
    spec = value.spec
    if spec.where == "device" and any(b.owner in owners for b in value.blocks):
        return InputSpec(spec.where, spec.shape, spec.dtype, spec.layout, "DRAM")
    return spec


def place(
    gm: fx.GraphModule,
    device: DeviceMemory,
    footprint_of: FootprintOf,
    refit: RefitOf | None = None,
    on_device: Callable[[fx.Node], bool] | None = None,
    max_rounds: int = MAX_ROUNDS,
) -> Placement:
    """Place every device node of `gm`: a partitioned graph (fused_N submodules), or with
    `on_device` an unpartitioned one (a graph pass, before partitioning: the nodes it says run on
    the device form one partition)."""
    forced: set[str] = set()
    rounds, placer, states = 0, None, []
    while rounds < max_rounds:
        rounds += 1
        placer = _Greedy(footprint_of, refit, forced)
        states = _walk(gm, device, footprint_of, placer, refit, on_device)
        fresh = placer.blame - forced
        if not placer.failures or not fresh:
            break
        forced |= fresh
    memory = {s.node: s.memory.lower() for s in states}
    return Placement(memory, rounds, tuple(sorted(forced)), tuple(placer.failures if placer else ()), tuple(states))


def _walk(
    gm: fx.GraphModule,
    device: DeviceMemory,
    footprint_of: FootprintOf,
    placer: Placer,
    refit: RefitOf | None,
    on_device: Callable[[fx.Node], bool] | None,
) -> list[NodeState]:
    state = Walk(device)
    if on_device is not None:
        state.partition(gm, footprint_of, placer, None, refit, on_device)
    else:
        for n in gm.graph.nodes:
            if n.op == "call_module" and str(n.target).startswith("fused_"):
                state.partition(gm.get_submodule(n.target), footprint_of, placer, None, refit)
    return state.states


__all__ = ["DRAM", "L1", "MAX_ROUNDS", "Placement", "place"]
