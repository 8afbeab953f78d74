"""Rules of the matmul, attention, normalization, embedding and reduction families: each lowers on
a mock n150 through the whole pipeline and matches the aten op (values from ttnn's golden
functions at bf16 device precision), and each check declines what TT-NN 0.81.1 cannot do."""

import math
import operator

import pytest
import torch
from torch import fx

from fxport.mapping.normalization import used_outputs
from fxport.plan import plan_graph
from fxport.runtime.context import LoweringContext
from fxport.runtime.dual import DualOps
from fxport.runtime.pcc import pcc
from fxport.single_op import op_graph, run_graph, run_single_op

aten = torch.ops.aten
torch.manual_seed(0)


def rn(*shape):
    return torch.randn(*shape)


def near_one(*shape):  # products of many factors stay in range
    return 1 + 0.05 * torch.randn(*shape)


def distinct(*shape):  # integers exact in bf16 (< 256): no ties for arg-reductions after rounding
    n = math.prod(shape)
    return torch.randperm(n).float().reshape(shape) - n / 2


def exact(*shape):  # small integers: dot products exact in bf16, so a scalar result compares exactly
    return torch.randint(-3, 4, shape).float()


def powers_of_two(*shape):  # products exact in bf16
    return 2.0 ** torch.randint(-1, 2, shape).float()


def tokens(*shape, vocab=100):
    return torch.randint(0, vocab, shape)


