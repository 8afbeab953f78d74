"""SigLIP vision tower (the image encoder of PaliGemma and PI0), written in plain PyTorch.

A pre-norm ViT without a class token: a stride-`patch` convolution cuts the image into patches, a
learned position embedding is added, then `depth` encoder layers (LayerNorm, multi-head attention
with biases, LayerNorm, GELU-tanh MLP) and a final LayerNorm. PaliGemma uses every patch token, so
the attention-pooling head of the contrastive SigLIP model is not part of the tower.

Parameter names follow Hugging Face's SiglipVisionModel with two mechanical differences, so that a
checkpoint maps over by renaming: `encoder.layers.N` is `layers.N`, and the position embedding is a
[1, patches, width] parameter instead of an Embedding's [patches, width] weight. Constructors only
allocate, so the tower builds under ``torch.device("meta")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from fxport_models.entry import ModelEntry, Shape

ATTN_IMPLS = ("sdpa", "eager")


def to_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """`x.to(dtype)`, but no op at all when x already has it: torch.export records even no-op casts
    (`to` + `_assert_tensor_metadata`), which in an fp32 model are pure noise in the op list."""
    return x if x.dtype == dtype else x.to(dtype)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, impl: str) -> torch.Tensor:
    """Attention over [B, heads, S, head_dim] tensors; `mask` is additive (0 or a large negative).

    "sdpa" records one `scaled_dot_product_attention` node (TT-NN has a fused kernel for it);
    "eager" records the matmul / softmax / matmul it stands for. The mask is additive rather than
    boolean because a boolean SDPA mask turns fully masked rows (padding queries) into NaN, which
    would then leak into every cached key and value.
    """
    if impl == "sdpa":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores + mask
    # Softmax in float32 as the reference implementations do (a low-precision model casts back).
    probs = to_dtype(torch.softmax(scores, dim=-1, dtype=torch.float32), q.dtype)
    return torch.matmul(probs, v)


@dataclass(frozen=True)
class SiglipConfig:
    image_size: int = 224
    patch_size: int = 14
    channels: int = 3
    width: int = 1152
    depth: int = 27
    num_heads: int = 16
    mlp_dim: int = 4304
    norm_eps: float = 1e-6
    attn_impl: str = "sdpa"

    PRESETS: ClassVar[dict[str, SiglipConfig]]

    def __post_init__(self) -> None:
        if self.width % self.num_heads:
            raise ValueError(f"SigLIP width {self.width} is not divisible by {self.num_heads} heads")
        if self.image_size < self.patch_size:
            raise ValueError(f"SigLIP image size {self.image_size} is smaller than the patch {self.patch_size}")
        if self.attn_impl not in ATTN_IMPLS:
            raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {self.attn_impl!r}")

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads

    @property
    def num_patches(self) -> int:
        # The convolution drops a border narrower than one patch, as the reference does.
        return (self.image_size // self.patch_size) ** 2

    @classmethod
    def preset(cls, name: str, **overrides) -> SiglipConfig:
        try:
            base = cls.PRESETS[name]
        except KeyError:
            raise KeyError(f"unknown SigLIP preset {name!r}; known: {sorted(cls.PRESETS)}") from None
        return replace(base, **overrides)


SiglipConfig.PRESETS = {
    # So400m/14 at 224 px: the PaliGemma-224 (and PI0) vision tower, 256 patches per image.
    "so400m-14-224": SiglipConfig(),
    # Same structure at test size: 56 px / 14 = 4x4 = 16 patches.
    "tiny": SiglipConfig(image_size=56, width=32, depth=2, num_heads=4, mlp_dim=64),
}


class SiglipEmbeddings(nn.Module):
    def __init__(self, cfg: SiglipConfig):
        super().__init__()
        self.patch_embedding = nn.Conv2d(cfg.channels, cfg.width, cfg.patch_size, stride=cfg.patch_size)
        # A parameter rather than an nn.Embedding indexed by arange: same weights, no index ops.
        self.position_embedding = nn.Parameter(torch.randn(1, cfg.num_patches, cfg.width) * cfg.width**-0.5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embedding(images).flatten(2).transpose(1, 2)  # [B, patches, width]
        return patches + self.position_embedding


class SiglipAttention(nn.Module):
    def __init__(self, cfg: SiglipConfig):
        super().__init__()
        self.num_heads, self.head_dim, self.attn_impl = cfg.num_heads, cfg.head_dim, cfg.attn_impl
        self.q_proj = nn.Linear(cfg.width, cfg.width)
        self.k_proj = nn.Linear(cfg.width, cfg.width)
        self.v_proj = nn.Linear(cfg.width, cfg.width)
        self.out_proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q, k, v = (self._heads(proj(x)) for proj in (self.q_proj, self.k_proj, self.v_proj))
        out = attend(q, k, v, None, self.attn_impl)
        return self.out_proj(out.transpose(1, 2).reshape(b, s, -1))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)  # [B, heads, S, head_dim]


class SiglipMLP(nn.Module):
    def __init__(self, cfg: SiglipConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.width, cfg.mlp_dim)
        self.fc2 = nn.Linear(cfg.mlp_dim, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SiglipEncoderLayer(nn.Module):
    def __init__(self, cfg: SiglipConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.self_attn = SiglipAttention(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)
        self.mlp = SiglipMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class SiglipVisionTower(nn.Module):
    """Images [B, 3, H, W] -> patch tokens [B, num_patches, width]."""

    def __init__(self, cfg: SiglipConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = SiglipEmbeddings(cfg)
        self.layers = nn.ModuleList(SiglipEncoderLayer(cfg) for _ in range(cfg.depth))
        self.post_layernorm = nn.LayerNorm(cfg.width, eps=cfg.norm_eps)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(images)
        for layer in self.layers:
            x = layer(x)
        return self.post_layernorm(x)


def square_side(shape: Shape, model: str) -> int:
    """The side of an (N, 3, S, S) input shape; the position embedding is built for that resolution."""
    if len(shape) != 4 or shape[1] != 3:
        raise ValueError(f"{model}: expected an input shape (N, 3, H, W), got {tuple(shape)}")
    if shape[2] != shape[3]:
        raise ValueError(f"{model}: SigLIP is built here for square images, got {shape[2]}x{shape[3]}")
    return shape[2]


def _entry(name: str, preset: str, shape: Shape, description: str, tags: tuple[str, ...]) -> ModelEntry:
    def build(input_shape: Shape) -> nn.Module:
        return SiglipVisionTower(SiglipConfig.preset(preset, image_size=square_side(input_shape, name)))

    return ModelEntry(name, build, shape, "vision-encoder", description, tags=tags)


ENTRIES: tuple[ModelEntry, ...] = (
    _entry(
        "siglip",
        "so400m-14-224",
        (1, 3, 224, 224),
        "SigLIP So400m/14 vision tower (PaliGemma / PI0 image encoder): 27 layers, width 1152, 256 patches",
        ("zoo",),
    ),
    _entry(
        "siglip-tiny",
        "tiny",
        (1, 3, 56, 56),
        "SigLIP tower at test size: 2 layers, width 32, 16 patches of 14 px",
        ("tiny",),
    ),
)
