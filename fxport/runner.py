"""`fxport run` as functions: capture with real weights, plan, partition, execute, compare."""

from __future__ import annotations

import copy
import time
import weakref
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import fx
from torch.export._tree_utils import reorder_kwargs
from torch.export.graph_signature import InputKind, OutputKind

from fxport import progress
from fxport.capture import CaptureProblem
from fxport.capture.engine import one_line
from fxport.capture.loader import InputOptions, LoadedModel, Shape, load_model
from fxport.capture.pieces import Piece, run_in_pieces, specialize_scalars
from fxport.capture.pytrees import forward_signature, input_leaves, register_dataclasses
from fxport.capture.records import OpRecord
from fxport.cost import Estimate, board_for, estimate_run
from fxport.cost.host import HOST_GB_S, HOST_OP_NS, modelled_host_seconds, time_host_nodes
from fxport.cost.nodes import Options
from fxport.errors import CaptureError, EnvironmentFault, FxportError, no_ops_captured
from fxport.memory.analysis import MemoryAnalysis
from fxport.partition import Partitioned, partition
from fxport.passes import Optimized, constants_of, records_after, run_passes
from fxport.plan import Plan, plan_graph
from fxport.report.pieces import merge_pieces, piece_summaries
from fxport.report.results import DeviceInfo, RunResult
from fxport.run_options import DEFAULTS, RunOptions
from fxport.runtime.accuracy import (
    ControlValue,
    check_outputs,
    output_dependence,
    unchecked_outputs,
    vary_inputs,
)
from fxport.runtime.context import DeviceConstants, LoweringContext
from fxport.runtime.devices import DeviceHandle
from fxport.runtime.execute import execute
from fxport.runtime.localize import localize as localize_error
from fxport.runtime.localize import reference_values
from fxport.runtime.recording import Recorder
from fxport.runtime.run_memory import explain_run, place_activations
from fxport.runtime.ttnn_report import ttnn_report as capture_ttnn_report
from fxport.settings import SEED
from fxport.tracing import export, trace_cached


def flat_inputs(program: torch.export.ExportedProgram, args: tuple, kwargs: dict | None = None) -> list[Any]:
    """Values for every placeholder of `program.graph_module`: lifted weights, buffers and
    constants in signature order, then the user's inputs flattened as export flattened them.
    What `ExportedProgram` does for its own calls, with the input tree and the lifted inputs'
    names looked up once per program (its `call_spec` builds two classes on every access: most
    of a small model's steady-state call); the weights themselves are read from the program on
    every call, and the input tree and constraints are checked on every call."""
    in_spec, lifted = _input_layout(program)
    kwargs = dict(kwargs or {})
    if in_spec is not None:
        kwargs = reorder_kwargs(kwargs, in_spec)
    with_path, received = pytree.tree_flatten_with_path((tuple(args), kwargs))
    if in_spec is not None and received != in_spec:
        raise FxportError(f"the inputs' structure {received} is not the one the program was exported with: {in_spec}")
    program._check_input_constraints(with_path)
    stores = (program.state_dict, program.constants, None)
    if any(store == 2 for store, _ in lifted):
        stores = (program.state_dict, program.constants, program.graph_module.state_dict())
    return [stores[store][target] for store, target in lifted] + [value for _, value in with_path]


_LIFTED = (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR, InputKind.CUSTOM_OBJ)
_inputs: "weakref.WeakKeyDictionary[torch.export.ExportedProgram, tuple]" = weakref.WeakKeyDictionary()


def _input_layout(program: torch.export.ExportedProgram) -> tuple[Any, list[tuple[int, str]]]:
    """The program's input tree and, for each lifted input in signature order, where its tensor
    lives: (0, name) in the state dict, (1, name) in the constants, (2, name) in the graph
    module's own state (as ExportedProgram reads them)."""
    layout = _inputs.get(program)
    if layout is None:
        lifted = []
        for spec in program.graph_signature.input_specs:
            if spec.kind not in _LIFTED:
                continue  # user inputs (and tokens, which take no value)
            in_state = spec.kind in (InputKind.PARAMETER, InputKind.BUFFER) and spec.persistent is not False
            if in_state and spec.target in program.state_dict:
                lifted.append((0, spec.target))
            elif spec.target in program.constants:
                lifted.append((1, spec.target))
            else:  # a lifted constant left in a nested subgraph's state (as ExportedProgram finds it)
                lifted.append((2, spec.target))
        layout = _inputs[program] = (program.call_spec.in_spec, lifted)
    return layout


