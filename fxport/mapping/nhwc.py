"""Channels-last forms of layout-agnostic rules, for the layout pass (`fxport.passes.layout`).

TT-NN's conv and pool kernels hold activations as `[1, 1, N*H*W, C]` (flattened NHWC). An
elementwise op computes the same values in that form when its image operands are all in it (an
operand broadcast over the rows, like a per-channel `[1, C, 1, 1]`, flattens to `[1, 1, 1, C]` and
broadcasts the same way); concatenation and splitting along channels (NCHW dim 1) become the same
op along the last dim; the permutes between NCHW and NHWC become reshapes. Each function here is
a rule's `nhwc` form: it returns the call computing the node's output from flattened inputs, or
None when the node needs the aten layout.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import fx

from fxport.mapping.checks import arg, meta, output
from fxport.mapping.registry import NhwcCall

aten = torch.ops.aten

Flat = Callable[[fx.Node], fx.Node]


def _image(value: Any) -> bool:
    v = meta(value)
    return isinstance(v, torch.Tensor) and v.dim() == 4


def _broadcasts_flat(shape: tuple[int, ...], out: tuple[int, ...]) -> bool:
    """An operand of `shape` (rank <= 4, leading 1s implied) broadcast to NCHW `out` flattens to
    an operand broadcast to the flattened output: its N, H, W are all full (rows match) or all 1
    (one row for all)."""
    if len(shape) > 4:
        return False
    shape = (1,) * (4 - len(shape)) + tuple(shape)
    n, c, h, w = out
    rows = (shape[0], shape[2], shape[3])
    return rows in ((n, h, w), (1, 1, 1)) and shape[1] in (1, c)


def pointwise(node: fx.Node, flat: Flat) -> NhwcCall | None:
    """Elementwise ops (unary, binary, where, clamp, casts): the same op on flattened operands
    (a per-channel [C, 1, 1] flattens to [1, 1, 1, C]); numbers and one-element tensors broadcast
    in either layout and stay as they are."""
    out = node.meta.get("val")
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        return None
    shape = tuple(out.shape)

    def operand(a: Any) -> Any:
        if isinstance(a, (list, tuple)):
            return None if any(isinstance(x, fx.Node) for x in a) else a
        v = meta(a)
        if not isinstance(a, fx.Node) or not isinstance(v, torch.Tensor) or v.numel() == 1:
            return a
        return flat(a) if _broadcasts_flat(tuple(v.shape), shape) else None

    args = [operand(a) for a in node.args]
    kwargs = {k: operand(v) for k, v in node.kwargs.items()}
    declined = [a for a, b in zip(args, node.args) if a is None and b is not None]
    declined += [k for k, v in kwargs.items() if v is None and node.kwargs[k] is not None]
    return None if declined else NhwcCall(node.target, tuple(args), kwargs)


def _channel_dim(dim: int, rank: int = 4) -> bool:
    return dim % rank == 1


def cat(node: fx.Node, flat: Flat) -> NhwcCall | None:
    """cat along channels of images alike in N, H, W: cat of the flattened along the last dim."""
    tensors, dim = node.args[0], arg(node, 1, "dim", 0)
    if not all(_image(t) for t in tensors) or not _channel_dim(dim):
        return None
    rows = {(meta(t).shape[0], *meta(t).shape[2:]) for t in tensors}
    return NhwcCall(node.target, ([flat(t) for t in tensors], 3)) if len(rows) == 1 else None


def split(node: fx.Node, flat: Flat) -> NhwcCall | None:
    """split / split_with_sizes along channels: the same split of the last dim."""
    x, dim = node.args[0], arg(node, 2, "dim", 0)
    if not _image(x) or not _channel_dim(dim):
        return None
    return NhwcCall(node.target, (flat(x), node.args[1], 3))


def channel_slice(node: fx.Node, flat: Flat) -> NhwcCall | None:
    """slice along channels: the same slice of the last dim."""
    x, dim = node.args[0], arg(node, 1, "dim", 0)
    if not _image(x) or not _channel_dim(dim) or not isinstance(output(node), torch.Tensor):
        return None
    rest = [arg(node, 2, "start"), arg(node, 3, "end"), arg(node, 4, "step", 1)]
    return NhwcCall(node.target, (flat(x), 3, *rest))


_FLATTENS = (aten.view.default, aten.reshape.default, aten._unsafe_view.default)


def _tokens_of(x: Any) -> fx.Node | None:
    """The image [N, C, H, W] that `x` reshapes to [N, C, H*W] (`flatten(2)`), or None."""
    if not isinstance(x, fx.Node) or x.op != "call_function" or x.target not in _FLATTENS or not _image(x.args[0]):
        return None
    n, c, h, w = meta(x.args[0]).shape
    return x.args[0] if tuple(meta(x).shape) == (n, c, h * w) else None


def _tokens(node: fx.Node, flat: Flat) -> NhwcCall | None:
    """[N, C, H*W] -> [N, H*W, C] of a flattened image (attention's tokens, `x.flatten(2)
    .transpose(1, 2)`) is a reshape of the flattened value."""
    image = _tokens_of(node.args[0])
    return (
        None
        if image is None
        else NhwcCall(aten.reshape.default, (flat(image), list(output(node).shape)), flat_output=False)
    )


def permute(node: fx.Node, flat: Flat) -> NhwcCall | None:
    """NCHW -> NHWC of a flattened value is a reshape to [N, H, W, C]; NHWC -> NCHW of any
    [N, H, W, C] is, into the flattened form, a reshape to [1, 1, N*H*W, C] (and one op instead
    of a permute: worth doing whatever the inputs); tokens of an image, see `_tokens`."""
    x, rank = node.args[0], meta(node.args[0]).dim()
    dims = [d % rank for d in node.args[1]]
    if rank == 3 and dims == [0, 2, 1]:
        return _tokens(node, flat)
    if rank != 4:
        return None
    if dims == [0, 2, 3, 1]:
        return NhwcCall(aten.reshape.default, (flat(x), list(output(node).shape)), flat_output=False)
    if dims == [0, 3, 1, 2]:
        n, h, w, c = meta(x).shape
        return NhwcCall(aten.reshape.default, (x, [1, 1, n * h * w, c]), native=True)
    return None


def transpose(node: fx.Node, flat: Flat) -> NhwcCall | None:
    """Tokens of an image (see `_tokens`)."""
    rank = meta(node.args[0]).dim()
    if rank == 3 and {node.args[1] % rank, node.args[2] % rank} == {1, 2}:
        return _tokens(node, flat)
    return None
