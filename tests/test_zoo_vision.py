import pytest
import torch
from torch.fx._lazy_graph_module import _use_lazy_graph_module

import fxport_models

VISION = [
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "vit_b_16",
    "swin_t",
    "swin_v2_t",
    "convnext_tiny",
    "retinanet_resnet50_fpn",
]
SMALL = (1, 3, 64, 64)


def _export_on_meta(name: str, shape=SMALL):
    entry = fxport_models.get(name)
    with torch.device("meta"):
        module = entry.module(shape)
        inputs = entry.inputs(shape, device="meta")
    # Lazy graph modules skip one recompile per inlined region, which makes capture faster.
    with _use_lazy_graph_module(True):
        return torch.export.export(module, inputs, strict=False)


def _targets(ep) -> set[str]:
    return {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}


@pytest.mark.parametrize("name", VISION)
def test_entry_builds_on_meta_without_storage(name):
    entry = fxport_models.get(name)
    assert "zoo" in entry.tags and entry.build_on == "meta"
    with torch.device("meta"):
        module = entry.module()
    assert all(t.is_meta for t in [*module.parameters(), *module.buffers()])


# Swin and ConvNeXt are left out: their trunc_normal_ init takes seconds on the CPU.
@pytest.mark.parametrize("name", ["mobilenet_v3_large", "efficientnet_b0", "vit_b_16", "retinanet_resnet50_fpn"])
def test_entry_runs_on_cpu_with_random_weights(name):
    entry = fxport_models.get(name)
    torch.manual_seed(0)
    with torch.no_grad():
        out = entry.module(SMALL)(*entry.inputs(SMALL))
    for t in out if isinstance(out, tuple) else (out,):
        assert torch.isfinite(t).all()


# A cheap cross-section: plain CNN, ViT (SDPA), Swin (windowed matmul attention), the detector.
@pytest.mark.parametrize(
    "name, key_ops",
    [
        ("resnet50", {"aten.conv2d.default", "aten.batch_norm.default", "aten.linear.default"}),
        ("vit_b_16", {"aten.linear.default", "aten.scaled_dot_product_attention.default"}),
        ("swin_t", {"aten.linear.default", "aten.matmul.default", "aten.softmax.int"}),
        ("retinanet_resnet50_fpn", {"aten.conv2d.default", "aten.upsample_nearest2d.vec"}),
    ],
)
def test_export_on_meta_keeps_key_ops(name, key_ops):
    assert key_ops <= _targets(_export_on_meta(name))


def test_retinanet_returns_dense_head_outputs():
    ep = _export_on_meta("retinanet_resnet50_fpn")
    cls_logits, bbox = (v.meta["val"] for v in ep.graph.output_node().args[0])
    # 9 anchors per location on P3-P7 of a 64x64 image: 9 * (8*8 + 4*4 + 2*2 + 1 + 1) = 774.
    assert tuple(cls_logits.shape) == (1, 774, 91)
    assert tuple(bbox.shape) == (1, 774, 4)


def test_vit_builds_for_the_requested_resolution_only():
    with torch.device("meta"):
        vit = fxport_models.get("vit_b_16").module((1, 3, 96, 96))
    assert vit.encoder.pos_embedding.shape == (1, 6 * 6 + 1, 768)
    for bad in [(1, 3, 72, 72), (1, 3, 64, 96)]:
        with pytest.raises(ValueError, match="divisible by 16"):
            fxport_models.get("vit_b_16").module(bad)


def test_convnext_rejects_inputs_below_its_minimum():
    with pytest.raises(ValueError, match="at least 32"):
        fxport_models.get("convnext_tiny").module((1, 3, 16, 16))
