"""Attention: scaled_dot_product_attention on TT-NN's fused (FlashAttention-2) kernel."""

from __future__ import annotations

import torch
from torch import fx

from fxport.mapping.checks import BASIC, FLOAT_DTYPES, arg, dtypes, meta
from fxport.mapping.registry import rule

aten = torch.ops.aten

TILE = 32
# Added to the scores where a boolean mask is False. Large enough that exp() underflows to 0 like
# torch's -inf, finite so that a fully masked row stays finite instead of NaN.
MASKED = -1e9


def _sdpa_shapes(node: fx.Node) -> str | None:
    """What ttnn.transformer.scaled_dot_product_attention validates (messages from ttnn 0.81.1)."""
    q, k, v = (meta(a) for a in node.args[:3])
    if not q.dim() == k.dim() == v.dim() == 4:
        return f"rank {q.dim()} inputs unsupported (ttnn SDPA needs [batch, heads, seq, head_dim])"
    (b, nqh, sq, dh), (bk, nkv, sk, dk), (bv, nv, sv, dv) = q.shape, k.shape, v.shape
    if dk != dh or dv != dh:
        return (f"head dims q={dh} k={dk} v={dv} unsupported (ttnn SDPA needs one head dim: "
                "k_shape[3] == DH && v_shape[3] == DH)")
    if dh % TILE:
        return (f"head_dim={dh} unsupported (ttnn SDPA needs a multiple of {TILE}: "
                "logical_shape[3] == legacy_shape[3])")
    # (Query heads that are no multiple of kv heads, which ttnn rejects, aten rejects too.)
    if not b == bk == bv or nkv != nv or sk != sv:
        return f"q/k/v shapes {list(q.shape)}, {list(k.shape)}, {list(v.shape)} do not match"
    if meta(arg(node, 4, "dropout_p", 0.0)):
        return "dropout_p > 0 unsupported (inference only)"
    mask = meta(arg(node, 3, "attn_mask"))
    if arg(node, 5, "is_causal", False):
        if mask is not None:
            return "is_causal with attn_mask unsupported (ttnn SDPA: !(is_causal && attn_mask))"
        if sq != sk:
            return f"is_causal with q seq {sq} != kv seq {sk} unsupported (ttnn SDPA: Sq == Sk)"
    if mask is not None:
        if mask.dim() > 4:
            return f"rank {mask.dim()} attn_mask unsupported"
        mb, mh, mq, mk = (1,) * (4 - mask.dim()) + tuple(mask.shape)
        if (mq, mk) != (sq, sk) or mb not in (1, b) or mh not in (1, nqh):
            return (f"attn_mask shape {list(mask.shape)} unsupported (ttnn SDPA broadcasts only batch "
                    f"and heads: needs [1|{b}, 1|{nqh}, {sq}, {sk}])")
    return None


@rule(aten.scaled_dot_product_attention.default, ttnn="ttnn.transformer.scaled_dot_product_attention",
      family="attention",
      checks=(*BASIC, dtypes(FLOAT_DTYPES | {torch.bool}, "floating-point (bool masks)"), _sdpa_shapes),
      conditions="rank 4, one head dim, a multiple of 32; query heads a multiple of kv heads (GQA); "
                 "is_causal only with equal q/kv lengths and no mask; mask [1|b, 1|heads, Sq, Sk], "
                 "float or bool; no dropout")
def scaled_dot_product_attention(ctx, node, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 *, scale=None, enable_gqa=False):
    mask = None
    if attn_mask is not None:
        # The kernel takes a rank-4 additive bf16 mask; a boolean one marks what to keep.
        fake = meta(arg(node, 3, "attn_mask"))
        mask = ctx.tensor(attn_mask, dtype=ctx.dtype)
        if fake.dim() < 4:
            mask = ctx.ops.reshape(mask, (1,) * (4 - fake.dim()) + tuple(fake.shape))
        if fake.dtype == torch.bool:
            mask = ctx.ops.multiply(ctx.ops.subtract(mask, 1.0), -MASKED)
    # is_causal is passed explicitly: ttnn's default is True. (DualOps resolves dotted names given
    # whole; attribute chaining is not supported.)
    sdpa = getattr(ctx.ops, "transformer.scaled_dot_product_attention")
    return sdpa(
        ctx.tensor(q), ctx.tensor(k), ctx.tensor(v), attn_mask=mask, is_causal=bool(is_causal),
        scale=scale, memory_config=ctx.memory_config)
