"""Gemma decoder (PaliGemma's language model and PI0's action expert), written in plain PyTorch.

Pre-norm decoder layers: Gemma RMSNorm (scale is 1 + weight), attention with rotary position
embeddings and grouped-query heads (PI0's Gemmas have a single key/value head), RMSNorm, and a
gated GELU-tanh MLP; a final RMSNorm. Linear layers have no bias.

Two choices make the model cheap to capture and easy to drive from PI0:
- rotary cos/sin are computed once per pass by `rotary` and handed to every layer, not per layer;
- attention takes an additive mask and an optional cache of earlier keys/values, and every layer
  returns its own keys/values, so a prefix pass can fill the cache that later suffix passes attend to.
There is no causal mask built in: the caller's mask decides (PI0 uses prefix-LM and block masks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fxport_models.siglip import ATTN_IMPLS, attend, to_dtype

Rope = tuple[torch.Tensor, torch.Tensor]  # cos, sin: [B, 1, S, head_dim], broadcast over heads
KV = tuple[torch.Tensor, torch.Tensor]  # keys, values: [B, kv_heads, S, head_dim], rotary applied


@dataclass(frozen=True)
class GemmaConfig:
    width: int = 2048
    depth: int = 18
    mlp_dim: int = 16384
    num_heads: int = 8
    num_kv_heads: int = 1
    head_dim: int = 256
    vocab_size: int = 257152  # 0: no token embedding (the action expert is fed embeddings)
    norm_eps: float = 1e-6
    rope_base: float = 10000.0
    attn_impl: str = "sdpa"

    PRESETS: ClassVar[dict[str, GemmaConfig]]

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"Gemma: {self.num_heads} heads do not group over {self.num_kv_heads} KV heads")
        if self.head_dim % 2:
            raise ValueError(f"Gemma: rotary embeddings need an even head_dim, got {self.head_dim}")
        if self.attn_impl not in ATTN_IMPLS:
            raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {self.attn_impl!r}")

    @classmethod
    def preset(cls, name: str, **overrides) -> GemmaConfig:
        try:
            base = cls.PRESETS[name]
        except KeyError:
            raise KeyError(f"unknown Gemma preset {name!r}; known: {sorted(cls.PRESETS)}") from None
        return replace(base, **overrides)


GemmaConfig.PRESETS = {
    "gemma-2b": GemmaConfig(),
    # PI0's action expert: same depth, heads and head_dim as Gemma 2B so that its queries can attend
    # to the 2B model's keys/values layer by layer; narrower residual stream and MLP; no embedding.
    "gemma-300m": GemmaConfig(width=1024, mlp_dim=4096, vocab_size=0),
    # Test sizes (openpi's "dummy" variant is width 64, depth 4, MLP 128, 8 heads, 1 KV head, head_dim 16).
    "tiny": GemmaConfig(width=64, depth=2, mlp_dim=128, head_dim=16, vocab_size=1024),
    "tiny-expert": GemmaConfig(width=32, depth=2, mlp_dim=64, head_dim=16, vocab_size=0),
}


class RMSNorm(nn.Module):
    """Gemma's RMSNorm: normalised in float32 and scaled by (1 + weight), so zero weights are identity."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One `rms_norm` node (TT-NN has a fused kernel) instead of the pow/mean/rsqrt/mul chain.
        scale = 1.0 + to_dtype(self.weight, torch.float32)
        return to_dtype(F.rms_norm(to_dtype(x, torch.float32), self.weight.shape, scale, self.eps), x.dtype)


class ScaledEmbedding(nn.Embedding):
    """Token embedding multiplied by sqrt(width), as Gemma does to its (text) input embeddings."""

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return super().forward(tokens) * math.sqrt(self.embedding_dim)


class Rotary(nn.Module):
    """Positions [B, S] (int) -> rotary (cos, sin) [B, 1, S, head_dim] in `dtype`.

    A parameter-free module so that its nodes carry a module path; computing inverse frequencies in
    forward (rather than in a buffer) keeps the model valid after building on meta and `to_empty`.
    """

    def __init__(self, head_dim: int, base: float):
        super().__init__()
        self.head_dim, self.base = head_dim, base

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> Rope:
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float32, device=positions.device) / self.head_dim
        inv_freq = 1.0 / (self.base**exponents)
        angles = positions[..., None] * inv_freq  # [B, S, head_dim / 2], float32 by type promotion
        angles = torch.cat([angles, angles], dim=-1)[:, None]
        return to_dtype(angles.cos(), dtype), to_dtype(angles.sin(), dtype)