def user_outputs(program: torch.export.ExportedProgram, outputs: list[Any]) -> Any:
    """The model's outputs in the structure it returns them (tuple, dict, dataclass, ...)."""
    user, out_spec = _output_layout(program)
    return pytree.tree_unflatten([o for o, u in zip(outputs, user) if u], out_spec)


_layouts: "weakref.WeakKeyDictionary[torch.export.ExportedProgram, tuple]" = weakref.WeakKeyDictionary()


def _output_layout(program: torch.export.ExportedProgram) -> tuple[list[bool], Any]:
    """Which flat outputs are the user's, and their tree: computed once per program (a compiled
    program runs on every call, and `call_spec` builds a new class on each access)."""
    layout = _layouts.get(program)
    if layout is None:
        user = [s.kind == OutputKind.USER_OUTPUT for s in program.graph_signature.output_specs]
        layout = _layouts[program] = (user, program.call_spec.out_spec)
    return layout


@dataclass
class HostControl:
    """The outputs of a graph that Python decides on (a bool tensor or a 0-d tensor handed back
    to the caller, as torch.compile graphs end at `if y.sum() > 0:`; an integer tensor it indexes
    or selects with, such as the FPN level a detector assigns each box by `floor(log2(...))`),
    computed on the host in fp32 by the slice of the graph they depend on. The device computes in
    bf16: a near-zero reduction can come back with the other sign and silently take the other
    branch, a value near an integer boundary can floor to the other level."""

    gm: fx.GraphModule  # the slice: the program's graph with only these outputs
    positions: list[int]  # their indices among the program's flat user outputs

    @classmethod
    def of(cls, program: torch.export.ExportedProgram) -> "HostControl | None":
        kinds = [s.kind for s in program.graph_signature.output_specs]
        output = next(n for n in program.graph.nodes if n.op == "output")
        users = [a for a, k in zip(output.args[0], kinds) if k == OutputKind.USER_OUTPUT]
        positions = [i for i, a in enumerate(users) if _decides_control(a)]
        if not positions:
            return None
        gm = copy.deepcopy(program.graph_module)
        out = next(n for n in gm.graph.nodes if n.op == "output")
        kept = [a for a, k in zip(out.args[0], kinds) if k == OutputKind.USER_OUTPUT]
        out.args = (tuple(kept[i] for i in positions),)
        gm.graph.eliminate_dead_code()
        gm.recompile()
        return cls(gm, positions)

    def apply(self, flat: list[Any], outputs: Any) -> tuple[Any, list[ControlValue]]:
        """`outputs` with the control values replaced by the host's; both values recorded."""
        with torch.no_grad():
            exact = self.gm(*flat)
        leaves, spec = pytree.tree_flatten(outputs)
        values = []
        for position, value in zip(self.positions, exact):
            values.append(ControlValue.of(f"out[{position}]", leaves[position], value))
            leaves[position] = value
        return pytree.tree_unflatten(leaves, spec), values


def _decides_control(node: Any) -> bool:
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    return isinstance(val, torch.Tensor) and (val.dim() == 0 or not val.is_floating_point())


@dataclass
class Compiled:
    """An exported program after the graph passes, with its plan and partitions, and the device
    copies of its constants: what repeated runs reuse."""

    program: torch.export.ExportedProgram
    optimized: Optimized
    plan: Plan
    parts: Partitioned
    records: list[OpRecord]  # of the optimized graph: what the memory model sizes
    constants: DeviceConstants  # made by the first run, reused by every later one
    control: HostControl | None = None  # outputs computed on the host (torch.compile graphs)
    placement: dict | None = None  # `auto`: how the placement went (fxport.memory.placement summary)
    captured_nodes: int = 0  # aten nodes as captured, counting a folded capture's repeats (0: unknown)
    runs: int = 0