C = 64  # channels / features
ON_DEVICE = [
    # matmul
    ("mm", aten.mm.default, (rn(64, 32), rn(32, 96)), {}),
    ("mm_unaligned", aten.mm.default, (rn(5, 7), rn(7, 3)), {}),
    ("bmm", aten.bmm.default, (rn(3, 64, 32), rn(3, 32, 96)), {}),
    ("matmul_4d", aten.matmul.default, (rn(2, 3, 64, 32), rn(2, 3, 32, 96)), {}),
    ("matmul_bcast_b", aten.matmul.default, (rn(2, 3, 64, 32), rn(32, 96)), {}),
    ("matmul_bcast_a", aten.matmul.default, (rn(1, 1, 64, 32), rn(2, 3, 32, 96)), {}),
    ("matmul_vec", aten.matmul.default, (rn(3, 64, 32), rn(32)), {}),
    ("mv", aten.mv.default, (rn(64, 32), rn(32)), {}),
    ("dot", aten.dot.default, (exact(32), exact(32)), {}),
    ("linear", aten.linear.default, (rn(2, 50, 32), rn(96, 32), rn(96)), {}),
    ("linear_no_bias_5d", aten.linear.default, (rn(2, 2, 2, 10, 32), rn(48, 32)), {}),
    ("addmm_row_bias", aten.addmm.default, (rn(96), rn(64, 32), rn(32, 96)), {}),
    ("addmm_scaled", aten.addmm.default, (rn(1, 96), rn(64, 32), rn(32, 96)), {"beta": 0.5, "alpha": 2}),
    ("addmm_full", aten.addmm.default, (rn(64, 96), rn(64, 32), rn(32, 96)), {"beta": 0.5, "alpha": 2}),
    ("addmm_column", aten.addmm.default, (rn(64, 1), rn(64, 32), rn(32, 96)), {}),
    ("baddbmm", aten.baddbmm.default, (rn(3, 64, 96), rn(3, 64, 32), rn(3, 32, 96)),
     {"beta": 0.5, "alpha": 2}),
    # attention
    ("sdpa", aten.scaled_dot_product_attention.default,
     (rn(1, 2, 64, 64), rn(1, 2, 64, 64), rn(1, 2, 64, 64)), {}),
    ("sdpa_causal_unaligned", aten.scaled_dot_product_attention.default,
     (rn(1, 2, 50, 32), rn(1, 2, 50, 32), rn(1, 2, 50, 32)), {"is_causal": True}),
    ("sdpa_gqa_scale", aten.scaled_dot_product_attention.default,
     (rn(2, 8, 64, 64), rn(2, 1, 96, 64), rn(2, 1, 96, 64)), {"scale": 0.3, "enable_gqa": True}),
    ("sdpa_float_mask", aten.scaled_dot_product_attention.default,
     (rn(2, 2, 50, 64), rn(2, 2, 77, 64), rn(2, 2, 77, 64), rn(2, 1, 50, 77)), {}),
    # head dims the kernel cannot take as they are: padded to a multiple of 32
    ("sdpa_yolo11_v_wider", aten.scaled_dot_product_attention.default,
     (rn(1, 2, 400, 32), rn(1, 2, 400, 32), rn(1, 2, 400, 64)), {}),
    ("sdpa_siglip_head_72", aten.scaled_dot_product_attention.default,
     (rn(1, 4, 64, 72), rn(1, 4, 64, 72), rn(1, 4, 64, 72)), {}),
    ("sdpa_gemma_tiny_head_16_gqa", aten.scaled_dot_product_attention.default,
     (rn(1, 8, 50, 16), rn(1, 1, 50, 16), rn(1, 1, 50, 16), rn(1, 1, 50, 50)), {"enable_gqa": True}),
    ("sdpa_bool_mask_2d", aten.scaled_dot_product_attention.default,
     (rn(1, 2, 64, 64), rn(1, 2, 64, 64), rn(1, 2, 64, 64), torch.rand(64, 64) > 0.3), {}),
    # normalization
    ("softmax_last", aten.softmax.int, (rn(1, 2, 32, 64), -1), {}),
    ("softmax_dim1", aten.softmax.int, (rn(2, 50, 77), 1), {}),
    ("_softmax", aten._softmax.default, (rn(2, 50, 77), -1, False), {}),
    ("log_softmax", aten.log_softmax.int, (rn(2, 50, 77), -1), {}),
    ("_log_softmax_dim0", aten._log_softmax.default, (rn(4, 3, 64), 0, False), {}),
    ("layer_norm", aten.layer_norm.default, (rn(2, 50, C), [C], rn(C), rn(C), 1e-6), {}),
    ("layer_norm_plain_unaligned", aten.layer_norm.default, (rn(3, 7, 77), [77]), {}),
    ("rms_norm", aten.rms_norm.default, (rn(2, 50, C), [C], rn(C), 1e-6), {}),
    ("rms_norm_default_eps", aten.rms_norm.default, (rn(2, 50, 77), [77]), {}),
    ("group_norm", aten.group_norm.default, (rn(2, C, 8, 8), 8, rn(C), rn(C), 1e-5), {}),
    ("group_norm_1d_plain", aten.group_norm.default, (rn(1, 96, 50), 3), {}),
    # embedding
    ("embedding", aten.embedding.default, (rn(100, C), tokens(2, 7)), {}),
    ("embedding_1d_unaligned", aten.embedding.default, (rn(100, 50), tokens(9)), {"padding_idx": 0}),
    # reductions
    # Scalar results compare within two bf16 steps (pcc's degenerate case): positive inputs keep a
    # sum of 6000 bf16-rounded values from cancelling down to its rounding noise.
    ("sum_all", aten.sum.default, (torch.rand(2, 3, 40, 50),), {}),
    ("sum_dims", aten.sum.dim_IntList, (rn(2, 3, 40, 50), [2, 3], True), {}),
    ("sum_5d", aten.sum.dim_IntList, (rn(2, 3, 4, 40, 50), [2]), {}),
    ("sum_bool_count", aten.sum.dim_IntList, (torch.rand(2, 50) > 0.5, [-1]), {}),
    ("mean_all", aten.mean.default, (torch.rand(2, 3, 40, 50),), {}),
    ("mean_dim", aten.mean.dim, (rn(2, 50, C), [-1], True), {}),
    ("amax", aten.amax.default, (rn(2, 3, 40, 50), [1]), {}),
    ("amin", aten.amin.default, (rn(2, 3, 40, 50), [0, 1], True), {}),
    ("max_all", aten.max.default, (rn(2, 3, 40, 50),), {}),
    ("min_all", aten.min.default, (rn(2, 3, 40, 50),), {}),
    ("argmax_last", aten.argmax.default, (distinct(2, 3, 40), -1), {}),
    ("argmax_all", aten.argmax.default, (distinct(3, 40),), {}),
    ("argmin_dim0_keepdim", aten.argmin.default, (distinct(3, 4, 40), 0, True), {}),
    ("var", aten.var.correction, (rn(2, 3, 40, 50), [-1]), {"correction": 0, "keepdim": True}),
    ("var_dim_unbiased", aten.var.dim, (rn(2, 3, 40, 50), [2, 3]), {}),
    ("var_all", aten.var.default, (rn(2, 3, 40, 50),), {}),
    ("std", aten.std.correction, (rn(2, 3, 40, 50), [1]), {"correction": 1}),
    ("std_dim", aten.std.dim, (rn(2, 3, 40, 50), [-1], False, True), {}),
    ("std_all", aten.std.default, (rn(2, 3, 40, 50), False), {}),
    ("prod_dim", aten.prod.dim_int, (near_one(2, 3, 40, 16), -1, True), {}),
    ("prod_all", aten.prod.default, (powers_of_two(4, 16),), {}),
    ("cumsum", aten.cumsum.default, (rn(2, 3, 40, 50), 1), {}),
    ("cumsum_int_positions", aten.cumsum.default, (torch.randint(0, 2, (2, 50)), -1), {}),
    ("any_dim", aten.any.dim, (torch.rand(2, 3, 40) > 0.9, -1), {}),
    ("any_float", aten.any.default, (torch.zeros(4, 40).index_fill_(1, torch.tensor([3]), 2.0),), {}),
    ("all_dims", aten.all.dims, (torch.rand(2, 3, 40) > 0.05, [0, 2], True), {}),
    ("all_dim", aten.all.dim, (torch.rand(2, 3, 40) > 0.05, 1), {}),
]


