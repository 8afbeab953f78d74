"""Pearson correlation (PCC), the accuracy measure TT-NN bring-ups use."""

from __future__ import annotations

import torch


def pcc(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """PCC of two tensors of the same shape; 1.0 when both are identical constants (including
    empty tensors), 0.0 when only one is constant or shapes differ."""
    if tuple(actual.shape) != tuple(expected.shape):
        return 0.0
    a = actual.detach().flatten().to(torch.float64)
    e = expected.detach().flatten().to(torch.float64)
    if a.numel() == 0 or torch.equal(a, e):
        return 1.0
    finite = torch.isfinite(a) & torch.isfinite(e)
    if not bool(torch.equal(torch.isfinite(a), torch.isfinite(e))):
        return 0.0
    a, e = a[finite], e[finite]
    a, e = a - a.mean(), e - e.mean()
    denom = a.norm() * e.norm()
    if denom == 0:
        return 1.0 if torch.allclose(a, e) else 0.0
    return float((a @ e) / denom)
