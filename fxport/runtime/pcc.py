"""Pearson correlation (PCC), the accuracy measure TT-NN bring-ups use."""

from __future__ import annotations

import math

import torch

# bf16 keeps 8 significant bits: a reference whose spread is below one bf16 step of its magnitude
# is, to the device, a constant, and its correlation with a bf16 result is noise.
_BF16_STEP = 2.0**-8


# Comparisons stream over chunks of this many elements, each in float64: a comparison of two
# 1.6 GB activations costs a few MB of temporaries, not float64 copies of both (6.4 GB).
CHUNK = 1 << 20


def chunks(*tensors: torch.Tensor, size: int = CHUNK):
    """The flattened tensors, piece by piece, each piece in float64."""
    flat = [t.detach().reshape(-1) for t in tensors]
    for start in range(0, flat[0].numel(), size):
        yield tuple(f[start : start + size].to(torch.float64) for f in flat)


class Moments:
    """Running float64 statistics of pairs (a, e), merged chunk by chunk (Chan et al.'s parallel
    update of centred sums: stable where sums of squares would cancel)."""

    def __init__(self, differences: bool = True):
        self.differences = differences  # also max |a - e|, sum of e^2 and of (a - e)^2
        self.n = 0
        self.mean_a = self.mean_e = 0.0
        self.var_a = self.var_e = self.cross = 0.0  # centred sums of squares and of products
        self.largest_e = self.worst = 0.0  # max |e| and max |a - e|
        self.square_e = self.square_change = 0.0  # sum of e^2 and of (a - e)^2

    def add(self, a: torch.Tensor, e: torch.Tensor) -> None:
        m = a.numel()
        if not m:
            return
        ma, me = float(a.mean()), float(e.mean())
        da, de = a - ma, e - me
        va, ve, c = float(da @ da), float(de @ de), float(da @ de)
        self.largest_e = max(self.largest_e, float(e.abs().max()))
        if self.differences:
            diff = a - e
            self.worst = max(self.worst, float(diff.abs().max()))
            self.square_e += float(e @ e)
            self.square_change += float(diff @ diff)
        n = self.n + m
        step_a, step_e = ma - self.mean_a, me - self.mean_e
        weight = self.n * m / n
        self.var_a += va + step_a * step_a * weight
        self.var_e += ve + step_e * step_e * weight
        self.cross += c + step_a * step_e * weight
        self.mean_a += step_a * m / n
        self.mean_e += step_e * m / n
        self.n = n

    @property
    def std_e(self) -> float:
        """Standard deviation of e (unbiased, as torch.std)."""
        return math.sqrt(self.var_e / (self.n - 1)) if self.n > 1 else 0.0


def pcc(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """PCC of two tensors of the same shape (0.0 when shapes differ or non-finite values differ:
    a NaN or inf must sit where the other has the same NaN or inf, never skipped).

    Degenerate references (constant, or varying by less than one bf16 step, such as a sigmoid
    gate sitting at 0.5 +- 0.003) have no meaningful correlation: they score 1.0 when the values
    agree within bf16 precision and 0.0 otherwise. Computed in float64 in one streaming pass
    (`chunks`): no full-size copy of either tensor."""
    if tuple(actual.shape) != tuple(expected.shape):
        return 0.0
    if actual.numel() == 0:
        return 1.0
    same, stats = True, Moments(differences=False)
    for a, e in chunks(actual, expected):
        same = same and torch.equal(a, e)
        finite = torch.isfinite(a)
        if not bool(finite.all()):
            if not torch.equal(_kind(a), _kind(e)):
                return 0.0  # a NaN or inf where the other holds a different value
            a, e = a[finite], e[finite]
        elif not bool(torch.isfinite(e).all()):
            return 0.0
        stats.add(a, e)
    if same:
        return 1.0
    if stats.n < 2 or stats.std_e <= _BF16_STEP * stats.largest_e:
        tolerance = 2 * _BF16_STEP * max(stats.largest_e, 1e-6)
        worst = max(
            (float(torch.nan_to_num((a - e).abs(), nan=0.0, posinf=0.0).max()) for a, e in chunks(actual, expected)),
            default=0.0,
        )
        return 1.0 if worst <= tolerance else 0.0
    denom = math.sqrt(stats.var_a) * math.sqrt(stats.var_e)
    return stats.cross / denom if denom > 0 else 0.0


def _kind(x: torch.Tensor) -> torch.Tensor:
    """0 finite, 1 NaN, 2 +inf, 3 -inf."""
    return torch.isnan(x) * 1 + (x == float("inf")) * 2 + (x == float("-inf")) * 3


def nonfinite_mismatch(actual: torch.Tensor, expected: torch.Tensor) -> tuple[int, tuple[int, ...] | None]:
    """How many positions hold a NaN or inf in one tensor and not the same NaN or inf in the
    other, and the first of them (a multi-index into `expected`'s shape), or (0, None). Shapes
    must match. Streamed in chunks, like `pcc`."""
    if not (actual.is_floating_point() or expected.is_floating_point()):
        return 0, None
    a, e = actual.detach().reshape(-1), expected.detach().reshape(-1)
    count, first = 0, None
    for start in range(0, e.numel(), CHUNK):
        wrong = _kind(a[start : start + CHUNK].double()) != _kind(e[start : start + CHUNK].double())
        found = int(wrong.sum())
        if found and first is None:
            first = start + int(wrong.nonzero()[0, 0])
        count += found
    if not count:
        return 0, None
    return count, tuple(int(i) for i in torch.unravel_index(torch.tensor(first), tuple(expected.shape)))


def agreement(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """How closely an output matches its reference, the one comparison fxport scores outputs
    with: bool results (bf16 0/1 masks on the device) must be equal, 1.0 or 0.0; everything else
    is compared by PCC in floating point."""
    if expected.dtype == torch.bool or actual.dtype == torch.bool:
        same = tuple(actual.shape) == tuple(expected.shape) and torch.equal(actual.bool(), expected.bool())
        return float(same)
    return pcc(actual, expected)
