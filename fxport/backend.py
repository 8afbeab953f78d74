"""fxport as a torch.compile backend: `torch.compile(model, backend="fxport", options={...})`.

Registered through the `torch_dynamo_backends` entry point, so the name works after installation
without importing fxport. Dynamo hands over each captured graph (one per piece between graph
breaks, and again when it recompiles). For every concrete shape signature a graph is called with
(dynamo makes graphs dynamic after a second batch size, or with `dynamic=True`), fxport exports
it to aten, plans, partitions and analyses memory once, keeps that state in a bounded cache and
runs the device on every call with that shape. Options:

    device          "auto" (default), "mock" or "hardware"
    arch            mock board, "n150" (default) or "p150"
    memory_config   "dram" (default), "l1" or "auto" (per activation, see `fxport run`)
    out             a directory: graph_breaks.json, and graph<i>/shape<k>/run.json + nodes.csv
                    for the first call of each shape (and every checked call)
    min_block_size  device partitions with fewer ops stay on the host (default 1)
    check           compare with fp32 torch (a host forward of the graph): "first" call of each
                    shape (default), "every" call, or "never"
    max_shapes      shape signatures kept planned per graph (default 8; the least recently used
                    is dropped and planned again if it returns)
    passes          graph passes: "all" (default), "none", or names (a list or comma-separated)
    no_pass         pass names to leave out (a list)
    weights         dtype of conv and linear weights on the device, "bfloat16" or "bfloat8_b"
    math_fidelity   math fidelity of matmul, linear, conv and attention kernels: "lofi",
                    "hifi2", "hifi3", "hifi4" (default: TT-NN's own per op)
    activations     dtype of matmul, linear and conv outputs, "bfloat16" (default) or "bfloat8_b"

Frozen weights: dynamo hands a module's parameters and buffers to the backend as graph inputs
(their sources name `._parameters[...]` / `._buffers[...]`). fxport treats them as constants, as
Inductor's freezing does: the graph is exported with them as the module's own weights, so every
graph pass runs (batch-norm folding, activation fusion, constant folding, NHWC kept) and the
weights are prepared on the device once, by the first call: the compiled graph runs the same
program `fxport run` does. The freeze is guarded: before each call every frozen tensor is checked
by identity and by its version counter (bumped by every in-place write: an optimizer step,
`load_state_dict`, `p.copy_(...)` under no_grad); a change drops every planned shape and plans
again from the new values (a warning on the `fxport.backend` logger; `replans` counts them), so
the device never runs on stale weights. Writes through `.data` bypass the version counter, as
they do for Inductor's freezing: change weights with in-place ops or by assignment. A graph that
writes its own buffers (batch norm in training mode) is not frozen.

Values that decide Python control flow: a graph output that is a bool tensor or a 0-d tensor
goes back to Python, which branches on it (`if x.sum() > 0:` breaks the graph there). The device
computes in bf16, so such outputs are computed again on the host in fp32 from the same graph
inputs, on every call; the host value is returned, and every call records both values
(`RunResult.control_values`), so a disagreement is visible, never silent.

`results` keeps the RunResult of the latest RESULTS_KEPT calls; `functions` is the graph-break
report: for every function dynamo compiled, the graphs it produced and each break's reason and
source location (also in `out/graph_breaks.json`).
"""

from __future__ import annotations

import atexit
import gc
import itertools
import logging
import os
import re
import weakref
from collections import OrderedDict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import fx

from fxport.capture.pieces import break_reason, specialize_scalars
from fxport.capture.records import OpRecord
from fxport.durable import write_json
from fxport.errors import FxportError
from fxport.memory.analysis import MemoryAnalysis
from fxport.passes import select
from fxport.report.results import RunResult
from fxport.report.run_report import write_run
from fxport.run_options import DEFAULTS, RunOptions
from fxport.runner import Compiled, compile_program, run_compiled
from fxport.runtime.accuracy import vary_inputs
from fxport.runtime.devices import open_session_device
from fxport.settings import ARCHS, DEVICES, DTYPES, MATH_FIDELITIES, MEMORY_CONFIGS
from fxport.tracing import export

log = logging.getLogger(__name__)

RESULTS_KEPT = 64
results: deque[RunResult] = deque(maxlen=RESULTS_KEPT)  # the latest calls' results, oldest first

CHECKS = ("first", "every", "never")
_OPTION_VALUES = {
    "device": DEVICES,
    "arch": (None, *ARCHS),
    "memory_config": MEMORY_CONFIGS,
    "check": CHECKS,
    "weights": DTYPES,
    "math_fidelity": ("", *MATH_FIDELITIES),
    "activations": DTYPES,
}


