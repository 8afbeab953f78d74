"""Rules of the eltwise and activation families (tests/rule_harness.py): each lowers on a mock
n150 through the whole pipeline and matches the aten op (values from ttnn's golden functions at
bf16 device precision), and each check declines what TT-NN 0.81.1 cannot do.

Inputs are bf16-exact, so comparisons and rounding ops see the same values on both sides and
bool results can be compared exactly."""

import torch

from fxport.single_op import run_graph
from tests.rule_harness import T, declines, lowers, rule_tests

aten = torch.ops.aten
torch.manual_seed(0)
S = (1, 2, 32, 64)
I64, F64, BOOL = torch.int64, torch.float64, torch.bool


def with_ties(*shape):  # small integers as floats: comparisons see equal elements, sign sees zeros
    return torch.randint(-3, 4, shape).float()


def with_nonfinite(*shape):  # x / 0 and 0 / 0 among finite values
    return torch.randn(shape).bfloat16().float() / with_ties(*shape)


# Unary ops: one lowering case at S (values from the shared domain table) and a float64 decline.
UNARY = [
    aten.abs.default,
    aten.neg.default,
    aten.square.default,
    aten.exp.default,
    aten.exp2.default,
    aten.expm1.default,
    aten.log.default,
    aten.log2.default,
    aten.log10.default,
    aten.log1p.default,
    aten.sqrt.default,
    aten.rsqrt.default,
    aten.reciprocal.default,
    aten.sin.default,
    aten.cos.default,
    aten.tan.default,
    aten.asin.default,
    aten.acos.default,
    aten.atan.default,
    aten.sinh.default,
    aten.cosh.default,
    aten.tanh.default,
    aten.asinh.default,
    aten.acosh.default,
    aten.atanh.default,
    aten.sigmoid.default,
    aten.erf.default,
    aten.erfc.default,
    aten.erfinv.default,
    aten.floor.default,
    aten.ceil.default,
    aten.trunc.default,
    aten.frac.default,
    aten.sgn.default,
    aten.signbit.default,
    aten.round.default,
    aten.relu.default,
    aten.relu6.default,
    aten.silu.default,
    aten.mish.default,
    aten.hardswish.default,
    aten.hardsigmoid.default,
    aten.selu.default,
    aten.gelu.default,
    aten.leaky_relu.default,
    aten.celu.default,
    aten.softplus.default,
    aten.hardshrink.default,
    aten.softshrink.default,
]

