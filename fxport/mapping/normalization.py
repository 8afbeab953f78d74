"""Normalization: softmax, log_softmax, layer_norm, rms_norm, group_norm, batch_norm (eval)."""

from __future__ import annotations

import math
import operator

import torch
from torch import fx

from fxport.mapping.checks import BASIC, FLOAT_DTYPES, arg, dtypes, max_rank, meta, output
from fxport.mapping.registry import check, no_kernel, rule
from fxport.values import HostValue

aten = torch.ops.aten

TILE = 32


def used_outputs(node: fx.Node) -> set[int]:
    """Indices of a multi-output node's results that the graph reads (all when the tuple itself
    is used, e.g. returned)."""
    used: set[int] = set()
    for user in node.users:
        if user.op == "call_function" and user.target is operator.getitem:
            used.add(user.args[1])
        else:
            return set(range(len(node.meta.get("val", ()))))
    return used


@check("a floating-point result")
def float_result(node: fx.Node) -> str | None:
    out = output(node)
    if out is not None and out.dtype not in FLOAT_DTYPES:
        return f"result dtype {str(out.dtype).removeprefix('torch.')} unsupported (needs floating-point)"
    return None


@check("normalized over the last dim")
def last_dim_only(node: fx.Node) -> str | None:
    shape = list(meta(arg(node, 1, "normalized_shape")))
    if len(shape) != 1:
        return f"normalized_shape={shape} unsupported (TT-NN normalizes over the last dim only)"
    return None


# Rank > 4 inputs (video, window attention) fold their leading dims into rank 4 (`_folded`); TT-NN
# tensors go up to rank 8.
NORM_CHECKS = (*BASIC, dtypes(), max_rank(8), float_result)


def _folded(shape: tuple[int, ...], dim: int) -> tuple[tuple[int, ...], int]:
    """A rank-4 shape holding `shape` with `dim` kept whole, and `dim`'s index in it: the last
    dim stays last (with the one before it), another dim becomes dim 2 between the products of
    the dims before and after it. Normalizing over `dim` is the same in both shapes."""
    dim %= len(shape)
    if len(shape) <= 4:
        return shape, dim
    if dim == len(shape) - 1:
        return (1, math.prod(shape[:-2]), shape[-2], shape[-1]), 3
    return (1, math.prod(shape[:dim]), shape[dim], math.prod(shape[dim + 1 :])), 2


def _fold(ctx, x, shape4: tuple[int, ...]):
    xt = ctx.tensor(x)
    return xt if tuple(xt.shape) == shape4 else ctx.ops.reshape(xt, shape4)


def _unfold(ctx, y, shape: tuple[int, ...]):
    return y if tuple(y.shape) == shape else ctx.ops.reshape(y, shape)


# -- softmax -------------------------------------------------------------------------------------
# softmax.int's third argument is an output dtype, _softmax's half_to_float: float_result checks
# the result dtype for both, and the lowering ignores it.
@rule(
    aten.softmax.int, aten._softmax.default, ttnn="ttnn.softmax", fused=True, family="normalization", checks=NORM_CHECKS
)
def softmax(ctx, node, x, dim, *_):
    shape = tuple(x.shape)
    shape4, dim4 = _folded(shape, dim)
    y = ctx.ops.softmax(_fold(ctx, x, shape4), dim=dim4 if len(shape) > 4 else dim, memory_config=ctx.memory_config)
    return _unfold(ctx, y, shape)


@rule(
    aten.log_softmax.int,
    aten._log_softmax.default,
    ttnn="ttnn.moreh_logsoftmax",
    fused=True,
    family="normalization",
    checks=NORM_CHECKS,
)
def log_softmax(ctx, node, x, dim, *_):
    # One fused op (log of ttnn.softmax would turn underflowed probabilities into -inf);
    # moreh ops take a non-negative dim.
    shape = tuple(x.shape)
    shape4, dim4 = _folded(shape, dim)
    y = ctx.ops.moreh_logsoftmax(_fold(ctx, x, shape4), dim4, memory_config=ctx.memory_config)
    return _unfold(ctx, y, shape)


