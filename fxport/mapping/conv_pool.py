"""Convolution, pooling, upsampling and padding rules.

TT-NN convolution and pooling work channels-last on a flattened [1, 1, N*H*W, C] tensor, so each
lowering permutes NCHW to that form, runs the op and permutes the [1, 1, N*OH*OW, C] result back.
Unbatched inputs (C, H, W) run as N=1, and conv1d runs as conv2d with H=1.

ttnn.conv2d, max_pool2d, avg_pool2d, adaptive_avg/max_pool2d and bilinear upsample allocate halo
buffers in the L1_SMALL region, which exists only if the device was opened with `l1_small_size`
(a device opened with defaults fails them with an L1_SMALL out-of-memory).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
from torch import fx

from fxport.mapping.activation import fusable
from fxport.mapping.checks import BASIC, arg, dtypes, meta, output
from fxport.mapping.data_movement import ANY_DTYPES, dev
from fxport.mapping.fused_ops import ops as fxport_ops
from fxport.mapping.registry import Fusion, NhwcCall, check, no_kernel, rule
from fxport.values import HostValue, TTValue

aten = torch.ops.aten
TILE = 32

no_kernel(
    aten.max_pool3d_with_indices.default,
    aten.avg_pool3d.default,
    aten.adaptive_avg_pool3d.default,
    aten._adaptive_avg_pool3d.default,
    aten.adaptive_max_pool3d.default,
    limit="TT-NN 0.81.1 has no 3-D pooling kernel (max_pool2d, avg_pool2d and adaptive_*_pool2d are 2-D)",
    absent=tuple(
        f"{ns}{op}_pool3d" for ns in ("", "experimental.") for op in ("max", "avg", "adaptive_avg", "adaptive_max")
    ),
)


def _pair(value, default: tuple[int, int] | None = None) -> tuple[int, int]:
    """A 2-D size argument as (h, w): an int, [v], [h, w], or [] (meaning `default`)."""
    if isinstance(value, int):
        return value, value
    value = list(value)
    if not value:
        return default
    return (value[0], value[0]) if len(value) == 1 else (value[0], value[1])


def _out_shape(node: fx.Node) -> tuple[int, ...]:
    return tuple(output(node).shape)


def to_flat_nhwc(ctx, x, n: int, c: int, h: int, w: int, layout: str = "row_major"):
    """NCHW (or unbatched CHW) -> [1, 1, N*H*W, C], the input form of TT-NN conv and pool ops.
    Counted as layout conversions; a host value is permuted on the host before it moves."""
    with ctx.counting("layout"):
        if isinstance(x, HostValue):
            flat = ctx.derive(x, lambda t: t.reshape(n, c, h, w).permute(0, 2, 3, 1).reshape(1, 1, n * h * w, c))
            return ctx.tensor(flat, layout=layout)
        x = ctx.tensor(x, layout=layout)
        if x.shape != (n, c, h, w):
            x = ctx.ops.reshape(x, (n, c, h, w))
        x = ctx.ops.permute(x, (0, 2, 3, 1), memory_config=ctx.memory_config)
        return ctx.ops.reshape(x, (1, 1, n * h * w, c))


def from_flat_nhwc(ctx, y, shape: tuple[int, ...], n: int, oh: int, ow: int, c: int):
    """[1, 1, N*OH*OW, C] -> `shape`: NCHW, unbatched CHW, or conv1d's N, C, L. Counted as layout
    conversions; when OH*OW or C is 1 the two layouts hold the same order and a reshape does."""
    with ctx.counting("layout"):
        if oh * ow > 1 and c > 1:
            y = ctx.ops.reshape(y, (n, oh, ow, c))
            y = ctx.ops.permute(y, (0, 3, 1, 2), memory_config=ctx.memory_config)
        return y if y.shape == shape else ctx.ops.reshape(y, shape)


def _nchw(node: fx.Node) -> tuple[int, int, int, int]:
    shape = tuple(meta(node.args[0]).shape)
    return shape if len(shape) == 4 else (1, *shape)


# -- convolution ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Conv:
    """A conv1d/conv2d/convolution node as a 2-D convolution (conv1d: H = 1)."""

    n: int
    c: int
    h: int
    w: int
    out_channels: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, bottom, left, right
    dilation: tuple[int, int]
    groups: int
    transposed: bool

    @classmethod
    def of(cls, node: fx.Node) -> _Conv:
        x, weight = meta(node.args[0]), meta(node.args[1])
        one_d = weight.dim() == 3
        if node.target == aten.convolution.default:
            stride, padding, dilation, transposed, _, groups = node.args[3:9]
        else:
            stride = arg(node, 3, "stride", [1])
            padding = arg(node, 4, "padding", [0])
            dilation = arg(node, 5, "dilation", [1])
            groups, transposed = arg(node, 6, "groups", 1), False

        def lift(value, unit: int) -> tuple[int, int]:  # conv1d runs on the W axis, H = 1
            return (unit, _pair(value)[0]) if one_d else _pair(value)

        kernel = (1, weight.shape[2]) if one_d else tuple(weight.shape[2:])
        stride, dilation = lift(stride, 1), lift(dilation, 1)
        if isinstance(padding, str):  # "valid", or "same" (torch puts the odd extra pixel last)
            total = [0, 0] if padding == "valid" else [d * (k - 1) for d, k in zip(dilation, kernel)]
            pad = (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
        else:
            ph, pw = lift(padding, 0)
            pad = (ph, ph, pw, pw)
        spatial = (1, *x.shape[-1:]) if one_d else tuple(x.shape[-2:])
        n = x.shape[0] if x.dim() == weight.dim() else 1
        return cls(
            n,
            x.shape[-weight.dim() + 1],
            *spatial,
            weight.shape[0],
            kernel,
            stride,
            pad,
            dilation,
            groups,
            bool(transposed),
        )


_CONVS = (aten.conv2d.default, aten.conv2d.padding, aten.conv1d.default, aten.conv1d.padding, aten.convolution.default)


@check("1-D or 2-D, not transposed")
def _conv_supported(node: fx.Node) -> str | None:
    weight = meta(node.args[1])
    if weight.dim() not in (3, 4):
        return (
            f"{weight.dim() - 2}-D aten.convolution: ttnn.conv2d is 2-D (3-D convolutions lower as "
            "aten.conv3d, which capture keeps whole, through ttnn.experimental.conv3d)"
        )
    if _Conv.of(node).transposed:
        return (
            "transposed aten.convolution: ttnn.conv2d does not transpose (2-D transposed convolutions "
            "lower as aten.conv_transpose2d, which capture keeps whole, through ttnn.conv_transpose2d)"
        )
    return None


def _host_weight(ctx, value, shape: tuple[int, ...]):
    """A conv weight or bias as a host-side ttnn tensor (ttnn.conv2d prepares its own device copy)."""
    return ctx.host_weight(ctx.weight(value).reshape(shape))


def _nhwc_flat(spec) -> tuple[tuple[int, ...], str]:
    """NCHW (or NCL) activations as TT-NN's conv/pool kernels hold them: [1, 1, N*H*W, C]."""
    shape = tuple(spec.shape)
    n, c, spatial = shape[0], shape[1], shape[2:]
    return (1, 1, n * math.prod(spatial), c), spec.dtype


