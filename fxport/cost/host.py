"""Host time of nodes the run did not time itself.

A fallback's own time in a run includes its failed device attempt: `time_host_nodes` times its
aten op alone, on zero-filled inputs of the real shapes and dtypes (zeros are valid indices for
every index op), best of two calls. A verdict run (`--values none`) computes on meta tensors and
times nothing: its host nodes are *modelled*, not measured (`modelled_host_seconds`: bytes
touched at HOST_GB_S plus HOST_OP_NS), so that its documents stay deterministic."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import fx

# Inputs larger than this are not materialised: the node is priced at HOST_GB_S instead.
MAX_BYTES = 1 << 30
HOST_GB_S = 5.0  # assumed host memory throughput of a streaming aten op (GB/s)
HOST_OP_NS = 10_000  # assumed fixed cost of one aten op call on the host (dispatch, allocation)


def _zeros(val: Any) -> Any:
    if isinstance(val, torch.Tensor):
        return torch.zeros(val.shape, dtype=val.dtype)
    if isinstance(val, (list, tuple)):
        return type(val)(_zeros(v) for v in val)
    return val


def _nbytes(val: Any) -> int:
    if isinstance(val, torch.Tensor):
        return val.numel() * val.element_size()
    if isinstance(val, (list, tuple)):
        return sum(_nbytes(v) for v in val)
    return 0


def _node_bytes(n: fx.Node) -> int:
    vals = fx.map_arg((n.args, n.kwargs), lambda a: a.meta.get("val"))
    return _nbytes(list(vals[0]) + list(vals[1].values())) + _nbytes(n.meta.get("val"))


def modelled_host_seconds(graph: fx.Graph, names: set[str]) -> dict[str, float]:
    """A verdict run's host nodes: the bytes each touches at HOST_GB_S plus HOST_OP_NS."""
    return {
        n.name: HOST_OP_NS / 1e9 + _node_bytes(n) / (HOST_GB_S * 1e9)
        for n in graph.nodes
        if n.name in names and n.op == "call_function"
    }


def time_host_nodes(graph: fx.Graph, names: set[str]) -> tuple[dict[str, float], int]:
    """Seconds per call of each named node, and how many were priced by bytes instead of timed
    (inputs too large, or the op failed on zeros)."""
    out: dict[str, float] = {}
    modelled = 0
    for n in graph.nodes:
        if n.name not in names or n.op != "call_function":
            continue
        vals = fx.map_arg((n.args, n.kwargs), lambda a: a.meta.get("val"))
        size = _node_bytes(n)
        seconds = None
        if size <= MAX_BYTES:
            args, kwargs = _zeros(vals[0]), {k: _zeros(v) for k, v in vals[1].items()}
            try:
                with torch.no_grad():
                    best = float("inf")
                    for _ in range(2):
                        t = time.perf_counter()
                        n.target(*args, **kwargs)
                        best = min(best, time.perf_counter() - t)
                seconds = best
            except Exception:
                seconds = None
        if seconds is None:
            modelled += 1
            seconds = size / (HOST_GB_S * 1e9)
        out[n.name] = seconds
    return out, modelled
