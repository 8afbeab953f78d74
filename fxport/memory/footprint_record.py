"""What one lowered node allocates on the device, as TT-NN itself reports it.

A node's footprint is read from a graph capture of its lowering (fxport/runtime/footprint_probe.py runs
it): every buffer the ttnn calls allocate and free, in order, with the bytes the fullest bank
holds, and the circular buffers each program declares per core. The capture is bracketed by
markers the driver emits (`fxport.input:i`, `fxport.lower`, `fxport.transfer:i:layout:dtype` ...
`fxport.end`, `fxport.output:i`), which say what each buffer was for:

- input: a device-resident input, created before the lowering (not the node's own);
- transfer: a host input the lowering moved to the device (kept by the host value afterwards);
- constant: a constant's device copy (kept for every later use);
- intermediate: allocated and freed inside the lowering (layout conversions, halo buffers, ...);
- output: what the node hands its consumers (an output may instead share an input's buffer: a
  reshape that keeps the last two dims allocates nothing);
- retained: allocated by the lowering and still held when it returns without being an output.

Parsing and the JSON form are pure data (no ttnn): the same footprint comes from a fresh capture
or from the on-disk cache, which is read but never trusted (`from_dict` validates every field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

ROLES = ("transfer", "constant", "intermediate", "output", "retained")
MEMORIES = ("L1", "DRAM", "L1_SMALL")
FOOTPRINT_SCHEMA = "fxport.footprint/3"

MARK = "fxport."  # prefix of the driver's marker scopes


@dataclass(frozen=True)
class InputSpec:
    """How a node's tensor input is held when the node runs: on the host (the lowering moves it
    itself), or on the device as its producer left it."""

    where: str  # "host" or "device"
    shape: tuple[int, ...] = ()
    dtype: str = ""  # device: ttnn dtype name ("bfloat16")
    layout: str = ""  # device: "TILE" or "ROW_MAJOR"
    memory: str = ""  # device: "L1" or "DRAM"

    def key(self) -> list:
        return [self.where, list(self.shape), self.dtype, self.layout, self.memory]


HOST = InputSpec("host")


@dataclass(frozen=True)
class Buffer:
    memory: str  # "L1", "DRAM", "L1_SMALL" (buffer kinds the allocator model tracks)
    per_bank: int  # bytes the fullest bank (or each shard's core) holds
    size: int  # bytes of the whole buffer
    role: str
    layout: str = "INTERLEAVED"  # or HEIGHT_SHARDED, ...: the buffer's memory layout
    input: int | None = None  # transfer / constant: the node's tensor input it holds
    output: int | None = None  # output: index among the node's outputs
    op: str = ""  # the ttnn operation that allocated it
    key: str = ""  # transfer / constant: the device copy's layout and dtype ("tile:bfloat16")

    def to_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v not in (None, "")}


@dataclass(frozen=True)
class Event:
    kind: str  # "alloc", "free" (of buffers[buffer]) or "cbs" (a program's circular buffers)
    buffer: int = -1
    cb: int = 0  # cbs: per-core bytes of the program's statically allocated circular buffers
    op: str = ""  # cbs: the device operation

    def to_dict(self) -> dict:
        return (
            {"kind": self.kind, "buffer": self.buffer}
            if self.kind != "cbs"
            else {"kind": "cbs", "cb": self.cb, "op": self.op}
        )


@dataclass(frozen=True)
class Output:
    """What the node hands each consumer: its buffer, or the input whose buffer it shares."""

    buffer: int | None  # index into Footprint.buffers
    alias: int | None  # input index when the output is a view of that input
    shape: tuple[int, ...]
    dtype: str  # ttnn dtype name ("bfloat16")
    layout: str  # "TILE" or "ROW_MAJOR"
    memory: str  # "L1", "DRAM", ... ("" for a host-side result)

    def to_dict(self) -> dict:
        return {
            "buffer": self.buffer,
            "alias": self.alias,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "layout": self.layout,
            "memory": self.memory,
        }


@dataclass(frozen=True)
class Footprint:
    buffers: tuple[Buffer, ...]
    events: tuple[Event, ...]
    outputs: tuple[Output, ...]
    peak_l1: int = 0  # per core, TT-NN's extract_resource_usage_per_core (inputs included)
    peak_cb: int = 0  # per core, circular plus dataflow buffers
    error: str = ""  # the lowering raised during the capture: what it said (one line)
    error_kind: str = ""  # its classification: a memory kind (CB_CLASH: the programs met the L1
    # buffers the measurement reproduced) is a verdict; anything else (validation) is none
    seconds: float = field(default=0.0, compare=False)  # volatile: not stored

    def of_role(self, role: str) -> list[int]:
        return [i for i, b in enumerate(self.buffers) if b.role == role]

    def to_dict(self) -> dict:
        return {
            "buffers": [b.to_dict() for b in self.buffers],
            "events": [e.to_dict() for e in self.events],
            "outputs": [o.to_dict() for o in self.outputs],
            "peak_l1": self.peak_l1,
            "peak_cb": self.peak_cb,
            "error": self.error,
            "error_kind": self.error_kind,
        }


# -- parsing a graph capture ---------------------------------------------------------------------

# "[0-0 - 7-6]" (x-y - x-y) or "[(x=0,y=0) - (x=7,y=6)]"
_CORE_RANGE = re.compile(r"\[\(?(?:x=)?(\d+)[-,]\s*(?:y=)?(\d+)\)?\s*-\s*\(?(?:x=)?(\d+)[-,]\s*(?:y=)?(\d+)\)?\]")


def cores_of(core_range_set: str) -> set[tuple[int, int]]:
    """The cores of a core range set as TT-Metal prints it: '{[0-0 - 7-6], [0-7 - 5-7]}'."""
    return {
        (x, y)
        for x0, y0, x1, y1 in _CORE_RANGE.findall(core_range_set)
        for x in range(int(x0), int(x1) + 1)
        for y in range(int(y0), int(y1) + 1)
    }


def _per_core(cbs: list[tuple[str, int]]) -> int:
    """The largest per-core total of a program's circular buffers."""
    totals: dict[tuple[int, int], int] = {}
    for ranges, size in cbs:
        for core in cores_of(ranges) or {(0, 0)}:
            totals[core] = totals.get(core, 0) + size
    return max(totals.values(), default=0)


