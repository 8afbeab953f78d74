"""Data-movement rules: views and reshapes, permutes, slicing, concatenation and splitting, copies
and dtype conversion, index selection.

Values pass through these ops unchanged, so integer and bool tensors are accepted as well as floats
(TT-NN holds integers as uint32/int32 and bools as bf16 0/1 or uint32). The layout a value already
has on the device is kept: reshape, permute, slice and concat work on TILE and ROW_MAJOR alike.
"""

from __future__ import annotations

import math

import torch
from torch import fx

from fxport.mapping import nhwc
from fxport.mapping.checks import BASIC, FLOAT_DTYPES, INT_DTYPES, arg, dtypes, max_rank, meta, output, tensor_inputs
from fxport.mapping.registry import check, no_kernel, rule
from fxport.values import HostValue, TTValue

aten = torch.ops.aten

ANY_DTYPES = FLOAT_DTYPES | INT_DTYPES | {torch.bool}
# TT-NN shapes are rank <= 8. The mock validates reshape/permute/slice/concat/expand beyond that
# (tried to rank 12), but it runs no kernels, so the limit stays where TT-NN documents tensors.
MAX_RANK = 8
MOVE = (*BASIC, dtypes(ANY_DTYPES, "float, int or bool"), max_rank(MAX_RANK))


def tt_dtype(ctx, dtype: torch.dtype, signed: bool = False):
    """The TT-NN dtype holding values of torch `dtype`: floats and bools in bf16 (TT-NN computes
    floats in bf16; its comparisons return bf16 0/1), integers in uint32, or int32 when negative
    values can occur."""
    if dtype.is_floating_point or dtype == torch.bool:
        return ctx.dtype
    return ctx.ttnn.int32 if signed else ctx.ttnn.uint32


def dev(ctx, value):
    """A device tensor in whatever layout it already has (host values move as tiles)."""
    return value if isinstance(value, TTValue) else ctx.tensor(value)


def _shape(node: fx.Node) -> tuple[int, ...]:
    return tuple(output(node).shape)


def _dim(dim: int, rank: int) -> int:
    return dim % rank if rank else 0


# -- reshapes ----------------------------------------------------------------------------------
# Shape changes that keep the elements in order (their copy forms too); the graph passes match
# on the same list.
RESHAPES = (
    aten.view.default,
    aten._unsafe_view.default,
    aten.reshape.default,
    aten.view_copy.default,
    aten.squeeze.default,
    aten.squeeze.dim,
    aten.squeeze.dims,
    aten.squeeze_copy.default,
    aten.squeeze_copy.dim,
    aten.squeeze_copy.dims,
    aten.unsqueeze.default,
    aten.unsqueeze_copy.default,
)


@rule(
    *RESHAPES,
    ttnn="ttnn.reshape",
    family="data_movement",
    checks=MOVE,
)
def reshape(ctx, node, x, *_, **__):
    # The captured output shape already resolves -1 and which dims squeeze drops.
    return ctx.ops.reshape(dev(ctx, x), _shape(node))


@rule(
    aten.alias.default,
    aten.alias_copy.default,
    aten.detach.default,
    aten.detach_copy.default,
    aten.lift_fresh_copy.default,
    aten.contiguous.default,
    ttnn="(none: the device tensor is reused)",
    family="data_movement",
    checks=MOVE,
    nhwc=nhwc.pointwise,
)
def alias(ctx, node, x, *_, **__):
    return dev(ctx, x)


@check("a contiguous view of the whole input (a reshape)")
def _contiguous_view(node: fx.Node) -> str | None:
    """as_strided that reads the input in order from its start is a reshape; else a real gather."""
    x, out = meta(node.args[0]), output(node)
    size, stride = list(arg(node, 1, "size")), list(arg(node, 2, "stride"))
    offset = arg(node, 3, "storage_offset") or 0
    expected = [math.prod(size[i + 1 :]) for i in range(len(size))]
    if (
        offset
        or any(s != e for s, e, n in zip(stride, expected, size) if n != 1)
        or out.numel() != x.numel()
        or not x.is_contiguous()
    ):
        return (
            f"as_strided(size={size}, stride={stride}, offset={offset}) is not a contiguous view "
            "of its whole input (there is no ttnn.as_strided; a ttnn.gather of computed indices "
            "is not lowered here)"
        )
    return None


