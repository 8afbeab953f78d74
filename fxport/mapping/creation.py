"""Creation rules: tensors made on the device from a shape and a value (full, zeros, arange, ...).

The shape and dtype come from the captured output, so the `*_like` and `new_*` variants never move
their template tensor to the device. Most of these ops have no tensor input at all, so they do
not use BASIC (which declines host-side constants).
"""

from __future__ import annotations

import math

import torch
from torch import fx

from fxport.mapping.checks import FLOAT_DTYPES, INT_DTYPES, arg, meta, output
from fxport.mapping.data_movement import MAX_RANK, tt_dtype
from fxport.mapping.registry import Check, check, rule

aten = torch.ops.aten

SUPPORTED = FLOAT_DTYPES | INT_DTYPES | {torch.bool}
BF16_MAX = torch.finfo(torch.bfloat16).max


@check(
    f"a static, non-empty output of rank <= {MAX_RANK} (floats and bools in bf16, integers in "
    "uint32, int32 if negative)"
)
def _output_ok(node: fx.Node) -> str | None:
    out = output(node)
    if out is None:
        return "no tensor output"
    if out.dtype not in SUPPORTED:
        return f"dtype {str(out.dtype).removeprefix('torch.')} unsupported"
    if any(not isinstance(d, int) for d in out.shape):
        return "dynamic shape"
    if out.numel() == 0:
        return "empty tensor"
    if out.dim() > MAX_RANK:
        return f"rank {out.dim()} exceeds {MAX_RANK}"
    return None


def _value_check(index: int, name: str, default=None) -> Check:
    def test(node: fx.Node) -> str | None:
        value = arg(node, index, name, default)
        if isinstance(value, fx.Node) or not isinstance(value, (int, float, bool)):
            return f"{name} is not a Python number"
        if not output(node).is_floating_point() and float(value) != int(value):
            return f"{name}={value!r} does not fit the integer output"
        return None

    return Check(f"{name} a Python number the output dtype holds", test)


def _full(ctx, node: fx.Node, value) -> object:
    out = output(node)
    dtype = tt_dtype(ctx, out.dtype, signed=value < 0)
    if dtype == ctx.dtype:
        # Saturate finite values: masks fill with torch.finfo(float32).min, which bf16 would
        # round to -inf.
        value = float(value)
        if math.isfinite(value):
            value = max(-BF16_MAX, min(BF16_MAX, value))
    else:
        value = int(value)
    return ctx.ops.full(
        tuple(out.shape),
        value,
        dtype=dtype,
        layout=ctx.ttnn.TILE_LAYOUT,
        device=ctx.device.device,
        memory_config=ctx.memory_config,
    )


@rule(aten.full.default, ttnn="ttnn.full", family="creation", checks=(_output_ok, _value_check(1, "fill_value")))
def full(ctx, node, size, fill_value, **_):
    return _full(ctx, node, fill_value)


@rule(aten.full_like.default, ttnn="ttnn.full", family="creation", checks=(_output_ok, _value_check(1, "fill_value")))
def full_like(ctx, node, x, fill_value, **_):
    return _full(ctx, node, fill_value)


@rule(aten.fill.Scalar, ttnn="ttnn.full", family="creation", checks=(_output_ok, _value_check(1, "value")))
def fill(ctx, node, x, value):
    return _full(ctx, node, value)


@check("a 0-d value tensor and a float output")
def _scalar_value(node: fx.Node) -> str | None:
    value = meta(node.args[1])
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        return "value is not a 0-d tensor"
    if not output(node).is_floating_point():
        return f"dtype {str(output(node).dtype).removeprefix('torch.')} unsupported (fills floats)"
    return None


@rule(aten.fill.Tensor, ttnn="ttnn.full + ttnn.add", family="creation", checks=(_output_ok, _scalar_value))
def fill_tensor(ctx, node, x, value):
    # The value is a 0-d tensor known only at run time: zeros plus its broadcast, on the device.
    shape = tuple(output(node).shape)
    zeros = ctx.ops.full(
        shape,
        0.0,
        dtype=ctx.dtype,
        layout=ctx.ttnn.TILE_LAYOUT,
        device=ctx.device.device,
        memory_config=ctx.memory_config,
    )
    scalar = ctx.ops.reshape(ctx.tensor(value), (1,) * len(shape))
    return ctx.ops.add(zeros, scalar, memory_config=ctx.memory_config)


@rule(aten.new_full.default, ttnn="ttnn.full", family="creation", checks=(_output_ok, _value_check(2, "fill_value")))
def new_full(ctx, node, x, size, fill_value, **_):
    return _full(ctx, node, fill_value)


@rule(aten.scalar_tensor.default, ttnn="ttnn.full", family="creation", checks=(_output_ok, _value_check(0, "s")))
def scalar_tensor(ctx, node, s, **_):
    return _full(ctx, node, s)


@rule(
    aten.zeros.default,
    aten.zeros_like.default,
    aten.new_zeros.default,
    aten.zero.default,
    ttnn="ttnn.full",
    family="creation",
    checks=(_output_ok,),
)
def zeros(ctx, node, *_, **__):
    return _full(ctx, node, 0)


@rule(
    aten.ones.default,
    aten.ones_like.default,
    aten.new_ones.default,
    ttnn="ttnn.full",
    family="creation",
    checks=(_output_ok,),
)
def ones(ctx, node, *_, **__):
    return _full(ctx, node, 1)


def _range(node: fx.Node) -> tuple:
    """(start, end, step) of an arange node, whichever overload."""
    if node.target == aten.arange.default:
        return 0, node.args[0], 1
    start, end = node.args[0], node.args[1]
    step = arg(node, 2, "step", 1) if node.target == aten.arange.start_step else 1
    return start, end, step


@check("integer start, end and step")
def _integral_range(node: fx.Node) -> str | None:
    values = _range(node)
    if any(isinstance(v, fx.Node) or not isinstance(v, (int, float)) for v in values):
        return "range bounds are not Python numbers"
    if any(float(v) != int(v) for v in values):
        return f"non-integer range {values} unsupported (ttnn.arange takes ints)"
    return None


@rule(
    aten.arange.default,
    aten.arange.start,
    aten.arange.start_step,
    ttnn="ttnn.arange",
    family="creation",
    checks=(_output_ok, _integral_range),
)
def arange(ctx, node, *_, **__):
    start, end, step = (int(v) for v in _range(node))
    dtype = tt_dtype(ctx, output(node).dtype, signed=min(start, end) < 0)
    return ctx.ops.arange(
        start,
        end,
        step,
        dtype=dtype,
        layout=ctx.ttnn.TILE_LAYOUT,
        device=ctx.device.device,
        memory_config=ctx.memory_config,
    )
