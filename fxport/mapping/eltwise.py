"""Elementwise rules: unary math, binary arithmetic with tensors or Python scalars, comparisons,
logic and where.

How torch dtypes live on the device (TT-NN 0.81.1 has no bool or int64 dtype):
- floating values compute in bf16; a float32 tensor another rule left on the device is used as it
  is (TT-NN binaries mix float dtypes);
- bools are bf16 0/1 masks: comparison and logic rules always return that form, so `where` and
  the boundary back to torch (`ctx.host(..., like=bool)`) see one representation;
- integers compute in int32 when the op's result is an integer (index arithmetic: arange % n,
  n - i). A traced graph cannot tell whether int64 values fit in int32; the rules assume they do.
TT-NN binaries broadcast like torch up to rank 6; most take a Python number as the second operand
(add, subtract, multiply, divide and pow also as the first).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import fx

from fxport.dtypes import name_of
from fxport.mapping.checks import BASIC, FLOAT_DTYPES, INT_DTYPES, arg, max_rank, meta, output, param, tensor_inputs
from fxport.mapping.nhwc import pointwise
from fxport.mapping.registry import Check, check, rule
from fxport.values import HostValue

aten = torch.ops.aten

# TT-NN tensors have at most 8 dims; eltwise kernels walk the tiles whatever the rank.
MAX_RANK = 8
# binary_ng and ternary ops: "Broadcasting rule violation for rank >= 7 ... Broadcast is supported
# up to rank 6" (measured on 0.81.1); equal leading dims above rank 6 are fine.
MAX_BROADCAST_RANK = 6
_BF16_MAX = torch.finfo(torch.bfloat16).max
_DTYPES = FLOAT_DTYPES | INT_DTYPES | {torch.bool}


# -- dtypes ---------------------------------------------------------------------------------------
def is_int(dtype: torch.dtype) -> bool:
    return not dtype.is_floating_point and not dtype.is_complex and dtype != torch.bool


def compute_kind(node: fx.Node) -> str:
    """ "int" when the op's result is an integer (computed in int32), else "float" (bf16)."""
    out = output(node)
    return "int" if out is not None and is_int(out.dtype) else "float"


def _compare_kind(node: fx.Node) -> str:
    """Comparisons of integers against integers (or integral scalars) stay exact in int32."""
    values = [meta(v) for v in node.args[:2]]
    exact = all(is_int(v.dtype) if isinstance(v, torch.Tensor) else float(v).is_integer() for v in values)
    return "int" if exact else "float"


def device_operand(ctx, value: Any, captured: Any, kind: str, dtype: Any = None, scalar: bool = False) -> Any:
    """A lowering argument as a ttnn operand. Python scalars stay scalars, and so do 0-d host
    tensors (scalar_tensor constants) where the ttnn op takes a number (`scalar`): no transfer, and
    the bf16 range clamp below applies. Tensors go to the device in the dtype of `kind` (float
    tensors keep their device dtype unless `dtype` is forced)."""
    if not isinstance(captured, torch.Tensor):
        return _scalar(value, kind)
    if scalar and isinstance(value, HostValue) and value.tensor.dim() == 0:
        # A constant folded on meta weights (a verdict run) has no value; the op takes a number
        # either way, so any number gives the same verdict.
        if value.tensor.is_meta and ctx.recorder is not None:
            ctx.recorder.note("a constant folded on meta weights has no value: 0 stands in for it")
        return _scalar(0 if value.tensor.is_meta else value.tensor.item(), kind)
    if kind == "int":
        return ctx.tensor(value, dtype=ctx.ttnn.int32)
    return ctx.tensor(value, dtype=dtype or (None if captured.is_floating_point() else ctx.dtype))


def _scalar(value: Any, kind: str) -> Any:
    if kind == "int":
        return int(value)
    value = float(value)
    # A finite float32 beyond the bf16 range (torch.finfo(float32).min as a mask fill) would round
    # to an infinity on the device; the nearest finite bf16 keeps the intent.
    return max(-_BF16_MAX, min(_BF16_MAX, value)) if math.isfinite(value) else value


