"""A run's time: every node priced (device nodes by `fxport.cost.nodes`, host nodes as timed), the
host<->device transfers the plan forces priced over PCIe, and the fallbacks ranked by what they cost.

Latency assumes Metal Trace, as published device figures do: device time + host time + transfers.
The host's dispatch of the device ops (TT-NN's host stack, measured on the mock per node) is
reported beside it: above the device time the model is host-bound without Metal Trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import networkx as nx
import torch
from torch import fx

from fxport.capture.records import OpRecord, TensorSpec, is_op_node
from fxport.cost import constants as C
from fxport.cost.boards import Board
from fxport.cost.nodes import NodeCost, Options, price
from fxport.mapping import REGISTRY
from fxport.plan import Plan


@dataclass(frozen=True)
class NodeTime:
    node: str
    module: str
    where: str  # "device" or "host"
    est_ns: float  # per call
    bound: str  # device: compute / dram / dispatch; host nodes: "host"
    repeat: int = 1
    kind: str = ""
    lowered_ns: float | None = None  # a host node: its device estimate were it lowered


@dataclass(frozen=True)
class Transfer:
    value: str  # the node whose output moves
    to: str  # "device" or "host"
    nbytes: int
    repeat: int
    charged_to: str  # the host node that forces it ("" for the model's inputs and outputs)

    def ns(self, board: Board) -> float:
        return self.repeat * (board.pcie_latency_us * 1e3 + self.nbytes / board.pcie_gb_s)


@dataclass
class Estimate:
    board: Board
    batch: int
    options: Options
    nodes: dict[str, NodeTime]
    transfers: list[Transfer]
    dispatch_ms: float  # host dispatch of the device ops, measured on TT-NN's host stack
    host_timing: str  # how host nodes were timed
    dispatch_timing: str
    islands: list[list[str]] = field(default_factory=list)  # connected host nodes

    # -- totals ---------------------------------------------------------------------------------
    def _sum(self, where: str, attr: Callable[[NodeTime], float] = lambda t: t.est_ns) -> float:
        return sum(attr(t) * t.repeat for t in self.nodes.values() if t.where == where) / 1e6

    @property
    def device_ms(self) -> float:
        return self._sum("device")

    @property
    def host_ms(self) -> float:
        return self._sum("host")

    @property
    def transfer_ms(self) -> float:
        return sum(t.ns(self.board) for t in self.transfers) / 1e6

    @property
    def latency_ms(self) -> float:
        return self.device_ms + self.host_ms + self.transfer_ms

    @property
    def device_bounds(self) -> dict[str, float]:
        out = {"compute": 0.0, "dram": 0.0, "dispatch": 0.0}
        for t in self.nodes.values():
            if t.where == "device" and t.est_ns:
                out[t.bound] += t.est_ns * t.repeat / 1e6
        return out

    @property
    def bound(self) -> str:
        """What bounds the latency: the device's largest share (compute, dram, dispatch), or host
        or transfer when those exceed the device's time."""
        parts = {**self.device_bounds, "host": self.host_ms, "transfer": self.transfer_ms}
        return max(parts, key=lambda k: (parts[k], k))

    def cost_of(self, nodes: Iterable[str]) -> dict:
        """What host nodes cost: their host time plus the transfers they force; and the estimated
        speedup of the whole model were they lowered (their device estimate instead)."""
        names = set(nodes)
        host = sum(self.nodes[n].est_ns * self.nodes[n].repeat for n in names if n in self.nodes) / 1e6
        moves = sum(t.ns(self.board) for t in self.transfers if t.charged_to in names) / 1e6
        lowered = sum((self.nodes[n].lowered_ns or 0.0) * self.nodes[n].repeat for n in names if n in self.nodes) / 1e6
        cost = host + moves
        latency = self.latency_ms
        after = latency - cost + lowered
        return {
            "cost_ms": round(cost, 4),
            "host_ms": round(host, 4),
            "transfer_ms": round(moves, 4),
            "lowered_ms": round(lowered, 4),
            "speedup_if_lowered": round(latency / after, 3) if after > 0 else None,
        }

    def island_costs(self) -> list[dict]:
        rows = []
        for island in self.islands:
            mods = sorted({self.nodes[n].module for n in island if n in self.nodes})
            rows.append({"nodes": len(island), "first": island[0], "modules": mods[:5], **self.cost_of(island)})
        return sorted(rows, key=lambda r: (-r["cost_ms"], r["first"]))

    def to_dict(self) -> dict:
        b = self.board
        device, dispatch = self.device_ms, self.dispatch_ms
        return {
            "arch": b.name,
            "batch": self.batch,
            "latency_ms": round(self.latency_ms, 4),
            "throughput_per_s": round(self.batch * 1e3 / self.latency_ms, 2) if self.latency_ms else None,
            "device_throughput_per_s": round(self.batch * 1e3 / device, 2) if device else None,
            "device_ms": round(device, 4),
            "host_ms": round(self.host_ms, 4),
            "transfer_ms": round(self.transfer_ms, 4),
            "dispatch_ms": round(dispatch, 4),
            "device_split_ms": {k: round(v, 4) for k, v in self.device_bounds.items()},
            "bound": self.bound,
            "host_bound": dispatch > device,
            "untraced_latency_ms": round(max(device, dispatch) + self.host_ms + self.transfer_ms, 4),
            "metal_trace_saves_ms": round(max(0.0, dispatch - device), 4),
            "transfers": len(self.transfers),
            "host_islands": self.island_costs(),
            "assumptions": {
                "board": {
                    "grid": list(b.grid),
                    "cores": b.cores,
                    "clock_ghz": b.clock_ghz,
                    "dram_gib_s": b.dram_gib_s,
                    "pcie_gb_s": b.pcie_gb_s,
                    "pcie_latency_us": b.pcie_latency_us,
                },
                "math_fidelity": self.options.fidelity or "ttnn default (HiFi2; LoFi for block-float operands)",
                "activations": self.options.activations,
                "weights": self.options.weights,
                "latency": "with Metal Trace: device + host + transfers (host dispatch overlapped)",
                "host_timing": self.host_timing,
                "dispatch_timing": self.dispatch_timing,
                "constants": C.table(),
            },
        }


