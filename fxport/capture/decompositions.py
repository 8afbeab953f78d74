"""The decomposition level of captured graphs: core aten, except the ops asked to stay whole.

`torch.export` decomposes to the core aten opset by default, which splits `linear` into
`permute` + `addmm`, attention into `bmm`/`_softmax`, `silu` into `sigmoid`*`mul`. TT-NN has one
kernel for each of those, so fxport keeps them whole: a user then sees (and the mapping table
lowers) the op TT-NN actually runs. Which ops those are is the mapping table's to say (its rules
marked `fused=True`); capture sits below the table, so callers pass them in (`keep`).
"""

from __future__ import annotations

from typing import Iterable

import torch


def decomposition_table(keep: Iterable[torch._ops.OpOverload] = ()) -> dict:
    table = torch.export.default_decompositions()
    for op in keep:
        table.pop(op, None)
    return table