def _operands(ctx, node: fx.Node, values: tuple, kind: str, dtype: Any = None, scalars: bool = True) -> list:
    """The node's leading arguments as operands; ttnn takes numbers after the first operand."""
    return [
        device_operand(ctx, v, meta(c), kind, dtype, scalar=scalars and i > 0)
        for i, (v, c) in enumerate(zip(values, node.args))
    ]


def _int32(ctx, value: Any, kind: str) -> Any:
    """Integer results as int32 on the device (some ttnn ops answer integer inputs in float32)."""
    if kind == "int" and value.tt.dtype != ctx.ttnn.int32:
        return ctx.tensor(value, dtype=ctx.ttnn.int32)
    return value


# -- checks ---------------------------------------------------------------------------------------
@check("float, bool (bf16 0/1) or int (int32: values must fit) tensors")
def _supported_dtypes(node: fx.Node) -> str | None:
    out = output(node)
    for t in tensor_inputs(node) + ([out] if out is not None else []):
        if t.dtype not in _DTYPES:
            return f"dtype {name_of(t.dtype)} unsupported (TT-NN computes in bf16, fp32 or int32)"
    return None


@check(f"broadcast within the last {MAX_BROADCAST_RANK} dims")
def _broadcast(node: fx.Node) -> str | None:
    out = output(node)
    if out is None or out.dim() <= MAX_BROADCAST_RANK:
        return None
    lead = out.dim() - MAX_BROADCAST_RANK
    for t in tensor_inputs(node):
        padded = (1,) * (out.dim() - t.dim()) + tuple(t.shape)
        if padded[:lead] != tuple(out.shape[:lead]):
            return (
                f"broadcast {list(t.shape)} -> {list(out.shape)} unsupported (TT-NN broadcasts only "
                f"the last {MAX_BROADCAST_RANK} dims)"
            )
    return None


def float_only(op: str) -> Check:
    """Declines integer results: `op` has no int32 kernel (TT_FATAL "does not support integer input")."""

    def test(node: fx.Node) -> str | None:
        if compute_kind(node) == "int":
            return f"integer dtype {name_of(output(node).dtype)} unsupported ({op} is float only)"
        return None

    return Check(f"no integer result ({op} is float only)", test)


@check("no bool result (bool arithmetic)")
def _no_bool_arithmetic(node: fx.Node) -> str | None:
    out = output(node)
    if out is not None and out.dtype == torch.bool:
        return "bool arithmetic unsupported (bf16 0/1 masks would not saturate like bool)"
    return None


@check("integer tensors compared with integral scalars")
def _integral_scalar_vs_int(node: fx.Node) -> str | None:
    a, b = (meta(v) for v in node.args[:2])
    if (
        isinstance(a, torch.Tensor)
        and is_int(a.dtype)
        and not isinstance(b, torch.Tensor)
        and not float(b).is_integer()
    ):
        return f"integer tensor compared with fractional scalar {b} unsupported (bf16 would round the integers)"
    return None


# The checks every elementwise rule starts with.
CHECKS: tuple[Check, ...] = (*BASIC, _supported_dtypes, max_rank(MAX_RANK), _broadcast)


# -- registration helpers -------------------------------------------------------------------------
def _register(
    name: str, targets: tuple, ttnn: str, family: str, checks: tuple, lower: Callable, fused: bool = False
) -> None:
    """An elementwise rule: it runs on channels-last values as it is (`nhwc=pointwise`)."""
    lower.__name__ = name
    rule(*targets, ttnn=ttnn, family=family, checks=checks, fused=fused, nhwc=pointwise)(lower)


def register_unary(table: dict, family: str, fused: bool = False) -> None:
    """table: ttnn op -> (aten targets, int32 capable, fixed ttnn kwargs)."""
    for op, (targets, ints, fixed) in table.items():

        def lower(ctx, node, x, op=op, fixed=fixed):
            kind = compute_kind(node)
            (x,) = _operands(ctx, node, (x,), kind)
            return getattr(ctx.ops, op)(x, memory_config=ctx.memory_config, **fixed)

        checks = CHECKS if ints else (*CHECKS, float_only(f"ttnn.{op}"))
        _register(op, targets, f"ttnn.{op}", family, checks, lower, fused)


