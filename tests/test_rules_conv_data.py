"""The conv_pool, data_movement and creation rules (tests/rule_harness.py): each lowers, runs
through TT-NN on the mock device (status "device") and matches the aten op, and each documented
limitation is declined by a check, with its reason, before anything runs."""

import pytest
import torch
from torch import fx

from fxport.plan import plan_graph
from fxport.runtime.pcc import pcc
from fxport.single_op import op_graph, run_graph
from tests.rule_harness import T, declines, lowers, rule_tests

aten = torch.ops.aten
torch.manual_seed(0)
I64, F64 = torch.int64, torch.float64

CONV_POOL = [
    lowers("conv2d", aten.conv2d.default, T(1, 3, 16, 16), T(8, 3, 3, 3), T(8), [1, 1], [1, 1]),
    lowers("conv2d_stride_nobias", aten.conv2d.default, T(2, 16, 16, 16), T(32, 16, 3, 3), None, [2, 2], [1, 1]),
    lowers(
        "conv2d_groups_dilation",
        aten.conv2d.default,
        T(1, 16, 16, 16),
        T(16, 4, 3, 3),
        T(16),
        [1, 1],
        [2, 2],
        [2, 2],
        4,
    ),
    lowers("conv2d_depthwise", aten.conv2d.default, T(1, 32, 8, 8), T(32, 1, 3, 3), None, [1, 1], [1, 1], [1, 1], 32),
    lowers("conv2d_patchify", aten.conv2d.default, T(1, 3, 28, 28), T(32, 3, 14, 14), T(32), [14, 14]),
    lowers("conv2d_unbatched", aten.conv2d.default, T(3, 16, 16), T(8, 3, 3, 3), T(8)),
    lowers("conv2d_same", aten.conv2d.padding, T(1, 4, 16, 16), T(8, 4, 4, 4), None, [1, 1], "same"),
    lowers("conv1d", aten.conv1d.default, T(2, 8, 32), T(16, 8, 3), T(16), [1], [1]),
    lowers("conv1d_same", aten.conv1d.padding, T(1, 8, 32), T(16, 8, 4), None, [1], "same"),
    lowers(
        "convolution",
        aten.convolution.default,
        T(1, 4, 12, 12),
        T(8, 4, 3, 3),
        T(8),
        [2, 2],
        [1, 1],
        [1, 1],
        False,
        [0, 0],
        1,
    ),
    lowers("max_pool2d", aten.max_pool2d.default, T(1, 16, 16, 16), [3, 3], [2, 2], [1, 1]),
    lowers("max_pool2d_sppf", aten.max_pool2d.default, T(1, 32, 10, 10), [5, 5], [1, 1], [2, 2]),
    lowers("max_pool2d_ceil_dilation", aten.max_pool2d.default, T(1, 16, 15, 15), [2, 2], [2, 2], [0, 0], [2, 2], True),
    lowers("avg_pool2d", aten.avg_pool2d.default, T(2, 16, 16, 16), [2, 2]),
    lowers("avg_pool2d_pad_exclude", aten.avg_pool2d.default, T(1, 16, 15, 15), [3, 3], [2, 2], [1, 1], True, False),
    lowers("adaptive_avg_pool2d_global", aten.adaptive_avg_pool2d.default, T(2, 64, 7, 7), [1, 1]),
    lowers("adaptive_avg_pool2d_7_to_3", aten._adaptive_avg_pool2d.default, T(1, 32, 7, 7), [3, 3]),
    lowers("upsample_nearest_scale", aten.upsample_nearest2d.vec, T(1, 16, 8, 8), None, [2.0, 2.0]),
    lowers("upsample_nearest_size", aten.upsample_nearest2d.vec, T(1, 5, 8, 6), [16, 18], None),
    lowers("upsample_nearest_default", aten.upsample_nearest2d.default, T(2, 3, 4, 4), [8, 8]),
    lowers("upsample_bilinear", aten.upsample_bilinear2d.vec, T(1, 32, 8, 8), None, False, [2.0, 2.0]),
    lowers("upsample_bilinear_default", aten.upsample_bilinear2d.default, T(1, 32, 8, 8), [16, 24], False),
    # Segmentation heads: 21 classes, padded to 32 channels on the device and cut back.
    lowers("upsample_bilinear_21_channels", aten.upsample_bilinear2d.vec, T(1, 21, 8, 8), None, False, [4.0, 4.0]),
    lowers("upsample_bilinear_3_channels_size", aten.upsample_bilinear2d.default, T(2, 3, 5, 6), [10, 12], False),
    lowers("pad_back", aten.pad.default, T(1, 3, 16, 16), [0, 2, 0, 1]),
    lowers("pad_front_value", aten.pad.default, T(1, 3, 16, 16), [1, 1, 2, 0], "constant", 0.5),
    lowers("pad_zero", aten.pad.default, T(1, 56, 56, 8), [0, 0, 0, 0, 0, 0]),
    lowers("pad_negative_crops", aten.pad.default, T(1, 3, 16, 16), [-1, -2, -3, 0]),
    lowers("constant_pad_nd_crop_and_pad", aten.constant_pad_nd.default, T(1, 3, 8, 8), [-1, 2, 1, -2], 0.5),
    lowers("constant_pad_nd_rank5", aten.constant_pad_nd.default, T(1, 2, 3, 8, 8), [0, 0, 1, 0, 0, 1], -1.0),
    # max pools whose indices nothing reads
    lowers("max_pool2d_with_indices", aten.max_pool2d_with_indices.default, T(1, 16, 8, 8), [2, 2], reads=(0,)),
    lowers("adaptive_max_pool2d", aten.adaptive_max_pool2d.default, T(2, 32, 7, 7), [1, 1], reads=(0,)),
    declines(
        "conv_transposed",
        aten.convolution.default,
        T(1, 4, 8, 8),
        T(4, 8, 3, 3),
        None,
        [1, 1],
        [0, 0],
        [1, 1],
        True,
        [0, 0],
        1,
        reason="transposed convolution",
    ),
    declines(
        "conv_3d",
        aten.convolution.default,
        T(1, 2, 4, 8, 8),
        T(4, 2, 3, 3, 3),
        None,
        [1] * 3,
        [0] * 3,
        [1] * 3,
        False,
        [0] * 3,
        1,
        reason="no 3-D convolution kernel",
    ),
    declines(
        "conv2d_float64",
        aten.conv2d.default,
        T(1, 3, 8, 8, dtype=F64),
        T(4, 3, 3, 3, dtype=F64),
        reason="dtype float64",
    ),
    declines(
        "conv2d_same_float64",
        aten.conv2d.padding,
        T(1, 3, 8, 8, dtype=F64),
        T(4, 3, 3, 3, dtype=F64),
        None,
        [1, 1],
        "same",
        reason="dtype float64",
    ),
    declines(
        "conv1d_float64", aten.conv1d.default, T(1, 3, 8, dtype=F64), T(4, 3, 3, dtype=F64), reason="dtype float64"
    ),
    declines(
        "conv1d_same_float64",
        aten.conv1d.padding,
        T(1, 3, 8, dtype=F64),
        T(4, 3, 3, dtype=F64),
        None,
        [1],
        "same",
        reason="dtype float64",
    ),
    declines(
        "adaptive_avg_pool2d_varying",
        aten.adaptive_avg_pool2d.default,
        T(1, 8, 10, 10),
        [4, 4],
        reason="windows of varying size or stride",
    ),
    declines(
        "_adaptive_avg_pool2d_float64",
        aten._adaptive_avg_pool2d.default,
        T(1, 8, 4, 4, dtype=F64),
        [2, 2],
        reason="dtype float64",
    ),
    declines(
        "adaptive_max_pool2d_varying",
        aten.adaptive_max_pool2d.default,
        T(1, 8, 10, 10),
        [4, 4],
        reads=(0,),
        reason="windows of varying size or stride",
    ),
    declines(
        "max_pool2d_indices_used",
        aten.max_pool2d_with_indices.default,
        T(1, 8, 8, 8),
        [2, 2],
        reason="indices output is used",
    ),
    declines("max_pool2d_float64", aten.max_pool2d.default, T(1, 8, 8, 8, dtype=F64), [2, 2], reason="dtype float64"),
    declines("avg_pool2d_float64", aten.avg_pool2d.default, T(1, 8, 8, 8, dtype=F64), [2, 2], reason="dtype float64"),
    declines(
        "upsample_nearest_fractional",
        aten.upsample_nearest2d.vec,
        T(1, 8, 4, 4),
        [6, 6],
        None,
        reason="not an integer scale",
    ),
    declines(
        "upsample_nearest_scale_2_01",
        aten.upsample_nearest2d.vec,
        T(1, 8, 20, 20),
        None,
        [2.01, 2.01],
        reason="integer factors only",
    ),
    declines(
        "upsample_nearest_default_float64",
        aten.upsample_nearest2d.default,
        T(1, 8, 4, 4, dtype=F64),
        [8, 8],
        reason="dtype float64",
    ),
    declines(
        "upsample_bilinear_align_corners",
        aten.upsample_bilinear2d.vec,
        T(1, 32, 4, 4),
        None,
        True,
        [2.0, 2.0],
        reason="align_corners=True",
    ),
    declines(
        "upsample_bilinear_3x_fractional",
        aten.upsample_bilinear2d.vec,
        T(1, 3, 4, 4),
        None,
        False,
        [2.5, 2.5],
        reason="not an integer scale",
    ),
    declines(
        "upsample_bilinear_default_align_corners",
        aten.upsample_bilinear2d.default,
        T(1, 32, 4, 4),
        [8, 8],
        True,
        reason="align_corners=True",
    ),
    declines("pad_reflect", aten.pad.default, T(1, 3, 8, 8), [1, 1, 1, 1], "reflect", reason="mode='reflect'"),
    declines(
        "constant_pad_nd_float64",
        aten.constant_pad_nd.default,
        T(1, 3, 8, 8, dtype=F64),
        [1, 0],
        reason="dtype float64",
    ),
]