def _conv_layout(record):
    """For the memory model: flattened NHWC activations, and the weight as conv2d prepares it
    (one [C_in*kh*kw, C_out] matrix); the bias is a [1, 1, 1, C_out] row."""
    x, w, *rest = record.inputs
    out, i, *kernel = w.shape
    weight = ((1, 1, i * math.prod(kernel), out), w.dtype)
    bias = [((1, 1, 1, out), b.dtype) for b in rest[:1]]
    return [_nhwc_flat(x), weight, *bias], [_nhwc_flat(o) for o in record.outputs[:1]]


def _spatial_layout(record):
    """Pooling and upsampling run on flattened NHWC activations."""
    return (
        [_nhwc_flat(s) for s in record.inputs[:1]],
        [_nhwc_flat(s) for s in record.outputs[:1] if len(s.shape) >= 3],
    )


def _in_l1(ctx, value) -> bool:
    tt = getattr(value, "tt", None)
    return tt is not None and tt.is_allocated() and tt.memory_config().buffer_type == ctx.ttnn.BufferType.L1


def conv2d_flat(ctx, flat, weight, bias, p: _Conv, activation: str = ""):
    """ttnn.conv2d on a flattened NHWC input, returning [1, 1, N*OH*OW, C_out]; TT-NN applies
    `activation` inside the kernel. A constant weight (a model parameter) is prepared on the device
    by its first call and reused by every later one, as deployed TT-NN models do."""
    ttnn = ctx.ttnn
    kh, kw = p.kernel
    constant = ctx.is_constant(weight) and (bias is None or ctx.is_constant(bias))
    key = ("conv2d", p, ctx.weights, bias is not None and ctx.constants.key(bias.tensor))
    prepared = ctx.prepared(weight, key) if constant else None
    if prepared is None:
        with ctx.counting("weights" if constant else "transfer"):
            w = _host_weight(ctx, weight, (p.out_channels, p.c // p.groups, kh, kw))
            b = None if bias is None else _host_weight(ctx, bias, (1, 1, 1, p.out_channels))
        if ctx.weights_dtype != ctx.dtype:
            w, b = _quantized(ctx, w), b and _quantized(ctx, b)
    else:
        w, b = prepared
    config = {}
    if activation:
        config["activation"] = ttnn.UnaryWithParam(getattr(ttnn.UnaryOpType, activation.upper()))
    if ctx.weights_dtype != ctx.dtype:
        config["weights_dtype"] = ctx.weights_dtype
    top, bottom, left, right = p.padding
    padding = (top, left) if (top, left) == (bottom, right) else p.padding
    if ctx.slice_config is not None and _in_l1(ctx, flat):
        # TT-NN's DRAM slicing reads its input from DRAM; an input kept in L1 (channels-last
        # chains of the layout pass hand it over without a copy) moves there first.
        with ctx.counting("layout"):
            flat = ctx.ops.to_memory_config(flat, ttnn.DRAM_MEMORY_CONFIG)
    y, (w_dev, b_dev) = ctx.ops.conv2d(
        input_tensor=flat,
        weight_tensor=w,
        bias_tensor=b,
        device=ctx.device.device,
        in_channels=p.c,
        out_channels=p.out_channels,
        batch_size=p.n,
        input_height=p.h,
        input_width=p.w,
        kernel_size=p.kernel,
        stride=p.stride,
        padding=padding,
        dilation=p.dilation,
        groups=p.groups,
        conv_config=ttnn.Conv2dConfig(**config) if config else None,
        memory_config=ctx.memory_config,
        slice_config=ctx.slice_config,
        return_weights_and_bias=True,
        **ctx.kernel_options("conv2d"),
    )
    if constant and prepared is None:  # the device copies keep the host weights' values (goldens read them)
        # in fp32 (exact: bf16 or block-float values), so that no call's golden converts them again
        ctx.keep_prepared(weight, key, (TTValue(w_dev.tt, _fp32(w.golden)), b and TTValue(b_dev.tt, _fp32(b.golden))))
    return y


def _fp32(golden):
    return golden.float() if golden is not None else None


def _quantized(ctx, value: TTValue) -> TTValue:
    """A conv weight or bias prepared in a block-float dtype (`--weights bfloat8_b`): its emulated
    values are packed by ttnn's host code in the matrix layout conv2d prepares ([C_in*kh*kw,
    C_out], exponents shared along C_out), so that they carry the device's quantization."""
    golden = value.golden
    if golden is None:
        return value
    matrix = golden.reshape(golden.shape[0], -1).t() if golden.dim() == 4 else golden.reshape(1, -1)
    packed = ctx.ttnn.Tensor(
        tensor=matrix.float().contiguous(), data_type=ctx.weights_dtype, layout=ctx.ttnn.TILE_LAYOUT
    ).to_torch()
    return TTValue(value.tt, (packed.t() if golden.dim() == 4 else packed).reshape(golden.shape))


def _conv_form(node: fx.Node, activation: str, nhw: list[int]) -> tuple:
    p = _Conv.of(node)
    bias = node.args[2] if len(node.args) > 2 else node.kwargs.get("bias")
    return fxport_ops.conv2d.default, (
        node.args[0],
        node.args[1],
        bias,
        list(p.stride),
        list(p.padding),
        list(p.dilation),
        p.groups,
        activation,
        nhw,
    )


def _conv2d_fused(node: fx.Node, activation: str) -> tuple | None:
    if meta(node.args[1]).dim() != 4 or meta(node.args[0]).dim() != 4 or _conv_supported(node):
        return None  # conv1d and unbatched inputs keep their aten form
    return _conv_form(node, activation, [])


def _conv2d_nhwc(node: fx.Node, flat) -> NhwcCall | None:
    if meta(node.args[1]).dim() != 4 or meta(node.args[0]).dim() != 4 or _conv_supported(node):
        return None
    p = _Conv.of(node)
    target, args = _conv_form(node, "", [p.n, p.h, p.w])
    return NhwcCall(target, (flat(node.args[0]), *args[1:]), native=True)


# The activations ttnn.conv2d applies in its kernel (Conv2dConfig.activation), each checked on the
# mock device against its golden function (tests/test_passes.py); hardswish, mish, softplus,
# leaky_relu and elu are not taken (TT_THROW, or no golden function).
CONV_ACTIVATIONS = fusable("relu", "relu6", "silu", "sigmoid", "hardsigmoid", "tanh", "gelu")


@rule(
    *_CONVS,
    ttnn="ttnn.conv2d",
    fused=True,
    family="conv_pool",
    checks=(*BASIC, dtypes(), _conv_supported),
    device_layout=_conv_layout,
    fusion=Fusion(CONV_ACTIVATIONS, _conv2d_fused),
    nhwc=_conv2d_nhwc,
)
def conv(ctx, node, x, weight, bias=None, *_, **__):
    p = _Conv.of(node)
    y = conv2d_flat(ctx, to_flat_nhwc(ctx, x, p.n, p.c, p.h, p.w), weight, bias, p)
    out = _out_shape(node)
    oh, ow = (1, out[-1]) if meta(node.args[1]).dim() == 3 else out[-2:]  # conv1d: H = 1
    return from_flat_nhwc(ctx, y, out, p.n, oh, ow, p.out_channels)


# -- transposed 2-D convolution ------------------------------------------------------------------
def _transposed_args(node: fx.Node) -> tuple:
    """(stride, padding, output_padding, groups, dilation) of an aten.conv_transpose2d node."""
    return (
        _pair(arg(node, 3, "stride", 1)),
        _pair(arg(node, 4, "padding", 0)),
        _pair(arg(node, 5, "output_padding", 0)),
        arg(node, 6, "groups", 1),
        _pair(arg(node, 7, "dilation", 1)),
    )


@check("4-D input, output_padding smaller than stride or dilation")
def _transposed_supported(node: fx.Node) -> str | None:
    if meta(node.args[0]).dim() != 4:
        return "unbatched input: ttnn.conv_transpose2d takes a batch (N, H, W, C)"
    stride, _, output_padding, _, dilation = _transposed_args(node)
    if any(o >= max(s, d) for o, s, d in zip(output_padding, stride, dilation)):
        return f"output_padding {list(output_padding)} not smaller than stride or dilation (torch refuses it too)"
    return None


def _transposed_layout(record):
    """Flattened NHWC activations; the weight as a [C_in*kh*kw, C_out/groups] matrix (ttnn prepares
    it in that form on the device); the bias a [1, 1, 1, C_out] row."""
    x, w, *rest = record.inputs
    i, out, *kernel = w.shape
    weight = ((1, 1, i * math.prod(kernel), out), w.dtype)
    bias = [((1, 1, 1, b.shape[0]), b.dtype) for b in rest[:1] if b is not None]
    return [_nhwc_flat(x), weight, *bias], [_nhwc_flat(o) for o in record.outputs[:1]]


@rule(
    aten.conv_transpose2d.input,
    ttnn="ttnn.conv_transpose2d",
    fused=True,
    family="conv_pool",
    checks=(*BASIC, dtypes(), _transposed_supported),
    device_layout=_transposed_layout,
)
def conv_transpose2d(ctx, node, x, weight, bias=None, *_, **__):
    stride, padding, output_padding, groups, dilation = _transposed_args(node)
    n, c, h, w = meta(node.args[0]).shape
    out = _out_shape(node)
    with ctx.counting("weights" if ctx.is_constant(weight) else "transfer"):
        w_host = _host_weight(ctx, weight, tuple(meta(node.args[1]).shape))
        b_host = None if bias is None else _host_weight(ctx, bias, (1, 1, 1, out[1]))
    y = ctx.ops.conv_transpose2d(
        input_tensor=to_flat_nhwc(ctx, x, n, c, h, w),
        weight_tensor=w_host,
        bias_tensor=b_host,
        device=ctx.device.device,
        in_channels=c,
        out_channels=out[1],
        batch_size=n,
        input_height=h,
        input_width=w,
        kernel_size=tuple(meta(node.args[1]).shape[2:]),
        stride=stride,
        padding=padding,
        output_padding=output_padding,
        dilation=dilation,
        groups=groups,
        memory_config=ctx.memory_config,
    )
    return from_flat_nhwc(ctx, y, out, n, out[2], out[3], out[1])


# -- 3-D convolution -----------------------------------------------------------------------------
def _triple(value, default: int) -> tuple[int, int, int]:
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    values = values or [default]
    return tuple(values * 3)[:3] if len(values) == 1 else tuple(values)


def _conv3d_args(node: fx.Node) -> tuple:
    """(stride, padding, dilation, groups) of an aten.conv3d node."""
    return (
        _triple(arg(node, 3, "stride", 1), 1),
        _triple(arg(node, 4, "padding", 0), 0),
        _triple(arg(node, 5, "dilation", 1), 1),
        arg(node, 6, "groups", 1),
    )


@check("5-D input, numeric padding, no dilation, no groups")
def _conv3d_supported(node: fx.Node) -> str | None:
    if meta(node.args[0]).dim() != 5:
        return "unbatched input: ttnn.experimental.conv3d takes a batch (N, D, H, W, C)"
    _stride, _padding, dilation, groups = _conv3d_args(node)
    if isinstance(arg(node, 4, "padding", 0), str):
        return "string padding ('same'): ttnn.experimental.conv3d takes numbers"
    if dilation != (1, 1, 1):
        return f"dilation {list(dilation)}: ttnn.experimental.conv3d supports dilation 1 only"
    if groups != 1:
        return f"groups={groups}: ttnn.experimental.conv3d lowers ungrouped 3-D convolutions here"
    return None


def _conv3d_layout(record):
    """Channels-last activations ([N, D, H, W, C], row major); the weight as conv3d prepares it,
    one [kD*kH*kW*C_in, C_out] matrix; the bias a [1, 1, 1, 32, C_out] block."""
    x, w, *rest = record.inputs
    out, i, *kernel = w.shape
    last = lambda s: ((s.shape[0], *s.shape[2:], s.shape[1]), s.dtype)
    bias = [((1, 1, 1, 32, out), b.dtype) for b in rest[:1] if b is not None]
    return [last(x), ((1, 1, i * math.prod(kernel), out), w.dtype), *bias], [last(o) for o in record.outputs[:1]]


@rule(
    aten.conv3d.default,
    ttnn="ttnn.experimental.conv3d",
    fused=True,
    family="conv_pool",
    checks=(*BASIC, dtypes(), _conv3d_supported),
    device_layout=_conv3d_layout,
)
def conv3d(ctx, node, x, weight, bias=None, *_, **__):
    stride, padding, dilation, groups = _conv3d_args(node)
    ttnn = ctx.ttnn
    shape = tuple(meta(node.args[1]).shape)
    out = _out_shape(node)
    # The kernel reads C_in in blocks (C_in_block) that are multiples of 16 and divide it: fewer
    # channels (an RGB stem) are padded with zeros, in the input and in the weight.
    c = shape[1]
    c_pad = -(-c // 16) * 16
    with ctx.counting("layout"):
        x = ctx.tensor(x, layout="row_major")
        x = ctx.ops.permute(x, (0, 2, 3, 4, 1), memory_config=ctx.memory_config)
        if c_pad != c:
            x = ctx.ops.pad(x, [(0, 0)] * 4 + [(0, c_pad - c)], 0.0)
    with ctx.counting("weights" if ctx.is_constant(weight) else "transfer"):
        # [kD*kH*kW*C_in, C_out], rows in (kD, kH, kW, C_in) order: the patch the kernel reads
        w = torch.nn.functional.pad(ctx.weight(weight), (0, 0, 0, 0, 0, 0, 0, c_pad - c))
        w_host = ctx.tensor(HostValue(w.permute(2, 3, 4, 1, 0).reshape(-1, shape[0]).contiguous()))
        b_host = None
        if bias is not None:
            b_host = ctx.tensor(HostValue(ctx.weight(bias).reshape(1, -1).expand(32, -1).contiguous()))
    y = getattr(ctx.ops, "experimental.conv3d")(
        input_tensor=x,
        weight_tensor=w_host,
        bias_tensor=b_host,
        device=ctx.device.device,
        dtype=ctx.dtype,
        output_channels=out[1],
        kernel_size=list(shape[2:]),
        stride=list(stride),
        padding=list(padding),
        dilation=list(dilation),
        groups=groups,
        memory_config=ctx.memory_config,
        config=ttnn.Conv3dConfig(
            weights_dtype=ctx.dtype,
            output_layout=ttnn.ROW_MAJOR_LAYOUT,
            C_in_block=32 if c_pad % 32 == 0 else 16,
            # the config's default grid is one core, too few for C_in / 32 blocks
            compute_with_storage_grid_size=ctx.device.device.compute_with_storage_grid_size(),
        ),
    )
    with ctx.counting("layout"):
        return ctx.ops.permute(y, (0, 4, 1, 2, 3), memory_config=ctx.memory_config)


# -- pooling -------------------------------------------------------------------------------------
@check("the indices output unused")
def _indices_unused(node: fx.Node) -> str | None:
    """Max pools that also return argmax indices lower when nothing reads the indices."""
    if not isinstance(node.meta.get("val"), (tuple, list)):
        return None
    if all(u.target is operator.getitem and u.args[1] == 0 for u in node.users):
        return None
    return "the indices output is used (TT-NN max pool indices are not mapped)"


# Pooling and upsampling: float activations of a (batched or unbatched) image.
SPATIAL = (*BASIC, dtypes())


def max_pool_flat(ctx, flat, n: int, h: int, w: int, c: int, kernel, stride, padding, dilation, ceil_mode: bool):
    return ctx.ops.max_pool2d(
        flat,
        n,
        h,
        w,
        c,
        list(kernel),
        list(stride),
        list(padding),
        list(dilation),
        ceil_mode,
        memory_config=ctx.memory_config,
    )


def avg_pool_flat(
    ctx,
    flat,
    n: int,
    h: int,
    w: int,
    c: int,
    kernel,
    stride,
    padding,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override,
):
    return ctx.ops.avg_pool2d(
        flat,
        n,
        h,
        w,
        c,
        list(kernel),
        list(stride),
        list(padding),
        ceil_mode,
        count_include_pad,
        divisor_override,
        memory_config=ctx.memory_config,
    )


def _pool_args(node: fx.Node) -> tuple:
    """max/avg pool's (kernel, stride, padding) as pairs: torch's stride defaults to the kernel."""
    kernel = _pair(arg(node, 1, "kernel_size"))
    return kernel, _pair(arg(node, 2, "stride", ()), kernel), _pair(arg(node, 3, "padding", 0))


def _max_pool_nhwc(node: fx.Node, flat) -> NhwcCall | None:
    if node.target != aten.max_pool2d.default or meta(node.args[0]).dim() != 4:
        return None
    n, _c, h, w = _nchw(node)
    kernel, stride, padding = _pool_args(node)
    return NhwcCall(
        fxport_ops.max_pool2d.default,
        (
            flat(node.args[0]),
            [n, h, w],
            list(kernel),
            list(stride),
            list(padding),
            list(_pair(arg(node, 4, "dilation", 1))),
            bool(arg(node, 5, "ceil_mode", False)),
        ),
        native=True,
    )


@rule(
    aten.max_pool2d.default,
    aten.max_pool2d_with_indices.default,
    ttnn="ttnn.max_pool2d",
    fused=True,
    family="conv_pool",
    checks=(*SPATIAL, _indices_unused),
    device_layout=_spatial_layout,
    nhwc=_max_pool_nhwc,
)
def max_pool2d(ctx, node, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    n, c, h, w = _nchw(node)
    kernel = _pair(kernel_size)
    y = max_pool_flat(
        ctx,
        to_flat_nhwc(ctx, x, n, c, h, w),
        n,
        h,
        w,
        c,
        kernel,
        _pair(stride, kernel),
        _pair(padding),
        _pair(dilation),
        ceil_mode,
    )
    y = from_flat_nhwc(ctx, y, _out_shape(node), n, *_out_shape(node)[-2:], c)
    return (y, None) if node.target == aten.max_pool2d_with_indices.default else y


def _avg_pool_nhwc(node: fx.Node, flat) -> NhwcCall | None:
    if meta(node.args[0]).dim() != 4:
        return None
    n, _c, h, w = _nchw(node)
    kernel, stride, padding = _pool_args(node)
    return NhwcCall(
        fxport_ops.avg_pool2d.default,
        (
            flat(node.args[0]),
            [n, h, w],
            list(kernel),
            list(stride),
            list(padding),
            bool(arg(node, 4, "ceil_mode", False)),
            bool(arg(node, 5, "count_include_pad", True)),
            arg(node, 6, "divisor_override"),
        ),
        native=True,
    )


@rule(
    aten.avg_pool2d.default,
    ttnn="ttnn.avg_pool2d",
    fused=True,
    family="conv_pool",
    checks=SPATIAL,
    device_layout=_spatial_layout,
    nhwc=_avg_pool_nhwc,
)
def avg_pool2d(
    ctx, node, x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None
):
    n, c, h, w = _nchw(node)
    kernel = _pair(kernel_size)
    y = avg_pool_flat(
        ctx,
        to_flat_nhwc(ctx, x, n, c, h, w),
        n,
        h,
        w,
        c,
        kernel,
        _pair(stride, kernel),
        _pair(padding),
        ceil_mode,
        count_include_pad,
        divisor_override,
    )
    return from_flat_nhwc(ctx, y, _out_shape(node), n, *_out_shape(node)[-2:], c)


def _windows(size: int, out: int) -> tuple[int, int] | None:
    """(kernel, stride) when torch's adaptive windows [floor(i*size/out), ceil((i+1)*size/out))
    are one fixed-size window at a fixed stride, else None."""
    starts = [i * size // out for i in range(out)]
    ends = [-(-(i + 1) * size // out) for i in range(out)]
    kernel, stride = ends[0] - starts[0], (starts[1] - starts[0]) if out > 1 else 1
    uniform = all(e - s == kernel for s, e in zip(starts, ends)) and all(s == i * stride for i, s in enumerate(starts))
    return (kernel, stride) if uniform else None


@check("adaptive windows of one size and stride (any size to 1x1)")
def _uniform_windows(node: fx.Node) -> str | None:
    (_, _, h, w), (oh, ow) = _nchw(node), _out_shape(node)[-2:]
    if _windows(h, oh) and _windows(w, ow):
        return None
    return (
        f"{h}x{w} -> {oh}x{ow} needs windows of varying size or stride; TT-NN's adaptive pool "
        "uses one kernel and stride (and would silently differ)"
    )


def adaptive_avg_pool_flat(ctx, flat, n: int, h: int, w: int, c: int, oh: int, ow: int):
    """[1, 1, N*H*W, C] -> [1, 1, N*OH*OW, C]. A 1x1 output of one image is a single reduction
    over the rows (no halo, and no L1_SMALL, needed)."""
    if (oh, ow) == (1, 1) and n == 1:
        return ctx.ops.global_avg_pool2d(flat)
    return ctx.ops.adaptive_avg_pool2d(flat, n, h, w, c, [oh, ow], memory_config=ctx.memory_config)


def _adaptive_avg_nhwc(node: fx.Node, flat) -> NhwcCall | None:
    if meta(node.args[0]).dim() != 4 or _uniform_windows(node):
        return None
    n, _c, h, w = _nchw(node)
    return NhwcCall(
        fxport_ops.adaptive_avg_pool2d.default,
        (flat(node.args[0]), [n, h, w], list(_out_shape(node)[-2:])),
        native=True,
    )


@rule(
    aten.adaptive_avg_pool2d.default,
    aten._adaptive_avg_pool2d.default,
    fused=True,
    ttnn="ttnn.global_avg_pool2d | ttnn.adaptive_avg_pool2d",
    family="conv_pool",
    checks=(*SPATIAL, _uniform_windows),
    device_layout=_spatial_layout,
    nhwc=_adaptive_avg_nhwc,
)
def adaptive_avg_pool2d(ctx, node, x, output_size):
    n, c, h, w = _nchw(node)
    oh, ow = _out_shape(node)[-2:]
    if (oh, ow) == (1, 1):  # a single reduction, no halo (and no L1_SMALL) needed
        with ctx.counting("layout"):
            nhwc = ctx.ops.permute(
                ctx.ops.reshape(ctx.tensor(x), (n, c, h, w)), (0, 2, 3, 1), memory_config=ctx.memory_config
            )
        y = ctx.ops.global_avg_pool2d(nhwc)
        return from_flat_nhwc(ctx, y, _out_shape(node), n, 1, 1, c)
    y = adaptive_avg_pool_flat(ctx, to_flat_nhwc(ctx, x, n, c, h, w), n, h, w, c, oh, ow)
    return from_flat_nhwc(ctx, y, _out_shape(node), n, oh, ow, c)


@rule(
    aten.adaptive_max_pool2d.default,
    ttnn="ttnn.adaptive_max_pool2d",
    family="conv_pool",
    checks=(*SPATIAL, _uniform_windows, _indices_unused),
    device_layout=_spatial_layout,
)
def adaptive_max_pool2d(ctx, node, x, output_size):
    n, c, h, w = _nchw(node)
    oh, ow = _out_shape(node)[-2:]
    y = ctx.ops.adaptive_max_pool2d(
        to_flat_nhwc(ctx, x, n, c, h, w), n, h, w, c, [oh, ow], memory_config=ctx.memory_config
    )
    return from_flat_nhwc(ctx, y, _out_shape(node), n, oh, ow, c), None


# -- upsampling ----------------------------------------------------------------------------------
def _scales(node: fx.Node) -> list | None:
    """The scale factors the node was given (None when it was given an output size)."""
    if node.target in (aten.upsample_nearest2d.vec, aten.upsample_bilinear2d.vec):
        return arg(node, 3 if node.target == aten.upsample_bilinear2d.vec else 2, "scale_factors")
    first = 3 if node.target == aten.upsample_bilinear2d.default else 2
    scales = [arg(node, first, "scales_h"), arg(node, first + 1, "scales_w")]
    return None if scales == [None, None] else scales


@check("integer scale factors")
def _integer_scale(node: fx.Node) -> str | None:
    (_, _, h, w), (oh, ow) = _nchw(node), _out_shape(node)[-2:]
    if oh % h or ow % w:
        return f"{h}x{w} -> {oh}x{ow} is not an integer scale (ttnn.upsample takes integer factors here)"
    scales = _scales(node)
    if scales is not None and any(s is None or s != int(s) for s in scales):
        # torch maps output pixels back with the given factor itself, so 2.05 is not 2
        return f"scale_factors={scales} unsupported (integer factors only)"
    return None


def upsample_flat(ctx, flat, n: int, h: int, w: int, scale: tuple[int, int], mode: str = "nearest"):
    """ttnn.upsample on [N, H, W, C] (ROW_MAJOR: tiled inputs must be tile-aligned), from and back
    to [1, 1, N*H*W, C]."""
    c = flat.shape[-1]
    with ctx.counting("layout"):
        x = ctx.ops.reshape(ctx.tensor(flat, layout="row_major"), (n, h, w, c))
    y = ctx.ops.upsample(x, list(scale), mode=mode, memory_config=ctx.memory_config)
    with ctx.counting("layout"):
        return ctx.ops.reshape(y, (1, 1, n * h * scale[0] * w * scale[1], c))


def _upsample(ctx, node, x, mode: str):
    n, c, h, w = _nchw(node)
    oh, ow = _out_shape(node)[-2:]
    with ctx.counting("layout"):
        nhwc = ctx.ops.permute(
            ctx.ops.reshape(ctx.tensor(x, layout="row_major"), (n, c, h, w)),
            (0, 2, 3, 1),
            memory_config=ctx.memory_config,
        )
        # Bilinear ttnn.upsample takes channels in multiples of 32 (a tile's width): zero channels
        # pad the rest and are cut off again; channels do not mix, so the padding changes nothing.
        padded = -c % TILE if mode == "bilinear" else 0
        if padded:
            nhwc = ctx.ops.pad(nhwc, [(0, 0), (0, 0), (0, 0), (0, padded)], 0.0, memory_config=ctx.memory_config)
    y = ctx.ops.upsample(nhwc, [oh // h, ow // w], mode=mode, memory_config=ctx.memory_config)
    with ctx.counting("layout"):
        if padded:
            y = ctx.ops.slice(y, [0, 0, 0, 0], [n, oh, ow, c], memory_config=ctx.memory_config)
        y = ctx.ops.permute(y, (0, 3, 1, 2), memory_config=ctx.memory_config)
        return y if y.shape == _out_shape(node) else ctx.ops.reshape(y, _out_shape(node))


def _upsample_nhwc(node: fx.Node, flat) -> NhwcCall | None:
    if meta(node.args[0]).dim() != 4 or _integer_scale(node):
        return None
    (n, _c, h, w), (oh, ow) = _nchw(node), _out_shape(node)[-2:]
    return NhwcCall(
        fxport_ops.upsample_nearest2d.default, (flat(node.args[0]), [n, h, w], [oh // h, ow // w]), native=True
    )


@rule(
    aten.upsample_nearest2d.vec,
    aten.upsample_nearest2d.default,
    ttnn="ttnn.upsample",
    fused=True,
    family="conv_pool",
    checks=(*SPATIAL, _integer_scale),
    device_layout=_spatial_layout,
    nhwc=_upsample_nhwc,
)
def upsample_nearest2d(ctx, node, x, *_, **__):
    return _upsample(ctx, node, x, "nearest")


@check("integer scale factors (align_corners=False), or align_corners=True")
def _bilinear_supported(node: fx.Node) -> str | None:
    return None if arg(node, 2, "align_corners", False) else _integer_scale(node)


def interpolation_matrix(size: int, out: int) -> torch.Tensor:
    """[out, size]: linear interpolation with align_corners=True, output i reading input
    i * (size - 1) / (out - 1) (torch's definition; a one-pixel output reads pixel 0)."""
    position = torch.arange(out, dtype=torch.float64) * ((size - 1) / (out - 1) if out > 1 else 0.0)
    low = position.floor().long().clamp(max=size - 1)
    high = (low + 1).clamp(max=size - 1)
    frac = position - low
    matrix = torch.zeros(out, size, dtype=torch.float64)
    matrix[torch.arange(out), low] += 1 - frac
    matrix[torch.arange(out), high] += frac
    return matrix.float()


def _bilinear_corners(ctx, node, x):
    """align_corners=True, which ttnn.upsample does not sample: bilinear interpolation is separable
    and linear, so it is two matmuls with constant interpolation matrices, along W then along H
    (any output size, not only integer factors)."""
    _n, _c, h, w = _nchw(node)
    oh, ow = _out_shape(node)[-2:]
    along_w = ctx.tensor(HostValue(interpolation_matrix(w, ow).t().contiguous()))  # [W, OW]
    along_h = ctx.tensor(HostValue(interpolation_matrix(h, oh).t().contiguous()))  # [H, OH]
    y = ctx.ops.matmul(ctx.tensor(x), along_w, memory_config=ctx.memory_config)  # N, C, H, OW
    y = ctx.ops.transpose(y, -2, -1, memory_config=ctx.memory_config)
    y = ctx.ops.matmul(y, along_h, memory_config=ctx.memory_config)  # N, C, OW, OH
    return ctx.ops.transpose(y, -2, -1, memory_config=ctx.memory_config)


@rule(
    aten.upsample_bilinear2d.vec,
    aten.upsample_bilinear2d.default,
    ttnn="ttnn.upsample (align_corners=True: ttnn.matmul x2)",
    fused=True,
    family="conv_pool",
    checks=(*SPATIAL, _bilinear_supported),
)
def upsample_bilinear2d(ctx, node, x, *_, **__):
    if arg(node, 2, "align_corners", False):
        return _bilinear_corners(ctx, node, x)
    return _upsample(ctx, node, x, "bilinear")


# -- padding -------------------------------------------------------------------------------------
@check("constant padding mode")
def _constant_mode(node: fx.Node) -> str | None:
    if node.target != aten.pad.default:
        return None
    mode = arg(node, 2, "mode", "constant")
    return None if mode == "constant" else f"mode={mode!r} unsupported (ttnn.pad pads with a constant)"


@rule(
    aten.pad.default,
    aten.constant_pad_nd.default,
    ttnn="ttnn.slice + ttnn.pad",
    fused=True,
    family="conv_pool",
    checks=(*BASIC, dtypes(ANY_DTYPES, "float, int or bool"), _constant_mode),
)
def pad(ctx, node, x, pad, *_, **__):
    value = arg(node, 3 if node.target == aten.pad.default else 2, "value") or 0
    shape = tuple(meta(node.args[0]).shape)
    rank = len(shape)
    pairs = [(0, 0)] * rank
    for i in range(len(pad) // 2):  # torch lists (before, after) pairs from the last dim backwards
        pairs[rank - 1 - i] = (pad[2 * i], pad[2 * i + 1])
    x = dev(ctx, x)
    if any(a < 0 or b < 0 for a, b in pairs):  # negative pads crop: a slice first
        starts = [max(-a, 0) for a, _ in pairs]
        ends = [size - max(-b, 0) for size, (_, b) in zip(shape, pairs)]
        x = ctx.ops.slice(x, starts, ends, [1] * rank, memory_config=ctx.memory_config)
        pairs = [(max(a, 0), max(b, 0)) for a, b in pairs]
    if not any(a or b for a, b in pairs):
        return x
    # TILE padding cannot add at the front of a dim ("on device tile padding does not support
    # front padding"); ROW_MAJOR can.
    front = any(before for before, _ in pairs)
    return ctx.ops.pad(
        ctx.tensor(x, layout="row_major" if front else "tile"), pairs, value, memory_config=ctx.memory_config
    )