@dataclass(frozen=True)
class BackendOptions:
    device: str = "auto"
    arch: str | None = None
    memory_config: str = DEFAULTS.memory
    out: str | None = None
    min_block_size: int = DEFAULTS.min_block_size
    check: str = "first"
    max_shapes: int = 8
    passes: str | tuple[str, ...] = "all"
    no_pass: tuple[str, ...] = ()
    weights: str = DEFAULTS.weights
    math_fidelity: str = DEFAULTS.fidelity
    activations: str = DEFAULTS.activations

    @classmethod
    def parse(cls, options: dict | None) -> "BackendOptions":
        """The options dict of torch.compile, validated: every problem is one FxportError line."""
        options = dict(options or {})
        known = set(cls.__dataclass_fields__)
        unknown = set(options) - known
        if unknown:
            raise FxportError(
                f"unknown fxport backend option(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
            )
        for name, allowed in _OPTION_VALUES.items():
            if name in options and options[name] not in allowed:
                raise FxportError(
                    f"fxport backend option {name}={options[name]!r}: expected one of {', '.join(map(repr, allowed))}"
                )
        for name in ("min_block_size", "max_shapes"):
            value = options.get(name, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise FxportError(f"fxport backend option {name}={value!r}: expected an integer >= 1")
        if options.get("out") is not None and not isinstance(options["out"], (str, Path)):
            raise FxportError(f"fxport backend option out={options['out']!r}: expected a directory path")
        if not isinstance(options.get("passes", ""), str):
            options["passes"] = tuple(options["passes"])
        options["no_pass"] = tuple(options.get("no_pass", ()))
        opts = cls(**options)
        select(opts.passes, opts.no_pass)  # unknown names: one clear error now, not at first call
        return opts

    @property
    def run_options(self) -> RunOptions:
        """The settings each compiled graph runs with."""
        return RunOptions(
            memory=self.memory_config,
            min_block_size=self.min_block_size,
            passes=select(self.passes, self.no_pass),
            weights=self.weights,
            fidelity=self.math_fidelity,
            activations=self.activations,
        )


@dataclass(frozen=True)
class GraphBreak:
    reason: str  # one line
    location: str  # "file.py:22 in forward", where the break happened


@dataclass
class CompiledFunction:
    """One function dynamo compiled (a forward, or its continuation after a break)."""

    name: str  # "forward (model.py)", "torch_dynamo_resume_in_forward_at_22 (model.py)"
    graphs: list[str] = field(default_factory=list)  # graph labels produced for it (recompiles too)
    breaks: list[GraphBreak] = field(default_factory=list)  # distinct breaks that ended its graphs

    def to_dict(self) -> dict:
        return {"function": self.name, "graphs": self.graphs, "breaks": [asdict(b) for b in self.breaks]}


functions: dict[str, CompiledFunction] = {}  # the graph-break report, by function


def fxport_backend(gm: fx.GraphModule, example_inputs: list, options: dict | None = None):
    opts = BackendOptions.parse(options)
    number = next(_graph_numbers)
    if number == 0:
        atexit.register(_release)
    graph = _compiled_graphs[number] = _CompiledGraph(gm, opts, index=number)
    if opts.out:
        Path(opts.out).mkdir(parents=True, exist_ok=True)
        write_json(Path(opts.out) / "graph_breaks.json", graph_break_report())
    return graph


def graph_break_report() -> dict:
    """Every function dynamo compiled in this process: its graphs and its graph breaks."""
    fns = sorted(functions.values(), key=lambda f: f.name)
    return {
        "functions": [f.to_dict() for f in fns],
        "graphs": sum(len(f.graphs) for f in fns),
        "breaks": sum(len(f.breaks) for f in fns),
    }


def _release() -> None:
    """Drop dynamo's caches before exit: they keep objects alive that reference ttnn, and
    nanobind then reports every ttnn binding as leaked when the interpreter shuts down."""
    torch._dynamo.reset()
    gc.collect()


# Graphs are numbered in compile order (graph0, graph1, ... in reports) and held weakly: a graph
# lives as long as dynamo keeps the code compiled from it, so dropping the compiled model (or
# torch._dynamo.reset()) frees its planned programs and the weights prepared on the device.
_graph_numbers = itertools.count()
_compiled_graphs: "weakref.WeakValueDictionary[int, _CompiledGraph]" = weakref.WeakValueDictionary()


def compiled_graphs() -> list["_CompiledGraph"]:
    """The graphs compiled in this process that are still in use, oldest first."""
    return [graph for _, graph in sorted(_compiled_graphs.items())]


@dataclass
class _Frozen:
    """The graph inputs planned as constants: their positions and the tensors and versions the
    plan was made from."""

    positions: list[int]
    tensors: list[torch.Tensor] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)

    def changed(self, inputs: tuple) -> tuple[int, str] | None:
        """The first frozen input that is not what the plan was made from: (position, how)."""
        for i, held, version in zip(self.positions, self.tensors, self.versions):
            value = inputs[i]
            if value is not held:
                return i, "is a different tensor"
            if value._version != version:
                return i, "was written in place"
        return None

    def hold(self, inputs: tuple) -> None:
        self.tensors = [inputs[i] for i in self.positions]
        self.versions = [t._version for t in self.tensors]


