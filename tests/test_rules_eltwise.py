"""Rules of the eltwise and activation families: each lowers on a mock n150 through the whole
pipeline and matches the aten op (values from ttnn's golden functions at bf16 device precision),
and each check declines what TT-NN 0.81.1 cannot do.

Inputs are bf16-exact, so comparisons and rounding ops see the same values on both sides and
bool results can be compared exactly."""

import pytest
import torch

from fxport.plan import plan_graph
from fxport.single_op import op_graph, run_graph, run_single_op

aten = torch.ops.aten
torch.manual_seed(0)
S = (1, 2, 32, 64)


def rn(*shape, scale=1.0):
    return (scale * torch.randn(shape)).bfloat16().float()


def pos(*shape):  # domain of log, sqrt, ...
    return (torch.rand(shape) * 3 + 0.1).bfloat16().float()


def unit(*shape):  # domain of asin, atanh, ...
    return ((torch.rand(shape) * 2 - 1) * 0.9).bfloat16().float()


def ints(*shape, lo=-50, hi=50):
    return torch.randint(lo, hi, shape)


def mask(*shape):
    return torch.rand(shape) > 0.5


def with_ties(*shape):  # small integers as floats: comparisons see equal elements
    return torch.randint(-3, 4, shape).float()


UNARY = [
    (aten.abs.default, rn(*S)), (aten.neg.default, rn(*S)), (aten.square.default, rn(*S)),
    (aten.exp.default, rn(*S)), (aten.exp2.default, rn(*S)), (aten.expm1.default, rn(*S)),
    (aten.log.default, pos(*S)), (aten.log2.default, pos(*S)), (aten.log10.default, pos(*S)),
    (aten.log1p.default, pos(*S)), (aten.sqrt.default, pos(*S)), (aten.rsqrt.default, pos(*S)),
    (aten.reciprocal.default, pos(*S)), (aten.sin.default, rn(*S)), (aten.cos.default, rn(*S)),
    (aten.tan.default, unit(*S)), (aten.asin.default, unit(*S)), (aten.acos.default, unit(*S)),
    (aten.atan.default, rn(*S)), (aten.sinh.default, rn(*S)), (aten.cosh.default, rn(*S)),
    (aten.tanh.default, rn(*S)), (aten.asinh.default, rn(*S)), (aten.acosh.default, pos(*S) + 1),
    (aten.atanh.default, unit(*S)), (aten.sigmoid.default, rn(*S)), (aten.erf.default, rn(*S)),
    (aten.erfc.default, rn(*S)), (aten.floor.default, rn(*S, scale=4)), (aten.ceil.default, rn(*S, scale=4)),
    (aten.trunc.default, rn(*S, scale=4)), (aten.frac.default, rn(*S, scale=4)), (aten.sign.default, with_ties(*S)),
    (aten.sgn.default, rn(*S)), (aten.isnan.default, rn(*S) / with_ties(*S)),
    (aten.isinf.default, rn(*S) / with_ties(*S)), (aten.isfinite.default, rn(*S) / with_ties(*S)),
    (aten.signbit.default, rn(*S)), (aten.logical_not.default, mask(*S)), (aten.logical_not.default, with_ties(*S)),
    (aten.bitwise_not.default, mask(*S)), (aten.bitwise_not.default, ints(*S)),
    (aten.abs.default, ints(*S)), (aten.neg.default, ints(*S)), (aten.square.default, ints(*S)),
    (aten.exp.default, ints(2, 16, lo=-4, hi=4)),  # integer input, float result: computed in bf16
    (aten.round.default, rn(*S, scale=4)),
    # activations
    (aten.relu.default, rn(*S)), (aten.relu.default, ints(*S)), (aten.relu6.default, rn(*S, scale=4)),
    (aten.silu.default, rn(*S)), (aten.mish.default, rn(*S)), (aten.hardswish.default, rn(*S, scale=3)),
    (aten.hardsigmoid.default, rn(*S, scale=3)), (aten.selu.default, rn(*S)),
]

