"""Verified remedies: a node that ran out of memory is re-run on the device, in the allocator state
it failed in, with each rung of the remedy ladder (fxport/memory/remedy_ladder.py) that applies; a
remedy counts only when the allocator takes it. Each attempt runs under a graph capture (NORMAL
mode: the allocations are real) that says how many device bytes it took; the cheapest verified
remedy is returned with its outputs.

Attempts never leave anything behind that the run did not have: host inputs are moved by fresh
host values (their device copies die with the attempt), and a caller that does not keep a
remedy's outputs drops them, which frees them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx

from fxport.mapping import REGISTRY
from fxport.memory.analysis import device_spec
from fxport.memory.devices import DRAM, DeviceMemory
from fxport.memory.model import _smallest_chunking, node_memory
from fxport.memory.oom import classify
from fxport.memory.remedy_ladder import Remedy, Verified, cheapest, ladder
from fxport.memory.tiles import padding
from fxport.runtime.context import LoweringContext
from fxport.runtime.footprint_probe import quiet_capture
from fxport.values import HostValue


@dataclass
class Attempted:
    verified: Verified | None
    outputs: Any  # the chosen remedy's outputs (None when none verified)
    tried: list[str]


def rungs_for(node: fx.Node, memory: str, device: DeviceMemory) -> list[Remedy]:
    rule = REGISTRY.rule_for(node)
    family = rule.family if rule is not None else ""
    specs = [device_spec((tuple(v.shape), str(v.dtype).removeprefix("torch."))) for v in _vals(node)]
    factor = max((padding(s, d).factor for s, d in specs if s), default=1.0)
    chunking: list[tuple[int, int, int]] = []
    out = node.meta.get("val")
    if family in ("eltwise", "activation") and isinstance(out, torch.Tensor):
        ins = [
            device_spec((tuple(a.meta["val"].shape), str(a.meta["val"].dtype).removeprefix("torch.")))
            for a in node.all_input_nodes
            if isinstance(a.meta.get("val"), torch.Tensor)
        ]
        found = _smallest_chunking(
            node_memory(
                inputs=ins,
                outputs=[device_spec((tuple(out.shape), str(out.dtype).removeprefix("torch.")))],
                device=device,
            ),
            DRAM,
        )
        if found is not None:
            dim, k, _ = found
            chunking = [(dim, k, out.dim()), (dim, min(2 * k, out.shape[dim]), out.dim())]
    # Every rule that issues ttnn.conv2d (aten conv, the passes' fused conv) takes its DRAM slicing
    return ladder(memory, family, rule is not None and rule.ttnn == "ttnn.conv2d", factor, chunking)


def try_remedies(ctx: LoweringContext, node: fx.Node, args: tuple, kwargs: dict, memory: str) -> Attempted:
    """Re-run `node` with each applicable rung and return the cheapest one the device took."""
    import ttnn

    rule = REGISTRY.rule_for(node)
    found: list[Verified] = []
    kept: dict[int, Any] = {}
    tried: list[str] = []
    rungs = rungs_for(node, memory, _device(ctx))
    done_kinds: set[str] = set()
    for remedy in rungs:
        if remedy.kind in done_kinds:  # the first verified rung of a kind is its cheapest
            continue
        if found and remedy.kind in ("conv_slices", "chunk"):  # never fewer bytes than DRAM
            break
        fresh_args, fresh_kwargs = _fresh((args, kwargs))
        graph = None
        with quiet_capture():
            ttnn.graph.begin_graph_capture(ttnn.graph.RunMode.NORMAL)
        try:
            with ctx.placed(node.name, remedy), ctx.ops.uncached():
                if remedy.kind == "chunk":
                    out = _chunked(ctx, rule, node, fresh_args, fresh_kwargs, remedy.dim, remedy.chunks)
                else:
                    out = rule.lower(ctx, node, *fresh_args, **fresh_kwargs)
        except Exception as exc:
            verdict = classify(str(exc) or type(exc).__name__)
            # The whole summary: the classifier's summaries are short already (an unknown text is
            # cut to 300 characters there), and a cut here fell mid-word at a place that moved
            # with the width of the numbers in it.
            tried.append(f"{remedy.text}: {verdict.kind.lower().replace('_', ' ')} ({verdict.summary})")
            continue
        finally:
            graph = ttnn.graph.end_graph_capture()
        nbytes = sum(
            int((g.get("params") or {}).get("size", 0)) for g in graph if g.get("node_type") == "buffer_allocate"
        )
        tried.append(f"{remedy.text}: fits ({nbytes:,} B)")
        found.append(Verified(remedy, nbytes))
        kept[len(found) - 1] = out
        done_kinds.add(remedy.kind)
        out = None
    best = cheapest(found)
    if best is None:
        return Attempted(None, None, tried)
    index = found.index(best)
    outputs = kept.pop(index)
    kept.clear()  # the other verified attempts' outputs are freed
    return Attempted(Verified(best.remedy, best.bytes, tuple(tried)), outputs, tried)


def _device(ctx: LoweringContext) -> DeviceMemory:
    return DeviceMemory.from_handle(ctx.device)


def _vals(node: fx.Node) -> list[torch.Tensor]:
    vals = [a.meta.get("val") for a in node.all_input_nodes]
    out = node.meta.get("val")
    vals += list(out) if isinstance(out, (list, tuple)) else [out]
    return [v for v in vals if isinstance(v, torch.Tensor)]


def _fresh(value: Any) -> Any:
    """The same values, host ones wrapped anew so that an attempt's device copies die with it."""
    if isinstance(value, HostValue):
        return HostValue(value.tensor)
    if isinstance(value, (list, tuple)):
        return type(value)(_fresh(v) for v in value)
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    return value