DATA_MOVEMENT = [
    lowers("view", aten.view.default, T(1, 2, 32, 64), [2, -1]),
    lowers("view_rank6_swin", aten.view.default, T(1, 16, 16, 8), [1, 2, 8, 2, 8, 8]),
    lowers("unsafe_view", aten._unsafe_view.default, T(4, 6), [3, 8]),
    lowers("reshape_int", aten.reshape.default, T(2, 3, 5, dtype=I64), [5, 6]),
    lowers("squeeze", aten.squeeze.default, T(1, 3, 1, 5)),
    lowers("squeeze_dim", aten.squeeze.dim, T(2, 1, 5), 1),
    lowers("squeeze_dims", aten.squeeze.dims, T(3, 7, 1, 1, 8), [-2]),
    lowers("unsqueeze", aten.unsqueeze.default, T(3, 5), -1),
    lowers("unsqueeze_bool", aten.unsqueeze.default, torch.rand(1, 3) > 0.5, 2),
    lowers("permute", aten.permute.default, T(1, 2, 32, 64), [0, 2, 3, 1]),
    lowers("permute_rank6_swin", aten.permute.default, T(1, 2, 8, 2, 8, 8), [0, 1, 3, 2, 4, 5]),
    lowers("transpose", aten.transpose.int, T(2, 3, 32, 64), -1, -2),
    lowers("t", aten.t.default, T(5, 7)),
    lowers("expand", aten.expand.default, T(1, 3, 1, 5), [2, 3, 4, 5]),
    lowers("expand_new_dims", aten.expand.default, T(80, 1), [2, 80, 80]),
    lowers("expand_bool", aten.expand.default, torch.rand(1, 3, 1) > 0.5, [1, 3, 16]),
    lowers("repeat", aten.repeat.default, T(2, 3), [2, 1, 2]),
    lowers("repeat_interleave", aten.repeat_interleave.self_int, T(2, 3, 4), 2, 1),
    lowers("slice", aten.slice.Tensor, T(2, 3, 40, 50), 2, 1, 33),
    lowers("slice_step_negative_end", aten.slice.Tensor, T(56, 56), 0, 0, -7, 2),
    lowers("slice_to_max", aten.slice.Tensor, T(1, 8, 56, 16), 3, 8, 9223372036854775807),
    lowers("select", aten.select.int, T(3, 4, 5), 0, -1),
    lowers("cat", aten.cat.default, [T(2, 3, 5), T(2, 3, 7)], -1),
    lowers("cat_int", aten.cat.default, [T(4, dtype=I64), T(3, dtype=I64)]),
    lowers("stack", aten.stack.default, [T(3, 4), T(3, 4), T(3, 4)], 1),
    lowers("clone", aten.clone.default, T(3, 49, 49)),
    lowers("alias", aten.alias.default, T(1, 8, 8, 4)),
    lowers("copy_broadcast", aten.copy.default, T(4, 5), T(1, 5)),
    lowers("to_copy_int_to_float", aten._to_copy.default, T(16, dtype=I64), dtype=torch.float32),
    lowers("to_copy_float_to_int", aten._to_copy.default, torch.randn(4, 8) * 10, dtype=torch.int32),
    lowers("to_copy_bool_to_float", aten._to_copy.default, torch.rand(4, 8) > 0.5, dtype=torch.float32),
    lowers(
        "to_copy_float_to_bool",
        aten._to_copy.default,
        torch.randn(4, 8).clamp(-1, 1) * (torch.rand(4, 8) > 0.5),
        dtype=torch.bool,
    ),
    lowers("copy_float_into_bool", aten.copy.default, torch.zeros(4, 5, dtype=torch.bool), torch.rand(1, 5) - 0.5),
    lowers("to_copy_float_to_half", aten._to_copy.default, T(4, 8), dtype=torch.float16),
    lowers("index_select_dim1", aten.index_select.default, T(1, 56, 8, 4), 1, T(4, dtype=I64)),
    lowers("index_select_1d", aten.index_select.default, T(10), 0, torch.tensor([9, 2, 2])),
    lowers("index_swin_bias", aten.index.Tensor, T(169, 3), [T(2401, dtype=I64)]),
    lowers("index_inner_dim_negative", aten.index.Tensor, T(4, 10, 6), [None, torch.tensor([[1, -1], [0, 2]])]),
    lowers("unsafe_index", aten._unsafe_index.Tensor, T(6, 5), [torch.tensor([5, 0, 3])]),
    lowers("unfold_windows", aten.unfold.default, T(1, 3, 10, 8), 2, 3, 2),
    lowers("unfold_last_dim", aten.unfold.default, T(2, 12), -1, 4, 4),
    lowers("index_two_tensors", aten.index.Tensor, T(4, 5), [torch.tensor([0, 1]), torch.tensor([2, -1])]),
    lowers(
        "index_bicubic_taps",
        aten._unsafe_index.Tensor,
        T(1, 3, 12, 12),
        [None, None, torch.tensor([[0], [5], [11]]), torch.tensor([3, 0, 11, 7])],
    ),
    lowers("flip", aten.flip.default, T(2, 5, 7), [0, -1]),
    lowers("gather", aten.gather.default, T(4, 8, 16), 2, T(4, 8, 5, dtype=I64)),
    lowers("gather_sparse_grad", aten.gather.default, T(6, 9), 0, T(2, 9, dtype=I64), sparse_grad=True),
    lowers("roll", aten.roll.default, T(1, 8, 8, 4), [3, -3], [1, 2]),
    lowers("roll_flat", aten.roll.default, T(3, 4), [5]),
    lowers("slice_scatter", aten.slice_scatter.default, T(49, 56), T(49, 49), 1, 0, -7),
    lowers("slice_scatter_middle", aten.slice_scatter.default, T(288), T(96), 0, 96, 192),
    lowers("select_scatter", aten.select_scatter.default, T(3, 4, 5), T(3, 5), 1, -2),
    # the *_copy variants and aliases export leaves in some graphs
    lowers("view_copy", aten.view_copy.default, T(4, 6), [3, 8]),
    lowers("squeeze_copy", aten.squeeze_copy.default, T(1, 3, 1, 5)),
    lowers("squeeze_copy_dim", aten.squeeze_copy.dim, T(2, 1, 5), 1),
    lowers("squeeze_copy_dims", aten.squeeze_copy.dims, T(3, 1, 1, 8), [1, 2]),
    lowers("unsqueeze_copy", aten.unsqueeze_copy.default, T(3, 5), 0),
    lowers("permute_copy", aten.permute_copy.default, T(2, 3, 32), [2, 0, 1]),
    lowers("transpose_copy", aten.transpose_copy.int, T(2, 3, 32), 0, 2),
    lowers("t_copy", aten.t_copy.default, T(5, 7)),
    lowers("t_vector", aten.t.default, T(7)),
    lowers("expand_copy", aten.expand_copy.default, T(1, 5), [3, 5]),
    lowers("slice_copy", aten.slice_copy.Tensor, T(4, 40), 1, 8, 24),
    lowers("select_copy", aten.select_copy.int, T(3, 4, 5), 2, 1),
    lowers("alias_copy", aten.alias_copy.default, T(2, 8)),
    lowers("detach_copy", aten.detach_copy.default, T(3, 5)),
    lowers("as_strided_reshape", aten.as_strided.default, T(4, 6), [2, 12], [12, 1]),
    lowers("as_strided_copy_same", aten.as_strided_copy.default, T(2, 3, 4), [2, 3, 4], [12, 4, 1]),
    lowers("detach", aten.detach.default, T(2, 8)),
    lowers("lift_fresh_copy", aten.lift_fresh_copy.default, T(2, 8)),
    lowers("contiguous", aten.contiguous.default, T(2, 8)),
    lowers("split", aten.split.Tensor, T(1, 32, 10, 10), 12, 1),
    lowers("split_copy", aten.split_copy.Tensor, T(6, 32), 4),
    lowers("split_with_sizes", aten.split_with_sizes.default, T(1, 32, 16, 16), [16, 16], 1),
    lowers("split_with_sizes_copy", aten.split_with_sizes_copy.default, T(6, 32), [2, 4]),
    lowers("unbind", aten.unbind.int, T(3, 4, 2, 8)),
    lowers("unbind_copy", aten.unbind_copy.int, T(3, 4, 8), 1),
    # every rule declines what TT-NN cannot hold: float64 (and complex) tensors
    *[
        declines(f"{op.__name__}_float64", op, T(2, 4, dtype=F64), *rest, reason="dtype float64")
        for op, *rest in [
            (aten.view.default, [8]),
            (aten._unsafe_view.default, [8]),
            (aten.reshape.default, [8]),
            (aten.view_copy.default, [8]),
            (aten.squeeze.default,),
            (aten.squeeze.dim, 0),
            (aten.squeeze.dims, [0]),
            (aten.squeeze_copy.default,),
            (aten.squeeze_copy.dim, 0),
            (aten.squeeze_copy.dims, [0]),
            (aten.unsqueeze.default, 0),
            (aten.unsqueeze_copy.default, 0),
            (aten.alias.default,),
            (aten.alias_copy.default,),
            (aten.detach.default,),
            (aten.detach_copy.default,),
            (aten.lift_fresh_copy.default,),
            (aten.as_strided.default, [8], [1]),
            (aten.as_strided_copy.default, [8], [1]),
            (aten.contiguous.default,),
            (aten.clone.default,),
            (aten.permute_copy.default, [1, 0]),
            (aten.transpose.int, 0, 1),
            (aten.transpose_copy.int, 0, 1),
            (aten.t.default,),
            (aten.t_copy.default,),
            (aten.expand.default, [3, 2, 4]),
            (aten.expand_copy.default, [3, 2, 4]),
            (aten.repeat.default, [2, 1]),
            (aten.repeat_interleave.self_int, 2, 0),
            (aten.slice.Tensor, 1, 0, 2),
            (aten.slice_copy.Tensor, 1, 0, 2),
            (aten.select.int, 0, 1),
            (aten.select_copy.int, 0, 1),
            (aten.split.Tensor, 2, 1),
            (aten.split_copy.Tensor, 2, 1),
            (aten.split_with_sizes.default, [1, 3], 1),
            (aten.split_with_sizes_copy.default, [1, 3], 1),
            (aten.unbind.int,),
            (aten.unbind_copy.int,),
            (aten._to_copy.default,),
            (aten.index_select.default, 0, torch.tensor([1])),
            (aten.flip.default, [0]),
            (aten.gather.default, 0, torch.zeros(1, 4, dtype=torch.int64)),
            (aten.roll.default, [1]),
            (aten.index.Tensor, [torch.tensor([1])]),
            (aten._unsafe_index.Tensor, [torch.tensor([1])]),
        ]
    ],
    declines("copy_float64", aten.copy.default, T(2, 4, dtype=F64), T(2, 4, dtype=F64), reason="dtype float64"),
    declines("stack_float64", aten.stack.default, [T(2, dtype=F64), T(2, dtype=F64)], reason="dtype float64"),
    declines(
        "slice_scatter_float64",
        aten.slice_scatter.default,
        T(4, dtype=F64),
        T(2, dtype=F64),
        0,
        0,
        2,
        reason="dtype float64",
    ),
    declines(
        "select_scatter_float64",
        aten.select_scatter.default,
        T(2, 4, dtype=F64),
        T(4, dtype=F64),
        0,
        0,
        reason="dtype float64",
    ),
    declines("as_strided_window", aten.as_strided.default, T(4, 6), [3, 3], [6, 2], reason="not a contiguous view"),
    declines("as_strided_offset", aten.as_strided.default, T(4, 6), [2, 6], [6, 1], 6, reason="not a contiguous view"),
    declines("view_rank10", aten.view.default, T(*[1] * 9, 2), [2] + [1] * 9, reason="rank 10 exceeds 8"),
    declines(
        "permute_complex64", aten.permute.default, T(2, 3, dtype=torch.complex64), [1, 0], reason="dtype complex64"
    ),
    declines("slice_scatter_step_2", aten.slice_scatter.default, T(8, 8), T(8, 4), 1, 0, 8, 2, reason="step=2"),
    declines("cat_mixed_dtypes", aten.cat.default, [T(2, 3), T(2, 3, dtype=I64)], reason="mixed input dtypes"),
    declines(
        "split_with_sizes_empty_chunk", aten.split_with_sizes.default, T(4, 6), [6, 0], 1, reason="empty split chunk"
    ),
    declines("to_copy_float64", aten._to_copy.default, T(4, 4, dtype=F64), dtype=torch.float32, reason="dtype float64"),
    declines(
        "index_select_int_source",
        aten.index_select.default,
        T(10, 4, dtype=I64),
        0,
        torch.tensor([1, 2]),
        reason="gathers bf16 rows",
    ),
    declines("unfold_int", aten.unfold.default, T(2, 12, dtype=I64), 1, 4, 4, reason="ttnn.embedding gathers bf16"),
    declines(
        "index_apart",
        aten.index.Tensor,
        T(4, 5, 6),
        [torch.tensor([0, 1]), None, torch.tensor([2, 3])],
        reason="are not adjacent",
    ),
    declines(
        "index_bool_mask", aten.index.Tensor, T(4, 5), [torch.tensor([True, False, True, False])], reason="boolean mask"
    ),
    declines("repeat_interleave_flat", aten.repeat_interleave.self_int, T(2, 3), 2, reason="dim=None"),
]