CASES = [
    # (id, op, args, kwargs)
    ("round_decimals", aten.round.decimals, (rn(*S),), {"decimals": 1}),
    # add / sub / rsub: Tensor and Scalar overloads, alpha, scalars on either side, broadcasts
    ("add", aten.add.Tensor, (rn(*S), rn(*S)), {}),
    ("add_bcast_row", aten.add.Tensor, (rn(1, 96, 32, 64), rn(1, 1, 1, 64)), {}),
    ("add_bcast_both", aten.add.Tensor, (rn(2, 1, 32, 1), rn(1, 3, 1, 64)), {}),
    ("add_bcast_rank", aten.add.Tensor, (rn(192, 1, 1), rn(1, 192, 7, 7)), {}),
    ("add_unaligned", aten.add.Tensor, (rn(16, 1, 49), rn(16, 49, 1)), {}),
    ("add_rank6_bcast", aten.add.Tensor, (rn(2, 1, 2, 1, 32, 64), rn(1, 2, 1, 2, 32, 1)), {}),
    ("add_rank8_same", aten.add.Tensor, (rn(2, 2, 2, 2, 2, 2, 8, 32), rn(2, 2, 2, 2, 2, 2, 8, 32)), {}),
    ("add_0d", aten.add.Tensor, (rn(*S), rn()), {}),
    ("add_alpha", aten.add.Tensor, (rn(*S), rn(*S)), {"alpha": 0.5}),
    ("add_python_scalar", aten.add.Tensor, (rn(*S), 2), {}),
    ("add_scalar_first", aten.add.Tensor, (1.5, rn(*S)), {}),
    ("add_Scalar", aten.add.Scalar, (rn(*S), 2.5), {"alpha": 2}),
    ("add_int", aten.add.Tensor, (ints(*S), ints(1, 1, 1, 64)), {"alpha": 3}),
    ("add_float_bool", aten.add.Tensor, (rn(*S), mask(*S)), {}),
    ("sub", aten.sub.Tensor, (rn(*S), rn(1, 2, 32, 1)), {"alpha": 2.0}),
    ("sub_scalar_first", aten.sub.Tensor, (1.0, rn(16)), {}),
    ("sub_int_scalar_first", aten.sub.Tensor, (15, torch.arange(16)), {}),
    ("sub_int_scalar", aten.sub.Tensor, (ints(1, 56), 1), {}),
    ("sub_Scalar", aten.sub.Scalar, (rn(*S), 0.25), {}),
    ("rsub", aten.rsub.Tensor, (rn(*S), rn(*S)), {"alpha": 2}),
    ("rsub_Scalar", aten.rsub.Scalar, (rn(*S), 1.0), {}),
    # mul / div
    ("mul", aten.mul.Tensor, (rn(96, 1, 1), rn(1, 96, 14, 14)), {}),
    ("mul_scalar", aten.mul.Tensor, (rn(*S), 0.125), {}),
    ("mul_Scalar", aten.mul.Scalar, (rn(*S), 3), {}),
    ("mul_bool", aten.mul.Tensor, (rn(*S), mask(*S)), {}),
    ("mul_int", aten.mul.Tensor, (ints(*S), ints(*S)), {}),
    ("div", aten.div.Tensor, (rn(*S), pos(*S)), {}),
    ("div_scalar", aten.div.Tensor, (rn(8), 16), {}),
    ("div_scalar_first", aten.div.Tensor, (2.0, pos(*S)), {}),
    ("div_ints", aten.div.Tensor, (ints(*S), ints(*S, lo=1, hi=9)), {}),
    ("div_Scalar", aten.div.Scalar, (rn(*S), 3.0), {}),
    ("div_floor", aten.div.Tensor_mode, (rn(*S, scale=8), pos(*S)), {"rounding_mode": "floor"}),
    ("div_trunc", aten.div.Tensor_mode, (rn(*S, scale=8), pos(*S)), {"rounding_mode": "trunc"}),
    ("div_mode_none", aten.div.Tensor_mode, (rn(*S), pos(*S)), {"rounding_mode": None}),
    ("div_floor_int", aten.div.Tensor_mode, (ints(*S), ints(*S, lo=1, hi=9)), {"rounding_mode": "floor"}),
    ("div_Scalar_mode", aten.div.Scalar_mode, (rn(*S, scale=8), 3), {"rounding_mode": "trunc"}),
    # pow
    ("pow_square", aten.pow.Tensor_Scalar, (rn(*S), 2), {}),
    ("pow_sqrt", aten.pow.Tensor_Scalar, (pos(*S), 0.5), {}),
    ("pow_cube_neg_base", aten.pow.Tensor_Scalar, (rn(*S), 3.0), {}),
    ("pow_int", aten.pow.Tensor_Scalar, (ints(*S, lo=-9, hi=9), 2), {}),
    ("pow_Tensor_Tensor", aten.pow.Tensor_Tensor, (pos(*S), rn(*S)), {}),
    ("pow_Scalar", aten.pow.Scalar, (2.0, rn(16, scale=3)), {}),
    # maximum / minimum / fmod / remainder / atan2 / hypot
    ("maximum", aten.maximum.default, (rn(*S), rn(1, 1, 32, 64)), {}),
    ("minimum", aten.minimum.default, (rn(*S), rn(*S)), {}),
    ("maximum_int", aten.maximum.default, (ints(*S), ints(*S)), {}),
    ("fmod_Scalar", aten.fmod.Scalar, (rn(*S, scale=4), 1.5), {}),
    ("fmod_Scalar_int", aten.fmod.Scalar, (torch.arange(56), 14), {}),
    ("fmod_Tensor", aten.fmod.Tensor, (rn(*S, scale=4), pos(*S)), {}),
    ("remainder_Scalar", aten.remainder.Scalar, (rn(*S, scale=4), 1.5), {}),
    ("remainder_Tensor", aten.remainder.Tensor, (rn(*S, scale=4), pos(*S)), {}),
    ("remainder_int", aten.remainder.Scalar, (ints(*S), 7), {}),
    ("atan2", aten.atan2.default, (rn(*S), rn(*S)), {}),
    ("hypot", aten.hypot.default, (rn(*S), rn(*S)), {}),
    # 0-d host tensors (scalar_tensor constants): numbers where ttnn takes them, device tensors elsewhere
    ("maximum_0d", aten.maximum.default, (rn(*S), rn()), {}),
    ("maximum_0d_first", aten.maximum.default, (rn(), rn(*S)), {}),
    ("atan2_0d", aten.atan2.default, (rn(*S), rn()), {}),
    ("eq_Tensor_0d", aten.eq.Tensor, (with_ties(*S), torch.tensor(1.0)), {}),
    ("logical_and_0d", aten.logical_and.default, (mask(*S), torch.tensor(True)), {}),
    ("mul_0d_beyond_bf16", aten.mul.Tensor, (mask(*S), torch.tensor(torch.finfo(torch.float32).min)), {}),
    # comparisons: bool results, exact
    *[(f"{name}_{ov}", getattr(getattr(aten, name), ov), args, {})
      for name in ("eq", "ne", "lt", "le", "gt", "ge")
      for ov, args in (("Tensor", (with_ties(*S), with_ties(1, 2, 1, 64))), ("Scalar", (with_ties(*S), 0)))],
    ("eq_Scalar_float", aten.eq.Scalar, (with_ties(16, 49, 49), 0.0), {}),
    ("lt_Scalar_int_vs_float", aten.lt.Scalar, (torch.arange(16), 8.0), {}),
    ("gt_Scalar_int", aten.gt.Scalar, (ints(5), 0), {}),
    ("le_Tensor_bool", aten.le.Tensor, (mask(1, 5), mask(5, 1)), {}),
    ("ne_Tensor_int", aten.ne.Tensor, (ints(*S, lo=-2, hi=2), ints(*S, lo=-2, hi=2)), {}),
    # logic
    ("logical_and", aten.logical_and.default, (mask(*S), mask(1, 1, 32, 1)), {}),
    ("logical_or", aten.logical_or.default, (mask(*S), mask(*S)), {}),
    ("logical_xor", aten.logical_xor.default, (mask(*S), with_ties(*S)), {}),
    ("bitwise_and_bool", aten.bitwise_and.Tensor, (mask(1, 1, 56, 1), mask(1, 1, 1, 56)), {}),
    ("bitwise_or_bool", aten.bitwise_or.Tensor, (mask(*S), mask(*S)), {}),
    ("bitwise_xor_bool", aten.bitwise_xor.Tensor, (mask(*S), mask(*S)), {}),
    ("bitwise_and_int", aten.bitwise_and.Tensor, (ints(*S, lo=0, hi=100), ints(*S, lo=0, hi=100)), {}),
    # where
    ("where", aten.where.self, (mask(*S), rn(*S), rn(*S)), {}),
    ("where_bcast", aten.where.self, (mask(16, 49, 49), rn(), rn(16, 49, 49)), {}),
    ("where_0d_both", aten.where.self,  # PI0's attention mask: 0 or float32 min, beyond the bf16 range
     (mask(1, 1, 5, 61), torch.tensor(0.0), torch.tensor(torch.finfo(torch.float32).min)), {}),
    ("where_int", aten.where.self, (mask(*S), ints(*S), ints(1, 1, 1, 64)), {}),
    ("where_bool_values", aten.where.self, (mask(*S), mask(*S), mask(*S)), {}),
    # clamp
    ("clamp", aten.clamp.default, (rn(*S), -0.5, 0.5), {}),
    ("clamp_max_only", aten.clamp.default, (rn(12, 1, 1, scale=4), None, 4.605170185988092), {}),
    ("clamp_min_only", aten.clamp.default, (rn(1, 24, 64, 1), 1e-12), {}),
    ("clamp_int", aten.clamp.default, (ints(*S), -3, 5), {}),
    ("clamp_Tensor", aten.clamp.Tensor, (rn(*S), -pos(*S), pos(1, 1, 1, 64)), {}),
    ("clamp_Tensor_min_only", aten.clamp.Tensor, (rn(*S), rn(*S)), {}),
    ("clamp_min", aten.clamp_min.default, (rn(*S), 0.1), {}),
    ("clamp_max", aten.clamp_max.default, (rn(*S), 0.1), {}),
    ("clamp_min_Tensor", aten.clamp_min.Tensor, (rn(*S), rn(*S)), {}),
    ("clamp_max_Tensor", aten.clamp_max.Tensor, (ints(*S), ints(*S)), {}),
    # activations with parameters
    ("gelu", aten.gelu.default, (rn(*S),), {}),
    ("gelu_tanh", aten.gelu.default, (rn(*S),), {"approximate": "tanh"}),
    ("leaky_relu", aten.leaky_relu.default, (rn(*S), 0.2), {}),
    ("leaky_relu_default", aten.leaky_relu.default, (rn(*S),), {}),
    ("elu", aten.elu.default, (rn(*S), 0.5), {}),
    ("elu_selu_form", aten.elu.default, (rn(*S), 1.6732632423543772, 1.0507009873554805), {}),
    ("celu", aten.celu.default, (rn(*S), 0.7), {}),
    ("hardtanh", aten.hardtanh.default, (rn(*S), -0.5, 2.0), {}),
    ("hardtanh_relu6", aten.hardtanh.default, (rn(*S, scale=4), 0.0, 6.0), {}),
    ("softplus", aten.softplus.default, (rn(*S, scale=4), 2.0, 5.0), {}),
    ("threshold", aten.threshold.default, (rn(*S), 0.1, 20.0), {}),
    ("hardshrink", aten.hardshrink.default, (rn(*S), 0.5), {}),
    ("softshrink", aten.softshrink.default, (rn(*S), 0.5), {}),
]
CASES += [(f"{op.__name__}_{'_'.join(map(str, x.shape))}_{str(x.dtype)[6:]}", op, (x,), {}) for op, x in UNARY]