def _pairs(nodes: Any, values: Any, out: dict) -> dict:
    if isinstance(nodes, fx.Node):
        out[nodes] = values
    elif isinstance(nodes, (list, tuple)):
        for n, v in zip(nodes, values):
            _pairs(n, v, out)
    elif isinstance(nodes, dict):
        for k in nodes:
            _pairs(nodes[k], values[k], out)
    return out


def _chunked(ctx: LoweringContext, rule: Any, node: fx.Node, args: tuple, kwargs: dict, dim: int, chunks: int) -> Any:
    """The node run on `chunks` slices of its output's `dim` (inputs sliced where they span that
    dim, broadcast ones whole), the pieces joined on the device."""
    out = node.meta["val"]
    size, rank = out.shape[dim], out.dim()
    step = math.ceil(size / chunks)
    values = _pairs(node.args, args, {})
    _pairs(node.kwargs, kwargs, values)
    pieces = []
    for start in range(0, size, step):
        length = min(step, size - start)
        graph = fx.Graph()
        mapping, piece_values = {}, {}
        for a in node.all_input_nodes:
            v = a.meta["val"]
            cut = isinstance(v, torch.Tensor) and v.dim() == rank and v.shape[dim] == size
            ph = graph.placeholder(a.name)
            shape = list(v.shape) if isinstance(v, torch.Tensor) else None
            if cut:
                shape[dim] = length
            ph.meta["val"] = torch.empty(shape, dtype=v.dtype, device="meta") if shape is not None else v
            mapping[a] = ph
            piece_values[ph] = _slice(ctx, values[a], dim, start, length, rank) if cut else values[a]
        # The lambdas below run at once, inside this iteration: the loop variables are current
        call_args = fx.map_arg(node.args, lambda a: mapping[a])  # noqa: B023
        call_kwargs = fx.map_arg(node.kwargs, lambda a: mapping[a])  # noqa: B023
        call = graph.call_function(node.target, call_args, call_kwargs)
        call.meta["val"] = node.target(
            *fx.map_arg(call_args, lambda a: a.meta["val"]), **fx.map_arg(call_kwargs, lambda a: a.meta["val"])
        )
        pieces.append(
            rule.lower(
                ctx,
                call,
                *fx.map_arg(call_args, lambda a: piece_values[a]),  # noqa: B023
                **fx.map_arg(call_kwargs, lambda a: piece_values[a]),  # noqa: B023
            )
        )
    return ctx.ops.concat([ctx.tensor(p) for p in pieces], dim, memory_config=ctx.memory_config)


def _slice(ctx: LoweringContext, value: Any, dim: int, start: int, length: int, rank: int) -> Any:
    if isinstance(value, HostValue):
        return HostValue(value.tensor.narrow(dim, start, length))
    t = ctx.tensor(value)
    starts = [0] * rank
    ends = list(t.shape)
    starts[dim], ends[dim] = start, start + length
    return ctx.ops.slice(t, starts, ends, [1] * rank, memory_config=ctx.memory_config)


__all__ = ["Attempted", "rungs_for", "try_remedies"]
