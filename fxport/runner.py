"""`fxport run` as functions: capture with real weights, plan, partition, execute, compare."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from fxport.capture import TensorSpec, export_program
from fxport.capture.loader import Shape, load_model
from fxport.errors import CaptureError, FxportError
from fxport.partition import Partitioned, partition
from fxport.plan import Plan, plan_graph
from fxport.report.results import DeviceInfo, RunResult
from fxport.runtime.context import LoweringContext
from fxport.runtime.devices import DeviceHandle
from fxport.runtime.execute import execute
from fxport.runtime.pcc import pcc


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
    return Compiled(program, plan_graph(program.graph),
                    partition(program.graph_module, min_block_size=min_block_size))


def run_compiled(compiled: Compiled, inputs: tuple, reference: list[torch.Tensor], dev: DeviceHandle,
                 memory: str = "dram", name: str = "model") -> RunResult:
    """Execute a compiled program on `dev` and compare its outputs with `reference`."""
    start = time.perf_counter()
    ctx = LoweringContext(dev, memory=memory)
    with torch.no_grad():
        run = execute(compiled.parts, flat_inputs(compiled.program, inputs), ctx)
    outputs = user_outputs(compiled.program, run.outputs)
    output_pcc = [pcc(o.float(), r.float()) if isinstance(o, torch.Tensor) else 0.0
                  for o, r in zip(outputs, reference)]
    device = DeviceInfo(dev.kind, dev.arch, dev.l1_bank_count, dev.l1_bank_size,
                        dev.dram_bank_count, dev.dram_bank_size)
    specs = tuple(s for s in map(TensorSpec.of, inputs) if s is not None)
    return RunResult(name, specs, device, memory, compiled.plan, compiled.parts.partitions, run.nodes,
                     output_pcc, ctx.transfers, {"execute": time.perf_counter() - start}, outputs)


def run_model(spec: str, dev: DeviceHandle, input_shape: Shape | None = None,
              memory: str = "dram", seed: int = 0, min_block_size: int = 1) -> RunResult:
    """Build `spec` with real random weights, run it in fp32 torch for the reference, capture it
    (every call traced: the graph must be executable) and run it through TT-NN on `dev`."""
    torch.manual_seed(seed)
    t = time.perf_counter()
    loaded = load_model(spec, input_shape, device="cpu")
    with torch.no_grad():
        reference = loaded.module(*loaded.inputs)
    reference = list(reference) if isinstance(reference, (list, tuple)) else [reference]
    try:
        program = export_program(loaded.module, loaded.inputs)
    except Exception as exc:
        raise CaptureError(f"cannot capture {loaded.name} as one graph for execution: "
                           f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]} "
                           "(`fxport trace` shows where)") from None
    build_seconds = time.perf_counter() - t
    if not all(isinstance(r, torch.Tensor) for r in reference):
        raise FxportError(f"{loaded.name}: only models returning tensors can be run and compared")
    t = time.perf_counter()
    compiled = compile_program(program, min_block_size)
    plan_seconds = time.perf_counter() - t
    result = run_compiled(compiled, loaded.inputs, reference, dev, memory, loaded.name)
    result.seconds.update(build_capture=build_seconds, plan_partition=plan_seconds)
    return result
