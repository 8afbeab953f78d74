"""One result for a model that ran as several graphs (dynamo pieces, see fxport.capture.pieces).

Each piece is planned, partitioned and run as a model of its own; the model's result is their
union: every node, partition and record named `<piece>/<node>` so that names stay unique, the
transfers and ttnn calls summed, the memory verdicts pooled. Each piece's own outputs, compared
with fp32 torch run on the same inputs, are checks of the model's result (`<piece>/out[0]`): with
data-dependent host code between the pieces, they are the comparisons that say whether the device
computed right (the model's end-to-end outputs are compared too, see fxport.runtime.accuracy).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from fxport.memory.analysis import MemoryAnalysis
from fxport.passes import PassRecord
from fxport.plan import Plan
from fxport.report.results import RunResult
from fxport.runtime.accuracy import OutputCheck
from fxport.runtime.context import CallCounts, TransferLog


@dataclass(frozen=True)
class PieceSummary:
    """One piece as the model's report lists it."""

    label: str  # "graph3", "graph3.1" (the same graph compiled again for other shapes)
    function: str
    graph_break: dict | None  # {"stage", "message", "location"} of the break that ended it
    nodes: int
    on_device: int
    calls: int  # times the glue called it in this run
    pcc: tuple[float | None, ...]  # per output, vs fp32 torch on the same inputs

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "function": self.function,
            "break": self.graph_break,
            "nodes": self.nodes,
            "on_device": self.on_device,
            "calls": self.calls,
            "pcc": [None if p is None else round(p, 6) for p in self.pcc],
        }


def merge_pieces(
    name: str, pieces: list[tuple[str, RunResult]], checks: list[OutputCheck], capture: dict, seconds: dict[str, float]
) -> RunResult:
    """The model's RunResult from its pieces' (label, result), in run order. `checks`: its
    end-to-end output checks; each piece's output checks are added, prefixed by its label."""
    first = pieces[0][1]
    nodes, plan, records, partitions, ooms, disagreements = [], [], [], [], [], []
    transfers, calls = TransferLog(), CallCounts()
    piece_checks, control = [], []
    memory = Counter()
    peak: dict[str, int] = {}
    for label, r in pieces:
        p = f"{label}/"
        nodes += [replace(n, node=p + n.node, partition=p + n.partition if n.partition else "") for n in r.nodes]
        plan += [replace(n, node=p + n.node) for n in r.plan.nodes]
        records += [replace(rec, node=p + rec.node, graph=label) for rec in r.records]
        partitions += [
            replace(
                part,
                name=p + part.name,
                nodes=tuple(p + x for x in part.nodes),
                inputs=tuple(p + x for x in part.inputs),
                outputs=tuple(p + x for x in part.outputs),
            )
            for part in r.partitions
        ]
        for field in ("to_device", "to_host", "layout_changes"):
            setattr(transfers, field, getattr(transfers, field) + getattr(r.transfers, field))
        calls.compute += r.calls.compute
        calls.layout += r.calls.layout
        calls.transfer += r.calls.transfer
        calls.weights += r.calls.weights
        calls.ops.update(r.calls.ops)
        piece_checks += [replace(c, path=p + c.path) for c in r.output_checks]
        control += [replace(c, path=p + c.path) for c in r.control_values]
        a = r.memory_analysis
        if a is not None:
            memory.update(
                {
                    "nodes": a.nodes,
                    "agree": a.agree,
                    "predicted_only": a.predicted_only,
                    "observed_only": a.observed_only,
                    "not_run": a.not_run,
                }
            )
            ooms += [replace(o, node=p + o.node) for o in a.oom]
            disagreements += [replace(d, node=p + d.node) for d in a.disagreements]
            for where, value in (a.peak or {}).items():
                peak[where] = max(peak.get(where, 0), value)
    analyses = [r.memory_analysis for _, r in pieces if r.memory_analysis is not None]
    analysis = (
        MemoryAnalysis(
            analyses[0].device,
            analyses[0].config,
            memory["nodes"],
            tuple(sorted(ooms, key=lambda o: -o.per_bank)),
            memory["agree"],
            memory["predicted_only"],
            memory["observed_only"],
            memory["not_run"],
            tuple(disagreements),
            analyses[0].method,
            peak or None,
        )
        if analyses
        else None
    )
    return replace(
        first,
        model=name,
        plan=Plan(tuple(plan)),
        partitions=partitions,
        nodes=nodes,
        output_checks=[*checks, *piece_checks],
        transfers=transfers,
        records=records,
        memory_analysis=analysis,
        capture=capture,
        seconds=seconds,
        control_values=control,
        pass_records=_pooled_passes([(label, rec) for label, r in pieces for rec in r.pass_records]),
        captured_nodes=sum(r.captured_nodes for _, r in pieces),
        calls=calls,
        stopped=next((r.stopped for _, r in pieces if r.stopped), ""),
        localized=None,
    )


def _pooled_passes(records: list[tuple[str, PassRecord]]) -> list[PassRecord]:
    """One record per pass (in first-run order) with every piece's changes summed."""
    pooled: dict[str, PassRecord] = {}
    for label, rec in records:
        into = pooled.setdefault(rec.name, PassRecord(rec.name))
        for field in ("removed", "fused", "rewritten", "added", "conversions_saved", "transfers_saved", "seconds"):
            setattr(into, field, getattr(into, field) + getattr(rec, field))
        into.changes += [f"{label}: {c}" for c in rec.changes]
        if rec.error:
            into.error = "; ".join(filter(None, [into.error, f"{label}: {rec.error}"]))
    return list(pooled.values())


def piece_summaries(
    pieces: list[tuple[str, RunResult]], origins: dict[str, dict], calls: Counter
) -> list[PieceSummary]:
    """`origins`: label -> {"function", "break"}; `calls`: label -> how often it ran."""
    out = []
    for label, r in pieces:
        origin = origins.get(label, {})
        on_device = sum(1 for n in r.nodes if n.status == "device")
        out.append(
            PieceSummary(
                label,
                origin.get("function", ""),
                origin.get("break"),
                len(r.plan.nodes),
                on_device,
                calls[label],
                tuple(c.pcc for c in r.output_checks),
            )
        )
    return out
