"""A device partition's ttnn calls, recorded once and replayed: the steady state of a program.

A partition's nodes run through their lowering rules, which translate fx arguments into ttnn
arguments (layouts, memory configs, kernel configs, conv parameters, prepared weights) on every
run. For the same program and input shapes those translations come out the same each time, so
one unchecked run records the ttnn calls the rules issued (`Recording`), and later runs replay
that call list (`replay`): per node the same ttnn calls with the same arguments, and on a mock
their golden functions on the values, with none of the rules' Python.

In a recorded call each device value is named by the call that produced it (a slot) or by the
partition input it was uploaded from; everything else is held as it was passed (memory configs,
dtypes, kernel configs, the device copies of the model's constants, which the program keeps).
A partition is never replayed when what its rules did could depend on more than the shapes:
a call argument that is a host tensor other than a partition input or a model constant, a device
value no recorded call produced, a host read of a value inside a rule, a ttnn call not made
through `ctx.ops`, a node that fell back or took a remedy. Those partitions run their rules on
every call, as before.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, replace
from typing import Any, Callable

import torch

from fxport.runtime.dual import is_ttnn_tensor, pair
from fxport.runtime.golden import golden_function
from fxport.values import HostValue, TTValue


class NotReplayable(Exception):
    """What the partition's rules did cannot be replayed (the message says why)."""


@dataclass(frozen=True)
class Slot:
    """A device value produced by an earlier call of the list."""

    index: int


@dataclass(frozen=True)
class Input:
    """A partition input (a host tensor), as passed on this run."""

    index: int


@dataclass(frozen=True)
class Fixed:
    """A recorded argument container holding no values (conv strides, padding, configs): passed
    as recorded, not walked on every replay."""

    value: Any


@dataclass
class Call:
    name: str  # "linear", "to_layout", ...
    kind: str  # as counted when recorded (CallCounts: compute, layout, transfer)
    op: Any  # the ttnn function
    golden: Callable[..., Any] | None  # on a mock: its golden function
    args: tuple  # Slot / Input markers in place of values
    kwargs: dict
    produces: tuple[int, ...]  # slots for the device values of its result, in walk order
    frees: tuple[int, ...] = ()  # slots whose last use is this call
    # A step on the host instead of a ttnn call: a host value derived from another by a
    # function of its shape (`LoweringContext.derive`), into its one slot.
    host: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass
class NodeCalls:
    result: Any  # the node's NodeResult from the recorded run (its `seconds` set per replay)
    label: str  # the watchdog's name for its calls
    calls: list[Call]


@dataclass
class CallList:
    nodes: list[NodeCalls]
    outputs: dict[Any, Any]  # fx output arg node -> its value with Slot / Input markers
    slots: int
    replays: int = 0
    # Seconds the replays spent inside the ttnn ops (TT-NN's host code: validation, program
    # selection, allocation) and emulating values (golden functions, and rounding their results
    # to the device's dtype); the rest of a call is fxport's, dynamo's and the worker handoff's.
    ttnn_seconds: float = 0.0
    golden_seconds: float = 0.0
    # What the list was recorded for and is kept by identity (the program's device constants, the
    # device): held here, so that no other object can take their identities while the list lives.
    owners: tuple = ()


def signature(args: tuple) -> tuple | None:
    """What a call list is recorded for besides the program: its inputs' shapes, dtypes and
    strides. None when an input is not a tensor (its value could steer a rule)."""
    if not all(isinstance(a, torch.Tensor) for a in args):
        return None
    return tuple((tuple(a.shape), a.dtype, a.stride()) for a in args)