@dataclass
class _ShapeState:
    """What one concrete shape signature of a graph reuses from call to call."""

    label: str  # "shape0"
    compiled: Compiled
    records: list[OpRecord]
    frozen: frozenset[int] = frozenset()  # graph-input positions the program holds as constants
    analysis: MemoryAnalysis | None = None  # from the first call's device verdicts
    calls: int = 0

    def user_inputs(self, inputs: tuple) -> tuple:
        """The graph inputs the program takes on every call (the frozen ones are its own)."""
        if not self.frozen:
            return inputs
        return tuple(v for i, v in enumerate(inputs) if i not in self.frozen)


class _CompiledGraph:
    def __init__(self, gm: fx.GraphModule, opts: BackendOptions, index: int):
        self.gm, self.opts, self.index = gm, opts, index
        self.options = opts.run_options
        self.label = f"graph{index}"
        self.shapes: OrderedDict[tuple, _ShapeState] = OrderedDict()
        self.planned = 0  # shape signatures planned so far (labels stay unique after eviction)
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        args = [n.meta.get("grapharg") for n in placeholders]
        # The function's own inputs (frame locals, or items of them), not the module's weights
        # and buffers: only these are varied to learn whether an output depends on its input.
        self.local_inputs = [i for i, a in enumerate(args) if _LOCAL.fullmatch(_source_name(a))]
        # Python floats dynamo passes as 0-d tensors (with dynamic=True: LayerNorm's eps) and reads
        # back with .item() inside the graph; export needs them as constants.
        self.wrapped_scalars = [i for i, a in enumerate(args) if getattr(a, "pass_arg_as_tensor", False)]
        # The module's parameters and buffers: planned as constants (see the module docstring).
        self.frozen = _Frozen([i for i, a in enumerate(args) if _WEIGHT.search(_source_name(a))])
        self.names = [_source_name(a) or n.name for n, a in zip(placeholders, args)]
        self.replans = 0  # plans dropped because a frozen weight changed
        function, brk = _register(gm, self.label)
        self.capture = {
            "method": "dynamo",
            "complete": brk is None,
            "function": function,
            "problems": []
            if brk is None
            else [{"stage": "graph-break", "message": brk.reason, "location": brk.location}],
        }

    def __call__(self, *args: Any) -> Any:
        inputs = tuple(args)
        state = self._state(inputs)
        check = self.opts.check == "every" or (self.opts.check == "first" and state.calls == 0)
        reference = varied = None
        if check:
            with torch.no_grad():
                reference = self.gm(*inputs)
                varied_inputs = self._varied(inputs)
                varied = self.gm(*varied_inputs) if varied_inputs is not None else None
        written = bool(self.opts.out) and (check or state.calls == 0)
        result = run_compiled(
            state.compiled,
            state.user_inputs(inputs),
            reference,
            _session_device(self.opts),
            self.options,
            f"{self.label}/{state.label}",
            records=state.records,
            varied=varied,
            analysis=state.analysis,
            node_pcc=check,
            capture=self.capture,
            priced=check or written or state.calls == 0,
        )
        state.analysis = result.memory_analysis
        results.append(result)
        if written:
            write_run(result, Path(self.opts.out) / self.label / state.label)
        state.calls += 1
        return result.outputs

    def _state(self, inputs: tuple) -> _ShapeState:
        """The planned state for this call's shape signature: cached (bounded, least recently
        used dropped), else exported, planned and partitioned now. A frozen weight that changed
        since the plans were made drops them all."""
        if self.shapes and self.frozen.positions and (why := self.frozen.changed(inputs)):
            self.shapes.clear()
            self.replans += 1
            global replans
            replans += 1
            log.warning(
                "fxport: %s re-planned: its weight %s %s since it was planned (re-plan %d of this graph)",
                self.label,
                self.names[why[0]],
                why[1],
                self.replans,
            )
        signature = (tuple(_signature(v) for v in inputs), tuple(inputs[i].item() for i in self.wrapped_scalars))
        state = self.shapes.get(signature)
        if state is not None:
            self.shapes.move_to_end(signature)
            return state
        scalars = {i: inputs[i].item() for i in self.wrapped_scalars}
        frozen = self.frozen.positions
        program = export(
            _prepared(self.gm, scalars, {i: inputs[i] for i in frozen}),
            tuple(v for i, v in enumerate(inputs) if i not in frozen),
        )
        if program.graph_signature.buffers_to_mutate:  # the graph writes its buffers: not constants
            self.frozen.positions, frozen = [], []
            program = export(_prepared(self.gm, scalars, {}), inputs)
        self.frozen.hold(inputs)
        compiled = compile_program(program, self.options, host_control=True)
        state = _ShapeState(f"shape{self.planned}", compiled, compiled.records, frozenset(frozen))
        self.planned += 1
        self.shapes[signature] = state
        while len(self.shapes) > self.opts.max_shapes:
            self.shapes.popitem(last=False)
        return state

    def _varied(self, inputs: tuple) -> tuple | None:
        local = tuple(inputs[i] for i in self.local_inputs)
        moved, _, changed = vary_inputs(local, {})
        if not changed:
            return None
        varied = list(inputs)
        for i, value in zip(self.local_inputs, moved):
            varied[i] = value
        return tuple(varied)


