"""Benchmark: per-call overhead of `torch.compile(model, backend="fxport")` against eager, on the
mock device (values emulated by golden functions, so a "device" call costs host time).

For each model: eager ms per call; the compiled model's first call (dynamo + export + plan +
partition + memory analysis + a checked run) and its steady per-call time with the reference
check on the first call of each shape (the default), on every call, and never; then a dynamic
batch (sizes 1, 2, 3, 5 in turn, each planned once) with its per-call time once every size is
planned. Figures are medians over CALLS calls, on this machine, in one process.

    .venv/bin/python bench/compile.py
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
import torchvision
from tabulate import tabulate
from torch import nn

import fxport

CALLS = 10


def mlp() -> tuple[nn.Module, callable]:
    model = nn.Sequential(nn.Linear(256, 512), nn.GELU(), nn.Linear(512, 256), nn.LayerNorm(256))
    return model, lambda batch: torch.randn(batch, 256)


def cnn() -> tuple[nn.Module, callable]:
    model = torchvision.models.resnet18(weights=None)
    return model, lambda batch: torch.randn(batch, 3, 64, 64)


class Branch(nn.Module):
    """A graph break on a data-dependent branch: two graphs and a value Python decides on."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(256, 256), nn.Linear(256, 256)

    def forward(self, x):
        y = self.a(x)
        y = y * 2 if y.sum() > 0 else y - 1
        return self.b(y)


def branch() -> tuple[nn.Module, callable]:
    return Branch(), lambda batch: torch.randn(batch, 256)


def per_call(fn, make, sizes=(8,)) -> float:
    """Median ms per call over CALLS calls cycling through `sizes` (all already seen), after one
    warm-up call."""
    with torch.no_grad():
        fn(make(sizes[0]))
    times = []
    for i in range(CALLS):
        x = make(sizes[i % len(sizes)])
        start = time.perf_counter()
        with torch.no_grad():
            fn(x)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def first_call(fn, x) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        fn(x)
    return 1000 * (time.perf_counter() - start)


def bench(name: str, build) -> list:
    torch.manual_seed(0)
    model, make = build()
    model.eval()
    eager = per_call(model, make)
    row = [name, f"{eager:.2f}"]
    for check in ("first", "every", "never"):
        torch._dynamo.reset()
        compiled = fxport.compile(model, device="mock", check=check)
        first = first_call(compiled, make(8))
        steady = per_call(compiled, make)
        if check == "first":
            row.append(f"{first:.0f}")
        row.append(f"{steady:.1f} (+{steady - eager:.1f})")
    torch._dynamo.reset()
    compiled = fxport.compile(model, device="mock", dynamic=True)
    planning = [first_call(compiled, make(b)) for b in (1, 2, 3, 5)]
    steady = per_call(compiled, make, sizes=(1, 2, 3, 5))
    row += [" / ".join(f"{p:.0f}" for p in planning), f"{steady:.1f} (+{steady - per_call(model, make, (1, 2, 3, 5)):.1f})"]
    torch._dynamo.reset()
    return row


def main() -> int:
    rows = []
    for name, build in (("MLP 256-512-256 + LayerNorm, batch 8", mlp), ("ResNet-18, batch 8 x 3x64x64", cnn),
                        ("Linear, branch on y.sum() > 0, Linear (graph break)", branch)):
        rows.append(bench(name, build))
        print(f"measured {name}", file=sys.stderr)
    print(tabulate(rows, headers=["model", "eager ms/call", "compiled 1st call ms",
                                  "ms/call check=first (default) (+overhead)", "check=every", "check=never",
                                  "dynamic: 1st call per batch 1/2/3/5 ms", "dynamic ms/call (+overhead)"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
