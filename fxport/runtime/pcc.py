"""Pearson correlation (PCC), the accuracy measure TT-NN bring-ups use."""

from __future__ import annotations

import torch

# bf16 keeps 8 significant bits: a reference whose spread is below one bf16 step of its magnitude
# is, to the device, a constant, and its correlation with a bf16 result is noise.
_BF16_STEP = 2.0 ** -8


def pcc(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """PCC of two tensors of the same shape (0.0 when shapes differ or non-finite values differ:
    a NaN or inf must sit where the other has the same NaN or inf, never skipped).

    Degenerate references (constant, or varying by less than one bf16 step, such as a sigmoid
    gate sitting at 0.5 +- 0.003) have no meaningful correlation: they score 1.0 when the values
    agree within bf16 precision and 0.0 otherwise."""
    if tuple(actual.shape) != tuple(expected.shape):
        return 0.0
    a = actual.detach().flatten().to(torch.float64)
    e = expected.detach().flatten().to(torch.float64)
    if a.numel() == 0 or torch.equal(a, e):
        return 1.0
    if nonfinite_mismatch(a, e)[0]:
        return 0.0
    finite = torch.isfinite(a)
    a, e = a[finite], e[finite]
    scale = float(e.abs().max()) if e.numel() else 0.0
    if e.numel() == 0:  # nothing but the same NaNs and infs
        return 1.0
    if e.numel() < 2 or float(e.std()) <= _BF16_STEP * scale:
        tolerance = 2 * _BF16_STEP * max(scale, 1e-6)
        return 1.0 if bool(((a - e).abs() <= tolerance).all()) else 0.0
    a, e = a - a.mean(), e - e.mean()
    denom = a.norm() * e.norm()
    return float((a @ e) / denom) if denom > 0 else 0.0


def _kind(x: torch.Tensor) -> torch.Tensor:
    """0 finite, 1 NaN, 2 +inf, 3 -inf."""
    return torch.isnan(x) * 1 + (x == float("inf")) * 2 + (x == float("-inf")) * 3


def nonfinite_mismatch(actual: torch.Tensor, expected: torch.Tensor) -> tuple[int, tuple[int, ...] | None]:
    """How many positions hold a NaN or inf in one tensor and not the same NaN or inf in the
    other, and the first of them (a multi-index into `expected`'s shape), or (0, None). Shapes
    must match."""
    a, e = actual.detach().flatten(), expected.detach().flatten()
    if not (a.is_floating_point() or e.is_floating_point()):
        return 0, None
    wrong = _kind(a.double()) != _kind(e.double())
    count = int(wrong.sum())
    if not count:
        return 0, None
    first = int(wrong.nonzero()[0, 0])
    return count, tuple(int(i) for i in torch.unravel_index(torch.tensor(first), tuple(expected.shape)))


def agreement(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """How closely an output matches its reference, the one comparison fxport scores outputs
    with: bool results (bf16 0/1 masks on the device) must be equal, 1.0 or 0.0; everything else
    is compared by PCC in floating point."""
    if expected.dtype == torch.bool or actual.dtype == torch.bool:
        same = tuple(actual.shape) == tuple(expected.shape) and torch.equal(actual.bool(), expected.bool())
        return float(same)
    return pcc(actual.float(), expected.float())
