"""Rule tests of fxport's own ops (fxport/mapping/fused.py), which the graph passes put into
captured graphs: conv2d and linear with TT-NN's fused activation, conv and pooling on flattened
NHWC activations ([1, 1, N*H*W, C]), and the two conversions. Each is checked against its torch
reference (fxport/mapping/fused_ops.py) on the mock device, like every aten rule."""

from __future__ import annotations

import torch

from fxport.mapping.fused_ops import ops
from tests.rule_harness import T, declines, lowers, rule_tests

F64 = torch.float64

CASES = [
    # conv2d(input, weight, bias, stride, padding (t, b, l, r), dilation, groups, activation, nhw)
    lowers(
        "fx_conv2d_nchw_relu",
        ops.conv2d.default,
        T(1, 8, 8, 8),
        T(16, 8, 3, 3),
        T(16),
        [1, 1],
        [1, 1, 1, 1],
        [1, 1],
        1,
        "relu",
        [],
    ),
    lowers(
        "fx_conv2d_flat_silu",
        ops.conv2d.default,
        T(1, 1, 64, 8),
        T(16, 8, 3, 3),
        T(16),
        [2, 2],
        [1, 1, 1, 1],
        [1, 1],
        1,
        "silu",
        [1, 8, 8],
    ),
    declines(
        "fx_conv2d_float64",
        ops.conv2d.default,
        T(1, 8, 8, 8, dtype=F64),
        T(16, 8, 3, 3, dtype=F64),
        T(16, dtype=F64),
        [1, 1],
        [1, 1, 1, 1],
        [1, 1],
        1,
        "relu",
        [],
        reason="dtype float64",
    ),
    declines(
        "fx_conv2d_mish",
        ops.conv2d.default,
        T(1, 8, 8, 8),
        T(16, 8, 3, 3),
        T(16),
        [1, 1],
        [1, 1, 1, 1],
        [1, 1],
        1,
        "mish",
        [],
        reason="activation 'mish' is not fused",
    ),
    lowers("fx_linear_gelu", ops.linear.default, T(4, 32), T(16, 32), T(16), "gelu"),
    declines(
        "fx_linear_float64",
        ops.linear.default,
        T(4, 32, dtype=F64),
        T(16, 32, dtype=F64),
        T(16, dtype=F64),
        "relu",
        reason="dtype float64",
    ),
    lowers("fx_max_pool2d", ops.max_pool2d.default, T(1, 1, 64, 16), [1, 8, 8], [2, 2], [2, 2], [0, 0], [1, 1], False),
    declines(
        "fx_max_pool2d_float64",
        ops.max_pool2d.default,
        T(1, 1, 64, 16, dtype=F64),
        [1, 8, 8],
        [2, 2],
        [2, 2],
        [0, 0],
        [1, 1],
        False,
        reason="dtype float64",
    ),
    lowers(
        "fx_avg_pool2d", ops.avg_pool2d.default, T(1, 1, 64, 16), [1, 8, 8], [2, 2], [2, 2], [0, 0], False, True, None
    ),
    declines(
        "fx_avg_pool2d_float64",
        ops.avg_pool2d.default,
        T(1, 1, 64, 16, dtype=F64),
        [1, 8, 8],
        [2, 2],
        [2, 2],
        [0, 0],
        False,
        True,
        None,
        reason="dtype float64",
    ),
    lowers("fx_adaptive_avg_pool2d_global", ops.adaptive_avg_pool2d.default, T(1, 1, 64, 32), [1, 8, 8], [1, 1]),
    declines(
        "fx_adaptive_avg_pool2d_uneven",
        ops.adaptive_avg_pool2d.default,
        T(1, 1, 64, 32),
        [1, 8, 8],
        [3, 3],
        reason="windows of varying size",
    ),
    lowers("fx_upsample_nearest2d", ops.upsample_nearest2d.default, T(1, 1, 16, 32), [1, 4, 4], [2, 2]),
    declines(
        "fx_upsample_nearest2d_float64",
        ops.upsample_nearest2d.default,
        T(1, 1, 16, 32, dtype=F64),
        [1, 4, 4],
        [2, 2],
        reason="dtype float64",
    ),
    lowers("fx_to_nhwc", ops.to_nhwc.default, T(1, 8, 4, 4)),
    declines("fx_to_nhwc_empty", ops.to_nhwc.default, T(1, 8, 0, 4), reason="empty tensor"),
    lowers("fx_to_nchw", ops.to_nchw.default, T(1, 1, 16, 8), [1, 4, 4]),
    declines("fx_to_nchw_empty", ops.to_nchw.default, T(1, 1, 0, 8), [1, 0, 4], reason="empty tensor"),
]

test_lowers, test_declines = rule_tests(CASES)
