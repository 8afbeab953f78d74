"""Liveness-aware prediction: what is resident in each memory at every node of a partitioned
graph, replayed through a model of TT-Metal's allocator.

The walk follows execution (fxport/runtime/execute.py) exactly: partitions in graph order, device
nodes in their partition's order. Before a node runs, the device holds every tensor still needed
by a later consumer (a device node's outputs until their last use; the device copy a host value
got when a device node first moved it, until the host value's last use; values nothing reads
stay until the partition ends, as the executor keeps them). The node then replays its footprint
(fxport/memory/footprint_record.py: TT-NN's own record of the node's transfers, intermediates, outputs
and circular buffers, in order) through one `BankAllocator` per memory: a buffer that finds no
free block is an out-of-memory at that buffer; a program whose circular buffers reach past the
lowest L1 buffer (they grow up from the L1 base, buffers grow down from the top) is a CB clash;
past the end of L1, a CB overflow. Addresses, and so fragmentation (the largest free block), are
the allocator's own.

A node that fails keeps what the executor keeps: the host inputs it had moved to the device
before the failing buffer (they stay with their host value); everything else is released, and
its result lives on the host. Which nodes failed comes from the model itself when planning, or
from the run when explaining one (`observed`): a node is then judged in the state the run had
before it, and a failure the run saw is replayed at the buffer the allocator named.

The graph side (consumers, last uses) is read from the fx nodes' own users. Cost: one pass, each
node replaying its own events against a free list (a handful of free blocks; the allocator keeps
its totals as it goes): linear in the node count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import fx

from fxport.gcpause import without_gc
from fxport.memory.allocator import BankAllocator
from fxport.memory.devices import DeviceMemory
from fxport.memory.footprint_record import HOST, Footprint, InputSpec
from fxport.memory.oom import MEMORY_KINDS

FootprintOf = Callable[[fx.Node, list[InputSpec], str], Footprint]
# The footprint of a node measured with L1 holding these (address, size) buffers, as the walk has it.
RefitOf = Callable[[fx.Node, list[InputSpec], str, tuple], "Footprint | None"]


@dataclass(frozen=True)
class Failure:
    """The allocation a node fails at."""

    kind: str  # OUT_OF_MEMORY, CB_CLASH or CB_OVERFLOW
    role: str  # transfer, constant, intermediate, output, retained, or "circular buffers"
    memory: str  # L1, DRAM, L1_SMALL
    per_bank: int  # bytes per bank asked for (circular buffers: bytes per core)
    room: int  # largest free block (OOM), room below the lowest L1 buffer (clash), CB limit (overflow)
    allocated: int = 0  # bytes per bank allocated in that memory when it failed
    input: int | None = None  # transfer: the node's input it was moving
    op: str = ""  # the device operation that asked

    def describe(self, shapes: list[str] | None = None) -> str:
        what = self.role
        if self.input is not None:
            what = f"{self.role} of input {self.input}" + (
                f" {shapes[self.input]}" if shapes and self.input < len(shapes) else ""
            )
        if self.kind == "OUT_OF_MEMORY":
            return (
                f"{what} ({self.op or 'the lowering'}): {self.per_bank:,} B per {self.memory} bank, "
                f"largest free block {self.room:,} B"
            )
        if self.kind == "CB_CLASH":
            return (
                f"circular buffers of {self.op or 'a program'}: {self.per_bank:,} B per core, "
                f"{self.room:,} B free below the lowest L1 buffer"
            )
        return (
            f"circular buffers of {self.op or 'a program'}: {self.per_bank:,} B per core, beyond the "
            f"{self.room:,} B of L1"
        )

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class NodeState:
    """One device node, as the walk saw it."""

    node: str
    memory: str  # where its activations were placed ("L1" or "DRAM")
    verdict: str  # "fits", a MEMORY_KINDS kind, or "error" (fails validation: no memory verdict)
    failure: Failure | None
    resident: dict[str, int]  # bytes per bank allocated before the node, per memory
    peak: dict[str, int]  # most bytes per bank allocated during the node, per memory
    largest_free: dict[str, int]  # per memory, before the node
    cb: int  # the node's largest circular-buffer region, bytes per core
    footprint: Footprint = field(repr=False)
    # The model's (allocated, largest free block) in the failing memory just before the buffer the
    # allocator refused (a fallback the run saw), to set beside the allocator's own figures.
    at_observed: tuple[int, int] | None = None

    @property
    def fits(self) -> bool:
        return self.verdict == "fits"


@dataclass(frozen=True)
class Observation:
    """What the run did with a device node: ran ("device") or fell back, with the error's kind
    and fields (fxport.memory.oom.classify)."""

    status: str
    kind: str = ""
    fields: dict = field(default_factory=dict)


@dataclass
class _Replay:
    """What one replay of a footprint did: blocks it holds, transfers it made, where it failed."""

    peak: dict[str, int]
    failure: Failure | None = None
    cb_max: int = 0
    placed: dict[int, "_Block"] = field(default_factory=dict)  # buffer index -> block
    moved: dict[int, int] = field(default_factory=dict)  # event index -> buffer index (transfers made)
    candidates: list[tuple[int, int, int]] = field(default_factory=list)  # (event, allocated, largest free)


class _Block:
    __slots__ = ("memory", "address", "refs", "size", "owner")

    def __init__(self, memory: str, address: int, size: int = 0, owner: str = ""):
        self.memory, self.address, self.refs, self.size, self.owner = memory, address, 0, size, owner


@dataclass
class _Value:
    """A value the executor holds: on the device (its blocks, the spec consumers see) or on the
    host (with the device copies device nodes made of it, by layout and dtype)."""

    spec: InputSpec = HOST
    blocks: list[_Block] = field(default_factory=list)
    copies: dict[str, _Block] = field(default_factory=dict)
    items: list["_Value"] | None = None  # a multi-output node's outputs


class Walk:
    """The allocator state across a run: one free list per memory kind."""

    def __init__(self, device: DeviceMemory):
        self.device = device
        self.allocators = {
            "L1": BankAllocator(device.l1.size, top_down=True, alignment=device.l1.granule),
            "DRAM": BankAllocator(device.dram.size, top_down=False, alignment=device.dram.granule),
        }
        if device.l1_small_size:
            self.allocators["L1_SMALL"] = BankAllocator(
                device.l1_small_size, top_down=True, alignment=device.l1.granule
            )
        self.states: list[NodeState] = []
        self._env: dict[fx.Node, _Value] = {}

    # -- blocks ----------------------------------------------------------------------------------
    def _hold(self, block: _Block | None) -> None:
        if block is not None:
            block.refs += 1

    def _release(self, block: _Block | None) -> None:
        if block is None:
            return
        block.refs -= 1
        if block.refs <= 0:
            self.allocators[block.memory].free(block.address)

    def _drop(self, value: _Value) -> None:
        for b in value.blocks:
            self._release(b)
        for b in value.copies.values():
            self._release(b)
        for item in value.items or ():
            self._drop(item)
        value.blocks, value.copies, value.items = [], {}, None

    def _allocated(self) -> dict[str, int]:
        return {m: a.allocated for m, a in self.allocators.items()}

    # -- one node --------------------------------------------------------------------------------
    def node(
        self,
        node: fx.Node,
        inputs: list[_Value],
        fp: Footprint,
        memory: str,
        observed: Observation | None = None,
        refit: Callable[[tuple], Footprint | None] | None = None,
    ) -> tuple[NodeState, list[_Value] | None]:
        """Replay `fp` for `node`; return its state and its outputs (None: it fell back).

        The verdict is the model's own (the replay stops at the first buffer or circular-buffer
        region that does not fit). Some programs size their circular buffers (or choose to slice)
        from the L1 they find free when they are built (matmul and conv2d do): when the replay
        finds a clash, `refit(layout)` measures the node again with L1 holding what it holds now,
        and the node is replayed with what it returns. What follows the node is what the run did
        when `observed` says so: a node the device ran keeps its outputs, one that fell back keeps
        only the transfers made before the buffer the allocator refused."""
        resident = self._allocated()
        largest = {m: a.largest_free for m, a in self.allocators.items()}
        ran_on_device = observed is not None and observed.status == "device"
        refused = _refused(observed)
        layout = self.l1_layout()  # what the node's programs find in L1 when they are built
        r = self._replay(fp, inputs, ran_on_device, refused, node.name)
        if r.failure is not None and r.failure.kind == "CB_CLASH" and refit is not None:
            tighter = refit(layout)
            if tighter is not None and tighter != fp:
                self._rollback(r, inputs)
                fp = tighter
                r = self._replay(fp, inputs, ran_on_device, refused, node.name)
        if r.failure is None and fp.error_kind in MEMORY_KINDS:  # raised while it was measured
            r.failure = Failure(
                fp.error_kind,
                "circular buffers" if fp.error_kind != "OUT_OF_MEMORY" else "buffer",
                "L1",
                0,
                0,
                op=fp.error[:80],
            )
        verdict = r.failure.kind if r.failure is not None else ("error" if fp.error else "fits")
        ran = ran_on_device if observed is not None else verdict == "fits"
        outputs = None
        if ran:
            outputs = []
            for out in fp.outputs:
                spec = InputSpec("device", out.shape, out.dtype, out.layout, out.memory)
                if out.buffer is not None and out.buffer in r.placed:
                    outputs.append(_Value(spec, blocks=[r.placed[out.buffer]]))
                    self._hold(r.placed[out.buffer])
                elif out.alias is not None and out.alias < len(inputs) and inputs[out.alias].blocks:
                    blocks = list(inputs[out.alias].blocks)
                    for b in blocks:
                        self._hold(b)
                    outputs.append(_Value(spec, blocks=blocks))
                else:
                    outputs.append(_Value())
        at_observed, stop = None, None
        if r.candidates:  # the refused buffer: where the model's state is nearest the allocator's
            stop, held, room = min(
                r.candidates, key=lambda c: (abs(c[1] - refused[2]), c[0]) if refused[2] is not None else (0, c[0])
            )
            at_observed = (held, room)
        if not ran and observed is not None:
            self._keep_transfers_before(fp, inputs, r.moved, stop)
        # The lowering's own references end with it: intermediates are freed already, outputs are
        # held by their values and transfers by their host values; retained buffers stay.
        for i, block in r.placed.items():
            if fp.buffers[i].role != "retained" or not ran:
                self._release(block)
        state = NodeState(
            node.name, memory.upper(), verdict, r.failure, resident, r.peak, largest, r.cb_max, fp, at_observed
        )
        return state, outputs

    def _replay(
        self,
        fp: Footprint,
        inputs: list[_Value],
        ran_on_device: bool,
        refused: tuple[str, int, int | None] | None,
        owner: str = "",
    ) -> "_Replay":
        r = _Replay(peak=self._allocated())
        for index, event in enumerate(fp.events):
            if r.failure is not None and not ran_on_device:
                break
            if event.kind == "cbs":
                r.cb_max = max(r.cb_max, event.cb)
                r.failure = r.failure or self._check_cbs(event.cb, event.op)
                continue
            buf = fp.buffers[event.buffer]
            if buf.memory not in self.allocators:
                continue
            if refused is not None and event.kind == "alloc" and (buf.memory, buf.per_bank) == refused[:2]:
                stats = self.allocators[buf.memory].stats()
                r.candidates.append((index, stats.allocated, stats.largest_free))
            if event.kind == "free":
                self._release(r.placed.pop(event.buffer, None))
                continue
            source = inputs[buf.input] if buf.input is not None and buf.input < len(inputs) else None
            copy = buf.role in ("transfer", "constant") and source is not None
            if copy and buf.key in source.copies:  # an earlier consumer moved it: reused
                r.placed[event.buffer] = source.copies[buf.key]
                self._hold(r.placed[event.buffer])
                continue
            address = self.allocators[buf.memory].allocate(buf.per_bank)
            if address is None:
                if r.failure is None:
                    r.failure = _out_of_memory(buf, self.allocators[buf.memory])
                continue  # only a node the device ran gets here: the model lacks room the device had
            block = _Block(buf.memory, address, buf.per_bank, owner)
            self._hold(block)
            r.placed[event.buffer] = block
            if copy:
                source.copies[buf.key] = block  # the host value keeps its device copy
                self._hold(block)
                r.moved[index] = event.buffer
            r.peak[buf.memory] = max(r.peak[buf.memory], self.allocators[buf.memory].allocated)
        return r

    def _rollback(self, r: "_Replay", inputs: list[_Value]) -> None:
        """Undo a replay: the allocators are left as before it (freeing what was allocated merges
        the free list back to what it was)."""
        for block in r.placed.values():
            self._release(block)
        for value in inputs:
            for key, block in list(value.copies.items()):
                if any(block is r.placed.get(b) for b in r.moved.values()):
                    self._release(value.copies.pop(key))
        r.placed.clear()

    def _keep_transfers_before(
        self, fp: Footprint, inputs: list[_Value], moved: dict[int, int], stop: int | None
    ) -> None:
        """A node that fell back keeps only the transfers made before the buffer the allocator
        refused (`stop`, an event index; None: all of them)."""
        if stop is None:
            return
        for index, buffer in moved.items():
            if index >= stop:
                buf = fp.buffers[buffer]
                self._release(inputs[buf.input].copies.pop(buf.key, None))

    def _check_cbs(self, cb: int, op: str, allocators: dict[str, BankAllocator] | None = None) -> Failure | None:
        limit = self.device.cb_limit
        if cb > limit:
            return Failure("CB_OVERFLOW", "circular buffers", "L1", cb, limit, op=op)
        lowest = (allocators or self.allocators)["L1"].lowest_occupied
        if lowest is not None and cb > lowest:
            return Failure("CB_CLASH", "circular buffers", "L1", cb, lowest, op=op)
        return None

    def trial(self, fp: Footprint, inputs: list[_Value], without: list[_Block] = ()) -> Failure | None:
        """Where `fp` would fail now (None: it fits), on a copy of the allocators, with the
        blocks in `without` freed first; nothing is changed."""
        allocators = {m: a.clone() for m, a in self.allocators.items()}
        for block in without:
            allocators[block.memory].free(block.address)
        placed: dict[int, int] = {}
        for event in fp.events:
            if event.kind == "cbs":
                failure = self._check_cbs(event.cb, event.op, allocators)
                if failure is not None:
                    return failure
                continue
            buf = fp.buffers[event.buffer]
            if buf.memory not in allocators:
                continue
            if event.kind == "free":
                if event.buffer in placed:
                    allocators[buf.memory].free(placed.pop(event.buffer))
                continue
            source = inputs[buf.input] if buf.input is not None and buf.input < len(inputs) else None
            if buf.role in ("transfer", "constant") and source is not None and buf.key in source.copies:
                continue
            address = allocators[buf.memory].allocate(buf.per_bank)
            if address is None:
                return _out_of_memory(buf, allocators[buf.memory])
            placed[event.buffer] = address
        if fp.error_kind in MEMORY_KINDS:
            return Failure(fp.error_kind, "circular buffers", "L1", 0, 0, op=fp.error[:80])
        return None

    def l1_layout(self, allocators: dict[str, BankAllocator] | None = None) -> tuple:
        """The (address, size) of every L1 buffer held, lowest first."""
        return (allocators or self.allocators)["L1"].used_blocks()

    def held(self, memory: str) -> list[_Block]:
        """The blocks of `memory` the values of the current partition hold (unique)."""
        seen: dict[int, _Block] = {}
        for value in self._env.values():
            for block in [
                *value.blocks,
                *value.copies.values(),
                *(b for item in value.items or () for b in item.blocks),
            ]:
                if block.memory == memory:
                    seen[id(block)] = block
        return list(seen.values())

    # -- a partition -----------------------------------------------------------------------------
    def partition(
        self,
        sub: fx.GraphModule,
        footprint_of: FootprintOf,
        placement: "Placer",
        observed: dict[str, Observation] | None = None,
        refit: RefitOf | None = None,
        on_device: Callable[[fx.Node], bool] | None = None,
    ) -> None:
        """Walk one device partition (or, with `on_device`, a whole unpartitioned graph whose
        other nodes run on the host). `placement` says where each node's activations go: a
        function of the node, or a `Placer` deciding as the walk goes (auto placement)."""
        order = {n: i for i, n in enumerate(sub.graph.nodes)}
        end = len(order)
        # A value is freed after its last consumer; one nothing consumes lives to the end.
        last_use = {n: max((order[u] for u in n.users), default=end) for n in order}
        dying: dict[int, list[fx.Node]] = {}
        for n, i in last_use.items():
            dying.setdefault(i, []).append(n)
        env: dict[fx.Node, _Value] = {}
        self._env = env
        for n in sub.graph.nodes:
            if n.op == "placeholder" or (n.op == "call_function" and on_device is not None and not on_device(n)):
                env[n] = _Value()
            elif n.op == "call_function" and getattr(n.target, "__name__", "") == "getitem":
                source = env[n.args[0]]
                item = source.items[n.args[1]] if source.items and n.args[1] < len(source.items) else _Value()
                env[n] = _Value(item.spec, list(item.blocks))
                for b in item.blocks:
                    b.refs += 1
            elif n.op == "call_function":
                inputs = [env[a] for a in n.all_input_nodes]
                specs = [v.spec for v in inputs]
                memory = placement.choose(self, n, inputs, specs) if isinstance(placement, Placer) else placement(n)
                fp = footprint_of(n, specs, memory)
                # called within this iteration only (self.node below): the loop variables are current
                tighter = (lambda layout: refit(n, specs, memory, layout)) if refit is not None else None  # noqa: B023
                state, outputs = self.node(n, inputs, fp, memory, (observed or {}).get(n.name), tighter)
                self.states.append(state)
                if isinstance(placement, Placer) and state.verdict != "fits":
                    placement.failed(self, n, inputs, state)
                if outputs is None:
                    env[n] = _Value()
                elif isinstance(n.meta.get("val"), (list, tuple)):
                    env[n] = _Value(items=outputs)
                else:
                    env[n] = outputs[0] if outputs else _Value()
            for dead in dying.get(order[n], ()):
                if dead in env:
                    self._drop(env.pop(dead))
        for value in env.values():  # the partition returns: everything it held is released
            self._drop(value)
        self._env = {}


class Placer:
    """Decides each device node's placement as the walk reaches it (see fxport.memory.placement)."""

    def choose(self, walk: Walk, node: fx.Node, inputs: list[_Value], specs: list[InputSpec]) -> str:
        raise NotImplementedError

    def failed(self, walk: Walk, node: fx.Node, inputs: list[_Value], state: NodeState) -> None:
        """The node did not fit where `choose` put it."""


