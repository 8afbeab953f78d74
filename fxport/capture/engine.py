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
from torch.export.graph_signature import OutputKind
from torch.fx._lazy_graph_module import _use_lazy_graph_module

from fxport.capture.decompositions import decomposition_table
from fxport.capture.pytrees import Leaf, forward_signature, input_leaves, register_dataclasses, tensor_leaves
from fxport.capture.records import OpRecord, records_from_graph
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
    inputs: tuple[Leaf, ...]  # every input tensor, named by its path ("args[0]", "kwargs['mask']")
    method: str  # "export" or "dynamo"
    graphs: list[CapturedGraph]
    records: list[OpRecord]
    problems: list[CaptureProblem] = field(default_factory=list)
    seconds: float = 0.0
    outputs: tuple[Leaf, ...] = ()  # the model's output tensors by path ("out['logits']"); export only
    # Module path -> how many calls its first traced call stands for (folded repeated calls, see
    # `capture`), so that records of a rewritten graph count the same way.
    repeats: dict[str, int] = field(default_factory=dict)
    cached: bool = False  # loaded from the capture cache (fxport.capture.cache), not traced

    @property
    def complete(self) -> bool:
        """True when the whole model was captured in one graph with nothing left out."""
        return self.method == "export" and all(p.stage == "note" for p in self.problems)

    @property
    def node_count(self) -> int:
        return sum(r.repeat for r in self.records)


def capture(
    model: nn.Module,
    inputs: tuple,
    name: str = "model",
    repeated: tuple[str, ...] = (),
    keep: tuple[torch._ops.OpOverload, ...] = (),
    kwargs: dict | None = None,
) -> Capture:
    """Capture `model(*inputs, **kwargs)`. Works on meta, fake or real tensors; never runs the model for real
    except through the dynamo fallback, which executes the Python between graph breaks.

    `keep`: ops left whole instead of decomposed to core aten (the mapping table's fused ops; see
    `fxport.tracing`, which passes them).

    `repeated` names submodules that run several times per call with identical input shapes, each
    call feeding the next (an iterative sampler's step). Only their first and last calls are
    traced; the first call's nodes count for all but the last (`OpRecord.repeat`): the inventory
    is the same, the capture much faster. Such a graph has the right shapes but not the right
    values, so it serves verdict runs (`--values none`); runs with values capture every call."""
    start = time.perf_counter()
    kwargs = dict(kwargs or {})
    input_specs = input_leaves(inputs, kwargs)
    problems: list[CaptureProblem] = []
    if repeated:
        try:
            calls = count_calls(model, inputs, repeated, kwargs)
            with fold_repeated_calls(model, calls):
                program = export_program(model, inputs, keep, kwargs)
        except Exception as exc:  # a shape mismatch, or anything folding broke: trace every call
            problems.append(CaptureProblem("note", f"not folded: {_one_line(exc)}"))
        else:
            notes = [
                CaptureProblem("note", f"{path}: {n} identical calls, traced 2 and counted {n}")
                for path, n in sorted(calls.items())
                if n > 2
            ]
            return _finish(
                name,
                input_specs,
                "export",
                [CapturedGraph("main", program)],
                notes,
                start,
                {p: n - 1 for p, n in calls.items() if n > 2},
            )
    try:
        program = export_program(model, inputs, keep, kwargs)
    except Exception as exc:  # any export failure: fall back, and say why
        problem = CaptureProblem("export", _one_line(exc), _user_location(exc))
        graphs, dynamo_problems = _capture_with_dynamo(model, inputs, keep, kwargs)
        problems += [problem, *dynamo_problems]
        if not graphs:
            raise CaptureError(
                f"cannot capture {name}: {problem.message}"
                + (f" (at {problem.location})" if problem.location else "")
                + f"; it was called as {forward_signature(model)} with "
                + (", ".join(f"{leaf.path} {leaf.spec}" for leaf in input_specs) or "no tensors")
            ) from exc
        return _finish(name, input_specs, "dynamo", graphs, problems, start)
    return _finish(name, input_specs, "export", [CapturedGraph("main", program)], problems, start)


def _finish(
    name: str,
    inputs: tuple[Leaf, ...],
    method: str,
    graphs: list[CapturedGraph],
    problems: list[CaptureProblem],
    start: float,
    repeats: dict[str, int] | None = None,
) -> Capture:
    records: list[OpRecord] = []
    for g in graphs:
        records += records_from_graph(g.program.graph, g.label, start=len(records), repeats=repeats)
    outputs = output_leaves(graphs[0].program) if method == "export" else ()
    return Capture(
        name,
        inputs,
        method,
        graphs,
        records,
        problems,
        seconds=time.perf_counter() - start,
        outputs=outputs,
        repeats=dict(repeats or {}),
    )