def _bytes(val: Any) -> int:
    if isinstance(val, torch.Tensor):
        return val.numel() * val.element_size()
    if isinstance(val, (list, tuple)):
        return sum(_bytes(v) for v in val)
    return 0


def _causal(node: fx.Node) -> bool:
    return bool(node.kwargs.get("is_causal", node.args[5] if len(node.args) > 5 else False))


def device_cost(
    record: OpRecord,
    family: str,
    board: Board,
    options: Options,
    in_dram: list[bool],
    out_dram: bool,
    weight_const: bool,
    causal: bool = False,
    device_ops: int = 1,
) -> NodeCost:
    """One node's device cost from its record, as its lowering stores its tensors."""
    rule = REGISTRY.rule_named(record.target)
    if rule is not None and rule.device_layout is not None:
        inputs, outputs = rule.device_layout(record)
    else:
        inputs, outputs = record.inputs, record.outputs
    spec = lambda s: s if isinstance(s, TensorSpec) else TensorSpec(tuple(s[0]), s[1])
    return price(
        record.target,
        family,
        [spec(s) for s in inputs],
        [spec(s) for s in outputs],
        board,
        options,
        in_dram,
        out_dram,
        1 if weight_const else None,
        causal,
        device_ops,
        (list(record.inputs), list(record.outputs)),
    )


