"""Input values for replaying a recorded op: which values each input tensor gets, and making them.

A record has shapes and dtypes, not values. Random values are right for most inputs, but not all:
an embedding's indices must be below num_embeddings, a gather's index within its dim, a log's
input positive, a batch norm's running variance positive, a divisor away from zero. `value_plan`
decides, at generation time, one value spec per input tensor (JSON, written into cases.json so a
reader sees what each test feeds its op); `make_inputs` builds the tensors at test time.

Value specs ("why" says why an input is not plain random):
  {"kind": "normal", "scale": s}          randn * s
  {"kind": "uniform", "low": a, "high": b}
  {"kind": "away_from_zero", "low": a, "high": b}   random sign * uniform(a, b)
  {"kind": "randint", "low": a, "high": b}          integers in [a, b)
  {"kind": "bool", "p": p}                True with probability p
  {"kind": "causal"}                      lower-triangular boolean mask, every row has a True
  {"kind": "zeros"}                       the fallback when an integer input's bounds are unknown

Floating-point values are rounded to bfloat16 (the precision the device stores), so the device
and the host reference compute on the same numbers and only the op's own arithmetic differs.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

import torch

from fxport.capture.records import TensorSpec, split_target
from fxport.dtypes import is_float
from fxport.mapping import REGISTRY

INT_DTYPES = {"int64", "int32", "int16", "int8", "uint8", "uint16", "uint32", "uint64"}

NORMAL = {"kind": "normal", "scale": 1.0}
DEFAULT_INTS = (-16, 16)  # integer values of arithmetic ops, clipped to the dtype's range


def _uniform(low: float, high: float, why: str) -> dict:
    return {"kind": "uniform", "low": low, "high": high, "why": why}


POSITIVE = _uniform(0.1, 3.1, "domain: positive")
UNIT = _uniform(-0.9, 0.9, "domain: inside (-1, 1)")
NEAR_ONE = _uniform(0.9, 1.1, "near 1: a product of many random values under/overflows")
AWAY = {
    "kind": "away_from_zero",
    "low": 0.5,
    "high": 2.5,
    "why": "divisor: away from zero (a quotient near a pole is ill-conditioned in bf16)",
}
WIDE = {"kind": "normal", "scale": 4.0, "why": "rounding op: values spanning several integers"}
KINKS = {"kind": "normal", "scale": 4.0, "why": "piecewise activation: values reaching its bends (+-3, 6)"}
INT_DIVISOR = {"kind": "away_from_zero", "low": 1, "high": DEFAULT_INTS[1], "why": "integer divisor: nonzero"}

# Restricted input ranges: the one table generated suites and the rule tests
# (tests/rule_harness.py) draw inputs from. By op (without overload; "*" for any op), then schema
# argument name, then the kind of input ("float" or "int"); anything not listed gets plain
# random values. A new op with a restricted domain adds its line here.
DOMAINS: dict[str, dict[str, dict[str, dict]]] = {
    **{
        f"aten.{op}": {"self": {"float": POSITIVE}}
        for op in ("log", "log2", "log10", "log1p", "sqrt", "rsqrt", "lgamma", "digamma")
    },
    **{f"aten.{op}": {"self": {"float": UNIT}} for op in ("asin", "acos", "atanh", "erfinv", "tan")},
    **{f"aten.{op}": {"self": {"float": WIDE}} for op in ("floor", "ceil", "round", "trunc", "frac")},
    **{
        f"aten.{op}": {"self": {"float": KINKS}} for op in ("relu6", "hardtanh", "hardswish", "hardsigmoid", "softplus")
    },
    **{
        f"aten.{op}": {"other": {"float": AWAY, "int": INT_DIVISOR}}
        for op in ("div", "true_divide", "floor_divide", "remainder", "fmod")
    },
    "aten.reciprocal": {"self": {"float": AWAY}},
    "aten.addcdiv": {"tensor2": {"float": AWAY}},
    "aten.acosh": {"self": {"float": _uniform(1.1, 4.1, "domain: >= 1")}},
    "aten.logit": {"self": {"float": _uniform(0.05, 0.95, "domain: inside (0, 1)")}},
    "aten.xlogy": {"other": {"float": POSITIVE}},
    # A float base of a non-integral power must be positive (value_plan lifts this for integral
    # exponents); an integer exponent must not be negative.
    "aten.pow": {
        "self": {"float": _uniform(0.1, 3.1, "base of a power: positive")},
        "exponent": {"int": {"kind": "randint", "low": 0, "high": 4, "why": "integer exponent: non-negative"}},
    },
    "aten.prod": {"self": {"float": NEAR_ONE}},
    "aten.cumprod": {"self": {"float": NEAR_ONE}},
    "aten.clamp": {
        "min": {"float": _uniform(-2.5, -0.5, "lower bound below the upper one")},
        "max": {"float": _uniform(0.5, 2.5, "upper bound above the lower one")},
    },
    "aten.grid_sampler_2d": {"grid": {"float": _uniform(-1.0, 1.0, "sampling grid: normalised coordinates")}},
    "*": {"running_var": {"float": _uniform(0.1, 3.1, "a variance: positive")}},
}


def domain(op: str, arg: str, kind: str) -> dict | None:
    """The restricted range of argument `arg` of `op` ("aten.log") for a "float" or "int"
    input, or None when plain random values do."""
    for key in (op, "*"):
        found = DOMAINS.get(key, {}).get(arg, {}).get(kind)
        if found is not None:
            return found
    return None


def value_plan(
    target: str,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    call: dict | None,
    has_rule: Callable[[str], bool] | None = None,
) -> list[dict]:
    """One value spec per input tensor (see the module docstring)."""
    op = resolve(target)
    bound = bind(op, call) if op is not None and call is not None else {}
    slots = tensor_slots(bound)
    name = split_target(target)[0]
    if has_rule is None:
        has_rule = lambda t: REGISTRY.rule_named(t) is not None
    index_bounds = _index_bounds(name, bound, inputs, outputs)
    plan = []
    for i, spec in enumerate(inputs):
        arg, _ = slots.get(i, ("", None))
        plan.append(_value_for(spec, i, arg, name, bound, index_bounds, has_rule(target)))
    return plan


def _value_for(spec: TensorSpec, i: int, arg: str, name: str, bound: dict, index_bounds: dict, value_op: bool) -> dict:
    if spec.dtype == "bool":
        if name == "aten.scaled_dot_product_attention" and arg == "attn_mask":
            return {"kind": "causal", "why": "attention mask: every query row keeps a key (a fully masked row is NaN)"}
        return {"kind": "bool", "p": 0.5}
    if spec.dtype in INT_DTYPES:
        if i in index_bounds:
            return index_bounds[i]
        if not value_op:
            return {
                "kind": "zeros",
                "why": f"integer input {arg or i!s} of an op with no TT-NN "
                "rule and no known index bounds: zeros (values unknown)",
            }
        limited = domain(name, arg, "int")
        if limited is not None:
            return dict(limited)
        lo, hi = _int_range(spec.dtype)
        return {"kind": "randint", "low": lo, "high": hi}
    if is_float(spec.dtype):
        limited = domain(name, arg, "float")
        if name == "aten.pow" and arg == "self" and _integral(bound.get("exponent")):
            limited = None  # an integer power takes any base
        return dict(limited) if limited else dict(NORMAL)
    return {"kind": "zeros", "why": f"dtype {spec.dtype}: no random values (zeros)"}


def _int_range(dtype: str) -> tuple[int, int]:
    info = torch.iinfo(torch_dtype(dtype))
    return max(DEFAULT_INTS[0], info.min), min(DEFAULT_INTS[1], info.max + 1)


def _integral(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer()


# -- index inputs ----------------------------------------------------------------------------

_DIM_INDEXED = {  # op -> (index argument, indexed argument): index values < indexed.shape[dim]
    "aten.gather": ("index", "self"),
    "aten.scatter": ("index", "self"),
    "aten.scatter_add": ("index", "self"),
    "aten.scatter_reduce": ("index", "self"),
    "aten.index_select": ("index", "self"),
    "aten.index_add": ("index", "self"),
    "aten.index_copy": ("index", "self"),
    "aten.index_fill": ("index", "self"),
    "aten.index_reduce": ("index", "self"),
    "aten.take_along_dim": ("indices", "self"),
}
_LIST_INDEXED = {
    "aten.index",
    "aten._unsafe_index",
    "aten.index_put",
    "aten._unsafe_index_put",
    "aten._index_put_impl",
    "aten._unsafe_masked_index",
    "aten._unsafe_masked_index_put_accumulate",
}


def _index(low: int, high: int, why: str) -> dict:
    if high <= low:
        return {"kind": "zeros", "why": f"{why} is empty: zeros"}
    return {"kind": "randint", "low": low, "high": high, "why": f"indices in [{low}, {high}): {why}"}


def _index_bounds(
    name: str, bound: dict, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
) -> dict[int, dict]:
    """Value specs of the index inputs of `name`, by input position."""

    def spec_of(arg: str) -> TensorSpec | None:
        v = bound.get(arg)
        return inputs[v["tensor"]] if _is_tensor(v) else None

    def index_of(arg: str) -> int | None:
        v = bound.get(arg)
        return v["tensor"] if _is_tensor(v) else None

    out: dict[int, dict] = {}
    if name == "aten.embedding":
        weight, i = spec_of("weight"), index_of("indices")
        if weight is not None and i is not None:
            out[i] = _index(0, weight.shape[0], f"num_embeddings (weight.shape[0] = {weight.shape[0]})")
    elif name in _DIM_INDEXED:
        idx_arg, self_arg = _DIM_INDEXED[name]
        src, i, dim = spec_of(self_arg), index_of(idx_arg), bound.get("dim")
        if src is not None and i is not None:
            if isinstance(dim, int) and src.shape:
                d = dim % len(src.shape)
                out[i] = _index(0, src.shape[d], f"size of {self_arg} dim {dim} ({src.shape[d]})")
            elif dim is None:
                n = math.prod(src.shape)
                out[i] = _index(0, n, f"numel of {self_arg} ({n})")
    elif name == "aten.take":
        src, i = spec_of("self"), index_of("index")
        if src is not None and i is not None:
            out[i] = _index(0, math.prod(src.shape), "numel of self")
    elif name in _LIST_INDEXED:
        src, dim = spec_of("self"), 0
        for entry in bound.get("indices") or []:
            if not _is_tensor(entry):  # None: this dim is taken whole
                dim += 1
                continue
            spec = inputs[entry["tensor"]]
            if spec.dtype == "bool":  # a mask consumes as many dims as it has
                dim += max(1, len(spec.shape))
                continue
            if src is not None and dim < len(src.shape):
                out[entry["tensor"]] = _index(0, src.shape[dim], f"size of self dim {dim} ({src.shape[dim]})")
            dim += 1
    elif name in (
        "aten.nll_loss",
        "aten.nll_loss_forward",
        "aten.nll_loss2d",
        "aten.nll_loss2d_forward",
        "aten.nll_loss_nd",
    ):
        src, i = spec_of("self"), index_of("target")
        if src is not None and i is not None and src.shape:
            c = src.shape[1] if len(src.shape) >= 2 else src.shape[0]
            out[i] = _index(0, c, f"class count ({c})")
    elif name == "aten.one_hot":
        i, n = index_of("self"), bound.get("num_classes")
        if i is not None:
            n = n if isinstance(n, int) and n > 0 else (outputs[0].shape[-1] if outputs else 0)
            out[i] = _index(0, n, f"num_classes ({n})")
    return out


# -- the call ------------------------------------------------------------------------------

_NAME = re.compile(r"(?!__)[A-Za-z_][A-Za-z0-9_]*\Z")  # an identifier, not a dunder


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype called `name` ("float32"): names come from cases.json, which is data, so
    only a dtype is ever returned (never another attribute of torch)."""
    dtype = getattr(torch, name, None) if isinstance(name, str) and _NAME.match(name) else None
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"{name!r} is not a torch dtype")
    return dtype