@pytest.mark.parametrize("name,op,args,kwargs", CASES, ids=[c[0] for c in CASES])
def test_lowers_on_device(ctx, name, op, args, kwargs):
    r = run_single_op(ctx, op, args, kwargs)
    assert r.plan.lowered, r.plan.reason
    assert r.ran_on_device, r.node.error if r.node else "not on the device"
    assert r.output.shape == r.expected.shape
    assert r.output.dtype == r.expected.dtype
    assert r.pcc >= 0.99, r.pcc


def test_bool_result_stays_a_mask_inside_a_partition(ctx):
    """eq -> logical_not -> where on the device: masks pass between rules as bf16 0/1."""
    class M(torch.nn.Module):
        def forward(self, x, y):
            keep = torch.ops.aten.logical_not.default(torch.ops.aten.eq.Scalar(x, 0))
            return torch.ops.aten.where.self(keep, y, torch.ops.aten.neg.default(y))

    x, y = with_ties(*S), rn(*S)
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


def _reason(op, args, kwargs=None):
    gm, _ = op_graph(op, args, kwargs)
    plan = plan_graph(gm.graph).nodes[0]
    assert not plan.lowered
    return plan.reason


DECLINES = [
    (aten.add.Tensor, (rn(2, 2, 2, 2, 2, 2, 2, 8), rn(1, 1, 1, 1, 1, 1, 1, 8)), {},
     "broadcasts only the last 6 dims"),
    (aten.where.self, (mask(2, 1, 2, 2, 2, 2, 2, 8), rn(2, 2, 2, 2, 2, 2, 2, 8), rn()), {}, "last 6 dims"),
    (aten.exp.default, (rn(*([1] * 9)),), {}, "rank 9 exceeds 8"),
    (aten.add.Tensor, (rn(4).double(), rn(4).double()), {}, "dtype float64 unsupported"),
    (aten.add.Tensor, (mask(4), mask(4)), {}, "bool arithmetic unsupported"),
    (aten.sign.default, (ints(4),), {}, "integer dtype int64 unsupported (ttnn.sign is float only)"),
    (aten.floor.default, (ints(4),), {}, "ttnn.floor is float only"),
    (aten.pow.Tensor_Tensor, (ints(4), ints(4)), {}, "ttnn.pow is float only"),
    (aten.elu.default, (rn(4), 1.0, 1.0, 0.5), {}, "input_scale=0.5 unsupported"),
    (aten.lt.Scalar, (ints(4), 8.5), {}, "fractional scalar 8.5 unsupported"),
    (aten.round.decimals, (rn(4),), {"decimals": 8}, "decimals=8 unsupported (ttnn.round takes -6..7)"),
    (aten.clamp.Tensor, (ints(4), ints(4)), {}, "ttnn.clamp with tensor bounds is float only"),
    (aten.hardtanh.default, (ints(4), 0, 6), {}, "ttnn.hardtanh is float only"),
    (aten.exp.default, (rn(0, 4),), {}, "empty tensor"),
]


@pytest.mark.parametrize("op,args,kwargs,reason", DECLINES, ids=[f"{d[0].__name__}-{d[3][:30]}" for d in DECLINES])
def test_declines_with_reason(op, args, kwargs, reason):
    assert reason in _reason(op, args, kwargs)