@rule(
    aten.as_strided.default,
    aten.as_strided_copy.default,
    ttnn="ttnn.reshape",
    family="data_movement",
    checks=(*MOVE, _contiguous_view),
)
def as_strided(ctx, node, x, *_, **__):
    shape = _shape(node)
    return dev(ctx, x) if tuple(x.shape) == shape else ctx.ops.reshape(dev(ctx, x), shape)


@rule(aten.clone.default, ttnn="ttnn.clone", family="data_movement", checks=MOVE, nhwc=nhwc.pointwise)
def clone(ctx, node, x, memory_format=None):
    return ctx.ops.clone(dev(ctx, x), memory_config=ctx.memory_config)


# -- permutes ----------------------------------------------------------------------------------
@rule(
    aten.permute.default,
    aten.permute_copy.default,
    ttnn="ttnn.permute",
    family="data_movement",
    checks=MOVE,
    nhwc=nhwc.permute,
)
def permute(ctx, node, x, dims):
    rank = len(dims)
    return ctx.ops.permute(dev(ctx, x), [_dim(d, rank) for d in dims], memory_config=ctx.memory_config)


@rule(
    aten.transpose.int,
    aten.transpose_copy.int,
    ttnn="ttnn.transpose",
    family="data_movement",
    checks=MOVE,
    nhwc=nhwc.transpose,
)
def transpose(ctx, node, x, dim0, dim1):
    rank = len(_shape(node))
    return ctx.ops.transpose(dev(ctx, x), _dim(dim0, rank), _dim(dim1, rank), memory_config=ctx.memory_config)


@rule(aten.t.default, aten.t_copy.default, ttnn="ttnn.transpose", family="data_movement", checks=MOVE)
def t(ctx, node, x):
    x = dev(ctx, x)
    return ctx.ops.transpose(x, 0, 1, memory_config=ctx.memory_config) if len(x.shape) == 2 else x


# -- broadcasting copies -------------------------------------------------------------------------
@rule(aten.expand.default, aten.expand_copy.default, ttnn="ttnn.expand", family="data_movement", checks=MOVE)
def expand(ctx, node, x, size, implicit=False):
    return ctx.ops.expand(dev(ctx, x), _shape(node), memory_config=ctx.memory_config)


@rule(aten.repeat.default, ttnn="ttnn.repeat", family="data_movement", checks=MOVE)
def repeat(ctx, node, x, repeats):
    x = dev(ctx, x)
    extra = len(repeats) - len(x.shape)
    if extra > 0:  # torch.repeat adds leading dims; ttnn.repeat wants them in place
        x = ctx.ops.reshape(x, (1,) * extra + x.shape)
    return ctx.ops.repeat(x, list(repeats), memory_config=ctx.memory_config)


@check("a given dim")
def _given_dim(node: fx.Node) -> str | None:
    return None if arg(node, 2, "dim") is not None else "dim=None (flattening) unsupported"


@rule(
    aten.repeat_interleave.self_int, ttnn="ttnn.repeat_interleave", family="data_movement", checks=(*MOVE, _given_dim)
)
def repeat_interleave(ctx, node, x, repeats, dim=None, output_size=None):
    x = dev(ctx, x)
    return ctx.ops.repeat_interleave(x, repeats, _dim(dim, len(x.shape)), memory_config=ctx.memory_config)