# -- unary ----------------------------------------------------------------------------------------
register_unary(
    {
        "abs": ((aten.abs.default,), True, {}),
        "neg": ((aten.neg.default,), True, {}),
        "square": ((aten.square.default,), True, {}),
        "exp": ((aten.exp.default,), False, {}),
        "exp2": ((aten.exp2.default,), False, {}),
        "expm1": ((aten.expm1.default,), False, {}),
        "log": ((aten.log.default,), False, {}),
        "log2": ((aten.log2.default,), False, {}),
        "log10": ((aten.log10.default,), False, {}),
        "log1p": ((aten.log1p.default,), False, {}),
        "sqrt": ((aten.sqrt.default,), False, {}),
        "rsqrt": ((aten.rsqrt.default,), False, {}),
        "reciprocal": ((aten.reciprocal.default,), False, {}),
        "sin": ((aten.sin.default,), False, {}),
        "cos": ((aten.cos.default,), False, {}),
        "tan": ((aten.tan.default,), False, {}),
        "asin": ((aten.asin.default,), False, {}),
        "acos": ((aten.acos.default,), False, {}),
        "atan": ((aten.atan.default,), False, {}),
        "sinh": ((aten.sinh.default,), False, {}),
        "cosh": ((aten.cosh.default,), False, {}),
        "tanh": ((aten.tanh.default,), False, {}),
        "asinh": ((aten.asinh.default,), False, {}),
        "acosh": ((aten.acosh.default,), False, {}),
        "atanh": ((aten.atanh.default,), False, {}),
        "sigmoid": ((aten.sigmoid.default,), False, {}),
        "erf": ((aten.erf.default,), False, {}),
        "erfc": ((aten.erfc.default,), False, {}),
        "erfinv": ((aten.erfinv.default,), False, {}),
        "floor": ((aten.floor.default,), False, {}),
        "ceil": ((aten.ceil.default,), False, {}),
        "trunc": ((aten.trunc.default,), False, {}),
        "frac": ((aten.frac.default,), False, {}),
        "sign": ((aten.sign.default, aten.sgn.default), False, {}),
        # bool results (bf16 masks)
        "isnan": ((aten.isnan.default,), False, {}),
        "isinf": ((aten.isinf.default,), False, {}),
        "isfinite": ((aten.isfinite.default,), False, {}),
        "signbit": ((aten.signbit.default,), False, {}),
        "logical_not": ((aten.logical_not.default,), False, {}),
    },
    family="eltwise",
)


@rule(
    aten.round.default,
    aten.round.decimals,
    ttnn="ttnn.round",
    family="eltwise",
    checks=(
        *CHECKS,
        float_only("ttnn.round"),
        param(
            1, "decimals", lambda d: -6 <= d <= 7, default=0, why="ttnn.round takes -6..7", requires="decimals in -6..7"
        ),
    ),
    nhwc=pointwise,
)
def round_(ctx, node, x, decimals=0):
    (x,) = _operands(ctx, node, (x,), "float")
    return ctx.ops.round(x, decimals=decimals, memory_config=ctx.memory_config)


@rule(
    aten.bitwise_not.default,
    ttnn="ttnn.logical_not (bool) / ttnn.bitwise_not (int32)",
    family="eltwise",
    checks=CHECKS,
    nhwc=pointwise,
)
def bitwise_not(ctx, node, x):
    kind = compute_kind(node)
    (x,) = _operands(ctx, node, (x,), kind)
    op = ctx.ops.bitwise_not if kind == "int" else ctx.ops.logical_not
    return op(x, memory_config=ctx.memory_config)


# -- binary arithmetic ----------------------------------------------------------------------------
def _binary(ctx, node, op: str, a, b, scalars: bool = True, **kwargs):
    kind = compute_kind(node)
    a, b = _operands(ctx, node, (a, b), kind, scalars=scalars)
    return _int32(ctx, getattr(ctx.ops, op)(a, b, memory_config=ctx.memory_config, **kwargs), kind)


def _times(ctx, value: Any, alpha: Any, kind: str) -> Any:
    if alpha == 1:
        return value
    alpha = _scalar(alpha, kind)
    return value * alpha if isinstance(value, (int, float)) else ctx.ops.multiply(value, alpha)


_ARITH_CHECKS = (*CHECKS, _no_bool_arithmetic)

