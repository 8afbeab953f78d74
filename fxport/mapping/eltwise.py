"""Elementwise rules: unary math, binary arithmetic with tensors or scalars, comparisons, where."""

from __future__ import annotations

import torch

from fxport.mapping.checks import BASIC, dtypes, max_rank
from fxport.mapping.registry import rule

aten = torch.ops.aten


@rule(aten.add.Tensor, aten.add.Scalar, ttnn="ttnn.add", family="eltwise",
      checks=(*BASIC, dtypes(), max_rank()), conditions="float dtypes, rank <= 4, alpha folded into b")
def add(ctx, node, a, b, alpha=1):
    if alpha != 1:
        b = ctx.ops.multiply(ctx.tensor(b), alpha) if not isinstance(b, (int, float)) else b * alpha
    return ctx.ops.add(ctx.tensor(a), ctx.tensor(b), memory_config=ctx.memory_config)
