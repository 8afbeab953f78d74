"""Embedding lookup."""

from __future__ import annotations

import torch
from torch import fx

from fxport.mapping.checks import BASIC, FLOAT_DTYPES, INT_DTYPES, meta
from fxport.mapping.registry import check, rule

aten = torch.ops.aten


@check("a float [num, dim] weight and integer indices of rank 1 or 2")
def _embedding_inputs(node: fx.Node) -> str | None:
    weight, indices = meta(node.args[0]), meta(node.args[1])
    if weight.dim() != 2 or weight.dtype not in FLOAT_DTYPES:
        return f"weight {list(weight.shape)} {weight.dtype} unsupported (needs a float [num, dim] table)"
    if indices.dtype not in INT_DTYPES:
        return f"indices dtype {str(indices.dtype).removeprefix('torch.')} unsupported (needs integers)"
    if not 1 <= indices.dim() <= 2:
        # measured: [2, 3, 7] indices give a [2, 7, dim] result instead of [2, 3, 7, dim], and a
        # scalar index fails "ShapeBase[] index out of range"
        return f"rank {indices.dim()} indices unsupported (ttnn.embedding takes [seq] or [batch, seq])"
    return None


@rule(aten.embedding.default, ttnn="ttnn.embedding", family="embedding", checks=(*BASIC, _embedding_inputs))
def embedding(ctx, node, weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    # padding_idx only affects gradients in aten (the forward looks that row up like any other),
    # so it is not passed on to ttnn.embedding.
    # The op wants uint32 indices and a bf16 table, both ROW_MAJOR; the result is tiled for the
    # ops that follow.
    return ctx.ops.embedding(
        ctx.tensor(indices, layout="row_major", dtype=ctx.ttnn.uint32),
        ctx.tensor(weight, layout="row_major"),
        layout=ctx.ttnn.TILE_LAYOUT,
        memory_config=ctx.memory_config,
    )