def dtype_problem(dtypes: list[str]) -> str | None:
    """Why a case's tensor dtypes cannot be made (one that is not a torch dtype), or None."""
    for name in dtypes:
        try:
            torch_dtype(name)
        except ValueError as exc:
            return str(exc)
    return None


def resolve(target: str) -> Any:
    """The OpOverload named "ns.op.overload", or None when it is not one (names are data: only
    plain identifiers are looked up, and only an OpOverload is returned)."""
    parts = target.split(".") if isinstance(target, str) else []
    if len(parts) != 3 or not all(_NAME.match(p) for p in parts):
        return None
    try:
        op = getattr(getattr(getattr(torch.ops, parts[0]), parts[1]), parts[2])
    except (AttributeError, RuntimeError):
        return None
    return op if isinstance(op, torch._ops.OpOverload) else None


def bind(op: Any, call: dict) -> dict[str, Any]:
    """Schema argument name -> encoded value of the recorded call."""
    names = [a.name for a in op._schema.arguments if not a.kwarg_only]
    bound = dict(zip(names, call.get("args", [])))
    bound.update(call.get("kwargs", {}))
    return bound


def tensor_slots(bound: dict[str, Any]) -> dict[int, tuple[str, int | None]]:
    """Tensor index -> (argument name, position in a list argument or None)."""
    slots: dict[int, tuple[str, int | None]] = {}
    for name, v in bound.items():
        if _is_tensor(v):
            slots[v["tensor"]] = (name, None)
        elif isinstance(v, list):
            for k, item in enumerate(v):
                if _is_tensor(item):
                    slots[item["tensor"]] = (name, k)
    return slots


