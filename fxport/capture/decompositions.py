"""The decomposition level of captured graphs: core aten, except the ops TT-NN runs fused.

`torch.export` decomposes to the core aten opset by default, which splits `linear` into
`permute` + `addmm`, attention into `bmm`/`_softmax`, `silu` into `sigmoid`*`mul`. TT-NN has one
kernel for each of those, so capture keeps them whole: a user then sees (and the mapping table
lowers) the op TT-NN actually runs. Which ops those are is the mapping table's to say: every rule
marked `fused=True` (fxport/mapping), so adding a fused op touches one place.
"""

from __future__ import annotations

import torch


def preserved_ops() -> list[torch._ops.OpOverload]:
    from fxport.mapping import REGISTRY

    return REGISTRY.fused_targets()


def decomposition_table() -> dict:
    table = torch.export.default_decompositions()
    for op in preserved_ops():
        table.pop(op, None)
    return table