@pytest.mark.parametrize("target,args,kwargs", [pytest.param(t, a, k, id=i) for i, t, a, k in ON_DEVICE])
def test_rule_runs_on_device(ctx, target, args, kwargs):
    r = run_single_op(ctx, target, args, kwargs)
    assert r.plan.lowered, r.plan.reason
    assert r.ran_on_device, f"{r.node.error_kind}: {r.node.error}"
    assert (tuple(r.output.shape), r.output.dtype) == (tuple(r.expected.shape), r.expected.dtype)
    assert r.pcc >= 0.99


MULTI_OUTPUT = [
    ("native_layer_norm", aten.native_layer_norm.default, (rn(2, 50, C), [C], rn(C), rn(C), 1e-5)),
    ("batch_norm_2d", aten._native_batch_norm_legit_no_training.default,
     (rn(2, 16, 10, 10), rn(16), rn(16), rn(16), torch.rand(16) + 0.5, 0.1, 1e-3)),
    ("batch_norm_1d", aten._native_batch_norm_legit_no_training.default,
     (rn(2, 16, 10), None, None, rn(16), torch.rand(16) + 0.5, 0.1, 1e-5)),
    ("max_dim", aten.max.dim, (distinct(2, 3, 40), -1, True)),
    ("min_dim", aten.min.dim, (distinct(2, 3, 40), 1)),
]


def run_all_outputs(ctx, target, args):
    """run_single_op for a multi-output op read through getitem nodes, as in captured graphs
    (a graph returning the op's tuple itself hands its device values out unconverted)."""
    gm, inputs = op_graph(target, args)
    graph = gm.graph
    node = next(n for n in graph.nodes if n.op == "call_function")
    out = next(n for n in graph.nodes if n.op == "output")
    items = []
    with graph.inserting_before(out):
        for i, val in enumerate(node.meta["val"]):
            items.append(graph.call_function(operator.getitem, (node, i)))
            items[-1].meta["val"] = val
    out.args = (tuple(items),)
    gm.recompile()
    (plan,) = plan_graph(graph).nodes
    run = run_graph(ctx, gm, inputs)
    return plan, [r for r in run.nodes if r.partition], run.outputs, list(target(*args))