def compile_program(
    program: torch.export.ExportedProgram,
    options: RunOptions = DEFAULTS,
    host_control: bool = False,
    repeats: dict[str, int] | None = None,
) -> Compiled:
    """Graph passes (`options.passes`), plan and partition `program`. With `host_control`, its
    bool and 0-d outputs (values Python branches on) are computed on the host on every run, see
    HostControl. `repeats`: the capture's folded calls (records count them)."""
    with progress.step("graph passes"):
        optimized = run_passes(program.graph_module, constants_of(program), options.passes, options.memory)
    with progress.step("plan and partition"):
        plan = plan_graph(optimized.graph_module.graph)
        # Partitions of parameter transforms alone stay on the host (partition's `constants`)
        parts = partition(optimized.graph_module, plan, options.min_block_size, frozenset(optimized.constants))
    return Compiled(
        program,
        optimized,
        plan.on_host(parts.kept_on_host),
        parts,
        records_after(optimized, repeats=repeats),
        DeviceConstants(optimized.constants.values()),
        HostControl.of(program) if host_control else None,
    )


def run_compiled(
    compiled: Compiled,
    inputs: tuple,
    reference: Any,
    dev: DeviceHandle,
    options: RunOptions = DEFAULTS,
    name: str = "model",
    records: list[OpRecord] | None = None,
    kwargs: dict | None = None,
    varied: Any = None,
    analysis: MemoryAnalysis | None = None,
    node_pcc: bool = True,
    capture: dict | None = None,
    seconds: dict[str, float] | None = None,
    recorder: Recorder | None = None,
    priced: bool = True,
    replay: bool = True,
) -> RunResult:
    """Execute a compiled program on `dev`, compare its outputs with `reference` (the fp32 torch
    outputs, any pytree, or a function computing them after the execution; None: not compared)
    leaf by leaf, `varied` (the reference on varied
    inputs) telling which comparisons mean something, and judge every node's memory against the
    device verdicts. A caller that runs the same program again passes its `records` and
    `analysis`, which depend on the shapes only. `capture` says how the graph was captured and
    `seconds` what the earlier stages took, for the result. The ttnn calls are counted per
    inference; constants' uploads happen on the first run only. Of the `options`: `cache` answers
    repeated device calls of a verdict run (fxport.runtime.verdict_cache), `ttnn_report` is a
    folder to write TT-NN's own report of the execution into (fxport.runtime.ttnn_report),
    `localize` finds the nodes where error enters (fxport.runtime.localize: it keeps every node's
    output and the fp32 reference's in memory), `fidelity` and `activations` say how compute ops
    run (LoweringContext.kernel_options) and the result's cost estimate prices the same. `recorder`
    records every call issued (fxport.export writes the record as a program). `priced=False`
    leaves the cost estimate out (None): a steady-state call of a compiled model that nobody
    reads the estimate of (it prices the same program every call). `replay=False` runs every
    rule even where a recorded call list could replay (fxport.runtime.call_list).

    Ctrl-C and a broken environment stop the run: the exception is re-raised with `exc.result`,
    the RunResult of the nodes run so far (`stopped` says why), so that it can still be saved."""
    start = time.perf_counter()
    if not compiled.runs:  # a model starts from a device no other model's programs occupy
        dev.release_programs()
    compiled.runs += 1
    memory, ttnn_report = options.memory, options.ttnn_report
    if memory == "auto" and compiled.placement is None:
        t = time.perf_counter()
        with progress.step("placing activations (auto)"):
            placed = place_activations(compiled.parts.graph_module, dev)
        compiled.plan = compiled.plan.placed(placed.memory)
        compiled.placement = placed.summary()
        seconds = {**(seconds or {}), "placement": time.perf_counter() - t}
        start = time.perf_counter()
    ctx = LoweringContext(
        dev,
        memory=memory,
        values=options.values,
        placement=compiled.plan.placement,
        # TT-NN's report records the calls made: none replayed from a cache
        cache=options.cache if ttnn_report is None else None,
        constants=compiled.constants,
        weights=options.weights,
        fidelity=options.fidelity,
        activations=options.activations,
        recorder=recorder,
    )
    flat = flat_inputs(compiled.program, inputs, kwargs)
    leaves = input_leaves(inputs, kwargs)
    report = None
    try:
        with torch.no_grad(), capture_ttnn_report(ttnn_report, dev) as report:
            run = execute(
                compiled.parts.graph_module,
                flat,
                ctx,
                node_pcc=node_pcc,
                observe=options.localize and ctx.values != "none",
                replay=replay,
            )
    except (KeyboardInterrupt, EnvironmentFault) as exc:
        partial = getattr(exc, "partial", None)
        if partial is not None:
            stopped = (
                f"interrupted (Ctrl-C) after {len(partial.nodes)} nodes"
                if isinstance(exc, KeyboardInterrupt)
                else str(exc)
            )
            exc.result = _result(
                compiled,
                leaves,
                None,
                dev,
                ctx,
                name,
                records,
                partial.nodes,
                [],
                capture,
                {**(seconds or {}), "execute": time.perf_counter() - start},
                analysis,
                stopped=stopped,
            )
        raise
    outputs = user_outputs(compiled.program, run.outputs)
    control: list[ControlValue] = []
    if compiled.control is not None and ctx.values != "none":
        outputs, control = compiled.control.apply(flat, outputs)
    if ctx.values == "none":
        checks = unchecked_outputs(outputs, "not computed (no values)")
    elif callable(reference):  # computed now: not held through the execution
        with progress.step("fp32 reference on the host, for the outputs"):
            checks = check_outputs(outputs, reference(), varied)
    elif reference is None:
        checks = unchecked_outputs(outputs, "not compared on this call")
    else:
        checks = check_outputs(outputs, reference, varied)
    result = _result(
        compiled,
        leaves,
        outputs,
        dev,
        ctx,
        name,
        records,
        run.nodes,
        checks,
        capture,
        {**(seconds or {}), "execute": time.perf_counter() - start},
        analysis,
        control,
    )
    localized = None
    if run.observed is not None:
        sources = {r.node: r.source for r in result.records}
        # The graph that ran (after the passes, which are exact), fed with reference values
        graph_module = compiled.optimized.graph_module
        localized = localize_error(
            graph_module.graph, run.observed, reference_values(graph_module, flat), sources, options.pcc_threshold
        )
    estimate = None
    if priced:
        t = time.perf_counter()
        estimate = estimate_result(compiled, result, ctx)
        result.seconds["estimate"] = time.perf_counter() - t
    return replace(
        result,
        ttnn_report=report.to_dict() if report is not None else None,
        pcc_threshold=options.pcc_threshold,
        localized=localized,
        estimate=estimate,
    )