class CaptureError(ValueError):
    """A capture that does not follow the driver's marker protocol (a bug, never a verdict)."""


def parse_capture(
    graph: list[dict], n_outputs: int, peak_l1: int = 0, peak_cb: int = 0, error: str = "", error_kind: str = ""
) -> Footprint:
    """The footprint of a node from the graph capture of its lowering (see the module doc).
    Buffers of kinds the allocator model does not track (trace, system memory) are skipped."""
    nodes = sorted(graph, key=lambda n: n["counter"])
    buffer_of: dict[int, int] = {}  # capture buffer node -> index in `buffers`
    input_buffers: dict[int, int] = {}  # capture buffer node -> input index (created as inputs)
    buffers: list[Buffer] = []
    roles: list[str] = []
    events: list[Event] = []
    outputs: list[Output | None] = [None] * n_outputs
    region, tag = "", None  # current marker region and the transfer/input tag inside it
    pending_cbs: list[tuple[str, int]] = []
    cb_op, current_op = "", ""

    def flush_cbs() -> None:
        nonlocal pending_cbs
        if pending_cbs:
            events.append(Event("cbs", cb=_per_core(pending_cbs), op=cb_op))
            pending_cbs = []

    for n in nodes:
        kind, params = n["node_type"], n.get("params") or {}
        if kind in ("circular_buffer_allocate", "dataflow_buffer_allocate"):
            backed = params.get("globally_allocated", params.get("borrows_memory", "0"))
            if str(backed) != "1":  # a CB backed by a sharded buffer takes no CB space
                pending_cbs.append((str(params.get("core_range_set", "")), int(params.get("size", 0))))
            continue
        if kind == "circular_buffer_deallocate_all":
            flush_cbs()
            cb_op = current_op
            continue
        flush_cbs()
        if kind == "function_start":
            name = str(params.get("name", ""))
            if name.startswith(MARK):
                region, _, rest = name[len(MARK) :].partition(":")
                tag = rest or None
            elif name.endswith("Operation") or name.startswith("ttnn.") or name in ("Pool2D",):
                current_op = name  # a device operation (or the ttnn call) allocates what follows
            continue
        if kind == "buffer_allocate":
            memory = str(params.get("type", ""))
            if memory not in MEMORIES:
                continue
            ref = _ref(n)
            if region == "input":
                input_buffers[ref] = int(tag or 0)
                continue
            role, which, copy = "intermediate", None, ""
            if region == "transfer" and tag is not None:
                head, _, copy = tag.partition(":")
                which = int(head) if int(head) >= 0 else None
                role = "constant" if copy.endswith(":constant") else "transfer"
            elif region not in ("lower", "transfer"):
                raise CaptureError(f"a buffer allocated outside the lowering (region {region!r})")
            buffer_of[ref] = len(buffers)
            buffers.append(
                Buffer(
                    memory,
                    int(params.get("max_size_per_bank", 0)),
                    int(params.get("size", 0)),
                    role,
                    str(params.get("layout", "INTERLEAVED")),
                    input=which,
                    op=current_op,
                    key=copy,
                )
            )
            roles.append(role)
            events.append(Event("alloc", len(buffers) - 1))
        elif kind == "buffer_deallocate":
            ref = _ref(n)
            if region == "output" and tag is not None:
                i = int(tag)
                if ref in buffer_of:
                    outputs[i] = Output(buffer_of[ref], None, (), "", "", "")
                elif ref in input_buffers:
                    outputs[i] = Output(None, input_buffers[ref], (), "", "", "")
                continue
            if region in ("lower", "transfer") and ref in buffer_of:
                events.append(Event("free", buffer_of[ref]))
                roles[buffer_of[ref]] = "freed"
    flush_cbs()
    # What the lowering still held when it returned: outputs (matched above), the host values'
    # device copies (transfer, constant), and anything else the lowering kept (retained).
    held_as_output = {o.buffer for o in outputs if o is not None and o.buffer is not None}
    final = []
    for i, (b, role) in enumerate(zip(buffers, roles)):
        if role == "freed":
            role = "intermediate"
        elif role == "intermediate":
            role = "output" if i in held_as_output else "retained"
        out_index = next((j for j, o in enumerate(outputs) if o is not None and o.buffer == i), None)
        final.append(
            Buffer(
                b.memory,
                b.per_bank,
                b.size,
                role,
                b.layout,
                b.input,
                out_index if role == "output" else None,
                b.op,
                b.key,
            )
        )
    return Footprint(
        tuple(final),
        tuple(events),
        tuple(o or Output(None, None, (), "", "", "") for o in outputs),
        peak_l1,
        peak_cb,
        error,
        error_kind,
    )