# aten op -> (ttnn op, operands swapped). alpha scales the second operand of the ttnn op:
# add/sub compute self op alpha * other, rsub other - alpha * self.
_ADD_SUB = {"add": ("add", False), "sub": ("subtract", False), "rsub": ("subtract", True)}


def _add_sub(ctx, node, a, b, alpha=1, op="add", swapped=False):
    kind = compute_kind(node)
    a, b = _operands(ctx, node, (a, b), kind)
    if swapped:
        a, b = b, a
    return getattr(ctx.ops, op)(a, _times(ctx, b, alpha, kind), memory_config=ctx.memory_config)


for _aten, (_op, _swapped) in _ADD_SUB.items():
    _register(
        _aten,
        (getattr(aten, _aten).Tensor, getattr(aten, _aten).Scalar),
        f"ttnn.{_op}",
        "eltwise",
        _ARITH_CHECKS,
        lambda ctx, node, a, b, alpha=1, op=_op, swapped=_swapped: _add_sub(ctx, node, a, b, alpha, op, swapped),
    )


# ttnn op -> (aten targets, int32 capable, takes a number as b)
_BINARY = {
    "multiply": ((aten.mul.Tensor, aten.mul.Scalar), True, True),
    "divide": ((aten.div.Tensor, aten.div.Scalar), True, True),  # true division: the result is float
    "maximum": ((aten.maximum.default,), True, True),
    "minimum": ((aten.minimum.default,), True, True),
    "fmod": ((aten.fmod.Tensor, aten.fmod.Scalar), True, True),
    "remainder": ((aten.remainder.Tensor, aten.remainder.Scalar), True, True),
    "atan2": ((aten.atan2.default,), False, False),
    "hypot": ((aten.hypot.default,), False, False),
    "pow": ((aten.pow.Tensor_Tensor, aten.pow.Scalar), False, True),
}
for _op, (_targets, _ints, _scalars) in _BINARY.items():
    _register(
        _op,
        _targets,
        f"ttnn.{_op}",
        "eltwise",
        _ARITH_CHECKS if _ints else (*_ARITH_CHECKS, float_only(f"ttnn.{_op}")),
        lambda ctx, node, a, b, op=_op, scalars=_scalars: _binary(ctx, node, op, a, b, scalars),
    )


# rounding_mode None, "floor" or "trunc": all three are ttnn.divide's.
@rule(
    aten.div.Tensor_mode,
    aten.div.Scalar_mode,
    ttnn="ttnn.divide",
    family="eltwise",
    checks=_ARITH_CHECKS,
    nhwc=pointwise,
)
def div_mode(ctx, node, a, b, rounding_mode=None):
    return _binary(ctx, node, "divide", a, b, **({"rounding_mode": rounding_mode} if rounding_mode else {}))


@rule(aten.pow.Tensor_Scalar, ttnn="ttnn.pow", family="eltwise", checks=_ARITH_CHECKS, nhwc=pointwise)
def pow_tensor_scalar(ctx, node, x, exponent):
    return _binary(ctx, node, "pow", x, exponent)


# -- comparisons and logic ------------------------------------------------------------------------
_COMPARISONS = {
    "eq": (aten.eq.Tensor, aten.eq.Scalar),
    "ne": (aten.ne.Tensor, aten.ne.Scalar),
    "lt": (aten.lt.Tensor, aten.lt.Scalar),
    "le": (aten.le.Tensor, aten.le.Scalar),
    "gt": (aten.gt.Tensor, aten.gt.Scalar),
    "ge": (aten.ge.Tensor, aten.ge.Scalar),
}


def _compare(ctx, node, a, b, op):
    a, b = _operands(ctx, node, (a, b), _compare_kind(node))
    return getattr(ctx.ops, op)(a, b, dtype=ctx.dtype, memory_config=ctx.memory_config)


for _op, _targets in _COMPARISONS.items():
    _register(
        _op,
        _targets,
        f"ttnn.{_op}",
        "eltwise",
        (*CHECKS, _integral_scalar_vs_int),
        lambda ctx, node, a, b, op=_op: _compare(ctx, node, a, b, op),
    )


