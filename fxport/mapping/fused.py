"""Rules for fxport's own ops (`fused_ops`), which the graph passes put into captured graphs:
conv2d and linear with TT-NN's fused activation, conv and pooling on flattened NHWC activations,
and the conversions between that form and aten's NCHW.

The lowerings are those of the aten rules (`conv_pool`, `matmul`) minus the per-node layout
conversions: a flattened input goes to the kernel as it is, in whatever device layout (TILE or
ROW_MAJOR) its producer left it.
"""

from __future__ import annotations

import math

from torch import fx

from fxport.mapping.checks import BASIC, dtypes, meta, output
from fxport.mapping.conv_pool import (
    CONV_ACTIVATIONS,
    SPATIAL,
    _Conv,
    _conv_layout,
    _windows,
    adaptive_avg_pool_flat,
    avg_pool_flat,
    conv2d_flat,
    from_flat_nhwc,
    max_pool_flat,
    to_flat_nhwc,
    upsample_flat,
)
from fxport.mapping.data_movement import MOVE, dev
from fxport.mapping.fused_ops import nchw_shape, ops
from fxport.mapping.matmul import LINEAR_ACTIVATIONS, MATMUL_CHECKS, _matrix_weight, linear_call
from fxport.mapping.registry import Check, FusedActivation, Fusion, NhwcCall, check, rule
from fxport.values import HostValue

_NHWC = "flattened NHWC [1, 1, N*H*W, C] in and out"


def _shape(node: fx.Node) -> tuple[int, ...]:
    return tuple(output(node).shape)


def _flattened(index: int, optional: bool = False) -> Check:
    """The input is flattened NHWC for the N, H, W at argument `index` (NCHW when `optional` and
    that argument is empty)."""

    def test(node: fx.Node) -> str | None:
        nhw = node.args[index]
        if not nhw:
            return None if optional else "no N, H, W for the flattened input"
        shape = tuple(meta(node.args[0]).shape)
        if len(shape) != 4 or shape[:2] != (1, 1) or shape[2] != math.prod(nhw):
            return f"input {list(shape)} is not flattened NHWC for N, H, W = {list(nhw)}"
        return None

    return Check(("NCHW, or " if optional else "") + _NHWC, test)


def _activation_in(activations: tuple[FusedActivation, ...], index: int) -> Check:
    """The fused activation (argument `index`) is one the kernel takes, or none."""
    names = sorted({a.name for a in activations})

    def test(node: fx.Node) -> str | None:
        name = node.args[index]
        return None if not name or name in names else f"activation {name!r} is not fused by TT-NN here"

    return Check("fused activation none or one of " + ", ".join(names), test)


def _flat_input(ctx, x):
    """A flattened activation as the kernel's input: device values keep their layout; a host
    value moves ROW_MAJOR (a few channels would pad to 32 in TILE)."""
    return ctx.tensor(x, layout="row_major") if isinstance(x, HostValue) else dev(ctx, x)


# -- conv2d ----------------------------------------------------------------------------------------
def _conv_params(node: fx.Node) -> _Conv:
    x, weight = meta(node.args[0]), meta(node.args[1])
    stride, padding, dilation, groups, _, nhw = node.args[3:9]
    n, h, w = nhw if nhw else (x.shape[0], *x.shape[2:])
    c = x.shape[-1] if nhw else x.shape[1]
    return _Conv(
        n,
        c,
        h,
        w,
        weight.shape[0],
        tuple(weight.shape[2:]),
        tuple(stride),
        tuple(padding),
        tuple(dilation),
        groups,
        False,
    )


def _fused_conv_layout(record):
    """Flattened activations are already held as the kernel holds them; NCHW ones as aten conv's."""
    nhw = record.call["args"][8] if record.call else []
    inputs, outputs = _conv_layout(record)
    if not nhw:
        return inputs, outputs
    return [(tuple(record.inputs[0].shape), record.inputs[0].dtype), *inputs[1:]], [
        (tuple(o.shape), o.dtype) for o in record.outputs[:1]
    ]


def _add_activation(node: fx.Node, activation: str) -> tuple | None:
    """A conv already fused with nothing takes a following activation too."""
    if node.args[7]:
        return None
    return node.target, (*node.args[:7], activation, node.args[8])


def _conv_nhwc(node: fx.Node, flat) -> NhwcCall | None:
    if node.args[8]:
        return None  # already channels-last
    p = _conv_params(node)
    return NhwcCall(node.target, (flat(node.args[0]), *node.args[1:8], [p.n, p.h, p.w]), native=True)