def estimate_result(compiled: Compiled, result: RunResult, ctx: LoweringContext) -> Estimate | None:
    """The run's time on its board (fxport.cost): device nodes priced from their lowering, host
    nodes as timed in the run (a verdict run's, which computed on meta, timed on zero-filled
    inputs of their shapes), transfers over PCIe."""
    try:
        board = board_for(result.device.arch)
    except ValueError:
        return None
    graph = compiled.optimized.graph_module.graph
    host = {n.node for n in result.nodes if n.status != "device"}
    verdict = ctx.values == "none"
    if verdict:  # computed on meta: nothing timed; modelled, so that its documents stay deterministic
        seconds = modelled_host_seconds(graph, host)
        timing = (
            f"not measured (a verdict run computes on meta): modelled as the bytes each node "
            f"touches at {HOST_GB_S:g} GB/s plus {HOST_OP_NS / 1e3:g} us per node"
        )
    else:
        seconds = {n.node: n.seconds for n in result.nodes if n.status == "host"}
        fell = {n.node for n in result.nodes if n.status == "fallback"}
        timed, _ = time_host_nodes(graph, fell)  # a fallback's own seconds include its device attempt
        seconds.update(timed)
        timing = "measured in the run on this CPU (fallbacks re-timed on zero-filled inputs)"
    dispatch = (
        "not measured (a verdict run replays cached calls): modelled as each device node's ttnn "
        "calls at the constants' host_dispatch cost"
        if verdict
        else "measured on the mock, an upper bound: each device node's calls at the cheapest per-call "
        "host time its op took in this run (warm program cache), which holds TT-NN's host stack "
        "and fxport's own work per call (golden emulation of values)"
    )
    batch = next((leaf.spec.shape[0] for leaf in result.inputs if len(leaf.spec.shape) >= 2), 1)
    return estimate_run(
        graph,
        compiled.plan,
        result.records,
        result.nodes,
        board,
        Options(ctx.fidelity, ctx.activations, ctx.weights),
        batch,
        frozenset(compiled.optimized.constants),
        ctx.memory,
        seconds,
        timing,
        dispatch,
        measured_dispatch=not verdict,
    )


