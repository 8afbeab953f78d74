"""The conv_pool, data_movement and creation rules on the mock device: each lowers, runs through
TT-NN (status "device") and matches the aten op (PCC), and each documented limitation is declined
by a check, with its reason, before anything runs."""

import operator

import pytest
import torch
from torch import fx

from fxport.plan import plan_graph
from fxport.runtime.pcc import pcc
from fxport.single_op import op_graph, run_graph, run_single_op

aten = torch.ops.aten
torch.manual_seed(0)


def x(*shape):
    return torch.randn(*shape)


def ints(high, *shape):
    return torch.randint(0, high, shape)


def case(name, target, *args, **kwargs):
    return pytest.param(target, args, kwargs, id=name)


CONV_POOL = [
    case("conv2d", aten.conv2d.default, x(1, 3, 16, 16), x(8, 3, 3, 3), x(8), [1, 1], [1, 1]),
    case("conv2d_stride_nobias", aten.conv2d.default, x(2, 16, 16, 16), x(32, 16, 3, 3), None, [2, 2], [1, 1]),
    case("conv2d_groups_dilation", aten.conv2d.default, x(1, 16, 16, 16), x(16, 4, 3, 3), x(16), [1, 1], [2, 2],
         [2, 2], 4),
    case("conv2d_depthwise", aten.conv2d.default, x(1, 32, 8, 8), x(32, 1, 3, 3), None, [1, 1], [1, 1], [1, 1], 32),
    case("conv2d_patchify", aten.conv2d.default, x(1, 3, 28, 28), x(32, 3, 14, 14), x(32), [14, 14]),
    case("conv2d_unbatched", aten.conv2d.default, x(3, 16, 16), x(8, 3, 3, 3), x(8)),
    case("conv2d_same", aten.conv2d.padding, x(1, 4, 16, 16), x(8, 4, 4, 4), None, [1, 1], "same"),
    case("conv1d", aten.conv1d.default, x(2, 8, 32), x(16, 8, 3), x(16), [1], [1]),
    case("conv1d_same", aten.conv1d.padding, x(1, 8, 32), x(16, 8, 4), None, [1], "same"),
    case("convolution", aten.convolution.default, x(1, 4, 12, 12), x(8, 4, 3, 3), x(8), [2, 2], [1, 1], [1, 1],
         False, [0, 0], 1),
    case("max_pool2d", aten.max_pool2d.default, x(1, 16, 16, 16), [3, 3], [2, 2], [1, 1]),
    case("max_pool2d_sppf", aten.max_pool2d.default, x(1, 32, 10, 10), [5, 5], [1, 1], [2, 2]),
    case("max_pool2d_ceil_dilation", aten.max_pool2d.default, x(1, 16, 15, 15), [2, 2], [2, 2], [0, 0], [2, 2],
         True),
    case("avg_pool2d", aten.avg_pool2d.default, x(2, 16, 16, 16), [2, 2]),
    case("avg_pool2d_pad_exclude", aten.avg_pool2d.default, x(1, 16, 15, 15), [3, 3], [2, 2], [1, 1], True, False),
    case("adaptive_avg_pool2d_global", aten.adaptive_avg_pool2d.default, x(2, 64, 7, 7), [1, 1]),
    case("adaptive_avg_pool2d_7_to_3", aten._adaptive_avg_pool2d.default, x(1, 32, 7, 7), [3, 3]),
    case("upsample_nearest_scale", aten.upsample_nearest2d.vec, x(1, 16, 8, 8), None, [2.0, 2.0]),
    case("upsample_nearest_size", aten.upsample_nearest2d.vec, x(1, 5, 8, 6), [16, 18], None),
    case("upsample_nearest_default", aten.upsample_nearest2d.default, x(2, 3, 4, 4), [8, 8]),
    case("upsample_bilinear", aten.upsample_bilinear2d.vec, x(1, 32, 8, 8), None, False, [2.0, 2.0]),
    case("pad_back", aten.pad.default, x(1, 3, 16, 16), [0, 2, 0, 1]),
    case("pad_front_value", aten.pad.default, x(1, 3, 16, 16), [1, 1, 2, 0], "constant", 0.5),
    case("pad_zero", aten.pad.default, x(1, 56, 56, 8), [0, 0, 0, 0, 0, 0]),
    case("constant_pad_nd_rank5", aten.constant_pad_nd.default, x(1, 2, 3, 8, 8), [0, 0, 1, 0, 0, 1], -1.0),
]