# -- slicing ------------------------------------------------------------------------------------
def _bounds(size: int, start, end) -> tuple[int, int]:
    """torch's clamping of slice bounds (None, negative and out-of-range values)."""
    start = 0 if start is None else start
    end = size if end is None else end
    start = max(0, min(size, start + size if start < 0 else start))
    end = max(start, min(size, end + size if end < 0 else end))
    return start, end


def _slice(ctx, x: TTValue, dim: int, start: int, end: int, step: int = 1) -> TTValue:
    shape = x.shape
    starts, ends, steps = [0] * len(shape), list(shape), [1] * len(shape)
    starts[dim], ends[dim], steps[dim] = start, end, step
    return ctx.ops.slice(x, starts, ends, steps, memory_config=ctx.memory_config)


@rule(
    aten.slice.Tensor,
    aten.slice_copy.Tensor,
    ttnn="ttnn.slice",
    family="data_movement",
    checks=MOVE,
    nhwc=nhwc.channel_slice,
)
def slice_(ctx, node, x, dim=0, start=None, end=None, step=1):
    x = dev(ctx, x)
    dim = _dim(dim, len(x.shape))
    start, end = _bounds(x.shape[dim], start, end)
    return _slice(ctx, x, dim, start, end, step)


@rule(aten.select.int, aten.select_copy.int, ttnn="ttnn.slice + ttnn.reshape", family="data_movement", checks=MOVE)
def select(ctx, node, x, dim, index):
    x = dev(ctx, x)
    dim = _dim(dim, len(x.shape))
    index = index % x.shape[dim]
    return ctx.ops.reshape(_slice(ctx, x, dim, index, index + 1), _shape(node))


def _sizes(node: fx.Node) -> list[int]:
    return [t.shape[_dim(arg(node, 2, "dim", 0), t.dim())] for t in node.meta["val"]]


@check("non-empty chunks")
def _split_sizes(node: fx.Node) -> str | None:
    return None if all(_sizes(node)) else "empty split chunk"


@rule(
    aten.split.Tensor,
    aten.split_copy.Tensor,
    aten.split_with_sizes.default,
    aten.split_with_sizes_copy.default,
    ttnn="ttnn.slice",
    family="data_movement",
    checks=(*MOVE, _split_sizes),
    nhwc=nhwc.split,
)
def split(ctx, node, x, split_size, dim=0):
    x = dev(ctx, x)
    dim = _dim(dim, len(x.shape))
    chunks, start = [], 0
    for size in _sizes(node):
        chunks.append(_slice(ctx, x, dim, start, start + size))
        start += size
    return tuple(chunks)


@rule(aten.unbind.int, aten.unbind_copy.int, ttnn="ttnn.slice + ttnn.reshape", family="data_movement", checks=MOVE)
def unbind(ctx, node, x, dim=0):
    x = dev(ctx, x)
    dim = _dim(dim, len(x.shape))
    return tuple(ctx.ops.reshape(_slice(ctx, x, dim, i, i + 1), tuple(o.shape)) for i, o in enumerate(node.meta["val"]))


# -- joining ------------------------------------------------------------------------------------
@check("inputs of one dtype")
def _same_dtype(node: fx.Node) -> str | None:
    kinds = {t.dtype for t in tensor_inputs(node)}
    return None if len(kinds) <= 1 else f"mixed input dtypes {sorted(str(k) for k in kinds)}"


def _joinable(ctx, values) -> list[TTValue]:
    """Device tiles of one dtype: ttnn.concat needs its inputs alike. Block floats (bfloat8_b
    activations) join as bfloat16: a row-major input (a pool's output) cast to a block float
    fails ("Only TILE layout is supported for BFLOAT8_B dtype")."""
    ref = next((v.tt.dtype for v in values if isinstance(v, TTValue)), None)
    if ref in (ctx.ttnn.bfloat8_b, ctx.ttnn.bfloat4_b):
        ref = ctx.dtype
    return [ctx.tensor(v, dtype=ref) for v in values]


