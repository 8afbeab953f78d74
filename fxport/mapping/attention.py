"""Attention: scaled_dot_product_attention on TT-NN's fused (FlashAttention-2) kernel."""

from __future__ import annotations

import torch
from torch import fx

from fxport.mapping.checks import BASIC, FLOAT_DTYPES, arg, dtypes, meta
from fxport.mapping.registry import check, rule

aten = torch.ops.aten

TILE = 32
# Added to the scores where a boolean mask is False. Large enough that exp() underflows to 0 like
# torch's -inf, finite so that a fully masked row stays finite instead of NaN.
MASKED = -1e9


@check(
    "rank 4 q/k/v of one batch (GQA heads allowed; rank > 4 with shared leading dims and no mask, "
    "folded into the batch); no dropout; is_causal only with equal q/kv lengths; mask [1|b, 1|heads, Sq, Sk]"
)
def _sdpa_shapes(node: fx.Node) -> str | None:
    """What ttnn.transformer.scaled_dot_product_attention validates (messages from ttnn 0.81.1)
    and the lowering cannot work around. (aten itself rejects query heads that are no multiple of
    the kv heads, and is_causal together with a mask, which ttnn rejects too.)"""
    q, k, v = (meta(a) for a in node.args[:3])
    if q.dim() > 4 and q.dim() == k.dim() == v.dim() and q.shape[:-3] == k.shape[:-3] == v.shape[:-3]:
        if meta(arg(node, 3, "attn_mask")) is not None:
            return (
                f"rank {q.dim()} inputs with an attn_mask unsupported (the leading dims fold into "
                "the batch only without a mask)"
            )
        q, k, v = (t.reshape(-1, *t.shape[-3:]) for t in (q, k, v))
    if not q.dim() == k.dim() == v.dim() == 4:
        return f"rank {q.dim()} inputs unsupported (ttnn SDPA needs [batch, heads, seq, head_dim])"
    (b, nqh, sq, _), (bk, nkv, sk, _), (bv, nv, sv, _) = q.shape, k.shape, v.shape
    if not b == bk == bv or nkv != nv or sk != sv:
        return (
            f"q/k/v shapes {list(q.shape)}, {list(k.shape)}, {list(v.shape)} unsupported "
            "(ttnn SDPA broadcasts no batch dim)"
        )
    if meta(arg(node, 4, "dropout_p", 0.0)):
        return "dropout_p > 0 unsupported (inference only)"
    if arg(node, 5, "is_causal", False) and sq != sk:
        return f"is_causal with q seq {sq} != kv seq {sk} unsupported (ttnn SDPA: Sq == Sk)"
    mask = meta(arg(node, 3, "attn_mask"))
    if mask is not None:
        if mask.dim() > 4:
            return f"rank {mask.dim()} attn_mask unsupported"
        mb, mh, mq, mk = (1,) * (4 - mask.dim()) + tuple(mask.shape)
        if (mq, mk) != (sq, sk) or mb not in (1, b) or mh not in (1, nqh):
            return (
                f"attn_mask shape {list(mask.shape)} unsupported (ttnn SDPA broadcasts only batch "
                f"and heads: mask_shape[2] == q_shape[2], needs [1|{b}, 1|{nqh}, {sq}, {sk}])"
            )
    return None


@rule(
    aten.scaled_dot_product_attention.default,
    ttnn="ttnn.transformer.scaled_dot_product_attention",
    fused=True,
    family="attention",
    checks=(*BASIC, dtypes(FLOAT_DTYPES | {torch.bool}, "floating-point (bool masks)"), _sdpa_shapes),
)
def scaled_dot_product_attention(
    ctx, node, q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, *, scale=None, enable_gqa=False
):
    lead = tuple(meta(node.args[0]).shape[:-3])
    if len(lead) > 1:  # rank > 4, no mask: the leading dims fold into the batch and back
        q, k, v = (ctx.ops.reshape(ctx.tensor(t), (-1, *t.shape[-3:])) for t in (q, k, v))
        out = _sdpa(ctx, node, q, k, v, None, is_causal, scale)
        return ctx.ops.reshape(out, (*lead, *out.shape[-3:]))
    return _sdpa(ctx, node, q, k, v, attn_mask, is_causal, scale)


def _sdpa(ctx, node, q, k, v, attn_mask, is_causal, scale):
    batch, heads, q_len, qk_dim = q.shape
    v_dim = v.shape[-1]
    # The kernel needs one head dim, tile-aligned ("k_shape[3] == DH && v_shape[3] == DH",
    # "logical_shape[3] == legacy_shape[3]"). Zero columns change no q.k score and give zero
    # output columns, so q, k and v are padded to a common width and the output sliced back; the
    # scale stays that of the real q/k head dim.
    width = -(-max(qk_dim, v_dim) // TILE) * TILE

    def padded(value, dim):
        t = ctx.tensor(value)
        if dim == width:
            return t
        return ctx.ops.pad(t, [(0, 0)] * 3 + [(0, width - dim)], 0.0, memory_config=ctx.memory_config)

    mask = None
    if attn_mask is not None:
        # The kernel takes a rank-4 additive bf16 mask; a boolean one marks what to keep.
        fake = meta(arg(node, 3, "attn_mask"))
        mask = ctx.tensor(attn_mask, dtype=ctx.dtype)
        if fake.dim() < 4:
            mask = ctx.ops.reshape(mask, (1,) * (4 - fake.dim()) + tuple(fake.shape))
        if fake.dtype == torch.bool:
            mask = ctx.ops.multiply(ctx.ops.subtract(mask, 1.0), -MASKED)
        # ttnn 0.81.1: "When mask is provided to SDPA, it must be in DRAM"
        if ctx.memory_config != ctx.ttnn.DRAM_MEMORY_CONFIG:
            mask = ctx.ops.to_memory_config(mask, ctx.ttnn.DRAM_MEMORY_CONFIG)
    # Dotted names are resolved whole by DualOps. is_causal is passed explicitly: ttnn's default
    # is True.
    sdpa = getattr(ctx.ops, "transformer.scaled_dot_product_attention")
    out = sdpa(
        padded(q, qk_dim),
        padded(k, qk_dim),
        padded(v, v_dim),
        attn_mask=mask,
        is_causal=bool(is_causal),
        scale=qk_dim**-0.5 if scale is None else scale,
        memory_config=ctx.memory_config,
        **ctx.kernel_options("sdpa"),
    )
    if v_dim == width:
        return out
    return ctx.ops.slice(out, [0, 0, 0, 0], [batch, heads, q_len, v_dim], memory_config=ctx.memory_config)