DATA_MOVEMENT = [
    case("view", aten.view.default, x(1, 2, 32, 64), [2, -1]),
    case("view_rank6_swin", aten.view.default, x(1, 16, 16, 8), [1, 2, 8, 2, 8, 8]),
    case("unsafe_view", aten._unsafe_view.default, x(4, 6), [3, 8]),
    case("reshape_int", aten.reshape.default, ints(100, 2, 3, 5), [5, 6]),
    case("squeeze", aten.squeeze.default, x(1, 3, 1, 5)),
    case("squeeze_dim", aten.squeeze.dim, x(2, 1, 5), 1),
    case("squeeze_dims", aten.squeeze.dims, x(3, 7, 1, 1, 8), [-2]),
    case("unsqueeze", aten.unsqueeze.default, x(3, 5), -1),
    case("unsqueeze_bool", aten.unsqueeze.default, torch.rand(1, 3) > 0.5, 2),
    case("permute", aten.permute.default, x(1, 2, 32, 64), [0, 2, 3, 1]),
    case("permute_rank6_swin", aten.permute.default, x(1, 2, 8, 2, 8, 8), [0, 1, 3, 2, 4, 5]),
    case("transpose", aten.transpose.int, x(2, 3, 32, 64), -1, -2),
    case("t", aten.t.default, x(5, 7)),
    case("expand", aten.expand.default, x(1, 3, 1, 5), [2, 3, 4, 5]),
    case("expand_new_dims", aten.expand.default, x(80, 1), [2, 80, 80]),
    case("expand_bool", aten.expand.default, torch.rand(1, 3, 1) > 0.5, [1, 3, 16]),
    case("repeat", aten.repeat.default, x(2, 3), [2, 1, 2]),
    case("repeat_interleave", aten.repeat_interleave.self_int, x(2, 3, 4), 2, 1),
    case("slice", aten.slice.Tensor, x(2, 3, 40, 50), 2, 1, 33),
    case("slice_step_negative_end", aten.slice.Tensor, x(56, 56), 0, 0, -7, 2),
    case("slice_to_max", aten.slice.Tensor, x(1, 8, 56, 16), 3, 8, 9223372036854775807),
    case("select", aten.select.int, x(3, 4, 5), 0, -1),
    case("cat", aten.cat.default, [x(2, 3, 5), x(2, 3, 7)], -1),
    case("cat_int", aten.cat.default, [ints(9, 4), ints(9, 3)]),
    case("stack", aten.stack.default, [x(3, 4), x(3, 4), x(3, 4)], 1),
    case("clone", aten.clone.default, x(3, 49, 49)),
    case("alias", aten.alias.default, x(1, 8, 8, 4)),
    case("copy_broadcast", aten.copy.default, x(4, 5), x(1, 5)),
    case("to_copy_int_to_float", aten._to_copy.default, ints(50, 16), dtype=torch.float32),
    case("to_copy_float_to_int", aten._to_copy.default, x(4, 8) * 10, dtype=torch.int32),
    case("to_copy_bool_to_float", aten._to_copy.default, torch.rand(4, 8) > 0.5, dtype=torch.float32),
    case("to_copy_float_to_half", aten._to_copy.default, x(4, 8), dtype=torch.float16),
    case("index_select_dim1", aten.index_select.default, x(1, 56, 8, 4), 1, torch.tensor([3, 0, 55, 7])),
    case("index_select_1d", aten.index_select.default, x(10), 0, torch.tensor([9, 2, 2])),
    case("index_swin_bias", aten.index.Tensor, x(169, 3), [ints(169, 2401)]),
    case("index_inner_dim_negative", aten.index.Tensor, x(4, 10, 6), [None, torch.tensor([[1, -1], [0, 2]])]),
    case("unsafe_index", aten._unsafe_index.Tensor, x(6, 5), [torch.tensor([5, 0, 3])]),
    case("flip", aten.flip.default, x(2, 5, 7), [0, -1]),
    case("gather", aten.gather.default, x(4, 8, 16), 2, ints(16, 4, 8, 5)),
    case("gather_sparse_grad", aten.gather.default, x(6, 9), 0, ints(6, 2, 9), sparse_grad=True),
    case("roll", aten.roll.default, x(1, 8, 8, 4), [3, -3], [1, 2]),
    case("roll_flat", aten.roll.default, x(3, 4), [5]),
    case("slice_scatter", aten.slice_scatter.default, x(49, 56), x(49, 49), 1, 0, -7),
    case("slice_scatter_middle", aten.slice_scatter.default, x(288), x(96), 0, 96, 192),
    case("select_scatter", aten.select_scatter.default, x(3, 4, 5), x(3, 5), 1, -2),
]