@pytest.mark.parametrize("target,args", [pytest.param(t, a, id=i) for i, t, a in MULTI_OUTPUT])
def test_multi_output_rule_runs_on_device(ctx, target, args):
    plan, nodes, got, want = run_all_outputs(ctx, target, args)
    assert plan.lowered, plan.reason
    assert [n.status for n in nodes] == ["device"], [n.error for n in nodes]
    assert [(tuple(t.shape), t.dtype) for t in got] == [(tuple(t.shape), t.dtype) for t in want]
    for g, w in zip(got, want):
        if w.numel() == 0:  # batch_norm's saved statistics in eval mode
            continue
        if w.is_floating_point():
            assert pcc(g.float(), w.float()) >= 0.99
        else:  # indices
            assert torch.equal(g, w)


def test_unused_outputs_are_not_computed(ctx):
    """Only what the graph reads is computed: with just the values of max.dim used, no argmax."""
    gm, inputs = op_graph(aten.max.dim, (distinct(2, 3, 40), -1))
    graph = gm.graph
    node = next(n for n in graph.nodes if n.op == "call_function")
    out = next(n for n in graph.nodes if n.op == "output")
    assert used_outputs(node) == {0, 1}  # both outputs are returned: both are read
    values = next(n for n in graph.nodes if n.target is operator.getitem and n.args[1] == 0)
    out.args = (values,)
    graph.eliminate_dead_code()  # drops the read of the indices
    gm.recompile()
    assert used_outputs(node) == {0}
    calls = []
    ctx.ops = DualOps(ctx.ttnn, emulate=True, on_call=calls.append)
    run = run_graph(ctx, gm, inputs)
    assert "max" in calls and "argmax" not in calls
    assert pcc(run.outputs[0], inputs[0].amax(-1)) >= 0.99


DECLINED = [
    ("matmul_mixed_batch", aten.matmul.default, (rn(2, 1, 64, 32), rn(1, 3, 32, 96)), {},
     "batch dims [2, 1] x [1, 3] unsupported"),
    ("matmul_rank_mismatch", aten.matmul.default, (rn(2, 3, 64, 32), rn(3, 32, 96)), {}, "batch dims"),
    ("matmul_vec_batch", aten.matmul.default, (rn(32), rn(3, 32, 96)), {}, "front dims must be 1"),
    ("matmul_rank7", aten.matmul.default, (rn(1, 1, 1, 1, 2, 4, 8), rn(1, 1, 1, 1, 2, 8, 4)), {},
     "rank 7 exceeds 6"),
    ("mm_int", aten.mm.default, (torch.ones(4, 4, dtype=torch.int64), torch.ones(4, 4, dtype=torch.int64)), {},
     "dtype int64"),
    ("sdpa_batch_broadcast", aten.scaled_dot_product_attention.default,
     (rn(1, 2, 64, 64), rn(2, 2, 64, 64), rn(2, 2, 64, 64)), {}, "broadcasts no batch dim"),
    ("sdpa_causal_cross", aten.scaled_dot_product_attention.default,
     (rn(1, 2, 32, 64), rn(1, 2, 96, 64), rn(1, 2, 96, 64)), {"is_causal": True}, "Sq == Sk"),
    ("sdpa_mask_row", aten.scaled_dot_product_attention.default,
     (rn(1, 2, 64, 64), rn(1, 2, 64, 64), rn(1, 2, 64, 64), rn(1, 1, 1, 64)), {}, "broadcasts only batch"),
    ("sdpa_rank3", aten.scaled_dot_product_attention.default, (rn(2, 64, 64), rn(2, 64, 64), rn(2, 64, 64)), {},
     "rank 3 inputs unsupported"),
    ("sdpa_dropout", aten.scaled_dot_product_attention.default,
     (rn(1, 2, 64, 64), rn(1, 2, 64, 64), rn(1, 2, 64, 64), None, 0.1), {}, "dropout_p"),
    ("softmax_to_double", aten.softmax.int, (rn(4, 4), 0, torch.float64), {}, "result dtype float64"),
    ("layer_norm_2_dims", aten.layer_norm.default, (rn(2, 8, 8), [8, 8]), {}, "last dim only"),
    ("rms_norm_2_dims", aten.rms_norm.default, (rn(2, 8, 8), [8, 8]), {}, "last dim only"),
    ("group_norm_c48", aten.group_norm.default, (rn(1, 48, 8, 8), 4), {}, "C=48 unsupported"),
    ("group_norm_rank2", aten.group_norm.default, (rn(2, 32), 4), {}, "rank 2 unsupported"),
    ("batch_norm_5d", aten._native_batch_norm_legit_no_training.default,
     (rn(1, 4, 2, 2, 2), None, None, rn(4), torch.rand(4), 0.1, 1e-5), {}, "rank 5 exceeds 4"),
    ("embedding_3d_indices", aten.embedding.default, (rn(100, 64), tokens(2, 3, 7)), {}, "rank 3 indices"),
    ("embedding_scalar_index", aten.embedding.default, (rn(100, 64), torch.tensor(3)), {}, "rank 0 indices"),
    ("linear_vector_weight", aten.linear.default, (rn(4, 32), rn(32)), {}, "rank 1 weight"),
    ("sum_int_to_float", aten.sum.dim_IntList, (torch.ones(4, 4, dtype=torch.int64), [0]),
     {"dtype": torch.float32}, "int64 to float32 unsupported"),
    ("var_correction_2", aten.var.correction, (rn(4, 40), [1]), {"correction": 2}, "correction=2"),
    ("argmax_int", aten.argmax.default, (torch.ones(4, 4, dtype=torch.int32), 1), {}, "dtype int32"),
    ("cumsum_int_to_float", aten.cumsum.default, (torch.ones(4, dtype=torch.int64), 0),
     {"dtype": torch.float32}, "keeps integers or floats"),
]