def estimate_run(
    graph: fx.Graph,
    plan: Plan,
    records: list[OpRecord],
    nodes: list,
    board: Board,
    options: Options,
    batch: int,
    constants: frozenset[str],
    memory: str,
    host_seconds: dict[str, float],
    host_timing: str,
    dispatch_timing: str,
    measured_dispatch: bool = True,
) -> Estimate:
    """Price a run. `nodes`: its NodeResults (status, placement, calls, seconds); `host_seconds`:
    each host-run node's measured time per call; `constants`: placeholder names of the weights
    (moved once, not per inference); `memory`: the run's activation memory ("dram", "l1", "auto");
    `measured_dispatch`: the host dispatch from the nodes' measured times, else modelled from their
    ttnn call counts (C.HOST_DISPATCH_NS each: deterministic)."""
    ran = {n.node: n for n in nodes}
    plans = plan.by_node()
    recs = {r.node: r for r in records}
    default_dram = memory != "l1"

    def where(n: fx.Node) -> str:
        if n.op == "placeholder":
            return "const" if n.name in constants else "host"
        if n.op == "get_attr":
            return "const"
        if n.op == "call_function" and not is_op_node(n) and n.args and isinstance(n.args[0], fx.Node):
            return where(n.args[0])  # getitem: where its tuple is
        r = ran.get(n.name)
        return "device" if r is not None and r.status == "device" else "host"

    def in_dram(n: fx.Node) -> bool:
        if where(n) == "const":  # constants live in DRAM whatever the activations' placement
            return True
        src = n
        while src.op == "call_function" and not is_op_node(src) and src.args and isinstance(src.args[0], fx.Node):
            src = src.args[0]
        r = ran.get(src.name)
        if r is not None and r.status == "device" and r.memory:
            return r.memory != "l1"
        return default_dram

    times: dict[str, NodeTime] = {}
    for n in graph.nodes:
        if not is_op_node(n) or n.name not in recs or n.name not in ran:
            continue
        rec, r, p = recs[n.name], ran[n.name], plans.get(n.name)
        family = p.family if p else ""
        operands = n.all_input_nodes
        weight = len(n.args) > 1 and isinstance(n.args[1], fx.Node) and where(n.args[1]) == "const"
        dram_in = [in_dram(a) for a in operands if isinstance(a.meta.get("val"), torch.Tensor)]
        causal = _causal(n) if "scaled_dot_product" in rec.target else False
        if r.status == "device":
            ops = _ops(r)
            out_dram = r.memory != "l1" if r.memory else default_dram
            c = device_cost(rec, family, board, options, dram_in, out_dram, weight, causal, ops)
            times[n.name] = NodeTime(n.name, rec.module, "device", c.est_ns, c.bound, rec.repeat, c.kind)
        else:
            try:
                lowered = device_cost(rec, family, board, options, [True] * len(dram_in), True, weight, causal).est_ns
            except Exception:  # a node no formula fits (odd shapes): no figure rather than a wrong one
                lowered = None
            ns = host_seconds.get(n.name, 0.0) * 1e9
            times[n.name] = NodeTime(n.name, rec.module, "host", ns, "host", rec.repeat, "host", lowered)

    transfers = _transfers(graph, where, recs)
    islands = _islands(graph, where)
    device_nodes = [r for r in nodes if r.status == "device" and r.node in recs]
    dispatch = (
        _warm_dispatch_ms(device_nodes, recs)
        if measured_dispatch
        else sum(_ops(r) * recs[r.node].repeat for r in device_nodes) * C.HOST_DISPATCH_NS.value / 1e6
    )
    return Estimate(board, batch, options, times, transfers, dispatch, host_timing, dispatch_timing, islands)


def _warm_dispatch_ms(device_nodes: list, recs: dict[str, OpRecord]) -> float:
    """Host dispatch of one warm inference: each node's TT-NN calls at the cheapest per-call time
    measured for its op in this run. A run's first call of a program compiles it (TT-NN's program
    cache); later calls, and every call of a deployed model after its first, do not."""
    warm: dict[str, float] = {}
    for r in device_nodes:
        warm[r.target] = min(warm.get(r.target, float("inf")), r.seconds / _ops(r))
    return sum(warm[r.target] * _ops(r) * recs[r.node].repeat for r in device_nodes) * 1e3


def _ops(r) -> int:
    """The device operations a node result issued (its ttnn compute and layout calls)."""
    return max(1, r.calls.compute + r.calls.layout) if r.calls is not None else 1


def _transfers(graph: fx.Graph, where: Callable[[fx.Node], str], recs: dict[str, OpRecord]) -> list[Transfer]:
    """Every value that crosses between host and device once per inference: a host value moves to
    the device once (its device copy is reused), a device value back once per host consumer side."""
    seen: set[tuple[str, str]] = set()
    out: list[Transfer] = []
    for v in graph.nodes:
        if not (is_op_node(v) or v.op == "output"):
            continue
        wv = "host" if v.op == "output" else where(v)
        for u in v.all_input_nodes:
            wu = where(u)
            if wu == "const" or wu == wv or (u.name, wv) in seen:
                continue
            seen.add((u.name, wv))
            host_end = v if wv == "host" else u
            charged = host_end.name if is_op_node(host_end) else _source(host_end)
            repeat = max(recs[x.name].repeat if x.name in recs else 1 for x in (u, v))
            out.append(Transfer(u.name, wv, _bytes(u.meta.get("val")), repeat, charged))
    return out


def _source(n: fx.Node) -> str:
    """A getitem's op node (the host op that produced the tuple); "" for inputs and outputs."""
    while n.op == "call_function" and not is_op_node(n) and n.args and isinstance(n.args[0], fx.Node):
        n = n.args[0]
    return n.name if is_op_node(n) else ""


def _islands(graph: fx.Graph, where: Callable[[fx.Node], str]) -> list[list[str]]:
    """Host op nodes joined by host-to-host edges (through getitems), in graph order."""
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    g = nx.Graph()
    for n in graph.nodes:
        if is_op_node(n) and where(n) == "host":
            g.add_node(n.name)
            for u in n.all_input_nodes:
                src = _source(u)
                if src and where(u) == "host":
                    g.add_edge(src, n.name)
    return sorted((sorted(c, key=order.__getitem__) for c in nx.connected_components(g)), key=lambda c: order[c[0]])