def output_leaves(program: torch.export.ExportedProgram) -> tuple[Leaf, ...]:
    """The model's output tensors, by path, from the program's output specs and node metadata."""
    output = next(n for n in program.graph.nodes if n.op == "output")
    kinds = [s.kind for s in program.graph_signature.output_specs]
    values = [
        a.meta.get("val") if isinstance(a, fx.Node) else a
        for a, k in zip(output.args[0], kinds)
        if k == OutputKind.USER_OUTPUT
    ]
    return tensor_leaves(torch.utils._pytree.tree_unflatten(values, program.call_spec.out_spec), "out")


class FoldMismatch(Exception):
    """A module named as repeated was called with different input shapes: folding would lose ops."""


def count_calls(model: nn.Module, inputs: tuple, paths: tuple[str, ...], kwargs: dict | None = None) -> dict[str, int]:
    """Calls per forward of each named submodule, from one eager run (cheap on meta tensors)."""
    counts = dict.fromkeys(paths, 0)

    def hook(path):
        return lambda module, args: counts.__setitem__(path, counts[path] + 1)

    handles = [model.get_submodule(p).register_forward_pre_hook(hook(p)) for p in paths]
    try:
        with torch.no_grad():
            model(*inputs, **(kwargs or {}))
    finally:
        for h in handles:
            h.remove()
    return counts


@contextlib.contextmanager
def fold_repeated_calls(model: nn.Module, calls: dict[str, int]):
    """Trace only the first and the last of the n calls of each named submodule.

    Calls 2..n-1 return the first call's outputs and add no nodes; the first call's nodes then
    stand for calls 1..n-1 (`repeat` n-1, see records.py) and the last call is traced as is, so
    dead-code elimination of the last call's unused outputs matches a full trace exactly. Requires
    every call's inputs to have the same shapes and dtypes (else FoldMismatch).
    """
    originals = {}
    for path, n in calls.items():
        if n > 2:
            module = model.get_submodule(path)
            originals[path] = module.forward
            module.forward = _folded_forward(path, module.forward, n)
    try:
        yield
    finally:
        for path, forward in originals.items():
            model.get_submodule(path).forward = forward


def _folded_forward(path: str, forward, total: int):
    state: dict[str, object] = {"calls": 0}

    def call(*args, **kwargs):
        state["calls"] += 1
        signature = _signature((args, kwargs))
        if state["calls"] == 1:
            state["sig"], state["out"] = signature, forward(*args, **kwargs)
            return state["out"]
        if signature != state["sig"]:
            raise FoldMismatch(f"{path} call {state['calls']} has inputs {signature}, call 1 had {state['sig']}")
        return forward(*args, **kwargs) if state["calls"] == total else state["out"]

    return call


def _signature(value) -> object:
    if isinstance(value, torch.Tensor):
        return (tuple(value.shape), value.dtype)
    if isinstance(value, (list, tuple)):
        return tuple(_signature(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _signature(v)) for k, v in sorted(value.items()))
    return value


def export_program(
    model: nn.Module, inputs: tuple, keep: tuple[torch._ops.OpOverload, ...] = (), kwargs: dict | None = None
) -> torch.export.ExportedProgram:
    # The lazy graph module avoids recompiling the GraphModule once per grad-mode region, which
    # makes export quadratic in graph size (measured: 437 s -> 36 s on full-size PI0).
    with _use_lazy_graph_module(True), _quiet_export():
        try:
            program = torch.export.export(model, tuple(inputs), kwargs, strict=False)
        except RuntimeError as exc:
            if "in output, which is not a known type" not in str(exc):
                raise
            # A dataclass output nobody registered with pytree: one eager call (cheap on meta
            # tensors) finds the types, then register them and export again.
            with torch.no_grad():
                register_dataclasses(model(*inputs, **(kwargs or {})))
            program = torch.export.export(model, tuple(inputs), kwargs, strict=False)
        return program.run_decompositions(decomposition_table(keep))


def _capture_with_dynamo(
    model: nn.Module, inputs: tuple, keep: tuple, kwargs: dict | None = None
) -> tuple[list[CapturedGraph], list[CaptureProblem]]:
    from torch._dynamo.backends.debugging import ExplainWithBackend

    torch._dynamo.reset()
    explainer = ExplainWithBackend("eager")
    problems: list[CaptureProblem] = []
    try:
        torch.compile(model, backend=explainer, fullgraph=False)(*inputs, **(kwargs or {}))
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
            program = export_program(gm, tuple(example), keep)
            _name_root(program.graph, model)
            graphs.append(CapturedGraph(f"graph{i}", program))
        except Exception as exc:
            problems.append(CaptureProblem("export", f"graph{i}: {_one_line(exc)}"))
    return graphs, problems


def _name_root(graph: fx.Graph, model: nn.Module) -> None:
    """A dynamo piece is exported through a wrapper module, which its nodes' module stacks name as
    the root: the root of those pieces is the model (the module of ops in its own forward)."""
    cls = f"{type(model).__module__}.{type(model).__qualname__}"
    for node in graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if stack:
            node.meta["nn_module_stack"] = {
                key: ((path, cls) if path == "" else (path, c)) for key, (path, c) in stack.items()
            }


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
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if "/torch/" not in f.filename and "/fxport/" not in f.filename
    ]
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
