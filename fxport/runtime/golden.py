"""Golden functions: the torch computation behind each ttnn op, used for values on a mock device.

ttnn attaches a golden function to almost every op. `OVERRIDES` replaces the ones that cannot
run from the wheel (ttnn 0.81.1's pool goldens import `tests.sweep_framework`, which the wheel does
not ship) and the ones that cost more than the torch op they stand for: ttnn's conv2d golden pads
its input into a new tensor, upcasts it and copies its output back to NHWC, about twice an eager
conv; fxport's computes the same values on the NHWC data as a channels-last view, with the
padding inside the convolution (tests/test_rules_conv_data.py checks it against ttnn's), and
converts the weights to fp32 once, not on every call.
Overrides take the ttnn op's own arguments ([1, 1, N*H*W, C] activations) and return the ttnn
op's output layout.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable

import torch
import torch.nn.functional as F


class NoGoldenFunction(RuntimeError):
    pass


# fp32 copies of conv weights' golden values, by identity (checked through a weak reference) and
# version: a compiled program's weights are constants, the same bf16 tensor on every call, and
# converting them on every call made a 512-channel 3x3 conv on a 7x7 map cost three times the
# eager conv (2.4M weights converted for 25K activations; measured 13-15 ms against 4.5 ms).
_FP32: dict[int, tuple[weakref.ref, int, torch.Tensor]] = {}


def _float_weight(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.float32:
        return t
    kept = _FP32.get(id(t))
    if kept is not None and kept[0]() is t and kept[1] == t._version:
        return kept[2]
    copy = t.float()
    if kept is None or kept[0]() is not t:
        weakref.finalize(t, _FP32.pop, id(t), None)
    _FP32[id(t)] = (weakref.ref(t), t._version, copy)
    return copy


def _pool_input(x: torch.Tensor, n: int, h: int, w: int, c: int, padding, fill: float):
    """[1, 1, N*H*W, C] -> NCHW. Four-sided padding is applied here: torch pools pad symmetrically."""
    x = x.reshape(n, h, w, c).permute(0, 3, 1, 2).float()
    if len(padding) == 4:
        top, bottom, left, right = padding
        return F.pad(x, (left, right, top, bottom), value=fill), 0
    return x, list(padding)


def _flat_nhwc(y: torch.Tensor) -> torch.Tensor:
    return y.permute(0, 2, 3, 1).reshape(1, 1, -1, y.shape[1])


def _max_pool2d(
    input_tensor, batch_size, input_h, input_w, channels, kernel_size, stride, padding, dilation, ceil_mode=False, **_
):
    x, pad = _pool_input(input_tensor, batch_size, input_h, input_w, channels, padding, float("-inf"))
    return _flat_nhwc(F.max_pool2d(x, kernel_size, stride, pad, dilation, ceil_mode))


def _avg_pool2d(
    input_tensor,
    batch_size,
    input_h,
    input_w,
    channels,
    kernel_size,
    stride,
    padding,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
    **_,
):
    x, pad = _pool_input(input_tensor, batch_size, input_h, input_w, channels, padding, 0.0)
    return _flat_nhwc(F.avg_pool2d(x, kernel_size, stride, pad, ceil_mode, count_include_pad, divisor_override))


def _adaptive(pool: Callable) -> Callable:
    def golden(input_tensor, batch_size, input_h, input_w, channels, output_size, **_):
        x = input_tensor.reshape(batch_size, input_h, input_w, channels).permute(0, 3, 1, 2).float()
        return _flat_nhwc(pool(x, list(output_size)))

    return golden


def _conv2d(
    input_tensor,
    weight_tensor,
    in_channels,
    out_channels,
    batch_size,
    input_height,
    input_width,
    kernel_size,
    stride=(1, 1),
    padding=(0, 0),
    dilation=(1, 1),
    groups=1,
    bias_tensor=None,
    conv_config=None,
    return_output_dim=False,
    return_weights_and_bias=False,
    dtype=None,
    **_,
):
    from ttnn.operations.conv2d import get_golden_function_for_activation, golden_to_output_dtype

    # [1, 1, N*H*W, C] -> an NCHW view with channels-last strides: no copy
    x = input_tensor.reshape(batch_size, input_height, input_width, -1)[..., :in_channels].permute(0, 3, 1, 2)
    x = x.float()  # keeps the strides
    if isinstance(padding, int):
        padding = (padding, padding)
    if len(padding) == 4:
        top, bottom, left, right = padding
        if (top, left) == (bottom, right):
            padding = (top, left)
        else:  # torch pads symmetrically
            x, padding = F.pad(x, (left, right, top, bottom)), (0, 0)
    bias = None if bias_tensor is None else bias_tensor.reshape(-1).float()
    y = F.conv2d(x, _float_weight(weight_tensor), bias, stride, tuple(padding), dilation, groups)
    activation = get_golden_function_for_activation(getattr(conv_config, "activation", None))
    if activation is not None:
        y = activation(y)
    n, c, h, w = y.shape
    y = golden_to_output_dtype(y.permute(0, 2, 3, 1).reshape(1, 1, n * h * w, c), dtype)
    return [y] if return_output_dim or return_weights_and_bias else y


def _conv_transpose2d(
    input_tensor,
    weight_tensor,
    in_channels,
    batch_size,
    input_height,
    input_width,
    stride=(1, 1),
    padding=(0, 0),
    output_padding=(0, 0),
    dilation=(1, 1),
    groups=1,
    bias_tensor=None,
    **_,
):
    """ttnn.conv_transpose2d (no golden function in the wheel): [1, 1, N*H*W, C] in and out,
    the weight in torch's [C_in, C_out / groups, kH, kW]."""
    x = input_tensor.reshape(batch_size, input_height, input_width, -1)[..., :in_channels].permute(0, 3, 1, 2)
    bias = None if bias_tensor is None else bias_tensor.reshape(-1).float()
    y = F.conv_transpose2d(
        x.float(),
        _float_weight(weight_tensor),
        bias,
        tuple(stride),
        tuple(padding),
        tuple(output_padding),
        groups,
        tuple(dilation),
    )
    return _flat_nhwc(y)