@rule(aten.cat.default, ttnn="ttnn.concat", family="data_movement", checks=(*MOVE, _same_dtype), nhwc=nhwc.cat)
def cat(ctx, node, tensors, dim=0):
    tensors = _joinable(ctx, tensors)
    return ctx.ops.concat(tensors, _dim(dim, len(_shape(node))), memory_config=ctx.memory_config)


@rule(aten.stack.default, ttnn="ttnn.reshape + ttnn.concat", family="data_movement", checks=(*MOVE, _same_dtype))
def stack(ctx, node, tensors, dim=0):
    out = _shape(node)
    dim = _dim(dim, len(out))
    piece = out[:dim] + (1,) + out[dim + 1 :]
    return ctx.ops.concat(
        [ctx.ops.reshape(t, piece) for t in _joinable(ctx, tensors)], dim, memory_config=ctx.memory_config
    )


@check("step 1")
def _unit_step(node: fx.Node) -> str | None:
    step = arg(node, 5, "step", 1)
    return None if step == 1 else f"step={step} unsupported (lowered as slices + concat)"


def _replace(ctx, x: TTValue, src: TTValue, dim: int, start: int, end: int) -> TTValue:
    """x with [start, end) along dim replaced by src: the slices of x around it, concatenated."""
    size = x.shape[dim]
    parts = [_slice(ctx, x, dim, 0, start)] if start > 0 else []
    parts.append(src)
    if end < size:
        parts.append(_slice(ctx, x, dim, end, size))
    return ctx.ops.concat(parts, dim, memory_config=ctx.memory_config) if len(parts) > 1 else src


@rule(
    aten.slice_scatter.default,
    ttnn="ttnn.slice + ttnn.concat",
    family="data_movement",
    checks=(*MOVE, _same_dtype, _unit_step),
)
def slice_scatter(ctx, node, x, src, dim=0, start=None, end=None, step=1):
    x, src = _joinable(ctx, [x, src])
    dim = _dim(dim, len(x.shape))
    return _replace(ctx, x, src, dim, *_bounds(x.shape[dim], start, end))


@rule(aten.select_scatter.default, ttnn="ttnn.slice + ttnn.concat", family="data_movement", checks=(*MOVE, _same_dtype))
def select_scatter(ctx, node, x, src, dim, index):
    x, src = _joinable(ctx, [x, src])
    dim = _dim(dim, len(x.shape))
    index = index % x.shape[dim]
    src = ctx.ops.reshape(src, x.shape[:dim] + (1,) + x.shape[dim + 1 :])
    return _replace(ctx, x, src, dim, index, index + 1)


# -- copies and dtype conversion ------------------------------------------------------------------
def _convert(ctx, x: TTValue, dtype: torch.dtype) -> TTValue:
    """x holding values of torch `dtype`. Floats of any width share bf16 on the device; a float to
    integer cast truncates toward zero like torch (int32 keeps the sign)."""
    want = tt_dtype(ctx, dtype, signed=True)
    have = x.tt.dtype
    floats = (ctx.dtype, ctx.ttnn.float32)
    if have == want or (have in floats and want in floats) or (have not in floats and want not in floats):
        return x
    return ctx.ops.typecast(x, want, memory_config=ctx.memory_config)


def _to_bool(ctx, x) -> TTValue:
    """A cast to bool is `x != 0` (a typecast would round 0.4 to 0): ttnn.ne gives bf16 0/1,
    which is how bool masks live on the device."""
    return ctx.ops.ne(dev(ctx, x), 0, memory_config=ctx.memory_config)


def _cast(ctx, x, src: torch.dtype, dst: torch.dtype) -> TTValue:
    return _to_bool(ctx, x) if dst == torch.bool and src != torch.bool else _convert(ctx, x, dst)


@rule(
    aten._to_copy.default,
    ttnn="ttnn.typecast (ttnn.ne for -> bool)",
    family="data_movement",
    checks=MOVE,
    nhwc=nhwc.pointwise,
)
def to_copy(ctx, node, x, **_):
    return _cast(ctx, dev(ctx, x), meta(node.args[0]).dtype, output(node).dtype)