class Recording:
    """Collects the calls of one run of a partition (`LoweringContext.tape` while it runs)."""

    def __init__(self, args: tuple, constants: Any, emulate: bool, kind: Callable[[], str]):
        self.kind = kind  # the kind the call just made was counted as
        self.inputs = {id(a): i for i, a in enumerate(args)}
        self.constants = constants  # the program's DeviceConstants
        self.emulate = emulate
        # id(TTValue or derived host tensor) -> its slot, and a reference to check it is that one
        self.produced: dict[int, tuple[int, weakref.ref]] = {}
        self.slots = 0
        self.nodes: list[NodeCalls] = []
        self.calls: list[Call] = []
        self.problem = ""  # why it cannot be replayed (first one found)
        self.transient = False  # a run that prepared weights: the next run may record
        self.done: CallList | None = None

    def fail(self, why: str, transient: bool = False) -> None:
        if not self.problem:
            self.problem, self.transient = why, transient

    # -- during a node ---------------------------------------------------------------------------
    def call(self, name: str, op: Any, args: tuple, kwargs: dict, result: Any) -> None:
        if self.problem:
            return
        known = self._known_constants()
        try:
            marked_args = tuple(_fixed(a) for a in self._mark(args, known))
            marked_kwargs = {k: _fixed(v) for k, v in self._mark(kwargs, known).items()}
        except NotReplayable as exc:
            self.fail(f"ttnn.{name}: {exc}")
            return
        produces = []
        for value in _device_values(result):
            produces.append(self.slots)
            self.produced[id(value)] = (self.slots, weakref.ref(value))
            self.slots += 1
        golden = golden_function(name, op) if self.emulate else None
        self.calls.append(Call(name, self.kind(), op, golden, marked_args, marked_kwargs, tuple(produces)))

    def derive(self, source: Any, fn: Callable[[torch.Tensor], torch.Tensor], result: torch.Tensor) -> None:
        """A rule derived the host tensor `result` from the host value `source` with `fn`."""
        if self.problem:
            return
        try:
            marked = self._mark(source, self._known_constants())
        except NotReplayable as exc:
            self.fail(f"a host value derived on the host: {exc}")
            return
        self.produced[id(result)] = (self.slots, weakref.ref(result))
        self.calls.append(Call("host", "", None, None, (marked,), {}, (self.slots,), host=fn))
        self.slots += 1

    def read(self, value: Any) -> None:
        """A rule read a value on the host (its numbers could steer what it does next)."""
        if isinstance(value, TTValue) or (isinstance(value, HostValue) and not self.constants.holds(value.tensor)):
            self.fail("a rule reads a value on the host")

    def node(self, result: Any, label: str) -> None:
        """The node's calls are all recorded: keep them with its result."""
        calls, self.calls = self.calls, []
        if self.problem:
            return
        counted = result.calls
        if result.status != "device" or result.remedy_applied:
            self.fail(f"node {result.node} did not run on the device as lowered ({result.status})")
        elif counted is None or counted.weights:
            self.fail(f"node {result.node} prepared weights in this run", transient=True)
        elif counted.per_inference != sum(c.host is None for c in calls):
            self.fail(f"node {result.node} made ttnn calls outside ctx.ops")
        self.nodes.append(NodeCalls(result, label, calls))

    def finish(self, values: dict[Any, Any]) -> None:
        """The partition's outputs (fx node -> value): `done` becomes the call list, unless
        something on the way could not be replayed (`problem` says what)."""
        if self.problem:
            return
        known = self._known_constants()
        try:
            outputs = {node: self._mark(value, known, output=True) for node, value in values.items()}
        except NotReplayable as exc:
            self.fail(f"an output: {exc}")
            return
        _set_frees(self.nodes, outputs, self.slots)
        self.done = CallList(self.nodes, outputs, self.slots)

    # -- helpers ---------------------------------------------------------------------------------
    def _known_constants(self) -> set[int]:
        return {id(v) for copy in self.constants.copies.values() for v in _device_values(copy)}

    def _mark(self, value: Any, known: set[int], output: bool = False) -> Any:
        if isinstance(value, (list, tuple)):
            marked = [self._mark(v, known, output) for v in value]
            if type(value) in (list, tuple):
                return marked if type(value) is list else tuple(marked)
            return type(value)(*marked) if hasattr(value, "_fields") else type(value)(marked)
        if isinstance(value, dict):
            return {k: self._mark(v, known, output) for k, v in value.items()}
        if isinstance(value, TTValue):
            entry = self.produced.get(id(value))
            if entry is not None and entry[1]() is value:
                return Slot(entry[0])
            if id(value) in known:
                return value  # a constant's device copy: the program keeps it
            raise NotReplayable("a device value that no recorded call produced")
        if isinstance(value, HostValue):
            if id(value.tensor) in self.inputs:
                return Input(self.inputs[id(value.tensor)])
            if output:
                raise NotReplayable("a host value that is not a partition input")
            return self._mark(value.tensor, known)
        if isinstance(value, torch.Tensor):
            if id(value) in self.inputs:
                return Input(self.inputs[id(value)])
            entry = self.produced.get(id(value))
            if entry is not None and entry[1]() is value:
                return Slot(entry[0])
            if self.constants.holds(value):
                return value
            raise NotReplayable("a host tensor made by the rule")
        if is_ttnn_tensor(value):
            raise NotReplayable("a ttnn tensor outside fxport's values")
        return value


def replay(
    calls: CallList,
    args: tuple,
    run_node: Callable[[Callable[[], None], str], None],
    count: Callable[[str, str], None],
    done: Callable[[Any], None],
) -> dict[Any, Any]:
    """Run a recorded partition on `args`: each node's calls through `run_node(fn, label)` (the
    device worker's bounded call: a hung node is named, Ctrl-C stops before the next node),
    every call counted with `count(name, kind)` as it was when recorded, each node's result
    (timed) handed to `done`. Returns the outputs (fx output arg node -> value with TTValue / HostValue leaves)."""
    slots: list[Any] = [None] * calls.slots
    inputs = [HostValue(a) for a in args]
    perf = time.perf_counter
    spent = [0.0, 0.0]
    for node in calls.nodes:
        start = perf()
        run_node(lambda node=node: _run(node.calls, slots, args, count, spent), node.label)
        done(replace(node.result, seconds=perf() - start))
    calls.ttnn_seconds += spent[0]
    calls.golden_seconds += spent[1]
    calls.replays += 1
    return {n: _resolve(v, slots, inputs) for n, v in calls.outputs.items()}


