"""The self-written YOLO family: sizes, export on meta, the input-shape contract, attention layouts."""

from __future__ import annotations

import pytest
import torch
from torch.fx._lazy_graph_module import _use_lazy_graph_module

from fxport_models import yolo

# The module's own entries rather than the registry, so these tests do not depend on other zoo files.
ENTRIES = {e.name: e for e in yolo.ENTRIES}


def _anchors(h: int, w: int) -> int:
    return sum((h // s) * (w // s) for s in (8, 16, 32))


def _params(name: str) -> int:
    with torch.device("meta"):
        model = ENTRIES[name].module()
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_parameter_count_matches_published(name):
    # The architectures reproduce the published counts exactly; 10% leaves room for a deliberate
    # variant (e.g. ultralytics' YOLO12 port) while still catching a wrong scale or block.
    published = yolo.PUBLISHED_PARAMS[name]
    assert abs(_params(name) - published) <= 0.10 * published


@pytest.mark.parametrize(
    "name, shape",
    [
        ("yolov8n", (1, 3, 128, 128)),
        ("yolo11n", (1, 3, 128, 256)),
        ("yolov12n", (1, 3, 128, 256)),  # non-square: area attention over a 8x16 P4 map
        ("yolov12n", (1, 3, 64, 64)),  # smallest P4 map (4x4) still splits into 4 areas
    ],
)
def test_exports_on_meta(name, shape):
    entry = ENTRIES[name]
    with torch.device("meta"):
        model = entry.module(shape)
        inputs = entry.inputs(shape, device="meta")
    with _use_lazy_graph_module(True):
        ep = torch.export.export(model, inputs, strict=False)
    (out,) = next(n for n in ep.graph.nodes if n.op == "output").args[0]
    assert tuple(out.meta["val"].shape) == (1, 84, _anchors(*shape[2:]))


@pytest.mark.parametrize("shape", [(1, 3, 100, 128), (1, 3, 640, 650), (3, 640, 640)])
def test_rejects_shapes_the_strides_cannot_tile(shape):
    with pytest.raises(ValueError):
        ENTRIES["yolov8n"].module(shape)


@torch.no_grad()
def test_forward_on_cpu_decodes_boxes_and_scores():
    torch.manual_seed(0)
    entry = ENTRIES["yolov12n"]
    shape = (2, 3, 64, 128)
    y = entry.module(shape)(*entry.inputs(shape))
    assert y.shape == (2, 84, _anchors(64, 128))
    assert torch.isfinite(y).all()
    assert (y[:, 2:4] >= 0).all()  # widths and heights are sums of non-negative distances
    assert ((y[:, 4:] > 0) & (y[:, 4:] < 1)).all()  # sigmoid class scores


@torch.no_grad()
def test_anchor_centres_in_pixels():
    head = ENTRIES["yolov8n"].module((1, 3, 64, 128)).model[-1]
    feats = [torch.zeros(1, 1, 64 // s, 128 // s) for s in (8, 16, 32)]
    points, strides = head.anchors(feats)
    centres = points * strides
    assert centres[:, 0].tolist() == [4.0, 4.0]  # first P3 cell
    assert centres[:, -1].tolist() == [128 - 16, 64 - 16]  # last P5 cell


def _randomise(module: torch.nn.Module) -> torch.nn.Module:
    for p in module.parameters():
        p.data.normal_(0, 0.2)
    return module.eval()


@torch.no_grad()
@pytest.mark.parametrize("area", [1, 4])
def test_area_attention_matches_naive_per_area_loop(area):
    # The reshapes that turn areas into batch entries are the easiest thing to get subtly wrong.
    m = _randomise(yolo.AAttn(64, num_heads=2, area=area))
    x = torch.randn(2, 64, 8, 12)
    q, k = (t.flatten(2) for t in m.qk(x).chunk(2, 1))
    v_map = m.v(x)
    v = v_map.flatten(2)
    out = torch.zeros_like(v)
    run = x.shape[2] * x.shape[3] // area  # areas are consecutive runs of row-major tokens
    for a in range(area):
        t = slice(a * run, (a + 1) * run)
        for h in range(m.num_heads):
            c = slice(h * m.head_dim, (h + 1) * m.head_dim)
            attn = torch.softmax(q[:, c, t].transpose(1, 2) @ k[:, c, t] * m.head_dim**-0.5, -1)
            out[:, c, t] = v[:, c, t] @ attn.transpose(1, 2)
    expected = m.proj(out.view_as(v_map) + m.pe(v_map))
    torch.testing.assert_close(m(x), expected, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_psa_attention_matches_matmul_softmax():
    m = _randomise(yolo.Attention(128, num_heads=2, attn_ratio=0.5))
    x = torch.randn(2, 128, 4, 6)
    b, c, h, w = x.shape
    qkv = m.qkv(x).view(b, m.num_heads, 2 * m.key_dim + m.head_dim, h * w)
    q, k, v = qkv.split([m.key_dim, m.key_dim, m.head_dim], 2)
    attn = torch.softmax(q.transpose(-2, -1) @ k * m.key_dim**-0.5, -1)
    out = (v @ attn.transpose(-2, -1)).view(b, c, h, w)
    expected = m.proj(out + m.pe(v.reshape(b, c, h, w)))
    torch.testing.assert_close(m(x), expected, rtol=1e-4, atol=1e-5)