@rule(
    ops.conv2d.default,
    ttnn="ttnn.conv2d",
    family="conv_pool",
    checks=(*BASIC, dtypes(), _activation_in(CONV_ACTIVATIONS, 7), _flattened(8, optional=True)),
    device_layout=_fused_conv_layout,
    fusion=Fusion(CONV_ACTIVATIONS, _add_activation),
    nhwc=_conv_nhwc,
)
def conv2d(ctx, node, x, weight, bias, stride, padding, dilation, groups, activation, nhw):
    p = _conv_params(node)
    flat = _flat_input(ctx, x) if nhw else to_flat_nhwc(ctx, x, p.n, p.c, p.h, p.w)
    y = conv2d_flat(ctx, flat, weight, bias, p, activation)
    if nhw:
        return y
    oh, ow = _shape(node)[-2:]
    return from_flat_nhwc(ctx, y, _shape(node), p.n, oh, ow, p.out_channels)


# -- linear ----------------------------------------------------------------------------------------
def _linear_activation(node: fx.Node, activation: str) -> tuple | None:
    return None if node.args[3] else (node.target, (*node.args[:3], activation))


@rule(
    ops.linear.default,
    ttnn="ttnn.linear",
    family="matmul",
    checks=(*MATMUL_CHECKS, _matrix_weight, _activation_in(LINEAR_ACTIVATIONS, 3)),
    fusion=Fusion(LINEAR_ACTIVATIONS, _linear_activation),
)
def linear(ctx, node, x, weight, bias, activation):
    return linear_call(ctx, x, weight, bias, activation)


# -- pooling and upsampling on flattened NHWC --------------------------------------------------------
@rule(ops.max_pool2d.default, ttnn="ttnn.max_pool2d", family="conv_pool", checks=(*SPATIAL, _flattened(1)))
def max_pool2d(ctx, node, x, nhw, kernel_size, stride, padding, dilation, ceil_mode):
    return max_pool_flat(ctx, _flat_input(ctx, x), *nhw, x.shape[-1], kernel_size, stride, padding, dilation, ceil_mode)


@rule(ops.avg_pool2d.default, ttnn="ttnn.avg_pool2d", family="conv_pool", checks=(*SPATIAL, _flattened(1)))
def avg_pool2d(ctx, node, x, nhw, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    return avg_pool_flat(
        ctx,
        _flat_input(ctx, x),
        *nhw,
        x.shape[-1],
        kernel_size,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    )


@check("adaptive windows of one size and stride")
def _uniform(node: fx.Node) -> str | None:
    (_, h, w), (oh, ow) = node.args[1], node.args[2]
    return None if _windows(h, oh) and _windows(w, ow) else f"{h}x{w} -> {oh}x{ow} has windows of varying size"


@rule(
    ops.adaptive_avg_pool2d.default,
    ttnn="ttnn.global_avg_pool2d | ttnn.adaptive_avg_pool2d",
    family="conv_pool",
    checks=(*SPATIAL, _flattened(1), _uniform),
)
def adaptive_avg_pool2d(ctx, node, x, nhw, output_size):
    return adaptive_avg_pool_flat(ctx, _flat_input(ctx, x), *nhw, x.shape[-1], *output_size)


@rule(ops.upsample_nearest2d.default, ttnn="ttnn.upsample", family="conv_pool", checks=(*SPATIAL, _flattened(1)))
def upsample_nearest2d(ctx, node, x, nhw, scale):
    return upsample_flat(ctx, _flat_input(ctx, x), *nhw, tuple(scale))


# -- layout conversions ----------------------------------------------------------------------------
@check("NCHW images (rank <= 4)")
def _image(node: fx.Node) -> str | None:
    shape = meta(node.args[0]).shape
    return None if len(shape) <= 4 else f"rank {len(shape)} input (NCHW images, rank <= 4)"


@rule(ops.to_nhwc.default, ttnn="ttnn.permute + ttnn.reshape", family="data_movement", checks=(*MOVE, _image))
def to_nhwc(ctx, node, x):
    n, c, h, w = nchw_shape(meta(node.args[0]).shape)
    if isinstance(x, HostValue):  # rearranged on the host, then moved
        return to_flat_nhwc(ctx, x, n, c, h, w)
    if h * w == 1 or c == 1:  # the same element order in both layouts
        with ctx.counting("layout"):
            return ctx.ops.reshape(x, _shape(node))
    layout = "tile" if x.tt.layout == ctx.ttnn.TILE_LAYOUT else "row_major"
    return to_flat_nhwc(ctx, x, n, c, h, w, layout=layout)


@rule(ops.to_nchw.default, ttnn="ttnn.reshape + ttnn.permute", family="data_movement", checks=(*MOVE, _flattened(1)))
def to_nchw(ctx, node, x, nhw):
    n, h, w = nhw
    return from_flat_nhwc(ctx, dev(ctx, x), _shape(node), n, h, w, x.shape[-1])
