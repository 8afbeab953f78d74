"""The numerics policy of the plan (fxport/plan.py): index arithmetic is exact, so a bicubic
resize, whose coordinates bf16 cannot hold, matches torch end to end."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import fxport
from fxport.plan import INDEX_ARITHMETIC, INDEX_DERIVED, plan_graph
from fxport.tracing import export


class Resize(nn.Module):
    def __init__(self, size=None, scale=None):
        super().__init__()
        self.size, self.scale = size, scale

    def forward(self, x):
        return F.interpolate(x, size=self.size, scale_factor=self.scale, mode="bicubic", align_corners=False)


@pytest.mark.parametrize(
    "model,shape",
    [(Resize(size=(224, 224)), (1, 3, 240, 240)), (Resize(scale=2.0), (1, 3, 32, 32))],
    ids=["240to224", "2x"],
)
def test_bicubic_resize_matches_torch_end_to_end(model, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    result = fxport.run(model, x, device="mock")
    assert result.output_pcc[0] >= 0.99
    # The coordinates (arange ... floor ... clamp) depend on constants only: folded at compile time
    folded = {n.target for n in result.plan.nodes}
    assert not folded & {"aten.floor.default", "aten.clamp.default"}
    # The data never leaves the device for it: the blend of the gathered pixels is lowered.
    assert any(n.lowered and n.target == "aten.mul.Tensor" for n in result.plan.nodes)

    # Without constant folding they stay on the host, and the plan says why.
    unfolded = fxport.run(model, x, device="mock", passes="none")
    assert unfolded.output_pcc[0] >= 0.99
    reasons = {n.target: n.reason for n in unfolded.plan.nodes if not n.lowered}
    assert reasons["aten.floor.default"] == INDEX_ARITHMETIC
    assert reasons["aten.clamp.default"] == INDEX_ARITHMETIC


def test_bf16_coordinates_would_move_the_indices():
    """Why the policy exists: the same coordinates in bf16 give other floor indices."""
    x = (torch.arange(224, dtype=torch.float32) + 0.5) * (240 / 224) - 0.5
    exact, rounded = x.floor(), x.to(torch.bfloat16).float().floor()
    assert (exact != rounded).sum() > 50


def test_weights_from_the_coordinates_are_derived_and_data_indices_keep_their_verdict():
    class Both(nn.Module):
        def forward(self, x, table):
            cols = torch.arange(4) * 2  # index arithmetic
            w = torch.arange(4, dtype=torch.float32) * 0.5 - torch.arange(4).floor()  # derived? no: no index
            picked = torch.gather(x, 1, torch.argmax(x, dim=1, keepdim=True))  # indices from data
            return x[:, cols] + picked + w, table

    gm = export(Both(), (torch.randn(2, 8), torch.randn(3))).graph_module
    plan = {n.node: n for n in plan_graph(gm.graph).nodes}
    reasons = {name: n.reason for name, n in plan.items()}
    # The int arange stays on the device (int32 there, exact); the arithmetic on it does not.
    assert [name for name, r in reasons.items() if r == INDEX_ARITHMETIC] == ["mul"]
    assert INDEX_DERIVED not in reasons.values()  # `w` is constant but not from the coordinates
    assert reasons["argmax"] != INDEX_ARITHMETIC
