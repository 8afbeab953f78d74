"""PI0 (Physical Intelligence's vision-language-action flow policy), written in plain PyTorch.

PaliGemma (SigLIP vision tower, linear projector, Gemma 2B) reads the observation; a second, smaller
Gemma, the action expert, turns noise into an action chunk by flow matching. Per layer the two
Gemmas have their own norms, projections and MLPs, and attention runs over the concatenated keys and
values of both streams. At inference the prefix (images and language) never attends to the suffix
(state and actions), so its keys/values are computed once and every denoising step runs only the
expert over the suffix, attending to that cache and to its own keys/values:

    prefix   images -> siglip -> projector, tokens -> gemma.embed_tokens; masks and positions
    gemma    one pass over the prefix, keeping each layer's keys/values
    denoise  x num_steps: suffix embeds (state, x_t, t); expert attends to cache + suffix;
             suffix.action_out_proj gives the velocity v_t; x_t += dt * v_t, t += dt (t: 1 -> 0)

Dimensions, masks and the time embedding follow openpi's published PI0. Top-level children
are named so that every captured op is attributable by module path: `siglip`, `projector`, `gemma`,
`expert`, `prefix`, `suffix`, `denoise`. `prefix` and `denoise` own no weights: they drive the
modules that do, which keeps each weight under exactly one name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from fxport_models.entry import ModelEntry, Shape
from fxport_models.gemma import KV, Gemma, GemmaConfig, Rope
from fxport_models.siglip import SiglipConfig, SiglipVisionTower, square_side, to_dtype


@dataclass(frozen=True)
class PI0Config:
    vision: SiglipConfig = field(default_factory=SiglipConfig)
    vlm: GemmaConfig = field(default_factory=GemmaConfig)
    expert: GemmaConfig = field(default_factory=lambda: GemmaConfig.preset("gemma-300m"))
    num_cameras: int = 3
    max_lang_tokens: int = 48
    state_dim: int = 32
    action_dim: int = 32
    horizon: int = 50
    num_steps: int = 10
    # Periods of the sinusoidal time embedding, chosen in openpi to be sensitive over t in [0, 1].
    time_min_period: float = 4e-3
    time_max_period: float = 4.0

    PRESETS: ClassVar[dict[str, PI0Config]]

    def __post_init__(self) -> None:
        vlm, expert = self.vlm, self.expert
        # Expert layer i attends to the keys/values of VLM layer i, head for head.
        shared = [(g.depth, g.head_dim, g.num_kv_heads) for g in (vlm, expert)]
        if shared[0] != shared[1]:
            raise ValueError(
                f"PI0: the VLM and the action expert must share depth, head_dim and num_kv_heads, got {shared}"
            )
        if not vlm.vocab_size:
            raise ValueError("PI0: the VLM needs a token embedding (vocab_size > 0)")
        if expert.width % 2:
            raise ValueError(f"PI0: the sinusoidal time embedding needs an even expert width, got {expert.width}")
        if self.num_steps < 1 or self.horizon < 1:
            raise ValueError(f"PI0: num_steps and horizon must be positive, got {self.num_steps}, {self.horizon}")

    @property
    def prefix_len(self) -> int:
        return self.num_cameras * self.vision.num_patches + self.max_lang_tokens

    @property
    def suffix_len(self) -> int:
        return 1 + self.horizon  # the state token, then the action tokens

    @classmethod
    def preset(cls, name: str, **overrides) -> PI0Config:
        try:
            base = cls.PRESETS[name]
        except KeyError:
            raise KeyError(f"unknown PI0 preset {name!r}; known: {sorted(cls.PRESETS)}") from None
        return replace(base, **overrides)

    def with_attn_impl(self, impl: str) -> PI0Config:
        """The same model with every attention ("sdpa" or "eager") implemented as `impl`."""
        return replace(
            self,
            vision=replace(self.vision, attn_impl=impl),
            vlm=replace(self.vlm, attn_impl=impl),
            expert=replace(self.expert, attn_impl=impl),
        )

    def with_image_size(self, size: int) -> PI0Config:
        return replace(self, vision=replace(self.vision, image_size=size))


PI0Config.PRESETS = {
    "pi0": PI0Config(),
    "pi0-tiny": PI0Config(
        vision=SiglipConfig.preset("tiny"),
        vlm=GemmaConfig.preset("tiny"),
        expert=GemmaConfig.preset("tiny-expert"),
        max_lang_tokens=8,
        # Different state and action sizes so that a swapped projection fails loudly.
        state_dim=8,
        action_dim=6,
        horizon=4,
        num_steps=2,
    ),
}


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean mask -> additive mask (0 where allowed, the most negative finite value elsewhere)."""
    return to_dtype(torch.where(allowed, 0.0, torch.finfo(dtype).min), dtype)


