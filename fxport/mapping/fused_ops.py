"""fxport's own torch ops: the forms TT-NN runs that aten has no op for, which the graph passes
(`fxport.passes`) put into captured graphs.

- `conv2d` and `linear` with a fused activation (TT-NN applies it inside the kernel);
- conv and pooling on activations held channels-last and flattened, `[1, 1, N*H*W, C]`: the form
  TT-NN's conv and pool kernels take and return (`nhw` gives N, H, W, which that form loses);
- `to_nhwc` / `to_nchw`, the layout conversions between that form and aten's NCHW (to_nhwc
  takes lower ranks as NCHW with leading 1s: a per-channel [C, 1, 1] becomes [1, 1, 1, C]).

Each op has a reference implementation in torch (what a host fallback and every PCC reference
runs) and a fake one (shapes for meta and fake tensors), so a rewritten graph is still an exact,
executable program whose every node carries its true shapes: the memory model sizes the tensors
the device really holds.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

# TT-NN's names for fused activations -> what they compute. The mapping table's rules say which
# aten activations (with which parameters) fuse under which name.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "": lambda x: x,
    "relu": F.relu,
    "relu6": F.relu6,
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "hardsigmoid": F.hardsigmoid,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "mish": F.mish,
}


def unflatten(x: Tensor, nhw: list[int]) -> Tensor:
    """[1, 1, N*H*W, C] -> [N, C, H, W]."""
    n, h, w = nhw
    return x.reshape(n, h, w, x.shape[-1]).permute(0, 3, 1, 2)


def flatten(x: Tensor) -> Tensor:
    """[N, C, H, W] -> [1, 1, N*H*W, C]."""
    return x.permute(0, 2, 3, 1).reshape(1, 1, -1, x.shape[1])


def _define(name: str, fn: Callable) -> Callable:
    """A custom op whose fake (meta) implementation is its reference run on fake tensors: one
    definition of the semantics, and the shapes follow from it. Outputs are fresh tensors."""
    op = torch.library.custom_op(f"fxport::{name}", mutates_args=())(fn)
    op.register_fake(fn)
    return op


def _conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    groups: int,
    activation: str,
    nhw: list[int],
) -> Tensor:
    """conv2d + activation; `padding` is (top, bottom, left, right). With `nhw` = [N, H, W] the
    input and output are flattened NHWC, else NCHW."""
    x = unflatten(input, nhw) if nhw else input
    top, bottom, left, right = padding
    x = F.pad(x, (left, right, top, bottom))
    y = ACTIVATIONS[activation](F.conv2d(x, weight, bias, stride, 0, dilation, groups))
    return flatten(y).clone() if nhw else y.clone()


def _linear(input: Tensor, weight: Tensor, bias: Tensor | None, activation: str) -> Tensor:
    return ACTIVATIONS[activation](F.linear(input, weight, bias)).clone()


def _max_pool2d(
    input: Tensor,
    nhw: list[int],
    kernel_size: list[int],
    stride: list[int],
    padding: list[int],
    dilation: list[int],
    ceil_mode: bool,
) -> Tensor:
    y = F.max_pool2d(unflatten(input, nhw), kernel_size, stride, padding, dilation, ceil_mode)
    return flatten(y).clone()


def _avg_pool2d(
    input: Tensor,
    nhw: list[int],
    kernel_size: list[int],
    stride: list[int],
    padding: list[int],
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
) -> Tensor:
    y = F.avg_pool2d(
        unflatten(input, nhw), kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )
    return flatten(y).clone()


def _adaptive_avg_pool2d(input: Tensor, nhw: list[int], output_size: list[int]) -> Tensor:
    return flatten(F.adaptive_avg_pool2d(unflatten(input, nhw), output_size)).clone()


def _upsample_nearest2d(input: Tensor, nhw: list[int], scale: list[int]) -> Tensor:
    x = unflatten(input, nhw)
    return flatten(F.interpolate(x, scale_factor=[float(s) for s in scale], mode="nearest")).clone()


def _to_nhwc(input: Tensor) -> Tensor:
    """[N, C, H, W] -> [1, 1, N*H*W, C]; lower ranks are NCHW with leading 1s ([C, 1, 1])."""
    return flatten(input.reshape(nchw_shape(input.shape))).clone()


def nchw_shape(shape) -> tuple[int, ...]:
    """A shape of rank <= 4 as NCHW (leading 1s)."""
    return (1,) * (4 - len(shape)) + tuple(shape)


def _to_nchw(input: Tensor, nhw: list[int]) -> Tensor:
    """[1, 1, N*H*W, C] -> [N, C, H, W]."""
    return unflatten(input, nhw).clone()


conv2d = _define("conv2d", _conv2d)
linear = _define("linear", _linear)
max_pool2d = _define("max_pool2d", _max_pool2d)
avg_pool2d = _define("avg_pool2d", _avg_pool2d)
adaptive_avg_pool2d = _define("adaptive_avg_pool2d", _adaptive_avg_pool2d)
upsample_nearest2d = _define("upsample_nearest2d", _upsample_nearest2d)
to_nhwc = _define("to_nhwc", _to_nhwc)
to_nchw = _define("to_nchw", _to_nchw)

ops = torch.ops.fxport
# op -> its reference implementation (what the fake implementation runs)
REFERENCES: dict = {
    op.default: fn
    for op, fn in (
        (ops.conv2d, _conv2d),
        (ops.linear, _linear),
        (ops.max_pool2d, _max_pool2d),
        (ops.avg_pool2d, _avg_pool2d),
        (ops.adaptive_avg_pool2d, _adaptive_avg_pool2d),
        (ops.upsample_nearest2d, _upsample_nearest2d),
        (ops.to_nhwc, _to_nhwc),
        (ops.to_nchw, _to_nchw),
    )
}
