"""Matrix products: mm, bmm, matmul, mv, dot, linear, addmm, baddbmm."""

from __future__ import annotations

import math

import torch
from torch import fx

from fxport.mapping.activation import fusable
from fxport.mapping.checks import BASIC, dtypes, max_rank, meta, output
from fxport.mapping.fused_ops import ops as fxport_ops
from fxport.mapping.registry import Fusion, check, rule
from fxport.values import HostValue

aten = torch.ops.aten

# ttnn.matmul/linear fold every leading dim into the batch: ranks up to 6 validated on a mock n150
# (device and golden output shapes agree).
MATMUL_MAX_RANK = 6


@check("batch dims equal or all 1 on one side (all 1 on the first operand: DRAM only, ttnn's in0 reuse)")
def _batch_broadcast(node: fx.Node) -> str | None:
    """ttnn.matmul broadcasts a batch only when one side's batch dims are all 1 (and, for the first
    operand, only at equal ranks); mixed broadcasts ([2,1] x [1,3]) fail `a_shape[i] == b_shape[i]`."""
    a, b = meta(node.args[0]), meta(node.args[1])
    if a.dim() == 1 or b.dim() == 1:
        if a.dim() == 1 and b.dim() > 2:
            return (
                f"vector x rank-{b.dim()} matmul unsupported (ttnn.matmul: when in1 rank is "
                "greater than in0 rank its front dims must be 1)"
            )
        return None
    batch_a, batch_b = tuple(a.shape[:-2]), tuple(b.shape[:-2])
    if math.prod(batch_b) == 1 and b.dim() <= a.dim():  # a higher-rank b would add dims
        return None
    if a.dim() == b.dim() and (batch_a == batch_b or math.prod(batch_a) == 1):
        return None
    return (
        f"batch dims {list(batch_a)} x {list(batch_b)} unsupported (ttnn.matmul needs equal "
        "batch dims of equal rank, or one operand's batch dims all 1)"
    )


MATMUL_CHECKS = (*BASIC, dtypes(), max_rank(MATMUL_MAX_RANK))


@rule(
    aten.mm.default,
    aten.bmm.default,
    aten.matmul.default,
    aten.mv.default,
    aten.dot.default,
    ttnn="ttnn.matmul",
    family="matmul",
    checks=(*MATMUL_CHECKS, _batch_broadcast),
)
def matmul(ctx, node, a, b):
    return ctx.ops.matmul(ctx.tensor(a), ctx.tensor(b), memory_config=ctx.memory_config, **ctx.kernel_options("matmul"))


@check("an [out, in] weight")
def _matrix_weight(node: fx.Node) -> str | None:
    weight = meta(node.args[1])
    return None if weight.dim() == 2 else f"rank {weight.dim()} weight unsupported (needs [out, in])"


def linear_call(ctx, x, weight, bias=None, activation: str = ""):
    """ttnn.linear with TT-NN's fused `activation`. ttnn.linear wants the weight as [in, out]. Not
    through transpose_b: with a bias and an L1 operand, ttnn 0.81.1 then fails "Broadcast error:
    Invalid dimension" (dim_a == dim_b)."""
    if isinstance(weight, HostValue):  # a parameter: transposed on the host, before the upload
        dtype = ctx.weights_dtype if ctx.is_constant(weight) else None
        w = ctx.tensor(HostValue(weight.tensor.transpose(-2, -1)), dtype=dtype)
    else:
        w = ctx.ops.transpose(ctx.tensor(weight), -2, -1, memory_config=ctx.memory_config)
    extra = {"activation": activation} if activation else {}
    return ctx.ops.linear(
        ctx.tensor(x),
        w,
        bias=ctx.tensor(bias),
        memory_config=ctx.memory_config,
        **extra,
        **ctx.kernel_options("matmul"),
    )


# The activations ttnn.linear applies in its kernel (its `activation` argument), each checked on
# the mock device against its golden function (tests/test_passes.py); hardswish is not taken
# (softplus is, but capture decomposes it: it never reaches a graph whole).
LINEAR_ACTIVATIONS = fusable("relu", "relu6", "silu", "sigmoid", "hardsigmoid", "tanh", "gelu", "mish")


def _linear_fused(node: fx.Node, activation: str) -> tuple:
    bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
    return fxport_ops.linear.default, (node.args[0], node.args[1], bias, activation)


@rule(
    aten.linear.default,
    ttnn="ttnn.linear",
    fused=True,
    family="matmul",
    checks=(*MATMUL_CHECKS, _matrix_weight),
    fusion=Fusion(LINEAR_ACTIVATIONS, _linear_fused),
)
def linear(ctx, node, x, weight, bias=None):
    return linear_call(ctx, x, weight, bias)


@check("an addend of at most the product's rank")
def _addend_shape(node: fx.Node) -> str | None:
    addend, out = meta(node.args[0]), output(node)
    if addend.dim() > out.dim():
        return f"addend rank {addend.dim()} exceeds the product's rank {out.dim()}"
    return None


def _scaled(ctx, value, factor):
    return value if factor == 1 else ctx.ops.multiply(value, float(factor), memory_config=ctx.memory_config)


def _is_row(addend, out_shape) -> bool:
    return tuple(addend.shape) in ((out_shape[-1],), (1, out_shape[-1]))


@rule(
    aten.addmm.default,
    ttnn="ttnn.addmm / ttnn.linear / ttnn.matmul + ttnn.add",
    family="matmul",
    checks=(*BASIC, dtypes(), max_rank(2), _addend_shape),
)
def addmm(ctx, node, addend, mat1, mat2, *, beta=1, alpha=1):
    """An [M, N] addend uses ttnn.addmm, a row-vector bias ttnn.linear, other broadcasts matmul + add."""
    a, b, out_shape = ctx.tensor(mat1), ctx.tensor(mat2), tuple(output(node).shape)
    if tuple(addend.shape) == out_shape:
        return ctx.ops.addmm(
            ctx.tensor(addend),
            a,
            b,
            alpha=float(alpha),
            beta=float(beta),
            memory_config=ctx.memory_config,
            **ctx.kernel_options("matmul"),
        )
    if _is_row(addend, out_shape) and beta != 0:  # the linear layer: a bias broadcast over the rows
        bias = _scaled(ctx, ctx.tensor(addend), beta)
        return ctx.ops.linear(
            _scaled(ctx, a, alpha), b, bias=bias, memory_config=ctx.memory_config, **ctx.kernel_options("matmul")
        )
    product = ctx.ops.matmul(a, b, memory_config=ctx.memory_config, **ctx.kernel_options("matmul"))
    return _product_plus(ctx, product, addend, alpha, beta)


def _product_plus(ctx, product, addend, alpha, beta):
    """beta * addend + alpha * product, the addend broadcast by ttnn.add."""
    if beta == 0:  # aten ignores the addend entirely (even NaNs in it) when beta is 0
        return _scaled(ctx, product, alpha)
    return ctx.ops.add(
        _scaled(ctx, product, alpha), _scaled(ctx, ctx.tensor(addend), beta), memory_config=ctx.memory_config
    )


@rule(
    aten.baddbmm.default,
    ttnn="ttnn.matmul + ttnn.add",
    family="matmul",
    checks=(*BASIC, dtypes(), max_rank(3), _addend_shape),
)
def baddbmm(ctx, node, addend, batch1, batch2, *, beta=1, alpha=1):
    product = ctx.ops.matmul(
        ctx.tensor(batch1), ctx.tensor(batch2), memory_config=ctx.memory_config, **ctx.kernel_options("matmul")
    )
    return _product_plus(ctx, product, addend, alpha, beta)