def sinusoidal_time(time: torch.Tensor, dim: int, min_period: float, max_period: float) -> torch.Tensor:
    """Time [B] -> [B, dim]: sines then cosines at periods spaced geometrically in [min, max]."""
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float32, device=time.device)
    period = min_period * (max_period / min_period) ** fraction
    angles = to_dtype(time, torch.float32)[:, None] * (2 * math.pi / period)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class Layout(NamedTuple):
    """What the prefix module hands on: prefix tokens, and masks/positions of prefix and suffix."""

    tokens: torch.Tensor  # [B, prefix_len, vlm width]
    prefix_mask: torch.Tensor  # additive [B, 1, prefix_len, prefix_len]
    prefix_positions: torch.Tensor  # int64 [B, prefix_len]
    suffix_mask: torch.Tensor  # additive [B, 1, suffix_len, prefix_len + suffix_len]
    suffix_positions: torch.Tensor  # int64 [B, suffix_len]


class Prefix(nn.Module):
    """Observation -> prefix token sequence, plus the attention layout of the whole sequence.

    Image tokens of all cameras come from one batched SigLIP call. Padding (a missing camera, unused
    language slots) is masked out as keys; positions count valid tokens only. Within the prefix,
    images and language attend to each other freely. The suffix layout depends only on the prefix
    padding, so it is built here once rather than in every denoising step: the state token attends to
    the prefix and itself, each action token to the prefix, the state and all action tokens.
    """

    def __init__(self, cfg: PI0Config, siglip: SiglipVisionTower, projector: nn.Linear, embed_tokens: nn.Module):
        super().__init__()
        self.suffix_len = cfg.suffix_len
        # Borrowed, not owned (a tuple is not registered as children): the weights stay under
        # PI0.siglip / .projector / .gemma, once each in state_dict, while the ops they record here
        # carry both this module's path and theirs.
        self._embedders = (siglip, projector, embed_tokens)

    def forward(
        self, images: torch.Tensor, image_masks: torch.Tensor, lang_tokens: torch.Tensor, lang_masks: torch.Tensor
    ) -> Layout:
        siglip, projector, embed_tokens = self._embedders
        b, cams = images.shape[:2]
        image_tokens = projector(siglip(images.flatten(0, 1)))  # [B * cams, patches, width]
        patches = image_tokens.shape[1]
        tokens = torch.cat([image_tokens.reshape(b, cams * patches, -1), embed_tokens(lang_tokens)], dim=1)

        pad = torch.cat([image_masks[:, :, None].expand(b, cams, patches).reshape(b, -1), lang_masks], dim=1)
        prefix_mask = _additive(pad[:, None, :, None] & pad[:, None, None, :], tokens.dtype)
        prefix_positions = pad.cumsum(dim=1) - 1  # bool sums to int64

        n = self.suffix_len
        steps = torch.arange(n, device=pad.device)
        block = steps > 0  # block 0: the state token; block 1: the action tokens
        suffix_sees_prefix = pad[:, None, None, :].expand(b, 1, n, pad.shape[1])
        suffix_sees_suffix = (block[None, :] <= block[:, None]).expand(b, 1, n, n)
        suffix_mask = _additive(torch.cat([suffix_sees_prefix, suffix_sees_suffix], dim=-1), tokens.dtype)
        suffix_positions = pad.sum(dim=1, keepdim=True) + steps
        return Layout(tokens, prefix_mask, prefix_positions, suffix_mask, suffix_positions)


class Suffix(nn.Module):
    """(state, noisy actions x_t, time t) -> expert input tokens; and the expert-output projection."""

    def __init__(self, cfg: PI0Config):
        super().__init__()
        width = cfg.expert.width
        self.time_periods = (cfg.time_min_period, cfg.time_max_period)
        self.state_proj = nn.Linear(cfg.state_dim, width)
        self.action_in_proj = nn.Linear(cfg.action_dim, width)
        self.action_time_mlp_in = nn.Linear(2 * width, width)
        self.action_time_mlp_out = nn.Linear(width, width)
        # Used by the denoise step on the expert's output: expert width -> velocity.
        self.action_out_proj = nn.Linear(width, cfg.action_dim)

    def forward(self, state: torch.Tensor, x_t: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        actions = self.action_in_proj(x_t)  # [B, horizon, width]
        time_emb = to_dtype(sinusoidal_time(time, actions.shape[-1], *self.time_periods), actions.dtype)
        fused = torch.cat([actions, time_emb[:, None, :].expand_as(actions)], dim=-1)
        actions = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(fused)))
        return torch.cat([self.state_proj(state)[:, None, :], actions], dim=1)  # [B, 1 + horizon, width]


