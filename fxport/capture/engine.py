"""Graph capture: model + example inputs -> aten graphs whose every node carries shapes and dtypes.

The fast, whole-graph path is non-strict `torch.export` followed by decomposition to core aten
(keeping the fused ops TT-NN runs, see decompositions.py). When export fails (data-dependent
control flow, unsupported Python), capture falls back to TorchDynamo, which splits the model at
graph breaks: each piece is exported on its own and every break is reported with its reason and
source location, so the user learns exactly what was not captured and why.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torch.fx._lazy_graph_module import _use_lazy_graph_module

from fxport.capture.decompositions import decomposition_table
from fxport.capture.records import OpRecord, TensorSpec, records_from_graph
from fxport.errors import CaptureError


@dataclass(frozen=True)
class CaptureProblem:
    stage: str  # "export" (whole-graph export failed), "graph-break", "dynamo" (fallback failed)
    message: str
    location: str = ""

    def to_dict(self) -> dict:
        return {"stage": self.stage, "message": self.message, "location": self.location}


@dataclass
class CapturedGraph:
    label: str
    program: torch.export.ExportedProgram

    @property
    def graph_module(self) -> fx.GraphModule:
        return self.program.graph_module


@dataclass
class Capture:
    """The result of capturing one model: its aten graphs, op records and what went wrong."""

    model: str
    inputs: tuple[TensorSpec, ...]
    method: str  # "export" or "dynamo"
    graphs: list[CapturedGraph]
    records: list[OpRecord]
    problems: list[CaptureProblem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """True when the whole model was captured in one graph with nothing left out."""
        return self.method == "export" and not self.problems

    @property
    def node_count(self) -> int:
        return sum(r.repeat for r in self.records)


def capture(model: nn.Module, inputs: tuple, name: str = "model") -> Capture:
    """Capture `model(*inputs)`. Works on meta, fake or real tensors; never runs the model for real
    except through the dynamo fallback, which executes the Python between graph breaks."""
    start = time.perf_counter()
    input_specs = tuple(s for s in map(TensorSpec.of, inputs) if s is not None)
    try:
        program = export_program(model, inputs)
    except Exception as exc:  # any export failure: fall back, and say why
        problem = CaptureProblem("export", _one_line(exc), _user_location(exc))
        graphs, problems = _capture_with_dynamo(model, inputs)
        problems.insert(0, problem)
        if not graphs:
            raise CaptureError(f"cannot capture {name}: {problem.message}"
                               + (f" (at {problem.location})" if problem.location else "")) from exc
        method = "dynamo"
    else:
        graphs, problems, method = [CapturedGraph("main", program)], [], "export"

    records: list[OpRecord] = []
    for g in graphs:
        records += records_from_graph(g.program.graph, g.label, start=len(records))
    return Capture(name, input_specs, method, graphs, records, problems,
                   seconds=time.perf_counter() - start)


def export_program(model: nn.Module, inputs: tuple) -> torch.export.ExportedProgram:
    # The lazy graph module avoids recompiling the GraphModule once per grad-mode region, which
    # makes export quadratic in graph size (measured: 437 s -> 36 s on full-size PI0).
    with _use_lazy_graph_module(True), _quiet_export():
        program = torch.export.export(model, tuple(inputs), strict=False)
        return program.run_decompositions(decomposition_table())


def _capture_with_dynamo(model: nn.Module, inputs: tuple) -> tuple[list[CapturedGraph], list[CaptureProblem]]:
    from torch._dynamo.backends.debugging import ExplainWithBackend

    torch._dynamo.reset()
    explainer = ExplainWithBackend("eager")
    problems: list[CaptureProblem] = []
    try:
        torch.compile(model, backend=explainer, fullgraph=False)(*inputs)
    except Exception as exc:  # the Python between graphs failed; keep the graphs seen so far
        problems.append(CaptureProblem("dynamo", _one_line(exc), _user_location(exc)))
    finally:
        torch._dynamo.reset()
    for reason in explainer.break_reasons:
        frames = [f for f in reason.user_stack or [] if "/torch/" not in f.filename]
        where = f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
        problems.append(CaptureProblem("graph-break", _one_line(reason.reason), where))

    graphs = []
    for i, gm in enumerate(explainer.graphs):
        example = [_placeholder_value(n) for n in gm.graph.nodes if n.op == "placeholder"]
        try:
            graphs.append(CapturedGraph(f"graph{i}", export_program(gm, tuple(example))))
        except Exception as exc:
            problems.append(CaptureProblem("export", f"graph{i}: {_one_line(exc)}"))
    return graphs, problems


def _placeholder_value(node: fx.Node):
    value = node.meta.get("example_value")
    if isinstance(value, torch.Tensor):
        # Dynamo's fake tensors belong to its own fake mode; export wants plain (meta) tensors.
        return torch.empty(value.shape, dtype=value.dtype, device="meta")
    return value


def _one_line(exc: BaseException | str) -> str:
    text = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    head = lines[0] if lines else ""
    if not isinstance(exc, str):
        head = f"{type(exc).__name__}: {head}"
    return head[:300]


def _user_location(exc: BaseException) -> str:
    """The innermost traceback frame outside torch: where in the user's model it failed."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/torch/" not in f.filename and "/fxport/" not in f.filename]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f.filename}:{f.lineno} in {f.name}"


@contextlib.contextmanager
def _quiet_export():
    """torch.export logs warnings (e.g. about non-strict tracing) that users cannot act on."""
    import logging

    loggers = [logging.getLogger(n) for n in ("torch._export", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
