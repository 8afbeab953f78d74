"""`fxport run` as functions: capture with real weights, plan, partition, execute, compare."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from fxport.capture import TensorSpec
from fxport.capture.records import OpRecord, records_from_graph
from fxport.capture.loader import Shape, load_model
from fxport.errors import CaptureError, EnvironmentFault, FxportError
from fxport.memory.analysis import analyze as analyze_memory
from fxport.memory.devices import DeviceMemory
from fxport.partition import Partitioned, partition
from fxport.plan import Plan, plan_graph
from fxport.report.results import DeviceInfo, RunResult
from fxport.runtime.context import LoweringContext
from fxport.runtime.devices import DeviceHandle
from fxport.runtime.execute import execute
from fxport.runtime.pcc import agreement
from fxport.tracing import trace


def flat_inputs(program: torch.export.ExportedProgram, user_inputs: tuple) -> list[Any]:
    """Values for every placeholder of `program.graph_module`: lifted weights, buffers and
    constants in signature order, then the user's inputs."""
    from torch.export.graph_signature import InputKind

    user = iter(user_inputs)
    values = []
    for spec in program.graph_signature.input_specs:
        if spec.kind == InputKind.USER_INPUT:
            values.append(next(user))
        elif spec.target in program.state_dict:
            values.append(program.state_dict[spec.target])
        else:
            values.append(program.constants[spec.target])
    return values


def user_outputs(program: torch.export.ExportedProgram, outputs: list[Any]) -> list[Any]:
    from torch.export.graph_signature import OutputKind

    kinds = [s.kind for s in program.graph_signature.output_specs]
    return [o for o, k in zip(outputs, kinds) if k == OutputKind.USER_OUTPUT]


@dataclass
class Compiled:
    """An exported program with its plan and partitions: what repeated runs reuse."""

    program: torch.export.ExportedProgram
    plan: Plan
    parts: Partitioned


def compile_program(program: torch.export.ExportedProgram, min_block_size: int = 1) -> Compiled:
    plan = plan_graph(program.graph)
    return Compiled(program, plan, partition(program.graph_module, plan, min_block_size))


def run_compiled(compiled: Compiled, inputs: tuple, reference: list[torch.Tensor], dev: DeviceHandle,
                 memory: str = "dram", name: str = "model", values: str = "",
                 records: list[OpRecord] | None = None, capture: dict | None = None,
                 seconds: dict[str, float] | None = None) -> RunResult:
    """Execute a compiled program on `dev`, compare its outputs with `reference` (when there are
    values) and judge every node's memory against the device verdicts. `capture` says how the
    graph was captured and `seconds` what the earlier stages took, for the result.

    Ctrl-C and a broken environment stop the run: the exception is re-raised with `exc.result`,
    the RunResult of the nodes run so far (`stopped` says why), so that it can still be saved."""
    start = time.perf_counter()
    ctx = LoweringContext(dev, memory=memory, values=values)
    try:
        with torch.no_grad():
            run = execute(compiled.parts.graph_module, flat_inputs(compiled.program, inputs), ctx)
    except (KeyboardInterrupt, EnvironmentFault) as exc:
        partial = getattr(exc, "partial", None)
        if partial is not None:
            stopped = (f"interrupted (Ctrl-C) after {len(partial.nodes)} nodes"
                       if isinstance(exc, KeyboardInterrupt) else str(exc))
            exc.result = _result(compiled, inputs, [], dev, ctx, name, records, partial.nodes, [],
                                 capture, {**(seconds or {}), "execute": time.perf_counter() - start},
                                 stopped)
        raise
    outputs = user_outputs(compiled.program, run.outputs)
    output_pcc = [] if ctx.values == "none" else [
        agreement(o, r) if isinstance(o, torch.Tensor) else 0.0
        for o, r in zip(outputs, reference)]
    return _result(compiled, inputs, outputs, dev, ctx, name, records, run.nodes, output_pcc,
                   capture, {**(seconds or {}), "execute": time.perf_counter() - start})


def _result(compiled: Compiled, inputs: tuple, outputs: list, dev: DeviceHandle,
            ctx: LoweringContext, name: str, records: list[OpRecord] | None, nodes: list,
            output_pcc: list[float], capture: dict | None, seconds: dict[str, float],
            stopped: str = "") -> RunResult:
    device = DeviceInfo(dev.kind, dev.arch, dev.banks)
    specs = tuple(s for s in map(TensorSpec.of, inputs) if s is not None)
    records = records if records is not None else records_from_graph(compiled.program.graph)
    observed = {n.node: n.error_kind for n in nodes if n.status != "host"}
    analysis = analyze_memory(records, DeviceMemory.from_handle(dev), ctx.memory.upper(), observed)
    return RunResult(name, specs, device, ctx.memory, ctx.values, compiled.plan,
                     compiled.parts.partitions, nodes, output_pcc, ctx.transfers, records, analysis,
                     capture or {}, seconds=seconds, outputs=outputs, stopped=stopped)


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


def run_model(spec: str, dev: DeviceHandle, input_shape: Shape | None = None, memory: str = "dram",
              values: str = "", seed: int = 0, min_block_size: int = 1) -> RunResult:
    """Capture `spec` and run it through TT-NN on `dev`.

    With values (the default: emulated on a mock, real on hardware) the model is built with real
    random weights, its fp32 torch output is the reference, and every call is traced (the graph
    must compute). With `values="none"` it is built on meta and captured like `fxport trace`
    (repeated calls folded): a verdict run for full-size models, with no weights in memory.
    """
    torch.manual_seed(seed)
    t = time.perf_counter()
    verdict_only = values == "none"
    loaded = load_model(spec, input_shape, device="meta" if verdict_only else "cpu")
    reference: list[torch.Tensor] = []
    if not verdict_only:
        redraw_zero_weights(loaded.module)
        with torch.no_grad():
            out = loaded.module(*loaded.inputs)
        reference = list(out) if isinstance(out, (list, tuple)) else [out]
        if not all(isinstance(r, torch.Tensor) for r in reference):
            raise FxportError(f"{loaded.name}: only models returning tensors can be run and compared")
    cap = trace(loaded.module, loaded.inputs, name=loaded.name,
                repeated=loaded.repeated if verdict_only else ())
    if cap.method != "export":
        where = next((p for p in cap.problems if p.stage == "export"), None)
        raise CaptureError(f"cannot capture {loaded.name} as one graph for execution: "
                           f"{where.message if where else 'export failed'} (`fxport trace` shows where)")
    program = cap.graphs[0].program
    build_seconds = time.perf_counter() - t
    t = time.perf_counter()
    compiled = compile_program(program, min_block_size)
    plan_seconds = time.perf_counter() - t
    capture = {"method": cap.method, "complete": cap.complete, "problems": [p.to_dict() for p in cap.problems]}
    return run_compiled(compiled, loaded.inputs, reference, dev, memory, loaded.name, values, cap.records,
                        capture, {"build_capture": build_seconds, "plan_partition": plan_seconds})
