"""Vision part of the zoo: torchvision classifiers and one detector, all with random weights.

Every builder passes ``weights=None`` (and ``weights_backbone=None``) so nothing is downloaded, and
creates its tensors on the ambient device, so the whole file builds under ``torch.device("meta")``.
None of these initialisers reads tensor data, so no init-skipping workaround is needed (RegNet's
would be: it copies data at construction).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torchvision import models as tvm
from torchvision.models.detection import retinanet_resnet50_fpn

from fxport_models.entry import ModelEntry, Shape


def _image_hw(name: str, shape: Shape) -> tuple[int, int]:
    """Checks that `shape` is one RGB image batch (N, 3, H, W) and returns (H, W)."""
    if len(shape) != 4 or shape[1] != 3:
        raise ValueError(f"{name}: expected an input shape (N, 3, H, W), got {tuple(shape)}")
    return shape[2], shape[3]


def _classifier(name: str, builder: Callable[..., nn.Module], min_side: int) -> Callable[[Shape], nn.Module]:
    # These networks end in adaptive pooling, so one module serves every resolution down to
    # `min_side`, below which a strided convolution's kernel outgrows its input.
    def build(shape: Shape) -> nn.Module:
        h, w = _image_hw(name, shape)
        if min(h, w) < min_side:
            raise ValueError(f"{name} needs H and W of at least {min_side}, got {h}x{w}")
        return builder(weights=None)

    return build


def _build_vit_b_16(shape: Shape) -> nn.Module:
    # ViT's position embedding has one entry per 16x16 patch, so the module is built for exactly
    # the requested (square) resolution, and its forward asserts that size.
    h, w = _image_hw("vit_b_16", shape)
    if h != w or h % 16:
        raise ValueError(f"vit_b_16 needs a square input whose side is divisible by 16, got {h}x{w}")
    return tvm.vit_b_16(weights=None, image_size=h)


class RetinaNetHeads(nn.Module):
    """RetinaNet-ResNet50-FPN without its transform, anchors, box decoding and NMS.

    Those parts are data-dependent (resizing, score thresholds, NMS) and fail torch.export; what is
    left is the dense network: ResNet-50 + FPN (P3-P7) and the shared classification and regression
    heads. The input is an already normalised, already sized image batch.
    """

    def __init__(self, num_classes: int = 91):
        super().__init__()
        full = retinanet_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes)
        self.backbone = full.backbone
        self.head = full.head

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = list(self.backbone(images).values())
        out = self.head(features)
        # (N, sum(H*W*A), num_classes) and (N, sum(H*W*A), 4) over the five pyramid levels.
        return out["cls_logits"], out["bbox_regression"]


def _build_retinanet(shape: Shape) -> nn.Module:
    _image_hw("retinanet_resnet50_fpn", shape)
    return RetinaNetHeads()


_IMAGE = (1, 3, 224, 224)
_TAGS = ("zoo", "vision")

# (name, torchvision builder, smallest H and W it accepts, description)
_CLASSIFIERS = [
    ("resnet50", tvm.resnet50, 1, "ResNet-50 (torchvision), any resolution"),
    ("mobilenet_v2", tvm.mobilenet_v2, 1, "MobileNetV2 (torchvision), any resolution"),
    ("mobilenet_v3_large", tvm.mobilenet_v3_large, 1, "MobileNetV3-Large (torchvision), any resolution"),
    ("efficientnet_b0", tvm.efficientnet_b0, 1, "EfficientNet-B0 (torchvision), any resolution"),
    ("swin_t", tvm.swin_t, 4, "Swin-T (torchvision), H and W >= 4 (feature maps are padded to 7x7 windows)"),
    ("swin_v2_t", tvm.swin_v2_t, 4, "Swin-V2-T (torchvision), H and W >= 4 (feature maps are padded to 8x8 windows)"),
    ("convnext_tiny", tvm.convnext_tiny, 32, "ConvNeXt-Tiny (torchvision), H and W >= 32 (/4 stem, three /2 stages)"),
]

ENTRIES: tuple[ModelEntry, ...] = (
    *(
        ModelEntry(name, _classifier(name, builder, min_side), _IMAGE, "classification", description, tags=_TAGS)
        for name, builder, min_side, description in _CLASSIFIERS
    ),
    ModelEntry(
        "vit_b_16",
        _build_vit_b_16,
        _IMAGE,
        "classification",
        "ViT-B/16 (torchvision), built for the requested square resolution (side divisible by 16)",
        tags=_TAGS,
        sweep_shapes=(_IMAGE, (1, 3, 384, 384)),
    ),
    ModelEntry(
        "retinanet_resnet50_fpn",
        _build_retinanet,
        (1, 3, 512, 512),
        "detection",
        "RetinaNet ResNet-50-FPN (torchvision): backbone, FPN and heads; no transform, anchors or NMS",
        tags=_TAGS,
    ),
)