def _result(
    compiled: Compiled,
    inputs: tuple,
    outputs: Any,
    dev: DeviceHandle,
    ctx: LoweringContext,
    name: str,
    records: list[OpRecord] | None,
    nodes: list,
    checks: list,
    capture: dict | None,
    seconds: dict[str, float],
    analysis: MemoryAnalysis | None = None,
    control: list[ControlValue] | None = None,
    stopped: str = "",
) -> RunResult:
    device = DeviceInfo(dev.kind, dev.arch, dev.banks)
    records = records if records is not None else compiled.records
    if analysis is None and not stopped:  # a stopped run may hold a wedged device: no captures
        t = time.perf_counter()
        with progress.step("memory model walk"):
            analysis = explain_run(
                compiled.parts.graph_module, records, dev, ctx.memory, nodes, placement=lambda n: ctx.memory_of(n.name)
            )
        seconds["memory_analysis"] = time.perf_counter() - t
    optimized = compiled.optimized
    calls = ctx.calls.copy()
    repeats = {r.node: r.repeat for r in records}
    for n in nodes:  # nodes a folded capture traced once run `repeat` times per inference
        if n.calls is not None and repeats.get(n.node, 1) > 1:
            calls.repeated(n.calls, repeats[n.node] - 1)
    seconds.update(passes=optimized.seconds, fold_constants=optimized.fold_seconds)
    return RunResult(
        name,
        inputs,
        device,
        ctx.memory,
        ctx.values,
        compiled.plan,
        compiled.parts.partitions,
        nodes,
        checks,
        ctx.transfers,
        records,
        analysis,
        capture or {},
        seconds=seconds,
        outputs=outputs,
        stopped=stopped,
        control_values=control or [],
        placement=compiled.placement,
        passes=optimized.passes,
        pass_records=optimized.records,
        captured_nodes=compiled.captured_nodes or optimized.nodes_before,
        calls=calls,
        weights=ctx.weights,
    )


def redraw_zero_weights(module: torch.nn.Module, std: float = 0.02) -> list[str]:
    """Random init leaves some weight matrices at zero (torchvision's ViT zero-initialises its
    head), which makes outputs constant and PCC meaningless. Redraw those, and say which."""
    redrawn = []
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2 and p.numel() and not p.any():
                p.normal_(0.0, std)
                redrawn.append(name)
    return redrawn


def run_model(
    spec: str, dev: DeviceHandle, inputs: InputOptions | Shape | None = None, options: RunOptions = DEFAULTS
) -> RunResult:
    """Build `spec` (a zoo name or module.path:callable) with its inputs (random weights drawn
    after seeding torch with `settings.SEED`) and run it through TT-NN on `dev`: see `run_loaded`."""
    verdict_only = options.values == "none"
    torch.manual_seed(SEED)
    t = time.perf_counter()
    with progress.step(f"building {spec}" + ("" if verdict_only else " with random weights")):
        loaded = load_model(spec, inputs, device="meta" if verdict_only else "cpu")
    model_args = InputOptions.of(inputs).model_args
    try:
        return run_loaded(loaded, dev, options, time.perf_counter() - t, model_args)
    except NeedsRealWeights:  # a verdict run of a model in pieces: its host code needs values
        torch.manual_seed(SEED)
        t = time.perf_counter()
        with progress.step(f"building {spec} again with random weights (its host code reads values)"):
            loaded = load_model(spec, inputs, device="cpu")
        return run_loaded(loaded, dev, options, time.perf_counter() - t, model_args)