def _conv3d(
    input_tensor,
    weight_tensor,
    output_channels,
    kernel_size,
    stride=(1, 1, 1),
    padding=(0, 0, 0),
    dilation=(1, 1, 1),
    groups=1,
    bias_tensor=None,
    **_,
):
    """ttnn.experimental.conv3d (no golden function in the wheel): [N, D, H, W, C] in and out, the
    weight raw (torch's [C_out, C_in, kD, kH, kW], which the op prepares) or prepared ([1, 1,
    kD * kH * kW * C_in, C_out], rows in kD, kH, kW, C_in order)."""
    _n, _d, _h, _w, c = input_tensor.shape
    kd, kh, kw = kernel_size
    weight = weight_tensor
    if weight.dim() != 5:
        weight = weight.reshape(kd, kh, kw, -1, output_channels)[:, :, :, : c // groups].permute(4, 3, 0, 1, 2)
    bias = None if bias_tensor is None else bias_tensor.reshape(-1)[:output_channels].float()
    y = F.conv3d(
        input_tensor.permute(0, 4, 1, 2, 3).float(),
        weight.float(),
        bias,
        tuple(stride),
        tuple(padding),
        tuple(dilation),
        groups,
    )
    return y.permute(0, 2, 3, 4, 1)


OVERRIDES: dict[str, Callable[..., Any]] = {
    "conv2d": _conv2d,
    "conv_transpose2d": _conv_transpose2d,
    "experimental.conv3d": _conv3d,
    "max_pool2d": _max_pool2d,
    "avg_pool2d": _avg_pool2d,
    "adaptive_avg_pool2d": _adaptive(F.adaptive_avg_pool2d),
    "adaptive_max_pool2d": _adaptive(F.adaptive_max_pool2d),
}


def golden_function(name: str, op: Any) -> Callable[..., Any]:
    if name in OVERRIDES:
        return OVERRIDES[name]
    fn = getattr(op, "golden_function", None)
    if fn is not None:
        return fn
    raise NoGoldenFunction(f"ttnn.{name} has no golden function: its values cannot be emulated")
