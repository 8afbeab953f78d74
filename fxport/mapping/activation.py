"""Activation rules: each aten activation is one TT-NN unary op with its parameters translated.

Dtype handling is the elementwise one (fxport.mapping.eltwise): bf16 compute, integers only
where TT-NN has an int32 kernel (relu).
"""

from __future__ import annotations

import torch
from torch import fx

from fxport.mapping.checks import arg, meta, param
from fxport.mapping.eltwise import CHECKS, device_operand, float_only, register_unary
from fxport.mapping.nhwc import pointwise
from fxport.mapping.registry import FusedActivation, check, rule

aten = torch.ops.aten

register_unary(
    {
        "relu": ((aten.relu.default,), True, {}),
        "relu6": ((aten.relu6.default,), False, {}),
        "selu": ((aten.selu.default,), False, {}),
    },
    family="activation",
)
# Composites core aten would split (silu -> sigmoid * x, ...) that TT-NN runs as one op.
register_unary(
    {
        "silu": ((aten.silu.default,), False, {}),
        "mish": ((aten.mish.default,), False, {}),
        "hardswish": ((aten.hardswish.default,), False, {}),
        "hardsigmoid": ((aten.hardsigmoid.default,), False, {}),
    },
    family="activation",
    fused=True,
)


def _input(ctx, node, x):
    return device_operand(ctx, x, meta(node.args[0]), "float")


def _activation(*targets, ttnn: str, checks=(), fused: bool = False):
    return rule(
        *targets,
        ttnn=ttnn,
        family="activation",
        checks=(*CHECKS, float_only(ttnn), *checks),
        fused=fused,
        nhwc=pointwise,
    )


# approximate "none" is GeluVariant.Accurate, "tanh" GeluVariant.Tanh.
@_activation(
    aten.gelu.default, ttnn="ttnn.gelu", fused=True, checks=(param(1, "approximate", ("none", "tanh"), default="none"),)
)
def gelu(ctx, node, x, approximate="none"):
    variant = ctx.ttnn.GeluVariant.Tanh if approximate == "tanh" else ctx.ttnn.GeluVariant.Accurate
    return ctx.ops.gelu(_input(ctx, node, x), variant=variant, memory_config=ctx.memory_config)


@_activation(aten.leaky_relu.default, ttnn="ttnn.leaky_relu")
def leaky_relu(ctx, node, x, negative_slope=0.01):
    return ctx.ops.leaky_relu(
        _input(ctx, node, x), negative_slope=float(negative_slope), memory_config=ctx.memory_config
    )


@_activation(
    aten.elu.default,
    ttnn="ttnn.elu / ttnn.selu",
    checks=(param(3, "input_scale", 1, default=1, why="no TT-NN op scales the negative branch's input"),),
)
def elu(ctx, node, x, alpha=1.0, scale=1.0, input_scale=1.0):
    # aten.elu = scale * (x if x > 0 else alpha * (exp(input_scale * x) - 1)); selu decomposes to
    # it, and ttnn.selu(scale, alpha) is exactly that function when input_scale == 1.
    x = _input(ctx, node, x)
    if scale != 1:
        return ctx.ops.selu(x, scale=float(scale), alpha=float(alpha), memory_config=ctx.memory_config)
    return ctx.ops.elu(x, alpha=float(alpha), memory_config=ctx.memory_config)


@_activation(aten.celu.default, ttnn="ttnn.celu")
def celu(ctx, node, x, alpha=1.0):
    return ctx.ops.celu(_input(ctx, node, x), alpha=float(alpha), memory_config=ctx.memory_config)


@_activation(aten.hardtanh.default, ttnn="ttnn.hardtanh")
def hardtanh(ctx, node, x, min_val=-1.0, max_val=1.0):
    return ctx.ops.hardtanh(
        _input(ctx, node, x), min_val=float(min_val), max_val=float(max_val), memory_config=ctx.memory_config
    )


@_activation(aten.softplus.default, ttnn="ttnn.softplus")
def softplus(ctx, node, x, beta=1.0, threshold=20.0):
    return ctx.ops.softplus(
        _input(ctx, node, x), beta=float(beta), threshold=float(threshold), memory_config=ctx.memory_config
    )


@_activation(aten.threshold.default, ttnn="ttnn.threshold")
def threshold(ctx, node, x, threshold, value):
    return ctx.ops.threshold(_input(ctx, node, x), float(threshold), float(value), memory_config=ctx.memory_config)


@_activation(aten.hardshrink.default, ttnn="ttnn.hardshrink")
def hardshrink(ctx, node, x, lambd=0.5):
    return ctx.ops.hardshrink(_input(ctx, node, x), lambd=float(lambd), memory_config=ctx.memory_config)


@_activation(aten.softshrink.default, ttnn="ttnn.softshrink")
def softshrink(ctx, node, x, lambd=0.5):
    return ctx.ops.softshrink(_input(ctx, node, x), lambd=float(lambd), memory_config=ctx.memory_config)


# -- fused into conv2d and linear -----------------------------------------------------------------
@check("hardtanh bounds (0, 6)")
def _hardtanh_is_relu6(node: fx.Node) -> str | None:
    bounds = (arg(node, 1, "min_val", -1.0), arg(node, 2, "max_val", 1.0))
    return None if bounds == (0.0, 6.0) else f"hardtanh{bounds} is not relu6"


@check("approximate='none'")
def _exact_gelu(node: fx.Node) -> str | None:
    approximate = arg(node, 1, "approximate", "none")
    return None if approximate == "none" else f"approximate={approximate!r} (TT-NN fuses the exact gelu)"


# The aten activations TT-NN can apply inside a conv2d or linear kernel, by TT-NN's name (a
# UnaryOpType); the conv2d and linear rules say which of them each takes.
_FUSABLE = {
    "relu": (FusedActivation(aten.relu.default, "relu"),),
    "relu6": (
        FusedActivation(aten.relu6.default, "relu6"),
        FusedActivation(aten.hardtanh.default, "relu6", _hardtanh_is_relu6),
    ),
    "silu": (FusedActivation(aten.silu.default, "silu"),),
    "sigmoid": (FusedActivation(aten.sigmoid.default, "sigmoid"),),
    "hardsigmoid": (FusedActivation(aten.hardsigmoid.default, "hardsigmoid"),),
    "tanh": (FusedActivation(aten.tanh.default, "tanh"),),
    "gelu": (FusedActivation(aten.gelu.default, "gelu", _exact_gelu),),
    "mish": (FusedActivation(aten.mish.default, "mish"),),
}


def fusable(*names: str) -> tuple[FusedActivation, ...]:
    return tuple(a for name in names for a in _FUSABLE[name])