def _refused(observed: Observation | None) -> tuple[str, int, int | None] | None:
    """(memory, bytes per bank, bytes allocated then) of the buffer the allocator refused, from
    its error (a fallback the run saw); None for anything else."""
    if observed is None or observed.status != "fallback" or observed.kind != "OUT_OF_MEMORY":
        return None
    f = observed.fields
    if "per_bank" not in f:
        return None
    return str(f.get("buffer_type", "")).upper(), f["per_bank"], f.get("allocated")


@without_gc
def walk(
    gm: fx.GraphModule,
    device: DeviceMemory,
    footprint_of: FootprintOf,
    placement: "Callable[[fx.Node], str] | Placer",
    observed: dict[str, Observation] | None = None,
    refit: RefitOf | None = None,
) -> list[NodeState]:
    """Walk a partitioned graph (`fxport.partition`'s top level: host nodes and `fused_N` device
    submodules) and return the state of every device node, in execution order."""
    state = Walk(device)
    for n in gm.graph.nodes:
        if n.op == "call_module" and str(n.target).startswith("fused_"):
            state.partition(gm.get_submodule(n.target), footprint_of, placement, observed, refit)
    return state.states


__all__ = ["MEMORY_KINDS", "Failure", "NodeState", "Observation", "Placer", "Walk", "walk"]


def _out_of_memory(buf, allocator) -> Failure:
    """The failure of `buf` not finding room in `allocator`, with the allocator's state then."""
    stats = allocator.stats()
    return Failure(
        "OUT_OF_MEMORY", buf.role, buf.memory, buf.per_bank, stats.largest_free, stats.allocated, buf.input, buf.op
    )