CREATION = [
    lowers("full", aten.full.default, [56, 56], 0.5, dtype=torch.float32),
    lowers("full_int", aten.full.default, [1, 6400], 8, dtype=torch.int64),
    lowers("full_bool", aten.full.default, [3, 5], True, dtype=torch.bool),
    lowers("zeros", aten.zeros.default, [2, 3, 5]),
    lowers("ones", aten.ones.default, [7]),
    lowers("scalar_tensor", aten.scalar_tensor.default, 2.5, dtype=torch.float32),
    lowers("scalar_tensor_finfo_min", aten.scalar_tensor.default, torch.finfo(torch.float32).min, dtype=torch.float32),
    lowers("arange", aten.arange.default, 10),
    lowers("arange_start", aten.arange.start, -5, 5),
    lowers("arange_start_step_float", aten.arange.start_step, 0, 80, 3, dtype=torch.float32),
    lowers("full_like", aten.full_like.default, T(96), 0),
    lowers("zeros_like", aten.zeros_like.default, T(2, 5)),
    lowers("ones_like_int", aten.ones_like.default, T(2, 5, dtype=I64)),
    lowers("new_full", aten.new_full.default, T(2), [3, 4], -2.0),
    lowers("new_zeros", aten.new_zeros.default, T(2), [3, 4]),
    lowers("new_ones", aten.new_ones.default, T(2), [4]),
    lowers("fill", aten.fill.Scalar, T(3, 4), 7.0),
    lowers("fill_tensor", aten.fill.Tensor, T(3, 40), torch.tensor(-1.5)),
    lowers("fill_tensor_rank5", aten.fill.Tensor, T(1, 2, 3, 4, 5), torch.tensor(0.25)),
    lowers("zero", aten.zero.default, T(3, 4)),
    declines("arange_fractional", aten.arange.start_step, 0.0, 1.0, 0.25, reason="non-integer range"),
    declines("arange_default_fractional", aten.arange.default, 2.5, reason="non-integer range"),
    declines("arange_start_fractional", aten.arange.start, 0.5, 3, reason="non-integer range"),
    declines(
        "full_fraction_in_int",
        aten.full.default,
        [2, 2],
        0.5,
        dtype=torch.int64,
        reason="does not fit the integer output",
    ),
    declines("full_complex64", aten.full.default, [2, 2], 1.0, dtype=torch.complex64, reason="dtype complex64"),
    declines("zeros_empty", aten.zeros.default, [0, 3], reason="empty tensor"),
    declines(
        "fill_tensor_int", aten.fill.Tensor, T(3, 4, dtype=I64), torch.tensor(2), reason="dtype int64 unsupported"
    ),
    declines("ones_rank9", aten.ones.default, [1] * 9, reason="rank 9 exceeds 8"),
    declines(
        "scalar_tensor_complex64", aten.scalar_tensor.default, 1.0, dtype=torch.complex64, reason="dtype complex64"
    ),
    *[
        declines(f"{op.__name__}_complex64", op, T(2, 3, dtype=torch.complex64), *rest, reason="dtype complex64")
        for op, *rest in [
            (aten.full_like.default, 1.0),
            (aten.zeros_like.default,),
            (aten.ones_like.default,),
            (aten.new_full.default, [2], 1.0),
            (aten.new_zeros.default, [2]),
            (aten.new_ones.default, [2]),
            (aten.fill.Scalar, 1.0),
            (aten.zero.default,),
        ]
    ],
]