def apply_rotary(x: torch.Tensor, rope: Rope) -> torch.Tensor:
    """Rotates the two halves of each head (the split-halves convention of Gemma and big_vision)."""
    cos, sin = rope
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """[B, kv_heads, S, D] -> [B, kv_heads * groups, S, D]. With one KV head (PI0) it is a single
    broadcasting `expand`, with no copy."""
    b, kv, s, d = x.shape
    if groups == 1:
        return x
    if kv == 1:
        return x.expand(b, groups, s, d)
    return x[:, :, None].expand(b, kv, groups, s, d).reshape(b, kv * groups, s, d)


class GemmaAttention(nn.Module):
    def __init__(self, cfg: GemmaConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.attn_impl = cfg.attn_impl
        self.q_proj = nn.Linear(cfg.width, cfg.num_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.width, cfg.num_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.width, cfg.num_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.width, bias=False)

    def forward(
        self, x: torch.Tensor, rope: Rope, mask: torch.Tensor | None, past: KV | None = None
    ) -> tuple[torch.Tensor, KV]:
        """Queries from `x` attend to `past` keys/values followed by those of `x`.

        `mask` is additive, [B, 1, S, len(past) + S]. Returns the output and the keys/values of `x`.
        """
        b, s, _ = x.shape
        q = apply_rotary(self._heads(self.q_proj(x), self.num_heads), rope)
        k, v = self.keys_values(x, rope)
        keys, values = (k, v) if past is None else (torch.cat([past[0], k], 2), torch.cat([past[1], v], 2))
        groups = self.num_heads // self.num_kv_heads
        out = attend(q, repeat_kv(keys, groups), repeat_kv(values, groups), mask, self.attn_impl)
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1)), (k, v)

    def keys_values(self, x: torch.Tensor, rope: Rope) -> KV:
        k = apply_rotary(self._heads(self.k_proj(x), self.num_kv_heads), rope)
        return k, self._heads(self.v_proj(x), self.num_kv_heads)

    def _heads(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        return x.unflatten(-1, (heads, self.head_dim)).transpose(1, 2)  # [B, heads, S, head_dim]


class GemmaMLP(nn.Module):
    def __init__(self, cfg: GemmaConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.width, cfg.mlp_dim, bias=False)
        self.up_proj = nn.Linear(cfg.width, cfg.mlp_dim, bias=False)
        self.down_proj = nn.Linear(cfg.mlp_dim, cfg.width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class GemmaLayer(nn.Module):
    def __init__(self, cfg: GemmaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.width, cfg.norm_eps)
        self.self_attn = GemmaAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.width, cfg.norm_eps)
        self.mlp = GemmaMLP(cfg)

    def forward(
        self, x: torch.Tensor, rope: Rope, mask: torch.Tensor | None, past: KV | None = None
    ) -> tuple[torch.Tensor, KV]:
        attn, kv = self.self_attn(self.input_layernorm(x), rope, mask, past)
        x = x + attn
        return x + self.mlp(self.post_attention_layernorm(x)), kv


class Gemma(nn.Module):
    """Embeddings [B, S, width] -> normalised hidden states, plus each layer's keys/values.

    `embed_tokens` (present when vocab_size > 0) is applied by the caller, which may mix token
    embeddings with other embeddings (PaliGemma's image tokens). `rotary` turns positions into the
    (cos, sin) pair `forward` takes, so a caller running several passes at the same positions
    computes it once.
    """

    def __init__(self, cfg: GemmaConfig):
        super().__init__()
        self.config = cfg
        self.embed_tokens = ScaledEmbedding(cfg.vocab_size, cfg.width) if cfg.vocab_size else None
        self.rotary = Rotary(cfg.head_dim, cfg.rope_base)
        self.layers = nn.ModuleList(GemmaLayer(cfg) for _ in range(cfg.depth))
        self.norm = RMSNorm(cfg.width, cfg.norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        rope: Rope,
        mask: torch.Tensor | None,
        past: list[KV] | None = None,
        kv_only: bool = False,
    ) -> tuple[torch.Tensor | None, list[KV]]:
        """`past[i]` is prepended to layer i's keys/values. With `kv_only` (a pass that only fills a
        cache) the last layer stops at its keys/values and no hidden states are returned: its
        attention output, its MLP and the final norm would be computed for nothing."""
        layers = self.layers[:-1] if kv_only else self.layers
        kvs = []
        for i, layer in enumerate(layers):
            x, kv = layer(x, rope, mask, None if past is None else past[i])
            kvs.append(kv)
        if not kv_only:
            return self.norm(x), kvs
        last = self.layers[-1]
        kvs.append(last.self_attn.keys_values(last.input_layernorm(x), rope))
        return None, kvs
