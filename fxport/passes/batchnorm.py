"""Fold eval-mode batch norm into the convolution before it.

Rewrites `bn(conv(x, W, b))`, where the conv's output feeds nothing but the batch norm and every
parameter is a constant of the model, into `conv(x, W', b')` with

    s  = gamma / sqrt(running_var + eps)        (per output channel)
    W' = W * s                                   (each output channel's filter scaled)
    b' = (b - running_mean) * s + beta           (b = 0 when the conv has no bias)

and drops the batch norm: its device op, its four parameter transfers and their per-channel
reshapes.

Why it is exact: eval-mode batch norm is the per-channel affine map y = (z - mean) * s + beta,
and a convolution is linear in its weights, so conv(x, W * s) + (b - mean) * s + beta equals it
for every x. The per-channel terms are computed in float64; W' is one multiplication in the
weights' dtype (within one rounding of W * s).
On meta weights (verdict runs) the fold is structural: new tensors of the same shapes, so the
device sees the same ops and sizes a folded model would have.
"""

from __future__ import annotations

import operator

import torch
from torch import fx

from fxport.mapping.fused_ops import ops as fxport_ops
from fxport.passes.base import FxportPass

aten = torch.ops.aten

_BATCH_NORM = aten._native_batch_norm_legit_no_training.default
_CONVS = {
    aten.conv2d.default,
    aten.conv2d.padding,
    aten.conv1d.default,
    aten.conv1d.padding,
    aten.convolution.default,
    fxport_ops.conv2d.default,
}


def _foldable_conv(conv: fx.Node) -> bool:
    if conv.op != "call_function" or conv.target not in _CONVS or len(conv.users) != 1:
        return False
    if conv.target == aten.convolution.default and conv.args[6]:  # transposed: [in, out, ...]
        return False
    if conv.target == fxport_ops.conv2d.default and conv.args[7]:  # an activation comes first
        return False
    return True


class FoldBatchNorm(FxportPass):
    name = "batchnorm"

    def run(self, gm: fx.GraphModule) -> bool:
        for bn in list(gm.graph.nodes):
            if bn.op == "call_function" and bn.target == _BATCH_NORM:
                self._fold(gm, bn)
        return self.record.fused > 0

    def _fold(self, gm: fx.GraphModule, bn: fx.Node) -> None:
        conv, gamma, beta, mean, var, _momentum, eps = bn.args
        if not isinstance(conv, fx.Node) or not _foldable_conv(conv):
            return
        if any(u.target is not operator.getitem for u in bn.users) or any(u.args[1] != 0 and u.users for u in bn.users):
            return  # the saved statistics are read (they are empty in eval mode, but still)
        weight = self.constant(conv.args[1])
        bias_node = conv.args[2] if len(conv.args) > 2 else conv.kwargs.get("bias")
        bias = self.constant(bias_node) if bias_node is not None else None
        stats = [self.constant(a) if a is not None else None for a in (gamma, beta, mean, var)]
        if (
            weight is None
            or (bias_node is not None and bias is None)
            or stats[2] is None
            or stats[3] is None
            or any(a is not None and s is None for a, s in zip((gamma, beta), stats))
        ):
            return  # something is computed, not a constant: nothing to fold into
        prefix = f"{conv.name}_bn_folded"
        shapes = {
            f"{prefix}_weight": torch.empty(weight.shape, dtype=weight.dtype, device="meta"),
            f"{prefix}_bias": torch.empty(weight.shape[0], dtype=weight.dtype, device="meta"),
        }
        self.env.new_constants(gm, shapes, lambda: _folded(weight, bias, *stats, eps))
        with gm.graph.inserting_before(conv):
            w_node, b_node = (gm.graph.get_attr(name) for name in shapes)
        w_node.meta["val"], b_node.meta["val"] = shapes.values()
        args = list(conv.args) + [None] * (3 - len(conv.args))  # every conv here: (x, weight, bias, ...)
        args[1], args[2] = w_node, b_node
        conv.args = tuple(args)
        conv.kwargs = {k: v for k, v in conv.kwargs.items() if k != "bias"}
        for user in list(bn.users):
            if user.args[1] == 0:
                user.replace_all_uses_with(conv)
            gm.graph.erase_node(user)
        gm.graph.erase_node(bn)
        self.record.fused += 1
        # The batch norm's parameters no longer move; the conv gains a bias if it had none.
        self.record.transfers_saved += sum(a is not None for a in (gamma, beta, mean, var)) - (bias is None)
        self.record.changes.append(f"{bn.name} -> {conv.name}")


def _folded(weight: torch.Tensor, bias: torch.Tensor | None, gamma, beta, mean, var, eps: float):
    """(W', b') of a conv followed by eval batch norm (real or meta tensors). The per-channel
    terms are computed in float64; W' is one multiplication in the weights' dtype."""
    dtype = weight.dtype
    if weight.is_meta:  # structural: the shapes a folded model has
        return torch.empty_like(weight), torch.empty(weight.shape[0], dtype=dtype, device="meta")
    scale = (var.double() + eps).rsqrt()
    if gamma is not None:
        scale = scale * gamma.double()
    shift = -mean.double() if bias is None else bias.double() - mean.double()
    new_bias = shift * scale + (beta.double() if beta is not None else 0)
    new_weight = weight * scale.to(dtype).reshape(-1, *[1] * (weight.dim() - 1))
    return new_weight.contiguous(), new_bias.to(dtype)