@pytest.mark.parametrize("target,args,kwargs,reason",
                         [pytest.param(t, a, k, why, id=i) for i, t, a, k, why in DECLINED])
def test_check_declines(target, args, kwargs, reason):
    gm, _ = op_graph(target, args, kwargs)
    (node,) = plan_graph(gm.graph).nodes
    assert not node.lowered
    assert reason in node.reason, node.reason


def test_linear_weight_computed_on_the_device(ctx):
    """A weight that is itself a device value is transposed on the device, not read back."""
    graph = fx.Graph()
    x, w, b = (graph.placeholder(name) for name in ("x", "w", "b"))
    values = [rn(2, 50, 32), rn(96, 32), rn(96)]
    for node, value in zip((x, w, b), values):
        node.meta["val"] = value
    doubled = graph.call_function(aten.add.Tensor, (w, w))
    doubled.meta["val"] = values[1] * 2
    out = graph.call_function(aten.linear.default, (x, doubled, b))
    out.meta["val"] = aten.linear.default(values[0], values[1] * 2, values[2])
    graph.output(out)
    run = run_graph(ctx, fx.GraphModule(torch.nn.Module(), graph), values)
    assert [(r.target, r.status) for r in run.nodes] == [("aten.add.Tensor", "device"),
                                                         ("aten.linear.default", "device")]
    assert pcc(run.outputs[0], out.meta["val"]) >= 0.99


@pytest.mark.parametrize("target,args", [
    pytest.param(aten.linear.default, (rn(2, 50, 32), rn(96, 32), rn(96)), id="linear_bias"),
    pytest.param(aten.scaled_dot_product_attention.default,
                 (rn(1, 2, 50, 64), rn(1, 2, 50, 64), rn(1, 2, 50, 64), rn(1, 1, 50, 50)), id="sdpa_mask"),
])
def test_runs_with_activations_in_l1(mock_device, target, args):
    """Layouts TT-NN requires whatever the activations' memory: an [in, out] weight (the
    transpose_b path fails with an L1 operand and a bias), the SDPA mask in DRAM."""
    ctx = LoweringContext(mock_device, memory="l1")
    r = run_single_op(ctx, target, args)
    assert r.ran_on_device, f"{r.node.error_kind}: {r.node.error}"
    assert r.pcc >= 0.99