# A frame local or an item of one (L['x'], L['args'][0], L['kwargs']['mask']); no attribute access.
_LOCAL = re.compile(r"L\[[^\]]+\](\[[^\]]+\])*")
# A module's parameter or buffer: L['self']._modules['conv1']._parameters['weight']
_WEIGHT = re.compile(r"\._(parameters|buffers)\[[^\]]+\]$")

replans = 0  # plans dropped in this process because a frozen weight changed (all graphs)


def _source_name(grapharg: Any) -> str:
    name = getattr(getattr(grapharg, "source", None), "name", "")
    return name() if callable(name) else str(name)


def _prepared(gm: fx.GraphModule, scalars: dict[int, float], frozen: dict[int, torch.Tensor]) -> fx.GraphModule:
    """A module to export: `gm` with the `.item()` reads of the wrapped scalars at those
    placeholder positions made the given Python numbers (the shape signature includes them,
    `specialize_scalars`), and over a copy of its graph the placeholders at the `frozen` positions
    made the module's own parameters (an nn.Parameter) or buffers, under the placeholder's name:
    export lifts them as constants. The tensors are shared, not copied."""
    gm = specialize_scalars(gm, scalars)
    if not frozen:
        return gm
    graph = fx.Graph()
    graph.output(graph.graph_copy(gm.graph, {}))
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    first = next(n for n in graph.nodes if n.op != "placeholder")
    attrs = {n.target: _attr(gm, n.target) for n in graph.nodes if n.op in ("get_attr", "call_module")}
    for position, value in frozen.items():
        node = placeholders[position]
        with graph.inserting_before(first):
            attr = graph.get_attr(node.name)
        attr.meta = dict(node.meta)
        node.replace_all_uses_with(attr)
        graph.erase_node(node)
        attrs[node.name] = value
    module = fx.GraphModule(attrs, graph)
    for position, value in frozen.items():
        name = placeholders[position].name
        if not isinstance(value, torch.nn.Parameter):
            delattr(module, name)
            module.register_buffer(name, value)
    return module


def _attr(gm: fx.GraphModule, target: str) -> Any:
    value = gm
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _signature(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype, value.device.type)
    if isinstance(value, (int, float, bool)):
        return (type(value).__name__, value)
    return (type(value).__name__,)


def _register(gm: fx.GraphModule, label: str) -> tuple[str, GraphBreak | None]:
    """Record the graph under the function dynamo compiled, with the break that ended it."""
    reason = getattr(gm, "compile_subgraph_reason", None)
    stack = list(getattr(reason, "user_stack", None) or [])
    name = f"{stack[0].name} ({_path(stack[0].filename)})" if stack else "<unknown function>"
    fn = functions.setdefault(name, CompiledFunction(name))
    fn.graphs.append(label)
    if reason is None or not reason.graph_break:
        return name, None
    brk = GraphBreak(break_reason(reason.reason), _where(stack[-1]) if stack else "")
    if brk not in fn.breaks:
        fn.breaks.append(brk)
    return name, brk


def _path(filename: str) -> str:
    """A source path relative to the working directory when it lies below it."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if relative.startswith("..") else relative


def _where(frame) -> str:
    return f"{_path(frame.filename)}:{frame.lineno} in {frame.name}"


def _session_device(opts: BackendOptions):
    return open_session_device(opts.device, opts.arch)