CREATION = [
    case("full", aten.full.default, [56, 56], 0.5, dtype=torch.float32),
    case("full_int", aten.full.default, [1, 6400], 8, dtype=torch.int64),
    case("full_bool", aten.full.default, [3, 5], True, dtype=torch.bool),
    case("zeros", aten.zeros.default, [2, 3, 5]),
    case("ones", aten.ones.default, [7]),
    case("scalar_tensor", aten.scalar_tensor.default, 2.5, dtype=torch.float32),
    case("scalar_tensor_finfo_min", aten.scalar_tensor.default, torch.finfo(torch.float32).min, dtype=torch.float32),
    case("arange", aten.arange.default, 10),
    case("arange_start", aten.arange.start, -5, 5),
    case("arange_start_step_float", aten.arange.start_step, 0, 80, 3, dtype=torch.float32),
    case("full_like", aten.full_like.default, x(96), 0),
    case("zeros_like", aten.zeros_like.default, x(2, 5)),
    case("ones_like_int", aten.ones_like.default, ints(5, 2, 5)),
    case("new_full", aten.new_full.default, x(2), [3, 4], -2.0),
    case("new_zeros", aten.new_zeros.default, x(2), [3, 4]),
    case("new_ones", aten.new_ones.default, x(2), [4]),
    case("fill", aten.fill.Scalar, x(3, 4), 7.0),
    case("zero", aten.zero.default, x(3, 4)),
]


def _assert_device_match(r, expected):
    assert r.plan.lowered, r.plan.reason
    assert r.ran_on_device, f"{r.node.status}: {r.node.error_kind} {r.node.error}"
    assert tuple(r.output.shape) == tuple(expected.shape)
    assert r.output.dtype == expected.dtype
    assert r.pcc >= 0.99, r.pcc


@pytest.mark.parametrize("target, args, kwargs", CONV_POOL + DATA_MOVEMENT + CREATION)
def test_rule_runs_on_device_and_matches_aten(ctx, target, args, kwargs):
    r = run_single_op(ctx, target, args, kwargs)
    _assert_device_match(r, r.expected)


def _run_outputs(ctx, target, args, kwargs, outputs):
    """Run `target` in a graph that unpacks its tuple output with getitem, as captured graphs do;
    return (device outputs, expected outputs, node status)."""
    graph = fx.Graph()
    nodes = []
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor):
            p = graph.placeholder(f"arg{i}")
            p.meta["val"] = a
            nodes.append(p)
        else:
            nodes.append(a)
    op = graph.call_function(target, tuple(nodes), kwargs)
    op.meta["val"] = expected = target(*args, **kwargs)
    items = []
    for i in outputs:
        item = graph.call_function(operator.getitem, (op, i))
        item.meta["val"] = expected[i]
        items.append(item)
    graph.output(tuple(items))
    gm = fx.GraphModule(torch.nn.Module(), graph)
    assert plan_graph(gm.graph).nodes[0].lowered
    run = run_graph(ctx, gm, [a for a in args if isinstance(a, torch.Tensor)])
    return run.outputs, [expected[i] for i in outputs], run.nodes[0].status


@pytest.mark.parametrize("target, args, count", [
    pytest.param(aten.split.Tensor, (x(1, 32, 10, 10), 12, 1), 3, id="split"),
    pytest.param(aten.split_with_sizes.default, (x(1, 32, 16, 16), [16, 16], 1), 2, id="split_with_sizes"),
    pytest.param(aten.unbind.int, (x(3, 4, 2, 8), 0), 3, id="unbind"),
])
def test_multi_output_rules_match_every_output(ctx, target, args, count):
    got, want, status = _run_outputs(ctx, target, args, {}, range(count))
    assert status == "device"
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and pcc(g, w) >= 0.99