class DenoiseStep(nn.Module):
    """One Euler step of the flow, (x_t, t) -> (x_t + dt * v_t, t + dt) with dt = -1 / num_steps."""

    def __init__(self, cfg: PI0Config, suffix: Suffix, expert: Gemma):
        super().__init__()
        self.dt = -1.0 / cfg.num_steps
        self.horizon = cfg.horizon
        self._parts = (suffix, expert)  # borrowed, as in Prefix

    def forward(
        self,
        x_t: torch.Tensor,
        time: torch.Tensor,
        state: torch.Tensor,
        prefix_kv: list[KV],
        suffix_mask: torch.Tensor,
        suffix_rope: Rope,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        suffix, expert = self._parts
        hidden, _ = expert(suffix(state, x_t, time), suffix_rope, suffix_mask, prefix_kv)
        velocity = suffix.action_out_proj(hidden[:, -self.horizon :])
        return x_t + self.dt * velocity, time + self.dt


class PI0(nn.Module):
    def __init__(self, cfg: PI0Config):
        super().__init__()
        self.config = cfg
        self.siglip = SiglipVisionTower(cfg.vision)
        self.projector = nn.Linear(cfg.vision.width, cfg.vlm.width)
        self.gemma = Gemma(cfg.vlm)
        self.expert = Gemma(cfg.expert)
        self.prefix = Prefix(cfg, self.siglip, self.projector, self.gemma.embed_tokens)
        self.suffix = Suffix(cfg)
        self.denoise = DenoiseStep(cfg, self.suffix, self.expert)

    def forward(
        self,
        images: torch.Tensor,
        image_masks: torch.Tensor,
        lang_tokens: torch.Tensor,
        lang_masks: torch.Tensor,
        state: torch.Tensor,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        return self.sample_actions(images, image_masks, lang_tokens, lang_masks, state, noise)

    def sample_actions(
        self,
        images: torch.Tensor,  # [B, cameras, 3, H, W]
        image_masks: torch.Tensor,  # bool [B, cameras]: False for a missing camera
        lang_tokens: torch.Tensor,  # int64 [B, L]
        lang_masks: torch.Tensor,  # bool [B, L]: False for padding
        state: torch.Tensor,  # [B, state_dim]
        noise: torch.Tensor,  # [B, horizon, action_dim]: x at t = 1
    ) -> torch.Tensor:
        """Integrates the flow from noise (t = 1) to actions (t = 0): [B, horizon, action_dim]."""
        seq = self.prefix(images, image_masks, lang_tokens, lang_masks)
        dtype = seq.tokens.dtype
        prefix_rope = self.gemma.rotary(seq.prefix_positions, dtype)
        _, prefix_kv = self.gemma(seq.tokens, prefix_rope, seq.prefix_mask, kv_only=True)
        # Suffix positions are the same in every step: one rotary table serves them all.
        suffix_rope = self.expert.rotary(seq.suffix_positions, dtype)
        x_t, time = noise, torch.ones(noise.shape[0], dtype=torch.float32, device=noise.device)
        for _ in range(self.config.num_steps):
            x_t, time = self.denoise(x_t, time, state, prefix_kv, seq.suffix_mask, suffix_rope)
        return x_t


def param_count(config: PI0Config | str = "pi0") -> int:
    """Parameters of PI0 for a config or preset name, counted on meta (nothing is allocated)."""
    cfg = PI0Config.preset(config) if isinstance(config, str) else config
    with torch.device("meta"):
        return sum(p.numel() for p in PI0(cfg).parameters())


def make_inputs(cfg: PI0Config, batch: int, device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
    """Example inputs for `sample_actions`: all cameras present, the last quarter of the prompt padded."""
    size, lang = cfg.vision.image_size, cfg.max_lang_tokens
    images = torch.randn(batch, cfg.num_cameras, cfg.vision.channels, size, size, device=device)
    image_masks = torch.ones(batch, cfg.num_cameras, dtype=torch.bool, device=device)
    lang_tokens = torch.randint(0, cfg.vlm.vocab_size, (batch, lang), device=device)
    lang_masks = (torch.arange(lang, device=device) < lang - lang // 4).repeat(batch, 1)
    state = torch.randn(batch, cfg.state_dim, device=device)
    noise = torch.randn(batch, cfg.horizon, cfg.action_dim, device=device)
    return images, image_masks, lang_tokens, lang_masks, state, noise


def _entry(name: str, preset: str, shape: Shape, description: str, tags: tuple[str, ...]) -> ModelEntry:
    # The entry's input shape (N, 3, H, W) sets the batch and the camera resolution.
    def config(input_shape: Shape) -> PI0Config:
        return PI0Config.preset(preset).with_image_size(square_side(input_shape, name))

    def build(input_shape: Shape) -> nn.Module:
        return PI0(config(input_shape))

    def inputs(input_shape: Shape, device: str) -> tuple:
        return make_inputs(config(input_shape), input_shape[0], device)

    # Every denoise step has the same input shapes, so inventory capture may trace it once.
    return ModelEntry(name, build, shape, "vla", description, make_inputs=inputs, repeated=("denoise",), tags=tags)


ENTRIES: tuple[ModelEntry, ...] = (
    _entry(
        "pi0",
        "pi0",
        (1, 3, 224, 224),
        "PI0 sample_actions: PaliGemma (SigLIP So400m/14, Gemma 2B) + Gemma 300M action expert, 3 cameras, "
        "48 language tokens, 50 actions x 32, 10 Euler steps (about 3.24 B parameters)",
        ("zoo",),
    ),
    _entry(
        "pi0-tiny",
        "pi0-tiny",
        (1, 3, 56, 56),
        "PI0 at test size: SigLIP width 32 at 56 px, VLM width 64, expert width 32 (depth 2), 4 actions, 2 steps",
        ("tiny",),
    ),
)
