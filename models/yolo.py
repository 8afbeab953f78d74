"""YOLOv8, YOLO11 and YOLOv12 detectors, written here from the published architectures.

ultralytics is not a dependency (AGPL-3.0, and it pulls in opencv); its constructor also runs a
forward pass and calls `.item()` to probe the strides, so it cannot be built on the meta device.
These modules follow the published model yaml files (layers, channels, repeats, depth/width/
max-channel scaling) and keep the reference attribute names and layer indices (`model.<i>...`),
so a reference checkpoint's state_dict should load by key (untested: no weights offline).
Everything is built from constants (strides are 8/16/32 by construction), so the whole family
builds under ``torch.device("meta")``. Parameter counts equal the published yaml summaries.

YOLOv12 is the authors' YOLOv12-turbo (separate qk and v convs, 5x5 position conv, MLP ratio 1.5
at l/x), whose counts the yaml quotes. ultralytics' own YOLO12 port differs slightly (fused qkv,
7x7 position conv, MLP ratio 1.2 at l/x: 2.57M / 58.1M parameters for n / x).

Attention is written as `F.scaled_dot_product_attention`, which export keeps as one op (TT-NN has
a fused kernel); the references spell it as matmul + softmax, which is the same computation.

The output is the decoded, NMS-free prediction [N, 4 + nc, anchors]: boxes as (cx, cy, w, h) in
input pixels, then per-class sigmoid scores; anchors = sum over strides s of (H/s) * (W/s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fxport_models.entry import ModelEntry, Shape

# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + SiLU, 'same' padding for odd kernels."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None, g: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, groups=g, bias=False)
        # ultralytics trains with these BatchNorm settings; eps matters when loading its weights.
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(Conv):
    """Depthwise Conv (groups = gcd of the channel counts)."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, act: bool = True):
        super().__init__(c1, c2, k, s, g=math.gcd(c1, c2), act=act)


class Bottleneck(nn.Module):
    """Two convs with an optional residual (only when the channel count is unchanged)."""

    def __init__(
        self, c1: int, c2: int, shortcut: bool = True, g: int = 1, k: tuple[int, int] = (3, 3), e: float = 0.5
    ):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0])
        self.cv2 = Conv(c_, c2, k[1], g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block: split in two, run n bottlenecks on one half, concat every intermediate."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False, g: int = 1, e: float = 0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, g, k=(3, 3), e=1.0) for _ in range(n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class C3(nn.Module):
    """CSP block with three convs: bottlenecks on one branch, a 1x1 on the other."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c1, c_, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, k=(1, 3), e=1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k(C3):
    """C3 whose bottlenecks use k x k kernels in both convs."""

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True, g: int = 1, e: float = 0.5, k: int = 3):
        super().__init__(c1, c2, n, shortcut, g, e)
        c_ = int(c2 * e)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, k=(k, k), e=1.0) for _ in range(n)))


class C3k2(C2f):
    """C2f whose inner blocks are C3k (c3k=True) or half-width bottlenecks."""

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        c3k: bool = False,
        e: float = 0.5,
        g: int = 1,
        shortcut: bool = True,
    ):
        super().__init__(c1, c2, n, shortcut, g, e)
        self.m = nn.ModuleList(
            C3k(self.c, self.c, 2, shortcut, g) if c3k else Bottleneck(self.c, self.c, shortcut, g) for _ in range(n)
        )


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max pools (= pools of 5, 9 and 13)."""

    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class Attention(nn.Module):
    """YOLO11 global self-attention over all H*W positions, with a depthwise-conv position term.

    The qkv conv's channels are laid out per head as [q (key_dim), k (key_dim), v (head_dim)],
    key_dim = head_dim * attn_ratio; scaled_dot_product_attention's default scale is key_dim**-0.5.
    """

    def __init__(self, dim: int, num_heads: int = 8, attn_ratio: float = 0.5):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.qkv = Conv(dim, dim + 2 * self.key_dim * num_heads, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x).view(b, self.num_heads, 2 * self.key_dim + self.head_dim, h * w)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.head_dim], dim=2)
        out = F.scaled_dot_product_attention(q.transpose(-2, -1), k.transpose(-2, -1), v.transpose(-2, -1))
        out = out.transpose(-2, -1).reshape(b, c, h, w)
        return self.proj(out + self.pe(v.reshape(b, c, h, w)))