def _is_tensor(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"tensor"}


class Unreplayable(ValueError):
    """A recorded argument fxport cannot rebuild (an opaque object recorded by its repr)."""


_REPRS = {
    "torch.strided": torch.strided,
    "torch.sparse_coo": torch.sparse_coo,
    "torch.contiguous_format": torch.contiguous_format,
    "torch.channels_last": torch.channels_last,
    "torch.channels_last_3d": torch.channels_last_3d,
    "torch.preserve_format": torch.preserve_format,
}


def decode(call: dict, tensors: list[Any], device: str = "cpu") -> tuple[tuple, dict]:
    """(args, kwargs) of the recorded call with `tensors` in place of {"tensor": i}. Devices
    recorded in the call (captures run on meta) become `device`."""

    def dec(v: Any) -> Any:
        if isinstance(v, list):
            return [dec(x) for x in v]
        if isinstance(v, dict):
            if set(v) == {"tensor"}:
                return tensors[v["tensor"]]
            if set(v) == {"dtype"}:
                return torch_dtype(v["dtype"])
            if set(v) == {"repr"}:
                text = v["repr"]
                if text in _REPRS:
                    return _REPRS[text]
                if text.split(":")[0] in ("cpu", "meta", "cuda"):
                    return torch.device(device)
                raise Unreplayable(f"argument recorded as {text!r} cannot be rebuilt")
            raise Unreplayable(f"argument recorded as {v!r} cannot be rebuilt")
        return v

    return tuple(dec(list(call.get("args", [])))), {k: dec(v) for k, v in call.get("kwargs", {}).items()}


