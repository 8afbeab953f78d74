"""The decomposition level of captured graphs: core aten, except the ops TT-NN runs fused.

`torch.export` decomposes to the core aten opset by default, which splits `linear` into
`permute` + `addmm`, attention into `bmm`/`_softmax`, `silu` into `sigmoid`*`mul`. TT-NN has one
kernel for each of those, so capture keeps them whole: a user then sees (and the mapping table
lowers) the op TT-NN actually runs.
"""

from __future__ import annotations

import torch

aten = torch.ops.aten

# Composite ops TT-NN implements as a single fused op. Everything else is decomposed to core aten.
PRESERVED_OPS = (
    aten.linear.default,
    aten.conv1d.default,
    aten.conv2d.default,
    aten.scaled_dot_product_attention.default,
    aten.layer_norm.default,
    aten.group_norm.default,
    aten.rms_norm.default,
    aten.softmax.int,
    aten.log_softmax.int,
    aten.gelu.default,
    aten.silu.default,
    aten.mish.default,
    aten.hardswish.default,
    aten.hardsigmoid.default,
    aten.max_pool2d.default,
    aten.avg_pool2d.default,
    aten.adaptive_avg_pool2d.default,
    aten.upsample_nearest2d.vec,
    aten.upsample_bilinear2d.vec,
    aten.pad.default,
)


def decomposition_table() -> dict:
    table = torch.export.default_decompositions()
    for op in PRESERVED_OPS:
        table.pop(op, None)
    return table
