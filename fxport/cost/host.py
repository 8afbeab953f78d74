"""Host nodes of a verdict run (`--values none`) compute on meta tensors, so nothing was timed:
each is timed here on this CPU by running its aten op once on zero-filled inputs of the real
shapes and dtypes (zeros are valid indices for every index op). Fast best of two calls."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import fx

# Inputs larger than this are not materialised: the node is priced at HOST_GB_S instead.
MAX_BYTES = 1 << 30
HOST_GB_S = 5.0  # assumed host memory throughput of a streaming aten op (GB/s)


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


def time_host_nodes(graph: fx.Graph, names: set[str]) -> tuple[dict[str, float], int]:
    """Seconds per call of each named node, and how many were priced by bytes instead of timed
    (inputs too large, or the op failed on zeros)."""
    out: dict[str, float] = {}
    modelled = 0
    for n in graph.nodes:
        if n.name not in names or n.op != "call_function":
            continue
        vals = fx.map_arg((n.args, n.kwargs), lambda a: a.meta.get("val"))
        size = _nbytes(list(vals[0]) + list(vals[1].values())) + _nbytes(n.meta.get("val"))
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