class PSABlock(nn.Module):
    """Attention then a 1x1-conv feed-forward, both residual."""

    def __init__(self, c: int, attn_ratio: float = 0.5, num_heads: int = 4, shortcut: bool = True):
        super().__init__()
        self.attn = Attention(c, num_heads=num_heads, attn_ratio=attn_ratio)
        self.ffn = nn.Sequential(Conv(c, c * 2, 1), Conv(c * 2, c, 1, act=False))
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x) if self.add else self.attn(x)
        return x + self.ffn(x) if self.add else self.ffn(x)


class C2PSA(nn.Module):
    """CSP split where one half goes through n PSABlocks (heads of 64 channels)."""

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5):
        super().__init__()
        if c1 != c2:
            raise ValueError(f"C2PSA keeps its channel count, got {c1} -> {c2}")
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, attn_ratio=0.5, num_heads=self.c // 64) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


class AAttn(nn.Module):
    """YOLOv12 area attention: the H*W tokens (row-major) are cut into `area` equal runs and each
    run attends only within itself, so cost falls by a factor of `area` versus global attention.
    q, k and v come from 1x1 convs (heads of head_dim channels); a 5x5 depthwise conv on v adds
    the position term.
    """

    def __init__(self, dim: int, num_heads: int, area: int = 1):
        super().__init__()
        self.area = area
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        all_head_dim = self.head_dim * num_heads
        self.qk = Conv(dim, all_head_dim * 2, 1, act=False)
        self.v = Conv(dim, all_head_dim, 1, act=False)
        self.proj = Conv(all_head_dim, dim, 1, act=False)
        self.pe = Conv(all_head_dim, dim, 5, 1, 2, g=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        n = h * w
        if n % self.area:
            raise ValueError(f"area attention: {h}x{w}={n} tokens do not split into {self.area} equal areas")

        def tokens(t: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B*area, heads, N/area, head_dim)
            t = t.flatten(2).transpose(1, 2).reshape(b * self.area, n // self.area, self.num_heads, self.head_dim)
            return t.transpose(1, 2)

        q, k = self.qk(x).chunk(2, 1)
        v = self.v(x)
        out = F.scaled_dot_product_attention(tokens(q), tokens(k), tokens(v))
        out = out.transpose(1, 2).reshape(b, h, w, -1).permute(0, 3, 1, 2)
        return self.proj(out + self.pe(v))


class ABlock(nn.Module):
    """Area attention then a 1x1-conv MLP, both residual."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 1.2, area: int = 1):
        super().__init__()
        self.attn = AAttn(dim, num_heads=num_heads, area=area)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(Conv(dim, hidden, 1), Conv(hidden, dim, 1, act=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class A2C2f(nn.Module):
    """R-ELAN block of YOLOv12: C2f-style aggregation over n pairs of ABlocks (a2=True, heads of 32
    channels) or n C3k blocks (a2=False); with `residual`, a learned per-channel scale (init 0.01)
    on the block output plus the input."""

    def __init__(
        self,
        c1: int,
        c2: int,
        n: int = 1,
        a2: bool = True,
        area: int = 1,
        residual: bool = False,
        mlp_ratio: float = 2.0,
        e: float = 0.5,
        g: int = 1,
        shortcut: bool = True,
    ):
        super().__init__()
        c_ = int(c2 * e)
        if c_ % 32:
            raise ValueError(f"A2C2f hidden width {c_} must be a multiple of 32 (heads of 32 channels)")
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv((1 + n) * c_, c2, 1)
        self.gamma = nn.Parameter(0.01 * torch.ones(c2)) if a2 and residual else None
        self.m = nn.ModuleList(
            nn.Sequential(*(ABlock(c_, c_ // 32, mlp_ratio, area) for _ in range(2)))
            if a2
            else C3k(c_, c_, 2, shortcut, g)
            for _ in range(n)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = [self.cv1(x)]
        y.extend(m(y[-1]) for m in self.m)
        y = self.cv2(torch.cat(y, 1))
        if self.gamma is not None:
            return x + self.gamma.view(1, -1, 1, 1) * y
        return y


class Concat(nn.Module):
    """Channel concat of several earlier layers' outputs (a module so layer indices match the yaml)."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, 1)


class DFL(nn.Module):
    """Distribution focal loss integral: each box side is predicted as a distribution over reg_max
    bins; its expectation is a softmax followed by a fixed 1x1 conv whose weights are 0..reg_max-1."""

    def __init__(self, reg_max: int = 16):
        super().__init__()
        self.reg_max = reg_max
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        # A constant, not a learned weight; arange follows the ambient device (meta at capture).
        self.conv.weight = nn.Parameter(
            torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1), requires_grad=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, a = x.shape  # (B, 4 * reg_max, A)
        probs = x.view(b, 4, self.reg_max, a).transpose(2, 1).softmax(1)
        return self.conv(probs).view(b, 4, a)


class Detect(nn.Module):
    """Anchor-free decoupled head over P3-P5 with box decoding (no NMS).

    `legacy` selects the YOLOv8 class branch (two 3x3 convs); YOLO11/12 use depthwise-separable
    convs there instead.
    """

    def __init__(self, nc: int, ch: Sequence[int], strides: Sequence[int], legacy: bool, reg_max: int = 16):
        super().__init__()
        self.nc = nc
        self.reg_max = reg_max
        self.strides = tuple(strides)
        c2 = max(16, ch[0] // 4, reg_max * 4)
        c3 = max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for x in ch
        )
        if legacy:
            self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        else:
            self.cv3 = nn.ModuleList(
                nn.Sequential(
                    nn.Sequential(DWConv(x, x, 3), Conv(x, c3, 1)),
                    nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)),
                    nn.Conv2d(c3, nc, 1),
                )
                for x in ch
            )
        self.dfl = DFL(reg_max)

    def anchors(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell centres (2, A) in grid units and the stride of each anchor (1, A).

        Built from the feature-map shapes with arange/meshgrid, so they trace as plain ops for
        any static resolution instead of being baked in for one size.
        """
        points, strides = [], []
        for x, s in zip(feats, self.strides, strict=True):
            h, w = x.shape[2:]
            kw = {"device": x.device, "dtype": x.dtype}
            gy, gx = torch.meshgrid(torch.arange(h, **kw) + 0.5, torch.arange(w, **kw) + 0.5, indexing="ij")
            points.append(torch.stack((gx, gy)).flatten(1))
            strides.append(torch.full((1, h * w), s, **kw))
        return torch.cat(points, 1), torch.cat(strides, 1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        # Per-level maps flattened and joined along the anchor axis: (B, 4*reg_max, A) and (B, nc, A).
        box = torch.cat([m(x).flatten(2) for m, x in zip(self.cv2, feats, strict=True)], 2)
        cls = torch.cat([m(x).flatten(2) for m, x in zip(self.cv3, feats, strict=True)], 2)
        points, strides = self.anchors(feats)
        lt, rb = self.dfl(box).chunk(2, 1)  # distances from the cell centre to the left-top / right-bottom
        xy = (points + (rb - lt) / 2) * strides
        wh = (lt + rb) * strides
        return torch.cat((xy, wh, cls.sigmoid()), 1)


# ----------------------------------------------------------------------------------------------
# Architectures: the published yaml layer tables. Each row is (from, repeats, block, args) with
# channels and repeats given at full (width 1, depth 1) scale; `from` -1 is the previous layer.
# ----------------------------------------------------------------------------------------------

_UP = (-1, 1, "Upsample", ())

_YOLOV8 = [
    (-1, 1, "Conv", (64, 3, 2)),  # 0  P1/2
    (-1, 1, "Conv", (128, 3, 2)),  # 1  P2/4
    (-1, 3, "C2f", (128, True)),
    (-1, 1, "Conv", (256, 3, 2)),  # 3  P3/8
    (-1, 6, "C2f", (256, True)),
    (-1, 1, "Conv", (512, 3, 2)),  # 5  P4/16
    (-1, 6, "C2f", (512, True)),
    (-1, 1, "Conv", (1024, 3, 2)),  # 7  P5/32
    (-1, 3, "C2f", (1024, True)),
    (-1, 1, "SPPF", (1024, 5)),  # 9
    _UP,
    ((-1, 6), 1, "Concat", ()),
    (-1, 3, "C2f", (512,)),  # 12
    _UP,
    ((-1, 4), 1, "Concat", ()),
    (-1, 3, "C2f", (256,)),  # 15 P3 out
    (-1, 1, "Conv", (256, 3, 2)),
    ((-1, 12), 1, "Concat", ()),
    (-1, 3, "C2f", (512,)),  # 18 P4 out
    (-1, 1, "Conv", (512, 3, 2)),
    ((-1, 9), 1, "Concat", ()),
    (-1, 3, "C2f", (1024,)),  # 21 P5 out
    ((15, 18, 21), 1, "Detect", ()),
]

_YOLO11 = [
    (-1, 1, "Conv", (64, 3, 2)),  # 0  P1/2
    (-1, 1, "Conv", (128, 3, 2)),  # 1  P2/4
    (-1, 2, "C3k2", (256, False, 0.25)),
    (-1, 1, "Conv", (256, 3, 2)),  # 3  P3/8
    (-1, 2, "C3k2", (512, False, 0.25)),
    (-1, 1, "Conv", (512, 3, 2)),  # 5  P4/16
    (-1, 2, "C3k2", (512, True)),
    (-1, 1, "Conv", (1024, 3, 2)),  # 7  P5/32
    (-1, 2, "C3k2", (1024, True)),
    (-1, 1, "SPPF", (1024, 5)),  # 9
    (-1, 2, "C2PSA", (1024,)),  # 10
    _UP,
    ((-1, 6), 1, "Concat", ()),
    (-1, 2, "C3k2", (512, False)),  # 13
    _UP,
    ((-1, 4), 1, "Concat", ()),
    (-1, 2, "C3k2", (256, False)),  # 16 P3 out
    (-1, 1, "Conv", (256, 3, 2)),
    ((-1, 13), 1, "Concat", ()),
    (-1, 2, "C3k2", (512, False)),  # 19 P4 out
    (-1, 1, "Conv", (512, 3, 2)),
    ((-1, 10), 1, "Concat", ()),
    (-1, 2, "C3k2", (1024, True)),  # 22 P5 out
    ((16, 19, 22), 1, "Detect", ()),
]

_YOLOV12 = [
    (-1, 1, "Conv", (64, 3, 2)),  # 0  P1/2
    (-1, 1, "Conv", (128, 3, 2, 1, 2)),  # 1  P2/4, 2 groups
    (-1, 2, "C3k2", (256, False, 0.25)),
    (-1, 1, "Conv", (256, 3, 2, 1, 4)),  # 3  P3/8, 4 groups
    (-1, 2, "C3k2", (512, False, 0.25)),
    (-1, 1, "Conv", (512, 3, 2)),  # 5  P4/16
    (-1, 4, "A2C2f", (512, True, 4)),  # area attention in 4 areas
    (-1, 1, "Conv", (1024, 3, 2)),  # 7  P5/32
    (-1, 4, "A2C2f", (1024, True, 1)),  # 8  global attention
    _UP,
    ((-1, 6), 1, "Concat", ()),
    (-1, 2, "A2C2f", (512, False, -1)),  # 11
    _UP,
    ((-1, 4), 1, "Concat", ()),
    (-1, 2, "A2C2f", (256, False, -1)),  # 14 P3 out
    (-1, 1, "Conv", (256, 3, 2)),
    ((-1, 11), 1, "Concat", ()),
    (-1, 2, "A2C2f", (512, False, -1)),  # 17 P4 out
    (-1, 1, "Conv", (512, 3, 2)),
    ((-1, 8), 1, "Concat", ()),
    (-1, 2, "C3k2", (1024, True)),  # 20 P5 out
    ((14, 17, 20), 1, "Detect", ()),
]

# (depth, width, max_channels) per scale.
_V8_SCALES = {
    "n": (0.33, 0.25, 1024),
    "s": (0.33, 0.50, 1024),
    "m": (0.67, 0.75, 768),
    "l": (1.0, 1.0, 512),
    "x": (1.0, 1.25, 512),
}
_V11_SCALES = {
    "n": (0.50, 0.25, 1024),
    "s": (0.50, 0.50, 1024),
    "m": (0.50, 1.0, 512),
    "l": (1.0, 1.0, 512),
    "x": (1.0, 1.50, 512),
}
# Layer table, scales, and whether the head uses the YOLOv8 ("legacy") class branch.
_ARCHS = {
    "yolov8": (_YOLOV8, _V8_SCALES, True),
    "yolo11": (_YOLO11, _V11_SCALES, False),
    "yolov12": (_YOLOV12, _V11_SCALES, False),
}
_STRIDES = (8, 16, 32)  # P3, P4, P5: five stride-2 convs, three of them before the detected levels


def _make_divisible(x: float, divisor: int = 8) -> int:
    return math.ceil(x / divisor) * divisor


class YOLO(nn.Module):
    """A YOLO detector assembled from a layer table; `model[i]` is layer i of the yaml."""

    def __init__(self, arch: str, scale: str, nc: int = 80, ch: int = 3):
        super().__init__()
        table, scales, legacy_head = _ARCHS[arch]
        depth, width, max_ch = scales[scale]
        layers, self.sources, chans = [], [], []
        for i, (f, n, kind, args) in enumerate(table):
            c1 = chans[-1] if chans else ch  # every single-input layer in these tables reads layer -1
            n = max(round(n * depth), 1) if n > 1 else n
            if kind in ("Upsample", "Concat", "Detect"):
                c2 = sum(chans[j] for j in f) if kind == "Concat" else c1
                if kind == "Upsample":
                    m = nn.Upsample(scale_factor=2, mode="nearest")
                elif kind == "Concat":
                    m = Concat()
                else:
                    m = Detect(nc, [chans[j] for j in f], _STRIDES, legacy_head)
            else:
                c2 = _make_divisible(min(args[0], max_ch) * width)
                rest = args[1:]
                if kind == "Conv":
                    m = Conv(c1, c2, *rest)
                elif kind == "SPPF":
                    m = SPPF(c1, c2, *rest)
                elif kind == "C2f":
                    m = C2f(c1, c2, n, *rest)
                elif kind == "C2PSA":
                    m = C2PSA(c1, c2, n)
                elif kind == "C3k2":
                    # Scale rule of the reference model parser: at m/l/x every C3k2 uses C3k blocks.
                    c3k = scale in "mlx" or bool(rest and rest[0])
                    m = C3k2(c1, c2, n, c3k, *rest[1:])
                elif kind == "A2C2f":
                    # Scale rule of the YOLOv12 parser: l/x add the gamma residual and a 1.5x MLP.
                    big = scale in "lx"
                    m = A2C2f(c1, c2, n, *rest, residual=big, mlp_ratio=1.5 if big else 2.0)
                else:
                    raise AssertionError(f"unknown block {kind!r} at layer {i}")
            layers.append(m)
            self.sources.append(f)
            chans.append(c2)
        self.model = nn.ModuleList(layers)
        # Outputs that a later layer reads by index; the rest are dropped as soon as they are used.
        self.keep = {j for f, *_ in table if not isinstance(f, int) for j in f if j != -1}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        saved: dict[int, torch.Tensor] = {}
        for i, (f, m) in enumerate(zip(self.sources, self.model, strict=True)):
            if not isinstance(f, int):
                x = [x if j == -1 else saved[j] for j in f]
            x = m(x)
            if i in self.keep:
                saved[i] = x
        return x


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------

# Published parameter counts, nc=80: the model yaml summaries (YOLOv12's as in the authors' yaml,
# which ultralytics' yolo12.yaml repeats).
PUBLISHED_PARAMS = {
    "yolov8n": 3_157_200,
    "yolov8x": 68_229_648,
    "yolo11n": 2_624_080,
    "yolo11x": 56_966_176,
    "yolov12n": 2_553_904,
    "yolov12x": 59_414_176,
}


def _check_shape(name: str, shape: Shape) -> None:
    if len(shape) != 4:
        raise ValueError(f"{name}: expected an input shape (N, C, H, W), got {tuple(shape)}")
    h, w = shape[2], shape[3]
    # Five stride-2 stages: H and W must divide by 32 so that the upsampled P5/P4 maps line up with
    # P4/P3 for the concats. That also makes each P4 map's token count (H/16 * W/16) divisible by
    # the 4 areas of YOLOv12's area attention.
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ValueError(f"{name}: H and W must be positive multiples of 32 (the largest stride), got {h}x{w}")


def _builder(name: str, arch: str, scale: str):
    def build(shape: Shape) -> nn.Module:
        _check_shape(name, shape)
        return YOLO(arch, scale, nc=80, ch=shape[1])

    return build


_DESCRIPTIONS = {
    "yolov8": "YOLOv8{s} (C2f, SPPF, DFL head)",
    "yolo11": "YOLO11{s} (C3k2, SPPF, C2PSA attention, DFL head)",
    "yolov12": "YOLOv12{s} (C3k2, A2C2f area attention, DFL head)",
}
_DESCRIPTION_TAIL = ", 80 classes, random weights; decoded [N, 84, anchors], no NMS; H, W multiples of 32"

ENTRIES: tuple[ModelEntry, ...] = tuple(
    ModelEntry(
        name=f"{arch}{scale}",
        build=_builder(f"{arch}{scale}", arch, scale),
        input_shape=(1, 3, 640, 640),
        family="detection",
        # The high resolutions users bring YOLO up at (the seeds' OOM catalogues).
        sweep_shapes=((1, 3, 640, 640), (1, 3, 1280, 1280), (1, 3, 2176, 3840)),
        description=_DESCRIPTIONS[arch].format(s=scale) + _DESCRIPTION_TAIL,
        tags=("zoo",),
    )
    for arch in _ARCHS
    for scale in ("n", "x")
)
