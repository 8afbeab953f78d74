"""Golden functions: the torch computation behind each ttnn op, used for values on a mock device.

ttnn attaches a golden function to almost every op. `OVERRIDES` replaces the ones that cannot
run from the wheel (ttnn 0.81.1's pool goldens import `tests.sweep_framework`, which the wheel does
not ship) and the ones that cost more than the torch op they stand for: ttnn's conv2d golden pads
its input into a new tensor, upcasts it and copies its output back to NHWC, about twice an eager
conv; fxport's computes the same values on the NHWC data as a channels-last view, with the
padding inside the convolution (tests/test_rules_conv_data.py checks it against ttnn's).
Overrides take the ttnn op's own arguments ([1, 1, N*H*W, C] activations) and return the ttnn
op's output layout. Matmul, linear and conv2d given a compute kernel config with a math fidelity
multiply the operand bits the FPU multiplies at that fidelity (fxport/runtime/fidelity.py).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F

from fxport.runtime.fidelity import fidelity_of, matmul_operands, operand_terms


class NoGoldenFunction(RuntimeError):
    pass


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
    **kwargs,
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
    fidelity = fidelity_of(kwargs.get("compute_config"))
    if fidelity:  # the sum of the phases' products (a convolution is linear in each operand)
        y = sum(
            F.conv2d(a, w, None, stride, tuple(padding), dilation, groups)
            for a, w in operand_terms(x, weight_tensor, fidelity)
        )
        y = y if bias is None else y + bias.reshape(1, -1, 1, 1)
    else:
        y = F.conv2d(x, weight_tensor.float(), bias, stride, tuple(padding), dilation, groups)
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
        weight_tensor.float(),
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


def _with_fidelity(name: str) -> Callable[..., Any]:
    """ttnn's own matmul or linear golden, on the operands the FPU multiplies at the call's math
    fidelity (none given: as they are)."""

    def golden(input_tensor_a, input_tensor_b, transpose_a=False, transpose_b=False, **kwargs):
        import ttnn

        fn = getattr(ttnn, name).golden_function
        fidelity = fidelity_of(kwargs.get("compute_kernel_config"))
        if fidelity:
            a = input_tensor_a.transpose(-1, -2) if transpose_a else input_tensor_a
            b = input_tensor_b.transpose(-1, -2) if transpose_b else input_tensor_b
            input_tensor_a, input_tensor_b = matmul_operands(a, b, fidelity)
            transpose_a = transpose_b = False
        return fn(input_tensor_a, input_tensor_b, transpose_a, transpose_b, **kwargs)

    return golden


OVERRIDES: dict[str, Callable[..., Any]] = {
    "matmul": _with_fidelity("matmul"),
    "linear": _with_fidelity("linear"),
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
