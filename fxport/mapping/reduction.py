"""Reductions: sum, mean, amax/amin, max/min (values and indices), var/std, prod, argmax/argmin,
any/all, cumsum."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import fx
from torch.fx.operator_schemas import normalize_function

from fxport.mapping.checks import BASIC, FLOAT_DTYPES, INT_DTYPES, dtypes, max_rank, meta, output
from fxport.mapping.normalization import float_result, used_outputs
from fxport.mapping.registry import check, rule

aten = torch.ops.aten

# Reductions were validated up to rank 5 on a mock n150 (device and golden shapes agree).
REDUCE_MAX_RANK = 5
REDUCE_CHECKS = (*BASIC, dtypes(), max_rank(REDUCE_MAX_RANK), float_result)


def bound(target: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The call's arguments by schema name, defaults filled in: overloads that order their
    arguments differently (var.default's `unbiased` vs var.correction's `dim`) read alike."""
    return normalize_function(target, tuple(args), dict(kwargs), normalize_to_only_use_kwargs=True).kwargs


def _dims(dim: Any) -> int | tuple[int, ...] | None:
    """aten's dim argument as ttnn takes it: None (or aten's empty list) reduces every dim."""
    if dim is None or (isinstance(dim, (list, tuple)) and len(dim) == 0):
        return None
    if isinstance(dim, (list, tuple)):
        return dim[0] if len(dim) == 1 else tuple(dim)
    return dim


@check("integer results of integer inputs, float results of float inputs")
def _same_kind(node: fx.Node) -> str | None:
    x, out = meta(node.args[0]), output(node)
    if x.is_floating_point() != out.is_floating_point():
        names = (str(t.dtype).removeprefix("torch.") for t in (x, out))
        return "{} to {} unsupported (the device keeps integers or floats)".format(*names)
    return None


def _reduced(node: fx.Node) -> list[int] | None:
    """The dims a reduction node reduces, sorted and non-negative (None: all of them)."""
    a = bound(node.target, node.args, node.kwargs)
    rank = meta(a["input"]).dim()
    dims = _dims(a.get("dim"))
    if dims is None:
        return None
    return sorted(d % rank for d in ((dims,) if isinstance(dims, int) else dims))


def _contiguous_block(node: fx.Node) -> bool:
    dims = _reduced(node)
    return dims is not None and dims == list(range(dims[0], dims[-1] + 1))


@check(f"rank <= {REDUCE_MAX_RANK}, or higher with the reduced dims adjacent (the rest folded)")
def _foldable_rank(node: fx.Node) -> str | None:
    rank = max(t.dim() for t in [meta(node.args[0]), output(node)] if t is not None)
    if rank <= REDUCE_MAX_RANK or _contiguous_block(node):
        return None
    return f"rank {rank} exceeds {REDUCE_MAX_RANK} with reduced dims {_reduced(node)} not adjacent"


def _operand(ctx, node, x):
    """The input on the device: integer (and bool) inputs with an integer result, such as token
    counts and position ids, in int32: exact and signed. Floats in bf16."""
    return ctx.tensor(x, dtype=None if output(node).is_floating_point() else ctx.ttnn.int32)


def _reduction(op: str):
    def lower(ctx, node, *args, **kwargs):
        a = bound(node.target, args, kwargs)
        x = _operand(ctx, node, a["input"])
        shape = tuple(meta(a["input"]).shape)
        if len(shape) > REDUCE_MAX_RANK:  # adjacent reduced dims: [before, reduced, after], dim 1
            dims = _reduced(node)
            folded = (
                math.prod(shape[: dims[0]]),
                math.prod(shape[dims[0] : dims[-1] + 1]),
                math.prod(shape[dims[-1] + 1 :]),
            )
            out = getattr(ctx.ops, op)(
                ctx.ops.reshape(x, folded), dim=1, keepdim=False, memory_config=ctx.memory_config
            )
            return ctx.ops.reshape(out, tuple(output(node).shape))
        return getattr(ctx.ops, op)(
            x, dim=_dims(a.get("dim")), keepdim=a.get("keepdim", False), memory_config=ctx.memory_config
        )

    lower.__name__ = op
    return lower


INTEGER_CHECKS = (
    *BASIC,
    dtypes(FLOAT_DTYPES | INT_DTYPES | {torch.bool}, "bool, int or float"),
    _foldable_rank,
    _same_kind,
)
# Floats in bf16, integers (counts, positions) in int32.
rule(aten.sum.default, aten.sum.dim_IntList, ttnn="ttnn.sum", family="reduction", checks=INTEGER_CHECKS)(
    _reduction("sum")
)
for _op, _targets in {
    "mean": (aten.mean.default, aten.mean.dim),
    "max": (aten.amax.default, aten.max.default),
    "min": (aten.amin.default, aten.min.default),
}.items():
    rule(*_targets, ttnn=f"ttnn.{_op}", family="reduction", checks=(*BASIC, dtypes(), _foldable_rank, float_result))(
        _reduction(_op)
    )