CASES = CONV_POOL + DATA_MOVEMENT + CREATION
test_lowers, test_declines = rule_tests(CASES)


def test_negative_indices_computed_on_the_device_wrap(ctx):
    """x[arange(-3, 0)]: the int32 indices never leave the device and are wrapped there."""
    source = torch.randn(6, 4)
    graph = fx.Graph()
    table = graph.placeholder("table")
    table.meta["val"] = source
    idx = graph.call_function(aten.arange.start, (-3, 0))
    idx.meta["val"] = torch.arange(-3, 0)
    out = graph.call_function(aten.index.Tensor, (table, [idx]))
    out.meta["val"] = expected = source[torch.arange(-3, 0)]
    graph.output(out)
    run = run_graph(ctx, fx.GraphModule(torch.nn.Module(), graph), [source])
    assert [n.status for n in run.nodes] == ["device", "device"]
    assert pcc(run.outputs[0], expected) >= 0.99


@pytest.mark.parametrize(
    "target, args",
    [
        (aten.max_pool3d_with_indices.default, (torch.randn(1, 4, 4, 8, 8), [2, 2, 2])),
        (aten.avg_pool3d.default, (torch.randn(1, 4, 4, 8, 8), [1, 2, 2])),
    ],
)
def test_3d_pooling_falls_back_naming_the_missing_kernel(target, args):
    node = plan_graph(op_graph(target, args, {})[0].graph).nodes[0]
    assert not node.lowered and "TT-NN 0.81.1 has no 3-D pooling kernel" in node.reason