# -- layer_norm, rms_norm ------------------------------------------------------------------------
@rule(
    aten.layer_norm.default,
    ttnn="ttnn.layer_norm",
    fused=True,
    family="normalization",
    checks=(*NORM_CHECKS, last_dim_only),
)
def layer_norm(ctx, node, x, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    shape = tuple(x.shape)
    y = ctx.ops.layer_norm(
        _fold(ctx, x, _folded(shape, -1)[0]),
        weight=ctx.tensor(weight),
        bias=ctx.tensor(bias),
        epsilon=eps,
        memory_config=ctx.memory_config,
    )
    return _unfold(ctx, y, shape)


@rule(
    aten.native_layer_norm.default,
    ttnn="ttnn.layer_norm (+ ttnn.mean, ttnn.var for the stats)",
    family="normalization",
    checks=(*NORM_CHECKS, last_dim_only),
)
def native_layer_norm(ctx, node, x, normalized_shape, weight, bias, eps):
    shape = tuple(x.shape)
    xt = _fold(ctx, x, _folded(shape, -1)[0])
    out = ctx.ops.layer_norm(
        xt, weight=ctx.tensor(weight), bias=ctx.tensor(bias), epsilon=eps, memory_config=ctx.memory_config
    )
    mean = rstd = None
    used = used_outputs(node)
    stats = shape[:-1] + (1,)  # the statistics keep their captured shape
    if 1 in used:
        mean = _unfold(ctx, ctx.ops.mean(xt, dim=-1, keepdim=True, memory_config=ctx.memory_config), stats)
    if 2 in used:  # 1 / sqrt(biased variance + eps), as aten saves it for the backward pass
        var = ctx.ops.var(xt, dim=-1, keepdim=True, correction=False, memory_config=ctx.memory_config)
        rstd = _unfold(ctx, ctx.ops.rsqrt(ctx.ops.add(var, eps), memory_config=ctx.memory_config), stats)
    return _unfold(ctx, out, shape), mean, rstd


@rule(
    aten.rms_norm.default,
    ttnn="ttnn.rms_norm",
    fused=True,
    family="normalization",
    checks=(*NORM_CHECKS, last_dim_only),
)
def rms_norm(ctx, node, x, normalized_shape, weight=None, eps=None):
    if eps is None:  # aten's default: the machine epsilon of the input dtype
        eps = torch.finfo(meta(node.args[0]).dtype).eps
    shape = tuple(x.shape)
    y = ctx.ops.rms_norm(
        _fold(ctx, x, _folded(shape, -1)[0]), weight=ctx.tensor(weight), epsilon=eps, memory_config=ctx.memory_config
    )
    return _unfold(ctx, y, shape)


# -- group_norm ----------------------------------------------------------------------------------
@check(f"[N, C, L], [N, C, H, W] or [N, C, T, H, W] with C a multiple of {TILE} and of num_groups")
def _group_norm_shapes(node: fx.Node) -> str | None:
    x, groups = meta(node.args[0]), arg(node, 1, "num_groups")
    if x.dim() not in (3, 4, 5):
        return f"rank {x.dim()} unsupported (group_norm lowers [N, C, L], [N, C, H, W] and [N, C, T, H, W])"
    channels = x.shape[1]
    if channels % TILE:
        return f"C={channels} unsupported (ttnn.group_norm needs C a multiple of {TILE})"
    if channels % groups:
        return f"C={channels} not divisible by num_groups={groups}"
    return None


@rule(
    aten.group_norm.default,
    ttnn="ttnn.group_norm",
    fused=True,
    family="normalization",
    checks=(*NORM_CHECKS, _group_norm_shapes),
)
def group_norm(ctx, node, x, num_groups, weight=None, bias=None, eps=1e-5, cudnn_enabled=True):
    ttnn = ctx.ttnn
    from ttnn.operations.normalization import dram_group_norm_virtual_columns

    n, c, *spatial = x.shape
    hw, rank = math.prod(spatial), len(x.shape)
    # ttnn.group_norm groups the last dim of a channels-last [N, 1, H*W, C] tensor.
    with ctx.counting("layout"):
        xt = ctx.ops.permute(ctx.tensor(x), (0, *range(2, rank), 1), memory_config=ctx.memory_config)
        xt = ctx.ops.reshape(xt, (n, 1, hw, c))
    # The op picks its core grid this way when given none; mask and parameters are laid out per
    # virtual column of that grid.
    grid = ttnn.determine_expected_group_norm_dram_grid_size(
        device=ctx.device.device, num_channels=c, num_groups=num_groups, input_nhw=n * hw, num_batches=n
    )
    columns = dram_group_norm_virtual_columns(grid, c, num_groups)
    # The mask only steers the kernel (golden functions ignore it), so it goes to the device as is.
    ctx.count("to_device")
    mask = ttnn.to_device(
        ttnn.create_group_norm_input_mask(c, num_groups, columns, ctx.dtype),
        ctx.device.device,
        memory_config=ctx.memory_config,
    )

    def param(value):
        if value is None:
            return None
        packed = ttnn.create_group_norm_weight_bias_rm(ctx.weight(value).float(), c, columns)
        return ctx.ops.from_torch(
            packed,
            dtype=ctx.dtype,
            layout=ttnn.ROW_MAJOR_LAYOUT,
            device=ctx.device.device,
            memory_config=ctx.memory_config,
        )

    out = ctx.ops.group_norm(
        xt,
        num_groups=num_groups,
        epsilon=eps,
        input_mask=mask,
        weight=param(weight),
        bias=param(bias),
        memory_config=ctx.memory_config,
        inplace=False,
        output_layout=ttnn.TILE_LAYOUT,
    )
    with ctx.counting("layout"):
        out = ctx.ops.reshape(out, (n, *spatial, c))
        return ctx.ops.permute(out, (0, rank - 1, *range(1, rank - 1)), memory_config=ctx.memory_config)


# -- batch_norm (eval) ---------------------------------------------------------------------------
@rule(
    aten._native_batch_norm_legit_no_training.default,
    ttnn="ttnn.batch_norm",
    family="normalization",
    checks=NORM_CHECKS,
)
def batch_norm(ctx, node, x, weight, bias, running_mean, running_var, momentum, eps):
    """With running statistics; [N, C], [N, C, L] and [N, C, T, H, W] inputs are reshaped to rank 4."""
    shape = tuple(x.shape)
    channels = (1, shape[1], 1, 1)
    xt = ctx.tensor(x)
    if len(shape) < 4:  # ttnn.batch_norm takes rank 4 only: trailing unit dims keep the channel dim
        xt = ctx.ops.reshape(xt, shape + (1,) * (4 - len(shape)))
    elif len(shape) > 4:  # [N, C, T, H, W]: the dims after C fold into two, C stays dim 1
        xt = ctx.ops.reshape(xt, (shape[0], shape[1], math.prod(shape[2:-1]), shape[-1]))

    def param(value):  # ttnn wants per-channel tensors as [1, C, 1, 1]
        return None if value is None else ctx.ops.reshape(ctx.tensor(value), channels)

    out = ctx.ops.batch_norm(
        xt,
        running_mean=param(running_mean),
        running_var=param(running_var),
        weight=param(weight),
        bias=param(bias),
        eps=eps,
        training=False,
        memory_config=ctx.memory_config,
    )
    if len(shape) != 4:
        out = ctx.ops.reshape(out, shape)
    # Without training, aten's saved mean and inverse std are empty tensors.
    return out, HostValue(torch.empty(0)), HostValue(torch.empty(0))


no_kernel(
    aten._native_batch_norm_legit.no_stats,
    aten._native_batch_norm_legit.default,
    aten._native_batch_norm_legit_functional.default,
    limit="training-mode batch norm normalises with the batch's own statistics and updates "
    "running ones; ttnn.batch_norm normalises with given running statistics (eval). "
    "Weight standardisation (on parameters only) is a constant subgraph: fold it once "
    "at compile time",
)