def _logic(ctx, node, a, b, op):
    kind = compute_kind(node)  # "int" only for bitwise ops on integers
    a, b = _operands(ctx, node, (a, b), kind, scalars=False)  # the golden logical_* take tensors only
    name = f"bitwise_{op}" if kind == "int" else f"logical_{op}"
    return getattr(ctx.ops, name)(a, b, memory_config=ctx.memory_config)


for _op in ("and", "or", "xor"):
    _register(
        f"logical_{_op}",
        (getattr(aten, f"logical_{_op}").default,),
        f"ttnn.logical_{_op}",
        "eltwise",
        CHECKS,
        lambda ctx, node, a, b, op=_op: _logic(ctx, node, a, b, op),
    )
    _register(
        f"bitwise_{_op}",
        (getattr(aten, f"bitwise_{_op}").Tensor,),
        f"ttnn.logical_{_op} (bool) / ttnn.bitwise_{_op} (int32)",
        "eltwise",
        CHECKS,
        lambda ctx, node, a, b, op=_op: _logic(ctx, node, a, b, op),
    )


@rule(aten.where.self, ttnn="ttnn.where", family="eltwise", checks=CHECKS, nhwc=pointwise)
def where(ctx, node, condition, a, b):
    kind = compute_kind(node)
    # ttnn.where needs the predicate in the dtype of the tensor branches ("Mixed dtype is not
    # supported for binary operation WHERE_TTS"), so all three share one.
    dtype = ctx.ttnn.int32 if kind == "int" else ctx.dtype
    condition, a, b = _operands(ctx, node, (condition, a, b), kind, dtype)
    return _int32(ctx, ctx.ops.where(condition, a, b, memory_config=ctx.memory_config), kind)


# -- clamp ----------------------------------------------------------------------------------------
@check("a min or a max bound")
def _bounds(node: fx.Node) -> str | None:
    if arg(node, 1, "min") is None and arg(node, 2, "max") is None:
        return "clamp without bounds"
    return None


def _clamp(ctx, node, x, bounds: dict):
    kind = compute_kind(node)
    (x,) = _operands(ctx, node, (x,), kind)
    bounds = {k: device_operand(ctx, v, meta(c), kind, scalar=True) for k, (v, c) in bounds.items() if v is not None}
    return ctx.ops.clamp(x, **bounds, memory_config=ctx.memory_config)


@rule(aten.clamp.default, ttnn="ttnn.clamp", family="eltwise", checks=(*CHECKS, _bounds), nhwc=pointwise)
def clamp(ctx, node, x, min=None, max=None):
    return _clamp(ctx, node, x, {"min": (min, arg(node, 1, "min")), "max": (max, arg(node, 2, "max"))})


@rule(
    aten.clamp.Tensor,
    ttnn="ttnn.clamp",
    family="eltwise",
    checks=(*CHECKS, _bounds, float_only("ttnn.clamp with tensor bounds")),
    nhwc=pointwise,
)
def clamp_tensor(ctx, node, x, min=None, max=None):
    return _clamp(ctx, node, x, {"min": (min, arg(node, 1, "min")), "max": (max, arg(node, 2, "max"))})


@rule(aten.clamp_min.default, ttnn="ttnn.clamp", family="eltwise", checks=CHECKS, nhwc=pointwise)
def clamp_min(ctx, node, x, min):
    return _clamp(ctx, node, x, {"min": (min, node.args[1])})


@rule(aten.clamp_max.default, ttnn="ttnn.clamp", family="eltwise", checks=CHECKS, nhwc=pointwise)
def clamp_max(ctx, node, x, max):
    return _clamp(ctx, node, x, {"max": (max, node.args[1])})


# Tensor bounds on one side are a maximum/minimum, which (unlike clamp) has int32 kernels.
_register(
    "clamp_min_tensor",
    (aten.clamp_min.Tensor,),
    "ttnn.maximum",
    "eltwise",
    _ARITH_CHECKS,
    lambda ctx, node, x, bound: _binary(ctx, node, "maximum", x, bound),
)
_register(
    "clamp_max_tensor",
    (aten.clamp_max.Tensor,),
    "ttnn.minimum",
    "eltwise",
    _ARITH_CHECKS,
    lambda ctx, node, x, bound: _binary(ctx, node, "minimum", x, bound),
)
