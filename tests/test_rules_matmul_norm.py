"""Rules of the matmul, attention, normalization, embedding and reduction families
(tests/rule_harness.py): each lowers on a mock n150 through the whole pipeline and matches the aten
op (values from ttnn's golden functions at bf16 device precision), and each check declines what
TT-NN 0.81.1 cannot do."""

import math
import operator

import torch
from torch import fx

from fxport.mapping.normalization import used_outputs
from fxport.runtime.dual import DualOps
from fxport.runtime.pcc import pcc
from fxport.single_op import op_graph, run_graph
from tests.rule_harness import T, declines, lowers, rule_tests

aten = torch.ops.aten
torch.manual_seed(0)
I64, F64, BOOL = torch.int64, torch.float64, torch.bool
SDPA = aten.scaled_dot_product_attention.default
BATCH_NORM = aten._native_batch_norm_legit_no_training.default


def distinct(*shape):  # integers exact in bf16 (< 256): no ties for arg-reductions after rounding
    n = math.prod(shape)
    return torch.randperm(n).float().reshape(shape) - n / 2


def exact(*shape):  # small integers: dot products exact in bf16, so a scalar result compares exactly
    return torch.randint(-3, 4, shape).float()


def powers_of_two(*shape):  # products exact in bf16
    return 2.0 ** torch.randint(-1, 2, shape).float()


def positive(*shape):  # a sum of thousands of values that cannot cancel down to rounding noise
    return torch.rand(shape).bfloat16().float()