def run_loaded(
    loaded: LoadedModel,
    dev: DeviceHandle,
    options: RunOptions = DEFAULTS,
    build_seconds: float = 0.0,
    model_args: dict | None = None,
    recorder: Recorder | None = None,
    compiled_out: list | None = None,
    fold: bool = True,
) -> RunResult:
    """Capture a built model and run it through TT-NN on `dev` with `options`.

    With values (the default: emulated on a mock, real on hardware) the model has real weights,
    its fp32 torch output is the reference (and its output on varied inputs tells which output
    PCCs mean something), and every call is traced (the graph must compute). With
    `values="none"` the model is on meta and captured like `fxport trace` (repeated calls
    folded): a verdict run for full-size models, with no weights in memory; the options' `cache`
    (verdict runs only) replays device calls judged before, and their `capture_cache` (verdict
    runs only: its programs have meta weights) answers captures made before (`model_args`: the
    `--model-arg`s the model was built with, part of its key). `fold=False` traces every
    repeated call of a verdict run (fxport.export writes each call).
    """
    t = time.perf_counter()
    verdict_only = options.values == "none"
    reference = varied = None
    redrawn: tuple[str, ...] = ()
    if not _on_meta(loaded.module):
        redrawn = tuple(redraw_zero_weights(loaded.module))
    if not verdict_only:
        with progress.step("fp32 reference on the host"):
            # The outputs on varied inputs first, the varied inputs dropped before the reference
            # is computed; what they say is kept, not the outputs: activations of gigabytes are
            # not held through the run for one comparison
            args, kwargs, changed = vary_inputs(loaded.inputs, loaded.kwargs)
            moved = _forward(loaded, args, kwargs) if changed else None
            del args, kwargs
            reference = _forward(loaded, loaded.inputs, loaded.kwargs)
            varied = output_dependence(reference, moved) if changed else None
            del moved
            if _nbytes(reference) > HOLD_REFERENCE_BYTES:  # computed again after the execution
                reference = lambda: _forward(loaded, loaded.inputs, loaded.kwargs)
    with progress.step("capture"):
        cap = trace_cached(
            loaded.module,
            loaded.inputs,
            options.capture_cache if verdict_only and fold else None,
            name=loaded.name,
            repeated=loaded.repeated if verdict_only and fold else (),
            kwargs=loaded.kwargs,
            model_args=model_args,
            fallback=False,
        )
    build_seconds += time.perf_counter() - t
    if cap.method != "export":
        if _on_meta(loaded.module):
            raise NeedsRealWeights(
                f"{loaded.name} captures as several graphs: the Python between "
                "them needs real weights (load the model on the CPU)"
            )
        return _run_pieces(loaded, dev, cap, options, reference, varied, build_seconds, redrawn)
    if cap.node_count == 0:
        raise no_ops_captured(loaded.name)
    program = cap.graphs[0].program
    t = time.perf_counter()
    compiled = compile_program(program, options, repeats=cap.repeats)
    compiled.captured_nodes = cap.node_count
    if compiled_out is not None:  # the caller keeps the compiled program (fxport.export)
        compiled_out.append(compiled)
    plan_seconds = time.perf_counter() - t - compiled.optimized.seconds - compiled.optimized.fold_seconds
    capture = {"method": cap.method, "complete": cap.complete, "problems": [p.to_dict() for p in cap.problems]}
    result = run_compiled(
        compiled,
        loaded.inputs,
        reference,
        dev,
        options,
        loaded.name,
        None,
        loaded.kwargs,
        varied,
        capture=capture,
        seconds={"build_capture": build_seconds, "capture": cap.seconds, "plan_partition": plan_seconds},
        recorder=recorder,
    )
    return replace(result, redrawn=redrawn, log=cap.log)


# Reference outputs larger than this are not held through the execution (where the device's values
# and each node's host reference are alive too) but computed again after it: the host then holds
# about three activations at a time, not five.
HOLD_REFERENCE_BYTES = 256 << 20


def _nbytes(value: Any) -> int:
    return sum(t.numel() * t.element_size() for t in pytree.tree_leaves(value) if isinstance(t, torch.Tensor))


class NeedsRealWeights(CaptureError):
    """A model on meta weights that only runs in pieces: the host code between them needs values."""


def _on_meta(module: torch.nn.Module) -> bool:
    return any(p.is_meta for p in module.parameters())