@rule(aten.prod.default, aten.prod.dim_int, ttnn="ttnn.prod", family="reduction", checks=REDUCE_CHECKS)
def prod(ctx, node, *args, **kwargs):
    a = bound(node.target, args, kwargs)
    if a.get("dim") is None:  # ttnn.prod takes a single int dim, or none for the full product
        return ctx.ops.prod(ctx.tensor(a["input"]), memory_config=ctx.memory_config)
    return ctx.ops.prod(ctx.tensor(a["input"]), dim=a["dim"], keepdim=a["keepdim"], memory_config=ctx.memory_config)


# -- var, std ------------------------------------------------------------------------------------
def _correction(a: dict) -> Any:
    if "correction" in a:
        return 1 if a["correction"] is None else a["correction"]
    return 1 if a.get("unbiased", True) else 0


@check("correction 0 or 1")
def _bessel_only(node: fx.Node) -> str | None:
    correction = _correction(bound(node.target, node.args, node.kwargs))
    if correction not in (0, 1):
        return f"correction={correction} unsupported (ttnn.var/std apply Bessel's correction (1) or none (0))"
    return None


def _statistic(op: str):
    def lower(ctx, node, *args, **kwargs):
        a = bound(node.target, args, kwargs)
        return getattr(ctx.ops, op)(
            ctx.tensor(a["input"]),
            dim=_dims(a.get("dim")),
            keepdim=a.get("keepdim", False),
            correction=bool(_correction(a)),
            memory_config=ctx.memory_config,
        )

    lower.__name__ = op
    return lower


for _op in ("var", "std"):
    _aten = getattr(aten, _op)
    rule(
        _aten.correction,
        _aten.dim,
        _aten.default,
        ttnn=f"ttnn.{_op}",
        family="reduction",
        checks=(*REDUCE_CHECKS, _bessel_only),
    )(_statistic(_op))


# -- values with indices, arg-reductions ---------------------------------------------------------
def _argmax(ctx, x, dim, keepdim, negate: bool):
    """ttnn.argmax (argmin as the argmax of -x: both pick the first extremum). ROW_MAJOR input
    runs multi-core on the last dim, and is the only layout that reduces over all dims."""
    xt = ctx.tensor(x)
    if negate:
        xt = ctx.ops.neg(xt, memory_config=ctx.memory_config)
    return ctx.ops.argmax(ctx.tensor(xt, layout="row_major"), dim=dim, keepdim=keepdim, memory_config=ctx.memory_config)


@rule(
    aten.argmax.default,
    aten.argmin.default,
    ttnn="ttnn.argmax",
    family="reduction",
    checks=(*BASIC, dtypes(), max_rank(REDUCE_MAX_RANK)),
)
def argmax(ctx, node, x, dim=None, keepdim=False):
    return _argmax(ctx, x, dim, keepdim, negate=node.target is aten.argmin.default)


@rule(
    aten.max.dim,
    aten.min.dim,
    ttnn="ttnn.max / ttnn.min (+ ttnn.argmax for the indices)",
    family="reduction",
    checks=REDUCE_CHECKS,
)
def max_dim(ctx, node, x, dim, keepdim=False):
    is_min = node.target is aten.min.dim
    values = getattr(ctx.ops, "min" if is_min else "max")(
        ctx.tensor(x), dim=dim, keepdim=keepdim, memory_config=ctx.memory_config
    )
    indices = _argmax(ctx, x, dim, keepdim, negate=is_min) if 1 in used_outputs(node) else None
    return values, indices


def _truth(op: str):
    """any/all as the max/min of (x != 0): 1.0 where true, 0.0 where false."""

    def lower(ctx, node, *args, **kwargs):
        a = bound(node.target, args, kwargs)
        truth = ctx.ops.ne(ctx.tensor(a["input"], dtype=ctx.dtype), 0.0, memory_config=ctx.memory_config)
        return getattr(ctx.ops, op)(
            truth, dim=_dims(a.get("dim")), keepdim=a.get("keepdim", False), memory_config=ctx.memory_config
        )

    lower.__name__ = {"max": "any", "min": "all"}[op]
    return lower


for _op, _aten in (("max", aten.any), ("min", aten.all)):
    rule(
        _aten.default,
        _aten.dim,
        _aten.dims,
        ttnn=f"ttnn.ne + ttnn.{_op}",
        family="reduction",
        checks=(
            *BASIC,
            dtypes(FLOAT_DTYPES | INT_DTYPES | {torch.bool}, "bool, int or float"),
            max_rank(REDUCE_MAX_RANK),
        ),
    )(_truth(_op))


# -- cumsum --------------------------------------------------------------------------------------
@rule(aten.cumsum.default, ttnn="ttnn.cumsum", family="reduction", checks=INTEGER_CHECKS)
def cumsum(ctx, node, x, dim, *, dtype=None):
    return ctx.ops.cumsum(_operand(ctx, node, x), dim, memory_config=ctx.memory_config)