@pytest.mark.parametrize(
    "c, o, hw, kernel, stride, padding, dilation, groups, bias, activation, dtype",
    [
        (3, 8, (16, 16), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True, None, None),
        (16, 32, (15, 17), (3, 3), (2, 2), (0, 1, 2, 1), (1, 1), 1, False, "relu", "bfloat16"),
        (16, 16, (12, 12), (3, 3), (1, 1), (2, 2), (2, 2), 4, True, "relu", None),
        (32, 32, (8, 8), (3, 3), (1, 1), 1, (1, 1), 32, True, None, "bfloat8_b"),
        (24, 8, (9, 9), (1, 1), (1, 1), (0, 0), (1, 1), 1, True, None, None),
    ],
)
def test_fxports_conv_golden_matches_ttnns(
    c, o, hw, kernel, stride, padding, dilation, groups, bias, activation, dtype
):
    """fxport's conv2d golden (fxport.runtime.golden, the values of every conv on the mock) gives
    ttnn's own golden's values: padding (symmetric, four-sided), groups, dilation, a fused
    activation and the output dtype, on a bf16 flattened-NHWC input with padded channels."""
    import ttnn
    from ttnn.operations.conv2d import _golden_function as ttnn_golden

    from fxport.runtime.golden import OVERRIDES

    h, w = hw
    args = dict(
        input_tensor=torch.randn(1, 1, 2 * h * w, c + 3).to(torch.bfloat16),  # channels padded
        weight_tensor=torch.randn(o, c // groups, *kernel),
        in_channels=c,
        out_channels=o,
        batch_size=2,
        input_height=h,
        input_width=w,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias_tensor=torch.randn(1, 1, 1, o) if bias else None,
        conv_config=ttnn.Conv2dConfig(activation=ttnn.UnaryWithParam(ttnn.UnaryOpType.RELU)) if activation else None,
        dtype=getattr(ttnn, dtype) if dtype else None,
    )
    expected, got = ttnn_golden(**args), OVERRIDES["conv2d"](**args)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert torch.allclose(got.float(), expected.float(), rtol=1e-5, atol=1e-4)
    assert (
        ttnn_golden(**args, return_output_dim=True)[0].shape
        == OVERRIDES["conv2d"](**args, return_output_dim=True)[0].shape
    )