def _run_pieces(
    loaded: LoadedModel,
    dev: DeviceHandle,
    cap,
    options: RunOptions,
    reference: Any,
    varied: Any,
    build_seconds: float,
    redrawn: tuple[str, ...],
) -> RunResult:
    """Run a model that torch.export cannot capture whole (data-dependent shapes, Python that reads
    values) as the graphs TorchDynamo splits it into (fxport.capture.pieces): each piece exported,
    planned, partitioned and run on `dev` like a model of its own and compared with fp32 torch on
    the same inputs, the Python between the pieces run on the host. The glue gets the device's
    outputs (a verdict run, which computes none, gets torch's). The model's result is the union of
    its pieces' (fxport.report.pieces) with its end-to-end outputs compared with `reference`.
    The pieces replay no verdicts, write no TT-NN report and localize nothing."""
    start = time.perf_counter()
    per_piece = replace(options, cache=None, ttnn_report=None, localize=False)
    states: dict[tuple, tuple[str, Compiled]] = {}
    runs: list[tuple[str, RunResult]] = []
    calls: Counter = Counter()
    origins: dict[str, dict] = {}
    problems: list[CaptureProblem] = list(cap.problems)

    def call(piece: Piece, inputs: tuple) -> Any:
        scalars = {i: inputs[i].item() for i in piece.wrapped_scalars}
        key = (piece.label, tuple(_value_signature(v) for v in inputs), tuple(scalars.items()))
        if key not in states:
            again = sum(1 for k in states if k[0] == piece.label)
            label = piece.label if not again else f"{piece.label}.{again}"
            origins[label] = {
                "function": piece.function,
                "break": piece.graph_break.to_dict() if piece.graph_break else None,
            }
            try:
                program = export(specialize_scalars(piece.gm, scalars), inputs)
            except Exception as exc:  # this piece stays on the host, and the report says so
                problems.append(CaptureProblem("export", f"{label}: ran on the host: {one_line(exc)}"))
                states[key] = (label, None)
            else:
                compiled = compile_program(program, options, host_control=True)
                compiled.captured_nodes = len(compiled.records)
                states[key] = (label, compiled)
        label, compiled = states[key]
        with torch.no_grad():
            expected = piece.gm(*inputs)
        calls[label] += 1
        if compiled is None:
            return expected
        result = run_compiled(compiled, inputs, expected, dev, per_piece, f"{loaded.name}/{label}")
        if calls[label] == 1:
            runs.append((label, result))
        return expected if result.values == "none" else result.outputs

    outputs, pieces, log = run_in_pieces(loaded.module, loaded.inputs, loaded.kwargs, call)
    if not runs:
        raise CaptureError(
            f"cannot run {loaded.name}: torch.export failed "
            f"({cap.problems[0].message if cap.problems else 'unknown'}) and TorchDynamo "
            "captured no graph that could run on the device"
        )
    breaks = [p.graph_break for p in pieces if p.graph_break]
    seen = set()
    problems += [b for b in breaks if not (b in seen or seen.add(b))]
    values_run = runs[0][1].values
    if values_run == "none":
        checks = unchecked_outputs(outputs, "not computed (no values)")
    else:
        checks = check_outputs(outputs, reference() if callable(reference) else reference, varied, data_dependent=True)
    capture = {
        "method": "dynamo",
        "complete": False,
        "graphs": len(pieces),
        "breaks": len(breaks),
        "problems": [p.to_dict() for p in problems],
    }
    seconds = {"build_capture": build_seconds, "capture": cap.seconds, "execute": time.perf_counter() - start}
    result = merge_pieces(loaded.name, runs, checks, capture, seconds)
    summaries = [s.to_dict() for s in piece_summaries(runs, origins, calls)]
    return replace(
        result,
        inputs=input_leaves(loaded.inputs, loaded.kwargs),
        outputs=outputs,
        pieces=summaries,
        redrawn=redrawn,
        pcc_threshold=options.pcc_threshold,
        log=cap.log + log,
    )


def _value_signature(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype, value.device.type)
    if isinstance(value, (int, float, bool)):
        return (type(value).__name__, value)
    return (type(value).__name__,)


def _forward(loaded: LoadedModel, args: tuple, kwargs: dict) -> Any:
    """The fp32 torch reference; a forward that fails on its inputs is the user's to fix."""
    try:
        with torch.no_grad():
            out = loaded.module(*args, **kwargs)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise FxportError(
            f"{loaded.name}: {forward_signature(loaded.module)} failed on its inputs "
            f"({', '.join(f'{leaf.path} {leaf.spec}' for leaf in input_leaves(args, kwargs))}): "
            f"{type(exc).__name__}: {first}"
        ) from None
    register_dataclasses(out)
    return out
