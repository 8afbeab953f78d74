"""Graph passes: rewrites between capture and plan that keep values exact and make the graph
better for the device (fewer nodes, fused kernels, fewer layout conversions).

`PIPELINE` is the ordered list of every pass; `run_passes` runs the selected ones on a copy of a
captured graph with torch.fx's `PassManager` and returns the new graph and what each pass
changed. A pass that fails on a graph is recorded with its error and the pipeline runs again
without it: a bug in one rewrite costs that rewrite, not the run. New passes (constant folding,
memory placement) join by adding their class to `PIPELINE` at their place; each pass reads the
graph, the values of its constants and the memory config (`PassEnv`), and nothing else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch
from torch import fx
from torch.fx._lazy_graph_module import _make_graph_module, _use_lazy_graph_module
from torch.fx.passes.infra.pass_manager import PassManager

from fxport.capture.records import OpRecord, records_from_graph
from fxport.errors import FxportError
from fxport.passes.activations import FuseActivations
from fxport.passes.base import FxportPass, PassEnv, PassRecord, op_count
from fxport.passes.batchnorm import FoldBatchNorm
from fxport.passes.constants import FoldConstants
from fxport.passes.layout import PropagateLayout
from fxport.passes.noops import RemoveNoOps
from fxport.passes.packed_split import SplitPackedProjections

# The pipeline, in order. No-ops go first (views and clones between a conv and its batch norm
# would hide the pattern); packed projections split after them (copies removed, reshapes merged:
# fewer chain forms to replay); batch norms fold before activations fuse (conv -> bn -> relu); constant
# subgraphs fold after the batch norms (whose folded weights they may read, computed in order) and
# before the fusions see the graph; layout goes last, over the fused ops.
PIPELINE: tuple[type[FxportPass], ...] = (
    RemoveNoOps,
    SplitPackedProjections,
    FoldBatchNorm,
    FoldConstants,
    FuseActivations,
    PropagateLayout,
)
PASS_NAMES: tuple[str, ...] = tuple(p.name for p in PIPELINE)


def select(passes: str | Sequence[str] = "all", disabled: Iterable[str] = ()) -> tuple[str, ...]:
    """The pass names to run, in pipeline order: `passes` is "all", "none" or names (a list or a
    comma-separated string); `disabled` names passes to leave out."""
    if isinstance(passes, str):
        wanted = {"all": PASS_NAMES, "none": ()}.get(passes.strip())
        if wanted is None:
            wanted = tuple(p.strip() for p in passes.split(",") if p.strip())
    else:
        wanted = tuple(passes)
    disabled = tuple(disabled)
    unknown = sorted(set(wanted) - set(PASS_NAMES) | set(disabled) - set(PASS_NAMES))
    if unknown:
        raise FxportError(f"unknown pass(es) {', '.join(unknown)}; passes: {', '.join(PASS_NAMES)} (or all, none)")
    return tuple(p for p in PASS_NAMES if p in wanted and p not in disabled)


@dataclass
class Optimized:
    """A captured graph after the passes."""

    graph_module: fx.GraphModule  # a new module: the captured one is left as it was
    passes: tuple[str, ...]  # the passes that were asked for
    records: list[PassRecord]  # what each pass that ran changed (or why it failed), in order
    nodes_before: int  # op nodes as captured
    nodes_after: int
    constants: dict[str, torch.Tensor] = field(default_factory=dict)  # incl. tensors passes made
    seconds: float = 0.0  # the passes (graph rewriting)
    fold_seconds: float = 0.0  # computing the constants they made (folded weights)


def run_passes(
    gm: fx.GraphModule, constants: dict[str, torch.Tensor], passes: Sequence[str] = PASS_NAMES, memory: str = "dram"
) -> Optimized:
    """Run `passes` (names, see `select`) on a copy of `gm`. `constants`: the values of the
    graph's constant inputs (see `constants_of`)."""
    start = time.perf_counter()
    names = [n for n in PASS_NAMES if n in passes]
    failed: list[PassRecord] = []
    while True:
        env = PassEnv(dict(constants), memory)
        work = _copy(gm)
        instances = [cls(env) for cls in PIPELINE if cls.name in names]
        try:
            with _use_lazy_graph_module(True):
                work = PassManager(list(instances))(work).graph_module
            break
        except Exception as exc:  # contained: record the failing pass, run again without it
            bad = next(p for p in instances if not p.done)
            bad.record.error = _one_line(exc.__cause__ or exc)
            failed.append(bad.record)
            names.remove(bad.name)
    records = sorted([p.record for p in instances] + failed, key=lambda r: PASS_NAMES.index(r.name))
    seconds = time.perf_counter() - start
    env.materialize(work)
    return Optimized(
        work,
        tuple(passes),
        records,
        op_count(gm.graph),
        op_count(work.graph),
        env.constants,
        seconds,
        time.perf_counter() - start - seconds,
    )


def _copy(gm: fx.GraphModule) -> fx.GraphModule:
    """A new module over a copy of the graph (node metadata shared, not deep-copied: passes
    replace a node's "val", they never mutate it)."""
    graph = fx.Graph()
    out = graph.graph_copy(gm.graph, {})
    graph.output(out)
    with _use_lazy_graph_module(True):
        return _make_graph_module(gm, graph)


def _one_line(exc: BaseException) -> str:
    lines = (str(exc) or type(exc).__name__).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200] if lines else ''}"


def constants_of(program: torch.export.ExportedProgram) -> dict[str, torch.Tensor]:
    """Placeholder name -> value of an exported program's parameters, buffers and constants."""
    from torch.export.graph_signature import InputKind

    values = {}
    for spec in program.graph_signature.input_specs:
        if spec.kind == InputKind.USER_INPUT:
            continue
        source = program.state_dict if spec.target in program.state_dict else program.constants
        if spec.target in source:
            values[spec.arg.name] = source[spec.target]
    return values


def records_after(optimized: Optimized, label: str = "main", repeats: dict[str, int] | None = None) -> list[OpRecord]:
    """Op records of the optimized graph. `repeats` as capture counted them (a folded capture's
    module paths): rewritten nodes keep their module path, and nodes the passes add take the one
    of the node they were made from, so every node keeps its count."""
    return records_from_graph(optimized.graph_module.graph, label, repeats=repeats or None)


__all__ = [
    "PIPELINE",
    "PASS_NAMES",
    "Optimized",
    "PassEnv",
    "PassRecord",
    "FxportPass",
    "constants_of",
    "records_after",
    "run_passes",
    "select",
]