CASES = [
    *[lowers(op.__name__, op, T(*S)) for op in UNARY],
    *[declines(f"{op.__name__}_float64", op, T(4, dtype=F64), reason="dtype float64 unsupported") for op in UNARY],
    # unary ops on particular values and dtypes
    lowers("sign_zeros", aten.sign.default, with_ties(*S)),
    lowers("isnan", aten.isnan.default, with_nonfinite(*S)),
    lowers("isinf", aten.isinf.default, with_nonfinite(*S)),
    lowers("isfinite", aten.isfinite.default, with_nonfinite(*S)),
    lowers("logical_not_bool", aten.logical_not.default, T(*S, dtype=BOOL)),
    lowers("logical_not_float", aten.logical_not.default, with_ties(*S)),
    lowers("bitwise_not_bool", aten.bitwise_not.default, T(*S, dtype=BOOL)),
    lowers("bitwise_not_int", aten.bitwise_not.default, T(*S, dtype=I64)),
    lowers("abs_int", aten.abs.default, T(*S, dtype=I64)),
    lowers("neg_int", aten.neg.default, T(*S, dtype=I64)),
    lowers("square_int", aten.square.default, T(*S, dtype=I64)),
    lowers("relu_int", aten.relu.default, T(*S, dtype=I64)),
    lowers("exp_int", aten.exp.default, torch.randint(-4, 4, (2, 16))),  # integer input, float result: bf16
    lowers("round_decimals", aten.round.decimals, T(*S), decimals=1),
    # add / sub / rsub: Tensor and Scalar overloads, alpha, scalars on either side, broadcasts
    lowers("add", aten.add.Tensor, T(*S), T(*S)),
    lowers("add_bcast_row", aten.add.Tensor, T(1, 96, 32, 64), T(1, 1, 1, 64)),
    lowers("add_bcast_both", aten.add.Tensor, T(2, 1, 32, 1), T(1, 3, 1, 64)),
    lowers("add_bcast_rank", aten.add.Tensor, T(192, 1, 1), T(1, 192, 7, 7)),
    lowers("add_unaligned", aten.add.Tensor, T(16, 1, 49), T(16, 49, 1)),
    lowers("add_rank6_bcast", aten.add.Tensor, T(2, 1, 2, 1, 32, 64), T(1, 2, 1, 2, 32, 1)),
    lowers("add_rank8_same", aten.add.Tensor, T(2, 2, 2, 2, 2, 2, 8, 32), T(2, 2, 2, 2, 2, 2, 8, 32)),
    lowers("add_0d", aten.add.Tensor, T(*S), T()),
    lowers("add_alpha", aten.add.Tensor, T(*S), T(*S), alpha=0.5),
    lowers("add_python_scalar", aten.add.Tensor, T(*S), 2),
    lowers("add_scalar_first", aten.add.Tensor, 1.5, T(*S)),
    lowers("add_Scalar", aten.add.Scalar, T(*S), 2.5, alpha=2),
    lowers("add_int", aten.add.Tensor, T(*S, dtype=I64), T(1, 1, 1, 64, dtype=I64), alpha=3),
    lowers("add_float_bool", aten.add.Tensor, T(*S), T(*S, dtype=BOOL)),
    lowers("sub", aten.sub.Tensor, T(*S), T(1, 2, 32, 1), alpha=2.0),
    lowers("sub_scalar_first", aten.sub.Tensor, 1.0, T(16)),
    lowers("sub_int_scalar_first", aten.sub.Tensor, 15, torch.arange(16)),
    lowers("sub_int_scalar", aten.sub.Tensor, T(1, 56, dtype=I64), 1),
    lowers("sub_Scalar", aten.sub.Scalar, T(*S), 0.25),
    lowers("rsub", aten.rsub.Tensor, T(*S), T(*S), alpha=2),
    lowers("rsub_Scalar", aten.rsub.Scalar, T(*S), 1.0),
    # mul / div
    lowers("mul", aten.mul.Tensor, T(96, 1, 1), T(1, 96, 14, 14)),
    lowers("mul_scalar", aten.mul.Tensor, T(*S), 0.125),
    lowers("mul_Scalar", aten.mul.Scalar, T(*S), 3),
    lowers("mul_bool", aten.mul.Tensor, T(*S), T(*S, dtype=BOOL)),
    lowers("mul_int", aten.mul.Tensor, T(*S, dtype=I64), T(*S, dtype=I64)),
    lowers("div", aten.div.Tensor, T(*S), T(*S)),
    lowers("div_scalar", aten.div.Tensor, T(8), 16),
    lowers("div_scalar_first", aten.div.Tensor, 2.0, T(*S)),
    lowers("div_ints", aten.div.Tensor, T(*S, dtype=I64), T(*S, dtype=I64)),
    lowers("div_Scalar", aten.div.Scalar, T(*S), 3.0),
    lowers("div_floor", aten.div.Tensor_mode, T(*S), T(*S), rounding_mode="floor"),
    lowers("div_trunc", aten.div.Tensor_mode, T(*S), T(*S), rounding_mode="trunc"),
    lowers("div_mode_none", aten.div.Tensor_mode, T(*S), T(*S), rounding_mode=None),
    lowers("div_floor_int", aten.div.Tensor_mode, T(*S, dtype=I64), T(*S, dtype=I64), rounding_mode="floor"),
    lowers("div_Scalar_mode", aten.div.Scalar_mode, T(*S), 3, rounding_mode="trunc"),
    # pow
    lowers("pow_square", aten.pow.Tensor_Scalar, T(*S), 2),
    lowers("pow_sqrt", aten.pow.Tensor_Scalar, T(*S), 0.5),
    lowers("pow_cube_neg_base", aten.pow.Tensor_Scalar, T(*S), 3.0),
    lowers("pow_int", aten.pow.Tensor_Scalar, T(*S, dtype=I64), 2),
    lowers("pow_Tensor_Tensor", aten.pow.Tensor_Tensor, T(*S), T(*S)),
    lowers("pow_Scalar", aten.pow.Scalar, 2.0, T(16)),
    # maximum / minimum / fmod / remainder / atan2 / hypot
    lowers("maximum", aten.maximum.default, T(*S), T(1, 1, 32, 64)),
    lowers("minimum", aten.minimum.default, T(*S), T(*S)),
    lowers("maximum_int", aten.maximum.default, T(*S, dtype=I64), T(*S, dtype=I64)),
    lowers("fmod_Scalar", aten.fmod.Scalar, T(*S), 1.5),
    lowers("fmod_Scalar_int", aten.fmod.Scalar, torch.arange(56), 14),
    lowers("fmod_Tensor", aten.fmod.Tensor, T(*S), T(*S)),
    lowers("remainder_Scalar", aten.remainder.Scalar, T(*S), 1.5),
    lowers("remainder_Tensor", aten.remainder.Tensor, T(*S), T(*S)),
    lowers("remainder_int", aten.remainder.Scalar, T(*S, dtype=I64), 7),
    lowers("atan2", aten.atan2.default, T(*S), T(*S)),
    lowers("hypot", aten.hypot.default, T(*S), T(*S)),
    # 0-d host tensors (scalar_tensor constants): numbers where ttnn takes them, device tensors elsewhere
    lowers("maximum_0d", aten.maximum.default, T(*S), T()),
    lowers("maximum_0d_first", aten.maximum.default, T(), T(*S)),
    lowers("atan2_0d", aten.atan2.default, T(*S), T()),
    lowers("eq_Tensor_0d", aten.eq.Tensor, with_ties(*S), torch.tensor(1.0)),
    lowers("logical_and_0d", aten.logical_and.default, T(*S, dtype=BOOL), torch.tensor(True)),
    lowers("mul_0d_beyond_bf16", aten.mul.Tensor, T(*S, dtype=BOOL), torch.tensor(torch.finfo(torch.float32).min)),
    # comparisons: bool results, exact
    *[
        lowers(f"{name}_{ov}", getattr(getattr(aten, name), ov), *args)
        for name in ("eq", "ne", "lt", "le", "gt", "ge")
        for ov, args in (("Tensor", (with_ties(*S), with_ties(1, 2, 1, 64))), ("Scalar", (with_ties(*S), 0)))
    ],
    lowers("eq_Scalar_float", aten.eq.Scalar, with_ties(16, 49, 49), 0.0),
    lowers("lt_Scalar_int_vs_float", aten.lt.Scalar, torch.arange(16), 8.0),
    lowers("gt_Scalar_int", aten.gt.Scalar, T(5, dtype=I64), 0),
    lowers("le_Tensor_bool", aten.le.Tensor, T(1, 5, dtype=BOOL), T(5, 1, dtype=BOOL)),
    lowers("ne_Tensor_int", aten.ne.Tensor, torch.randint(-2, 2, S), torch.randint(-2, 2, S)),
    # logic
    lowers("logical_and", aten.logical_and.default, T(*S, dtype=BOOL), T(1, 1, 32, 1, dtype=BOOL)),
    lowers("logical_or", aten.logical_or.default, T(*S, dtype=BOOL), T(*S, dtype=BOOL)),
    lowers("logical_xor", aten.logical_xor.default, T(*S, dtype=BOOL), with_ties(*S)),
    lowers("bitwise_and_bool", aten.bitwise_and.Tensor, T(1, 1, 56, 1, dtype=BOOL), T(1, 1, 1, 56, dtype=BOOL)),
    lowers("bitwise_or_bool", aten.bitwise_or.Tensor, T(*S, dtype=BOOL), T(*S, dtype=BOOL)),
    lowers("bitwise_xor_bool", aten.bitwise_xor.Tensor, T(*S, dtype=BOOL), T(*S, dtype=BOOL)),
    lowers("bitwise_and_int", aten.bitwise_and.Tensor, T(*S, dtype=I64), T(*S, dtype=I64)),
    # where
    lowers("where", aten.where.self, T(*S, dtype=BOOL), T(*S), T(*S)),
    lowers("where_bcast", aten.where.self, T(16, 49, 49, dtype=BOOL), T(), T(16, 49, 49)),
    lowers(
        "where_0d_both",
        aten.where.self,  # PI0's attention mask: 0 or float32 min, beyond the bf16 range
        T(1, 1, 5, 61, dtype=BOOL),
        torch.tensor(0.0),
        torch.tensor(torch.finfo(torch.float32).min),
    ),
    lowers("where_int", aten.where.self, T(*S, dtype=BOOL), T(*S, dtype=I64), T(1, 1, 1, 64, dtype=I64)),
    lowers("where_bool_values", aten.where.self, T(*S, dtype=BOOL), T(*S, dtype=BOOL), T(*S, dtype=BOOL)),
    # clamp
    lowers("clamp", aten.clamp.default, T(*S), -0.5, 0.5),
    lowers("clamp_max_only", aten.clamp.default, T(12, 1, 1), None, 4.605170185988092),
    lowers("clamp_min_only", aten.clamp.default, T(1, 24, 64, 1), 1e-12),
    lowers("clamp_int", aten.clamp.default, T(*S, dtype=I64), -3, 5),
    lowers("clamp_Tensor", aten.clamp.Tensor, T(*S), T(*S), T(1, 1, 1, 64)),
    lowers("clamp_Tensor_min_only", aten.clamp.Tensor, T(*S), T(*S)),
    lowers("clamp_min", aten.clamp_min.default, T(*S), 0.1),
    lowers("clamp_max", aten.clamp_max.default, T(*S), 0.1),
    lowers("clamp_min_Tensor", aten.clamp_min.Tensor, T(*S), T(*S)),
    lowers("clamp_max_Tensor", aten.clamp_max.Tensor, T(*S, dtype=I64), T(*S, dtype=I64)),
    # activations with parameters
    lowers("gelu_tanh", aten.gelu.default, T(*S), approximate="tanh"),
    lowers("leaky_relu_slope", aten.leaky_relu.default, T(*S), 0.2),
    lowers("elu", aten.elu.default, T(*S), 0.5),
    lowers("elu_selu_form", aten.elu.default, T(*S), 1.6732632423543772, 1.0507009873554805),
    lowers("celu_alpha", aten.celu.default, T(*S), 0.7),
    lowers("hardtanh", aten.hardtanh.default, T(*S), -0.5, 2.0),
    lowers("hardtanh_relu6", aten.hardtanh.default, T(*S), 0.0, 6.0),
    lowers("softplus_beta_threshold", aten.softplus.default, T(*S), 2.0, 5.0),
    lowers("threshold", aten.threshold.default, T(*S), 0.1, 20.0),
    lowers("hardshrink_lambd", aten.hardshrink.default, T(*S), 0.3),
    lowers("softshrink_lambd", aten.softshrink.default, T(*S), 0.3),
    # declines: what each check rules out
    declines(
        "add_rank8_bcast",
        aten.add.Tensor,
        T(2, 2, 2, 2, 2, 2, 2, 8),
        T(1, 1, 1, 1, 1, 1, 1, 8),
        reason="broadcasts only the last 6 dims",
    ),
    declines(
        "where_rank8_bcast",
        aten.where.self,
        T(2, 1, 2, 2, 2, 2, 2, 8, dtype=BOOL),
        T(2, 2, 2, 2, 2, 2, 2, 8),
        T(),
        reason="last 6 dims",
    ),
    declines("exp_rank9", aten.exp.default, T(*[1] * 9), reason="rank 9 exceeds 8"),
    declines("exp_empty", aten.exp.default, T(0, 4), reason="empty tensor"),
    declines("add_float64", aten.add.Tensor, T(4, dtype=F64), T(4, dtype=F64), reason="dtype float64 unsupported"),
    declines("add_bool", aten.add.Tensor, T(4, dtype=BOOL), T(4, dtype=BOOL), reason="bool arithmetic unsupported"),
    declines("add_Scalar_bool", aten.add.Scalar, T(4, dtype=BOOL), True, reason="bool arithmetic unsupported"),
    declines("sub_float64", aten.sub.Tensor, T(4, dtype=F64), 1, reason="dtype float64"),
    declines("sub_Scalar_float64", aten.sub.Scalar, T(4, dtype=F64), 1, reason="dtype float64"),
    declines("rsub_float64", aten.rsub.Tensor, T(4, dtype=F64), T(4, dtype=F64), reason="dtype float64"),
    declines("rsub_Scalar_float64", aten.rsub.Scalar, T(4, dtype=F64), 1, reason="dtype float64"),
    declines(
        "sign_int",
        aten.sign.default,
        T(4, dtype=I64),
        reason="integer dtype int64 unsupported (ttnn.sign is float only)",
    ),
    declines("floor_int", aten.floor.default, T(4, dtype=I64), reason="ttnn.floor is float only"),
    declines(
        "pow_Tensor_Tensor_int",
        aten.pow.Tensor_Tensor,
        T(4, dtype=I64),
        T(4, dtype=I64),
        reason="ttnn.pow is float only",
    ),
    declines("pow_Scalar_float64", aten.pow.Scalar, 2.0, T(4, dtype=F64), reason="dtype float64"),
    declines("pow_Tensor_Scalar_float64", aten.pow.Tensor_Scalar, T(4, dtype=F64), 2, reason="dtype float64"),
    declines("elu_input_scale", aten.elu.default, T(4), 1.0, 1.0, 0.5, reason="input_scale=0.5 unsupported"),
    declines("lt_fractional_scalar", aten.lt.Scalar, T(4, dtype=I64), 8.5, reason="fractional scalar 8.5 unsupported"),
    declines(
        "round_decimals_8",
        aten.round.decimals,
        T(4),
        decimals=8,
        reason="decimals=8 unsupported (ttnn.round takes -6..7)",
    ),
    declines(
        "clamp_Tensor_int",
        aten.clamp.Tensor,
        T(4, dtype=I64),
        T(4, dtype=I64),
        reason="ttnn.clamp with tensor bounds is float only",
    ),
    declines("hardtanh_int", aten.hardtanh.default, T(4, dtype=I64), 0, 6, reason="ttnn.hardtanh is float only"),
    declines("relu6_int", aten.relu6.default, T(4, dtype=I64), reason="ttnn.relu6 is float only"),
    *[
        declines(f"{op.__name__}_float64", op, T(4, dtype=F64), T(4, dtype=F64), reason="dtype float64 unsupported")
        for op in (
            aten.mul.Tensor,
            aten.div.Tensor,
            aten.maximum.default,
            aten.minimum.default,
            aten.fmod.Tensor,
            aten.remainder.Tensor,
            aten.atan2.default,
            aten.hypot.default,
            aten.clamp_min.Tensor,
            aten.clamp_max.Tensor,
            aten.logical_and.default,
            aten.logical_or.default,
            aten.logical_xor.default,
            *[getattr(aten, c).Tensor for c in ("eq", "ne", "lt", "le", "gt", "ge")],
        )
    ],
    *[
        declines(f"{op.__name__}_float64", op, T(4, dtype=F64), 2, reason="dtype float64 unsupported")
        for op in (
            aten.mul.Scalar,
            aten.div.Scalar,
            aten.fmod.Scalar,
            aten.remainder.Scalar,
            aten.clamp_min.default,
            aten.clamp_max.default,
            *[getattr(aten, c).Scalar for c in ("eq", "ne", "lt", "le", "gt", "ge")],
        )
    ],
    declines(
        "div_Tensor_mode_float64",
        aten.div.Tensor_mode,
        T(4, dtype=F64),
        T(4, dtype=F64),
        rounding_mode="trunc",
        reason="dtype float64",
    ),
    declines(
        "div_Scalar_mode_float64",
        aten.div.Scalar_mode,
        T(4, dtype=F64),
        2,
        rounding_mode="floor",
        reason="dtype float64",
    ),
    declines("clamp_float64", aten.clamp.default, T(4, dtype=F64), -1, 1, reason="dtype float64"),
    declines("isnan_float64", aten.isnan.default, T(4, dtype=F64), reason="dtype float64"),
    declines("isinf_float64", aten.isinf.default, T(4, dtype=F64), reason="dtype float64"),
    declines("isfinite_float64", aten.isfinite.default, T(4, dtype=F64), reason="dtype float64"),
    declines("logical_not_float64", aten.logical_not.default, T(4, dtype=F64), reason="dtype float64"),
    declines("sign_float64", aten.sign.default, T(4, dtype=F64), reason="dtype float64"),
    declines(
        "where_float64", aten.where.self, T(4, dtype=BOOL), T(4, dtype=F64), T(4, dtype=F64), reason="dtype float64"
    ),
    declines("threshold_float64", aten.threshold.default, T(4, dtype=F64), 0.1, 0.0, reason="dtype float64"),
    *[
        declines(
            f"{op.__name__}_rank9", op, T(*[1] * 8, 2, dtype=I64), T(*[1] * 8, 2, dtype=I64), reason="rank 9 exceeds 8"
        )
        for op in (aten.bitwise_and.Tensor, aten.bitwise_or.Tensor, aten.bitwise_xor.Tensor)
    ],
    declines("bitwise_not_rank9", aten.bitwise_not.default, T(*[1] * 8, 2, dtype=I64), reason="rank 9 exceeds 8"),
]

test_lowers, test_declines = rule_tests(CASES)


def test_bool_result_stays_a_mask_inside_a_partition(ctx):
    """eq -> logical_not -> where on the device: masks pass between rules as bf16 0/1."""

    class M(torch.nn.Module):
        def forward(self, x, y):
            keep = torch.ops.aten.logical_not.default(torch.ops.aten.eq.Scalar(x, 0))
            return torch.ops.aten.where.self(keep, y, torch.ops.aten.neg.default(y))

    x, y = with_ties(*S), torch.randn(S).bfloat16().float()
    gm = torch.fx.symbolic_trace(M())
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            n.meta["val"] = {"x": x, "y": y}[n.name]
        elif n.op == "call_function":
            n.meta["val"] = n.target(*[a.meta["val"] if isinstance(a, torch.fx.Node) else a for a in n.args])
    run = run_graph(ctx, gm, [x, y])
    assert [r.status for r in run.nodes] == ["device"] * 4
    expected = torch.where(x != 0, y, -y)
    assert torch.equal(run.outputs[0], expected)