def _run(calls: list[Call], slots: list, args: tuple, count: Callable[[str, str], None], spent: list) -> None:
    perf = time.perf_counter
    for c in calls:
        if c.host is not None:
            slots[c.produces[0]] = c.host(_fill(c.args[0], slots, args, 1))
            continue
        count(c.name, c.kind)
        tt_args, tt_kwargs = _fill(c.args, slots, args, 0), _fill(c.kwargs, slots, args, 0)
        start = perf()
        out = c.op(*tt_args, **tt_kwargs)
        spent[0] += perf() - start
        golden = None
        if c.golden is not None:
            golden_args, golden_kwargs = _fill(c.args, slots, args, 1), _fill(c.kwargs, slots, args, 1)
        start = perf()
        if c.golden is not None:
            golden = c.golden(*golden_args, **golden_kwargs)
        values = _device_values(pair(c.name, out, golden))  # the golden value in the device's dtype
        spent[1] += perf() - start
        if len(values) != len(c.produces):
            raise RuntimeError(f"ttnn.{c.name} returned {len(values)} device values, {len(c.produces)} when recorded")
        for slot, value in zip(c.produces, values):
            slots[slot] = value
        for slot in c.frees:
            slots[slot] = None  # freed at its last use: the allocator sees live tensors only


def _fill(value: Any, slots: list, args: tuple, golden: int) -> Any:
    """The recorded argument with this run's values: ttnn tensors (golden=0) or their golden
    values (golden=1)."""
    if isinstance(value, Fixed):
        return value.value
    if isinstance(value, (list, tuple)):
        filled = [_fill(v, slots, args, golden) for v in value]
        if type(value) in (list, tuple):
            return filled if type(value) is list else tuple(filled)
        return type(value)(*filled) if hasattr(value, "_fields") else type(value)(filled)
    if isinstance(value, dict):
        return {k: _fill(v, slots, args, golden) for k, v in value.items()}
    if isinstance(value, Slot):
        value = slots[value.index]
    elif isinstance(value, Input):
        return args[value.index]
    if isinstance(value, TTValue):
        return value.golden if golden else value.tt
    if isinstance(value, HostValue):
        return value.tensor
    return value


def _resolve(value: Any, slots: list, inputs: list) -> Any:
    if isinstance(value, (list, tuple)):
        resolved = [_resolve(v, slots, inputs) for v in value]
        if type(value) in (list, tuple):
            return resolved if type(value) is list else tuple(resolved)
        return type(value)(*resolved) if hasattr(value, "_fields") else type(value)(resolved)
    if isinstance(value, dict):
        return {k: _resolve(v, slots, inputs) for k, v in value.items()}
    if isinstance(value, Slot):
        return slots[value.index]
    if isinstance(value, Input):
        return inputs[value.index]
    return value


def _fixed(value: Any) -> Any:
    """`value` as a Fixed when it is a container with nothing a replay fills in."""
    if isinstance(value, (list, tuple, dict)) and not _fills(value):
        return Fixed(value)
    return value


def _fills(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_fills(v) for v in value)
    if isinstance(value, dict):
        return any(_fills(v) for v in value.values())
    return isinstance(value, (Slot, Input, TTValue, HostValue, torch.Tensor))


def _set_frees(nodes: list[NodeCalls], outputs: dict, slots: int) -> None:
    """Each slot is dropped after the last call that reads it (or the one that made it, when
    nothing reads it); slots the outputs hold stay to the end."""
    last: dict[int, Call] = {}
    for node in nodes:
        for c in node.calls:
            for s in c.produces:
                last[s] = c
            for s in _slots_in((c.args, c.kwargs)):
                last[s] = c
    kept = set(_slots_in(list(outputs.values())))
    frees: dict[int, list[int]] = {}
    for s, c in last.items():
        if s not in kept:
            frees.setdefault(id(c), []).append(s)
    for node in nodes:
        for c in node.calls:
            c.frees = tuple(frees.get(id(c), ()))


def _slots_in(value: Any) -> list[int]:
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _slots_in(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _slots_in(v)]
    return [value.index] if isinstance(value, Slot) else []


def _device_values(value: Any) -> list[TTValue]:
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _device_values(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _device_values(v)]
    return [value] if isinstance(value, TTValue) else []