@rule(aten.copy.default, ttnn="ttnn.expand + ttnn.typecast", family="data_movement", checks=MOVE)
def copy(ctx, node, dst, src, non_blocking=False):
    src_dtype = meta(src).dtype if isinstance(src, fx.Node) else meta(node.args[1]).dtype
    src = dev(ctx, src)
    if src.shape != _shape(node):
        src = ctx.ops.expand(src, _shape(node), memory_config=ctx.memory_config)
    return _cast(ctx, src, src_dtype, output(node).dtype)


# -- index selection ------------------------------------------------------------------------------
def _indices(ctx, index, size: int) -> TTValue:
    """Indices as uint32 ROW_MAJOR (what ttnn.embedding reads), negative ones (x[-1]) wrapped:
    on the host for host values, on the device for signed device values."""
    if isinstance(index, HostValue):
        t = index.tensor.to(torch.int64).flatten()
        index = HostValue(torch.where(t < 0, t + size, t))
    elif index.tt.dtype == ctx.ttnn.int32:
        index = ctx.ops.where(ctx.ops.lt(index, 0), ctx.ops.add(index, size), index)
    return ctx.tensor(index, layout="row_major", dtype=ctx.ttnn.uint32)


def _gather_rows(ctx, x, dim: int, index, out: tuple[int, ...]) -> TTValue:
    """x.index_select(dim, index.flatten()) reshaped to `out`, via ttnn.embedding: dim moves to
    the front and the rest flattens into one embedding row."""
    x = dev(ctx, x)
    rank = len(x.shape)
    order = [dim] + [d for d in range(rank) if d != dim]
    if dim:
        x = ctx.ops.permute(x, order, memory_config=ctx.memory_config)
    moved = x.shape
    table = ctx.ops.reshape(x, (moved[0], math.prod(moved[1:])))
    index = _indices(ctx, index, moved[0])
    if len(index.shape) != 1:
        index = ctx.ops.reshape(index, (math.prod(index.shape),))
    rows = ctx.ops.embedding(index, table, layout=ctx.ttnn.TILE_LAYOUT, memory_config=ctx.memory_config)
    rows = ctx.ops.reshape(rows, (rows.shape[0],) + moved[1:])
    if dim:
        rows = ctx.ops.permute(rows, [order.index(d) for d in range(rank)], memory_config=ctx.memory_config)
    return rows if rows.shape == out else ctx.ops.reshape(rows, out)


@check("a floating-point source")
def _float_source(node: fx.Node) -> str | None:
    src = meta(node.args[0]).dtype
    return (
        None
        if src in FLOAT_DTYPES
        else f"dtype {str(src).removeprefix('torch.')} unsupported (ttnn.embedding gathers bf16 rows)"
    )


@rule(
    aten.index_select.default,
    ttnn="ttnn.embedding",
    family="data_movement",
    checks=(*BASIC, _float_source, max_rank(MAX_RANK)),
)
def index_select(ctx, node, x, dim, index):
    return _gather_rows(ctx, x, _dim(dim, len(meta(node.args[0]).shape)), index, _shape(node))


@check("integer index tensors on adjacent dims (x[idx], x[:, i, j])")
def _adjacent_indices(node: fx.Node) -> str | None:
    indices = arg(node, 1, "indices")
    given = [d for d, i in enumerate(indices) if i is not None]
    if any(meta(indices[d]).dtype == torch.bool for d in given):
        return "boolean mask indexing unsupported (data-dependent output shape)"
    if given != list(range(given[0], given[-1] + 1)):
        # torch then moves the broadcast index dims to the front: another layout, not lowered
        return f"index tensors on dims {given} are not adjacent (torch moves their result to the front)"
    return None