C = 64  # channels / features
CASES = [
    # matmul
    lowers("mm", aten.mm.default, T(64, 32), T(32, 96)),
    lowers("mm_unaligned", aten.mm.default, T(5, 7), T(7, 3)),
    lowers("bmm", aten.bmm.default, T(3, 64, 32), T(3, 32, 96)),
    lowers("matmul_4d", aten.matmul.default, T(2, 3, 64, 32), T(2, 3, 32, 96)),
    lowers("matmul_bcast_b", aten.matmul.default, T(2, 3, 64, 32), T(32, 96)),
    lowers("matmul_bcast_a", aten.matmul.default, T(1, 1, 64, 32), T(2, 3, 32, 96)),
    lowers("matmul_vec", aten.matmul.default, T(3, 64, 32), T(32)),
    lowers("mv", aten.mv.default, T(64, 32), T(32)),
    lowers("dot", aten.dot.default, exact(32), exact(32)),
    lowers("linear", aten.linear.default, T(2, 50, 32), T(96, 32), T(96)),
    lowers("linear_no_bias_5d", aten.linear.default, T(2, 2, 2, 10, 32), T(48, 32)),
    lowers("linear_bias_l1", aten.linear.default, T(2, 50, 32), T(96, 32), T(96), memory="l1"),
    lowers("addmm_row_bias", aten.addmm.default, T(96), T(64, 32), T(32, 96)),
    lowers("addmm_scaled", aten.addmm.default, T(1, 96), T(64, 32), T(32, 96), beta=0.5, alpha=2),
    lowers("addmm_full", aten.addmm.default, T(64, 96), T(64, 32), T(32, 96), beta=0.5, alpha=2),
    lowers("addmm_column", aten.addmm.default, T(64, 1), T(64, 32), T(32, 96)),
    lowers("baddbmm", aten.baddbmm.default, T(3, 64, 96), T(3, 64, 32), T(3, 32, 96), beta=0.5, alpha=2),
    # attention
    lowers("sdpa", SDPA, T(1, 2, 64, 64), T(1, 2, 64, 64), T(1, 2, 64, 64)),
    lowers("sdpa_rank5_windows", SDPA, T(1, 3, 2, 49, 32), T(1, 3, 2, 49, 32), T(1, 3, 2, 49, 32)),
    lowers("sdpa_causal_unaligned", SDPA, T(1, 2, 50, 32), T(1, 2, 50, 32), T(1, 2, 50, 32), is_causal=True),
    lowers("sdpa_gqa_scale", SDPA, T(2, 8, 64, 64), T(2, 1, 96, 64), T(2, 1, 96, 64), scale=0.3, enable_gqa=True),
    lowers("sdpa_float_mask", SDPA, T(2, 2, 50, 64), T(2, 2, 77, 64), T(2, 2, 77, 64), T(2, 1, 50, 77)),
    lowers("sdpa_mask_l1", SDPA, T(1, 2, 50, 64), T(1, 2, 50, 64), T(1, 2, 50, 64), T(1, 1, 50, 50), memory="l1"),
    # head dims the kernel cannot take as they are: padded to a multiple of 32
    lowers("sdpa_yolo11_v_wider", SDPA, T(1, 2, 400, 32), T(1, 2, 400, 32), T(1, 2, 400, 64)),
    lowers("sdpa_siglip_head_72", SDPA, T(1, 4, 64, 72), T(1, 4, 64, 72), T(1, 4, 64, 72)),
    lowers(
        "sdpa_gemma_tiny_head_16_gqa",
        SDPA,
        T(1, 8, 50, 16),
        T(1, 1, 50, 16),
        T(1, 1, 50, 16),
        T(1, 1, 50, 50),
        enable_gqa=True,
    ),
    lowers("sdpa_bool_mask_2d", SDPA, T(1, 2, 64, 64), T(1, 2, 64, 64), T(1, 2, 64, 64), T(64, 64, dtype=BOOL)),
    # normalization
    lowers("softmax_last", aten.softmax.int, T(1, 2, 32, 64), -1),
    # Rank > 4 (window attention, video): leading dims folded to rank 4 around the normalized dim.
    lowers("softmax_rank5_last", aten.softmax.int, T(2, 3, 4, 49, 49), -1),
    lowers("_softmax_rank6_dim2", aten._softmax.default, T(2, 2, 5, 3, 4, 8), 2, False),
    lowers("log_softmax_rank5", aten.log_softmax.int, T(2, 3, 4, 8, 40), -1),
    lowers("layer_norm_rank5", aten.layer_norm.default, T(1, 2, 4, 7, C), [C], T(C), T(C)),
    lowers("native_layer_norm_rank5", aten.native_layer_norm.default, T(1, 2, 3, 5, C), [C], T(C), T(C), 1e-5),
    lowers("rms_norm_rank5", aten.rms_norm.default, T(1, 2, 4, 7, C), [C], T(C), 1e-6),
    lowers("group_norm_rank5", aten.group_norm.default, T(1, 32, 2, 4, 4), 8, T(32), T(32)),
    lowers("batch_norm_3d", BATCH_NORM, T(2, 16, 4, 6, 6), T(16), T(16), T(16), T(16), 0.1, 1e-5),
    lowers("softmax_dim1", aten.softmax.int, T(2, 50, 77), 1),
    lowers("_softmax", aten._softmax.default, T(2, 50, 77), -1, False),
    lowers("log_softmax", aten.log_softmax.int, T(2, 50, 77), -1),
    lowers("_log_softmax_dim0", aten._log_softmax.default, T(4, 3, 64), 0, False),
    lowers("layer_norm", aten.layer_norm.default, T(2, 50, C), [C], T(C), T(C), 1e-6),
    lowers("layer_norm_plain_unaligned", aten.layer_norm.default, T(3, 7, 77), [77]),
    lowers("native_layer_norm", aten.native_layer_norm.default, T(2, 50, C), [C], T(C), T(C), 1e-5),
    lowers("rms_norm", aten.rms_norm.default, T(2, 50, C), [C], T(C), 1e-6),
    lowers("rms_norm_default_eps", aten.rms_norm.default, T(2, 50, 77), [77]),
    lowers("group_norm", aten.group_norm.default, T(2, C, 8, 8), 8, T(C), T(C), 1e-5),
    lowers("group_norm_1d_plain", aten.group_norm.default, T(1, 96, 50), 3),
    lowers("batch_norm_2d", BATCH_NORM, T(2, 16, 10, 10), T(16), T(16), T(16), T(16), 0.1, 1e-3),
    lowers("batch_norm_1d", BATCH_NORM, T(2, 16, 10), None, None, T(16), T(16), 0.1, 1e-5),
    # embedding
    lowers("embedding", aten.embedding.default, T(100, C), T(2, 7, dtype=I64)),
    lowers("embedding_1d_unaligned", aten.embedding.default, T(100, 50), T(9, dtype=I64), padding_idx=0),
    # reductions. Scalar results compare within two bf16 steps (pcc's degenerate case): positive
    # inputs keep a sum of 6000 bf16-rounded values from cancelling down to its rounding noise.
    lowers("sum_all", aten.sum.default, positive(2, 3, 40, 50)),
    lowers("sum_dims", aten.sum.dim_IntList, T(2, 3, 40, 50), [2, 3], True),
    lowers("sum_5d", aten.sum.dim_IntList, T(2, 3, 4, 40, 50), [2]),
    lowers("sum_bool_count", aten.sum.dim_IntList, T(2, 50, dtype=BOOL), [-1]),
    lowers("mean_all", aten.mean.default, positive(2, 3, 40, 50)),
    lowers("mean_dim", aten.mean.dim, T(2, 50, C), [-1], True),
    lowers("amax", aten.amax.default, T(2, 3, 40, 50), [1]),
    lowers("amax_rank6_last", aten.amax.default, T(1, 2, 2, 3, 4, 40), [-1]),
    lowers("mean_rank6_middle_keepdim", aten.mean.dim, T(2, 1, 3, 4, 5, 8), [2, 3], True),
    lowers("sum_rank6_int", aten.sum.dim_IntList, torch.randint(0, 5, (1, 2, 2, 2, 3, 8)), [4]),
    lowers("amin", aten.amin.default, T(2, 3, 40, 50), [0, 1], True),
    lowers("max_all", aten.max.default, T(2, 3, 40, 50)),
    lowers("min_all", aten.min.default, T(2, 3, 40, 50)),
    lowers("max_dim", aten.max.dim, distinct(2, 3, 40), -1, True),
    lowers("min_dim", aten.min.dim, distinct(2, 3, 40), 1),
    lowers("argmax_last", aten.argmax.default, distinct(2, 3, 40), -1),
    lowers("argmax_all", aten.argmax.default, distinct(3, 40)),
    lowers("argmin_dim0_keepdim", aten.argmin.default, distinct(3, 4, 40), 0, True),
    lowers("var", aten.var.correction, T(2, 3, 40, 50), [-1], correction=0, keepdim=True),
    lowers("var_dim_unbiased", aten.var.dim, T(2, 3, 40, 50), [2, 3]),
    lowers("var_all", aten.var.default, T(2, 3, 40, 50)),
    lowers("std", aten.std.correction, T(2, 3, 40, 50), [1], correction=1),
    lowers("std_dim", aten.std.dim, T(2, 3, 40, 50), [-1], False, True),
    lowers("std_all", aten.std.default, T(2, 3, 40, 50), False),
    lowers("prod_dim", aten.prod.dim_int, T(2, 3, 40, 16), -1, True),
    lowers("prod_all", aten.prod.default, powers_of_two(4, 16)),
    lowers("cumsum", aten.cumsum.default, T(2, 3, 40, 50), 1),
    lowers("cumsum_int_positions", aten.cumsum.default, torch.randint(0, 2, (2, 50)), -1),
    lowers("cumsum_bool_mask", aten.cumsum.default, torch.rand(2, 50) > 0.5, -1),
    lowers("any_dim", aten.any.dim, torch.rand(2, 3, 40) > 0.9, -1),
    lowers("any_float", aten.any.default, torch.zeros(4, 40).index_fill_(1, torch.tensor([3]), 2.0)),
    lowers("any_dims", aten.any.dims, torch.rand(2, 3, 40) > 0.9, [0, 2]),
    lowers("all_dims", aten.all.dims, torch.rand(2, 3, 40) > 0.05, [0, 2], True),
    lowers("all_dim", aten.all.dim, torch.rand(2, 3, 40) > 0.05, 1),
    lowers("all_default", aten.all.default, torch.ones(3, 40, dtype=BOOL)),
    # declines
    declines(
        "matmul_mixed_batch",
        aten.matmul.default,
        T(2, 1, 64, 32),
        T(1, 3, 32, 96),
        reason="batch dims [2, 1] x [1, 3] unsupported",
    ),
    declines("matmul_rank_mismatch", aten.matmul.default, T(2, 3, 64, 32), T(3, 32, 96), reason="batch dims"),
    declines("matmul_vec_batch", aten.matmul.default, T(32), T(3, 32, 96), reason="front dims must be 1"),
    declines(
        "matmul_rank7", aten.matmul.default, T(1, 1, 1, 1, 2, 4, 8), T(1, 1, 1, 1, 2, 8, 4), reason="rank 7 exceeds 6"
    ),
    declines("mm_int", aten.mm.default, T(4, 4, dtype=I64), T(4, 4, dtype=I64), reason="dtype int64"),
    declines("bmm_float64", aten.bmm.default, T(2, 4, 4, dtype=F64), T(2, 4, 4, dtype=F64), reason="dtype float64"),
    declines("mv_float64", aten.mv.default, T(4, 4, dtype=F64), T(4, dtype=F64), reason="dtype float64"),
    declines("dot_float64", aten.dot.default, T(4, dtype=F64), T(4, dtype=F64), reason="dtype float64"),
    declines("linear_vector_weight", aten.linear.default, T(4, 32), T(32), reason="rank 1 weight"),
    declines(
        "addmm_float64",
        aten.addmm.default,
        T(4, dtype=F64),
        T(4, 4, dtype=F64),
        T(4, 4, dtype=F64),
        reason="dtype float64",
    ),
    declines(
        "baddbmm_float64",
        aten.baddbmm.default,
        T(2, 4, 4, dtype=F64),
        T(2, 4, 4, dtype=F64),
        T(2, 4, 4, dtype=F64),
        reason="dtype float64",
    ),
    declines(
        "sdpa_rank5_mask",
        SDPA,
        T(1, 3, 2, 16, 32),
        T(1, 3, 2, 16, 32),
        T(1, 3, 2, 16, 32),
        T(16, 16),
        reason="with an attn_mask",
    ),
    declines(
        "sdpa_batch_broadcast",
        SDPA,
        T(1, 2, 64, 64),
        T(2, 2, 64, 64),
        T(2, 2, 64, 64),
        reason="broadcasts no batch dim",
    ),
    declines(
        "sdpa_causal_cross", SDPA, T(1, 2, 32, 64), T(1, 2, 96, 64), T(1, 2, 96, 64), is_causal=True, reason="Sq == Sk"
    ),
    declines(
        "sdpa_mask_row",
        SDPA,
        T(1, 2, 64, 64),
        T(1, 2, 64, 64),
        T(1, 2, 64, 64),
        T(1, 1, 1, 64),
        reason="broadcasts only batch",
    ),
    declines("sdpa_rank3", SDPA, T(2, 64, 64), T(2, 64, 64), T(2, 64, 64), reason="rank 3 inputs unsupported"),
    declines("sdpa_dropout", SDPA, T(1, 2, 64, 64), T(1, 2, 64, 64), T(1, 2, 64, 64), None, 0.1, reason="dropout_p"),
    declines("softmax_to_double", aten.softmax.int, T(4, 4), 0, F64, reason="result dtype float64"),
    declines("_softmax_float64", aten._softmax.default, T(4, 4, dtype=F64), 0, False, reason="dtype float64"),
    declines("log_softmax_rank9", aten.log_softmax.int, T(*[2] * 9), -1, reason="rank 9 exceeds 8"),
    declines("_log_softmax_float64", aten._log_softmax.default, T(4, 4, dtype=F64), 0, False, reason="dtype float64"),
    declines("layer_norm_2_dims", aten.layer_norm.default, T(2, 8, 8), [8, 8], reason="last dim only"),
    declines(
        "native_layer_norm_2_dims",
        aten.native_layer_norm.default,
        T(2, 8, 8),
        [8, 8],
        None,
        None,
        1e-5,
        reason="last dim only",
    ),
    declines("rms_norm_2_dims", aten.rms_norm.default, T(2, 8, 8), [8, 8], reason="last dim only"),
    declines("group_norm_c48", aten.group_norm.default, T(1, 48, 8, 8), 4, reason="C=48 unsupported"),
    declines("group_norm_rank2", aten.group_norm.default, T(2, 32), 4, reason="rank 2 unsupported"),
    declines(
        "batch_norm_rank9", BATCH_NORM, T(1, 4, *[2] * 7), None, None, T(4), T(4), 0.1, 1e-5, reason="rank 9 exceeds 8"
    ),
    declines("softmax_rank9", aten.softmax.int, T(*[2] * 9), -1, reason="rank 9 exceeds 8"),
    declines(
        "embedding_3d_indices", aten.embedding.default, T(100, 64), T(2, 3, 7, dtype=I64), reason="rank 3 indices"
    ),
    declines("embedding_scalar_index", aten.embedding.default, T(100, 64), torch.tensor(3), reason="rank 0 indices"),
    declines(
        "sum_int_to_float",
        aten.sum.dim_IntList,
        T(4, 4, dtype=I64),
        [0],
        dtype=torch.float32,
        reason="int64 to float32 unsupported",
    ),
    declines("sum_float64", aten.sum.default, T(4, dtype=F64), reason="dtype float64"),
    declines("var_correction_2", aten.var.correction, T(4, 40), [1], correction=2, reason="correction=2"),
    declines("amax_rank6_apart", aten.amax.default, T(1, 2, 2, 3, 4, 8), [1, 3], reason="not adjacent"),
    declines("var_dim_rank6", aten.var.dim, T(1, 1, 1, 1, 2, 4), [-1], reason="rank 6 exceeds 5"),
    declines("var_float64", aten.var.default, T(4, dtype=F64), reason="dtype float64"),
    declines("std_correction_2", aten.std.correction, T(4, 40), [1], correction=2, reason="correction=2"),
    declines("std_dim_float64", aten.std.dim, T(4, dtype=F64), [0], reason="dtype float64"),
    declines("std_float64", aten.std.default, T(4, dtype=F64), reason="dtype float64"),
    declines("argmax_int", aten.argmax.default, T(4, 4, dtype=torch.int32), 1, reason="dtype int32"),
    declines("argmin_float64", aten.argmin.default, T(4, dtype=F64), reason="dtype float64"),
    declines(
        "cumsum_int_to_float",
        aten.cumsum.default,
        T(4, dtype=I64),
        0,
        dtype=torch.float32,
        reason="keeps integers or floats",
    ),
    *[
        declines(f"{op.__name__}_float64", op, T(2, 4, dtype=F64), *rest, reason="dtype float64")
        for op, *rest in [
            (aten.mean.default,),
            (aten.mean.dim, [0]),
            (aten.amax.default, [0]),
            (aten.amin.default, [0]),
            (aten.max.default,),
            (aten.min.default,),
            (aten.max.dim, 0),
            (aten.min.dim, 0),
            (aten.prod.default,),
            (aten.prod.dim_int, 0),
            (aten.any.default,),
            (aten.any.dim, 0),
            (aten.any.dims, [0]),
            (aten.all.default,),
            (aten.all.dim, 0),
            (aten.all.dims, [0]),
        ]
    ],
]

test_lowers, test_declines = rule_tests(CASES)


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


def test_linear_weight_computed_on_the_device(ctx):
    """A weight that is itself a device value is transposed on the device, not read back."""
    graph = fx.Graph()
    x, w, b = (graph.placeholder(name) for name in ("x", "w", "b"))
    values = [torch.randn(2, 50, 32), torch.randn(96, 32), torch.randn(96)]
    for node, value in zip((x, w, b), values):
        node.meta["val"] = value
    doubled = graph.call_function(aten.add.Tensor, (w, w))
    doubled.meta["val"] = values[1] * 2
    out = graph.call_function(aten.linear.default, (x, doubled, b))
    out.meta["val"] = aten.linear.default(values[0], values[1] * 2, values[2])
    graph.output(out)
    run = run_graph(ctx, fx.GraphModule(torch.nn.Module(), graph), values)
    assert [(r.target, r.status) for r in run.nodes] == [
        ("aten.add.Tensor", "device"),
        ("aten.linear.default", "device"),
    ]
    assert pcc(run.outputs[0], out.meta["val"]) >= 0.99