def check_replayable(call: dict | None) -> str | None:
    """Why the call cannot be replayed, or None."""
    if call is None:
        return "the record has no call (ops.json written before fxport recorded calls): trace the model again"
    try:
        decode(call, _AnyTensors(), device="meta")
    except Unreplayable as exc:
        return str(exc)
    return None


class _AnyTensors:
    def __getitem__(self, i: int) -> None:
        return None


# -- making values ---------------------------------------------------------------------------


def make_inputs(specs: list[dict], values: list[dict], seed: int) -> list[torch.Tensor]:
    """The input tensors of a case: `specs` as {"shape", "dtype"}, `values` from value_plan."""
    gen = torch.Generator().manual_seed(seed)
    return [make_tensor(tuple(s["shape"]), s["dtype"], v, gen) for s, v in zip(specs, values)]


def make_tensor(shape: tuple[int, ...], dtype: str, value: dict, gen: torch.Generator) -> torch.Tensor:
    dt = torch_dtype(dtype)
    kind = value["kind"]
    if kind == "zeros":
        return torch.zeros(shape, dtype=dt)
    if kind == "bool":
        return torch.rand(shape, generator=gen) < value.get("p", 0.5)
    if kind == "causal":
        rows, cols = (shape[-2], shape[-1]) if len(shape) >= 2 else (1, shape[-1] if shape else 1)
        mask = torch.ones(rows, cols, dtype=torch.bool).tril(max(cols - rows, 0))
        return mask.expand(shape).clone() if shape else mask.reshape(())
    if kind == "randint":
        return torch.randint(value["low"], value["high"], shape, generator=gen).to(dt)
    if kind == "away_from_zero":
        sign = torch.where(torch.rand(shape, generator=gen) < 0.5, -1, 1)
        if dt.is_floating_point:
            mag = value["low"] + (value["high"] - value["low"]) * torch.rand(shape, generator=gen)
            return _bf16_exact(sign * mag, dt)
        mag = torch.randint(value["low"], value["high"], shape, generator=gen)
        return (sign * mag).to(dt)
    if kind == "uniform":
        x = value["low"] + (value["high"] - value["low"]) * torch.rand(shape, generator=gen)
        return _bf16_exact(x, dt)
    if kind == "normal":
        if dt.is_complex:
            return torch.randn(shape, generator=gen, dtype=dt)
        return _bf16_exact(value.get("scale", 1.0) * torch.randn(shape, generator=gen), dt)
    raise ValueError(f"unknown value kind {kind!r}")


def _bf16_exact(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return x.to(torch.bfloat16).to(dtype)


def describe(value: dict) -> str:
    """One line for a test's record: what the input holds."""
    kind = value["kind"]
    text = {
        "normal": lambda v: f"randn x {v.get('scale', 1.0):g} (bf16-exact)",
        "uniform": lambda v: f"uniform [{v['low']:g}, {v['high']:g}) (bf16-exact)",
        "away_from_zero": lambda v: f"+-uniform [{v['low']:g}, {v['high']:g})",
        "randint": lambda v: f"integers in [{v['low']}, {v['high']})",
        "bool": lambda v: f"random booleans (p={v.get('p', 0.5):g})",
        "causal": lambda v: "causal boolean mask",
        "zeros": lambda v: "zeros",
    }[kind](value)
    return f"{text}: {value['why']}" if value.get("why") else text