@rule(
    aten.index.Tensor,
    aten._unsafe_index.Tensor,
    ttnn="ttnn.embedding",
    family="data_movement",
    checks=(*BASIC, _float_source, max_rank(MAX_RANK), _adjacent_indices),
)
def index(ctx, node, x, indices):
    given = [d for d, i in enumerate(indices) if i is not None]
    if len(given) == 1:
        return _gather_rows(ctx, x, given[0], indices[given[0]], _shape(node))
    # x[:, i, j] with broadcast i, j: the indexed dims merge into one, indexed by i * size_j + j.
    # The flat index is computed exactly on the host (int64): bf16 cannot hold it.
    shape = tuple(meta(node.args[0]).shape)
    first, last = given[0], given[-1] + 1
    flat = torch.zeros((), dtype=torch.int64)
    for d in given:
        i = ctx.host(indices[d]).to(torch.int64)
        flat = flat * shape[d] + torch.where(i < 0, i + shape[d], i)
    merged = shape[:first] + (math.prod(shape[first:last]),) + shape[last:]
    x = ctx.ops.reshape(dev(ctx, x), merged)
    return _gather_rows(ctx, x, first, HostValue(flat.flatten()), _shape(node))


@rule(
    aten.unfold.default,
    ttnn="ttnn.embedding + ttnn.permute",
    family="data_movement",
    checks=(*BASIC, _float_source, max_rank(MAX_RANK)),
)
def unfold(ctx, node, x, dimension, size, step):
    # Windows of `size` every `step` along `dimension`: their rows gathered by one embedding with
    # window indices built exactly on the host, then the window axis moved last as torch puts it.
    shape = tuple(meta(node.args[0]).shape)
    rank = len(shape)
    d = _dim(dimension, rank)
    n = (shape[d] - size) // step + 1
    index = (torch.arange(n)[:, None] * step + torch.arange(size)[None, :]).flatten()
    rows = _gather_rows(ctx, x, d, HostValue(index), shape[:d] + (n, size) + shape[d + 1 :])
    order = [i for i in range(rank + 1) if i != d + 1] + [d + 1]
    return ctx.ops.permute(rows, order, memory_config=ctx.memory_config)


no_kernel(
    aten.index_put.default,
    aten._unsafe_index_put.default,
    aten.index_put_.default,
    limit="writes values at index tuples over several dims (nn.Fold); ttnn.scatter writes along "
    "one dim with an index tensor of the source's shape, and its accumulating form is not "
    "validated on the mock: not lowered",
)


@rule(
    aten.flip.default, ttnn="ttnn.embedding", family="data_movement", checks=(*BASIC, _float_source, max_rank(MAX_RANK))
)
def flip(ctx, node, x, dims):
    shape = _shape(node)
    for d in dims:
        d = _dim(d, len(shape))
        x = _gather_rows(ctx, x, d, HostValue(torch.arange(shape[d] - 1, -1, -1)), shape)
    return dev(ctx, x)


@rule(aten.gather.default, ttnn="ttnn.gather", family="data_movement", checks=MOVE)
def gather(ctx, node, x, dim, index, sparse_grad=False):
    # The index must lie in [0, size) as for torch; sparse_grad only concerns the backward pass.
    x = ctx.tensor(x)
    index = ctx.tensor(index, dtype=ctx.ttnn.uint32)
    return ctx.ops.gather(x, _dim(dim, len(x.shape)), index=index, memory_config=ctx.memory_config)


@rule(aten.roll.default, ttnn="ttnn.roll", family="data_movement", checks=MOVE)
def roll(ctx, node, x, shifts, dims=()):
    x = dev(ctx, x)
    shape = x.shape
    if not dims:  # torch rolls the flattened tensor
        flat = ctx.ops.roll(ctx.ops.reshape(x, (math.prod(shape),)), list(shifts), [0])
        return ctx.ops.reshape(flat, shape)
    return ctx.ops.roll(x, list(shifts), [_dim(d, len(shape)) for d in dims])