def _ref(node: dict) -> int:
    connections = node.get("connections") or []
    if not connections:
        raise CaptureError(f"buffer event {node.get('counter')} names no buffer")
    return int(connections[0])


# -- the JSON form (the on-disk cache): validated, never trusted --------------------------------


def _int(value: Any, name: str, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return value


def _opt_int(value: Any, name: str, low: int = 0) -> int | None:
    return None if value is None else _int(value, name, low)


def _str(value: Any, name: str, choices: Iterable[str] | None = None, limit: int = 400) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"{name}: expected a string, got {type(value).__name__}")
    if choices is not None and value not in choices:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(choices)}")
    return value


def from_dict(doc: Any) -> Footprint:
    """A footprint from its JSON form; ValueError for anything malformed or inconsistent."""
    if not isinstance(doc, dict):
        raise ValueError("footprint: expected an object")
    raw_buffers, raw_events, raw_outputs = doc.get("buffers"), doc.get("events"), doc.get("outputs")
    if not all(isinstance(x, list) for x in (raw_buffers, raw_events, raw_outputs)):
        raise ValueError("footprint: buffers, events and outputs must be lists")
    buffers = []
    for i, b in enumerate(raw_buffers):
        if not isinstance(b, dict):
            raise ValueError(f"buffers[{i}]: expected an object")
        buffers.append(
            Buffer(
                _str(b.get("memory"), "memory", MEMORIES),
                _int(b.get("per_bank"), "per_bank"),
                _int(b.get("size"), "size"),
                _str(b.get("role"), "role", ROLES),
                _str(b.get("layout", "INTERLEAVED"), "layout", limit=40),
                _opt_int(b.get("input"), "input"),
                _opt_int(b.get("output"), "output"),
                _str(b.get("op", ""), "op"),
                _str(b.get("key", ""), "key", limit=80),
            )
        )
    events = []
    for i, e in enumerate(raw_events):
        if not isinstance(e, dict):
            raise ValueError(f"events[{i}]: expected an object")
        kind = _str(e.get("kind"), "kind", ("alloc", "free", "cbs"))
        if kind == "cbs":
            events.append(Event("cbs", cb=_int(e.get("cb"), "cb"), op=_str(e.get("op", ""), "op")))
        else:
            index = _int(e.get("buffer"), "buffer")
            if index >= len(buffers):
                raise ValueError(f"events[{i}]: buffer {index} does not exist")
            events.append(Event(kind, index))
    outputs = []
    for i, o in enumerate(raw_outputs):
        if not isinstance(o, dict) or not isinstance(o.get("shape"), list):
            raise ValueError(f"outputs[{i}]: expected an object with a shape")
        buffer = _opt_int(o.get("buffer"), "buffer")
        if buffer is not None and buffer >= len(buffers):
            raise ValueError(f"outputs[{i}]: buffer {buffer} does not exist")
        outputs.append(
            Output(
                buffer,
                _opt_int(o.get("alias"), "alias"),
                tuple(_int(d, "shape") for d in o["shape"]),
                _str(o.get("dtype"), "dtype", limit=40),
                _str(o.get("layout"), "layout", limit=40),
                _str(o.get("memory"), "memory", limit=40),
            )
        )
    return Footprint(
        tuple(buffers),
        tuple(events),
        tuple(outputs),
        _int(doc.get("peak_l1", 0), "peak_l1"),
        _int(doc.get("peak_cb", 0), "peak_cb"),
        _str(doc.get("error", ""), "error", limit=2000),
        _str(doc.get("error_kind", ""), "error_kind", limit=40),
    )


__all__ = [
    "HOST",
    "Buffer",
    "CaptureError",
    "Event",
    "FOOTPRINT_SCHEMA",
    "Footprint",
    "InputSpec",
    "MEMORIES",
    "Output",
    "ROLES",
    "cores_of",
    "from_dict",
    "parse_capture",
]
