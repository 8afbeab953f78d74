"""The seeds' catalogued out-of-memory cases (the user-written seed reports: the earlier OOM catalogue's top
ten, its overhead shapes, the 4K clamp_min shapes and the worst shape per op at 2176x1920), each
as a one-op model at the catalogued shape: `tests.seed_oom_models:NAME` with `CASES[NAME]` as its
input shape. Used by tests/test_seed_remedies.py and bench/seed_remedies.py."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class OneOp(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], object]):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _view(*shape):
    return lambda x: x.view(*shape)


# name -> (catalogued op and shape, input shape, the op)
SEEDS: dict[str, tuple[str, tuple[int, ...], Callable]] = {
    "view_160x100x512x1x1": ("view [160, 100, 512, 1, 1] (16,000 MB)", (160, 100, 512), _view(160, 100, 512, 1, 1)),
    "view_80x50x512x1x1": ("view [80, 50, 512, 1, 1] (4,000 MB)", (80, 50, 512), _view(80, 50, 512, 1, 1)),
    "view_1x1x64000x1000": ("view [1, 1, 64000, 1000] (4,000 MB)", (64000, 1000), _view(1, 1, 64000, 1000)),
    "view_2x160x100x32x1x1": (
        "view [2, 160, 100, 32, 1, 1] (2,000 MB)",
        (2, 160, 100, 32),
        _view(2, 160, 100, 32, 1, 1),
    ),
    "view_4x80x50x32x1x1": ("view [4, 80, 50, 32, 1, 1] (1,000 MB)", (4, 80, 50, 32), _view(4, 80, 50, 32, 1, 1)),
    "view_40x25x512x1x1": ("view [40, 25, 512, 1, 1] (1,000 MB)", (40, 25, 512), _view(40, 25, 512, 1, 1)),
    "view_1x2x16000x1000": ("view [1, 2, 16000, 1000] (1,000 MB)", (32000, 1000), _view(1, 2, 16000, 1000)),
    "permute_1x512x160x100x1": (
        "permute [1, 512, 160, 100, 1] (640 MB)",
        (1, 512, 160, 100, 1),
        lambda x: x.permute(0, 2, 3, 1, 4),
    ),
    "view_8x40x25x32x1x1": ("view [8, 40, 25, 32, 1, 1] (500 MB)", (8, 40, 25, 32), _view(8, 40, 25, 32, 1, 1)),
    "add_1334x4x49x49": ("add [1334, 4, 49, 49] (255 MB)", (1334, 4, 49, 49), lambda x: x + x),
    "add_1334x49x49x4": (
        "10.45x overhead: [1334, 4, 49, 49] channels-last",
        (1334, 4, 49, 49),
        lambda x: x.permute(0, 2, 3, 1) + 1,
    ),
    "add_345x49x49x8": (
        "5.22x overhead: [345, 8, 49, 49] channels-last",
        (345, 8, 49, 49),
        lambda x: x.permute(0, 2, 3, 1) + 1,
    ),
    "silu_1x64x640x400": ("1.04x overhead: [1, 64, 640, 400]", (1, 64, 640, 400), torch.nn.functional.silu),
    "clamp_min_1x3x2176x3840": ("clamp_min [1, 3, 2176, 3840] (755 MB)", (1, 3, 2176, 3840), lambda x: x.clamp_min(0)),
    "clamp_min_1x96x2176x1920": (
        "clamp_min [1, 96, 2176, 1920] (755 MB)",
        (1, 96, 2176, 1920),
        lambda x: x.clamp_min(0),
    ),
    "clamp_min_1x768x272x240": ("clamp_min [1, 768, 272, 240] (94 MB)", (1, 768, 272, 240), lambda x: x.clamp_min(0)),
    "add_1x96x2176x1920": ("add [1, 96, 2176, 1920] (765 MB)", (1, 96, 2176, 1920), lambda x: x + 1),
    "silu_1x96x2176x1920": ("silu [1, 96, 2176, 1920] (765 MB)", (1, 96, 2176, 1920), torch.nn.functional.silu),
    "split_1x192x2176x1920": (
        "split_with_sizes [1, 192, 2176, 1920] (1.49 GB)",
        (1, 192, 2176, 1920),
        lambda x: torch.split(x, [96, 96], dim=1),
    ),
}
CASES = {name: shape for name, (_, shape, _) in SEEDS.items()}


def __getattr__(name: str):
    """`tests.seed_oom_models:NAME` builds the one-op model of seed case NAME."""
    if name in SEEDS:
        return lambda: OneOp(SEEDS[name][2])
    raise AttributeError(name)