@pytest.mark.parametrize("target, args", [
    pytest.param(aten.max_pool2d_with_indices.default, (x(1, 16, 8, 8), [2, 2]), id="max_pool2d_with_indices"),
    pytest.param(aten.adaptive_max_pool2d.default, (x(2, 32, 7, 7), [1, 1]), id="adaptive_max_pool2d"),
])
def test_max_pools_lower_when_their_indices_are_unused(ctx, target, args):
    got, want, status = _run_outputs(ctx, target, args, {}, [0])
    assert status == "device"
    assert got[0].shape == want[0].shape and pcc(got[0], want[0]) >= 0.99


def test_negative_indices_computed_on_the_device_wrap(ctx):
    """x[arange(-3, 0)]: the int32 indices never leave the device and are wrapped there."""
    source = x(6, 4)
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


def _reason(target, *args, **kwargs) -> str:
    node = plan_graph(op_graph(target, args, kwargs)[0].graph).nodes[0]
    assert not node.lowered
    return node.reason


@pytest.mark.parametrize("target, args, kwargs, reason", [
    (aten.convolution.default, (x(1, 4, 8, 8), x(4, 8, 3, 3), None, [1, 1], [0, 0], [1, 1], True, [0, 0], 1), {},
     "transposed convolution"),
    (aten.convolution.default, (x(1, 2, 4, 8, 8), x(4, 2, 3, 3, 3), None, [1] * 3, [0] * 3, [1] * 3, False,
                                [0] * 3, 1), {}, "3-D convolution"),
    (aten.conv2d.default, (x(1, 3, 8, 8).double(), x(4, 3, 3, 3).double()), {}, "dtype float64"),
    (aten.adaptive_avg_pool2d.default, (x(1, 8, 10, 10), [4, 4]), {}, "windows of varying size or stride"),
    (aten.max_pool2d_with_indices.default, (x(1, 8, 8, 8), [2, 2]), {}, "indices output is used"),
    (aten.upsample_nearest2d.vec, (x(1, 8, 4, 4), [6, 6], None), {}, "not an integer scale"),
    (aten.upsample_nearest2d.vec, (x(1, 8, 20, 20), None, [2.01, 2.01]), {}, "integer factors only"),
    (aten.upsample_bilinear2d.vec, (x(1, 32, 4, 4), None, True, [2.0, 2.0]), {}, "align_corners=True"),
    (aten.upsample_bilinear2d.vec, (x(1, 3, 4, 4), None, False, [2.0, 2.0]), {}, "multiple of 32"),
    (aten.pad.default, (x(1, 3, 8, 8), [1, 1, 1, 1], "reflect"), {}, "mode='reflect'"),
    (aten.constant_pad_nd.default, (x(1, 3, 8, 8), [-1, 0]), {}, "cropping"),
    (aten.view.default, (x(*[1] * 9 + [2]), [2] + [1] * 9), {}, "rank 10 exceeds 8"),
    (aten.permute.default, (torch.zeros(2, 3, dtype=torch.complex64), [1, 0]), {}, "dtype complex64"),
    (aten.slice_scatter.default, (x(8, 8), x(8, 4), 1, 0, 8, 2), {}, "step=2"),
    (aten.cat.default, ([x(2, 3), ints(5, 2, 3)],), {}, "mixed input dtypes"),
    (aten.split_with_sizes.default, (x(4, 6), [6, 0], 1), {}, "empty split chunk"),
    (aten._to_copy.default, (x(4, 4),), {"dtype": torch.bool}, "-> bool unsupported"),
    (aten.index_select.default, (ints(9, 10, 4), 0, torch.tensor([1, 2])), {}, "gathers bf16 rows"),
    (aten.index.Tensor, (x(4, 5), [torch.tensor([0, 1]), torch.tensor([2, 3])]), {}, "2 index tensors"),
    (aten.index.Tensor, (x(4, 5), [torch.tensor([True, False, True, False])]), {}, "boolean mask"),
    (aten.repeat_interleave.self_int, (x(2, 3), 2), {}, "dim=None"),
    (aten.arange.start_step, (0.0, 1.0, 0.25), {}, "non-integer range"),
    (aten.full.default, ([2, 2], 0.5), {"dtype": torch.int64}, "does not fit the integer output"),
    (aten.full.default, ([2, 2], 1.0), {"dtype": torch.complex64}, "dtype complex64"),
    (aten.zeros.default, ([0, 3],), {}, "empty tensor"),
    (aten.ones.default, ([1] * 9,), {}, "rank 9 exceeds 8"),
])
def test_checks_decline_unsupported_cases_with_a_reason(target, args, kwargs, reason):
    assert reason in _reason(target, *args, **kwargs)
