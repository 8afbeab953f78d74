"""What TT-NN's ideal formulas leave out, in one table: each constant with where it comes from.

Calibrated only on ResNet-50 (n150 and p150, batch 16, bfloat8_b, LoFi) and ViT-base (n150,
batch 8) device throughputs (`bench/cost.py` prints the comparison); every other published
figure is left to judge the model. "fit" marks a constant set by hand against that calibration
set, "assumed" one stated without a measurement (an order of magnitude, not a fit).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Constant:
    value: float
    unit: str
    provenance: str


# Op kinds (fxport.cost.nodes.op_kind) -> share of the ideal compute rate a real kernel reaches.
UTILISATION: dict[str, Constant] = {
    "matmul": Constant(
        0.45,
        "of ideal",
        "fit: ResNet-50 / ViT-base calibration (bench/cost.py); below tt-metal's GEMM_FLOPS "
        "report (58-62% on large bf16 HiFi2 GEMMs), as model matmuls are small",
    ),
    "conv": Constant(
        0.30,
        "of ideal",
        "fit: ResNet-50 n150/p150 batch 16 calibration (halo, im2col and sharding overheads of ttnn.conv2d)",
    ),
    "sdpa": Constant(
        0.30,
        "of ideal",
        "assumed: as conv (softmax and masking in the flash-attention "
        "loop); ViT-base's SDPA is under 1% of its estimate, so it fits nothing",
    ),
}

# Share of the DRAM bandwidth a kernel reaches when it streams tensors (TT-NN's ideal: 100%).
DRAM_EFFICIENCY: dict[str, Constant] = {
    "matmul": Constant(0.70, "of peak", "assumed: large reads interleaved over every bank"),
    "conv": Constant(0.70, "of peak", "assumed: as matmul"),
    "sdpa": Constant(0.70, "of peak", "assumed: as matmul"),
    "eltwise": Constant(0.50, "of peak", "assumed: tile-by-tile read-compute-write"),
    "reduction": Constant(0.50, "of peak", "assumed: as eltwise"),
    "normalization": Constant(0.40, "of peak", "assumed: two passes (statistics, then scale)"),
    "data_movement": Constant(0.25, "of peak", "assumed: strided reads of permutes, pads and slices"),
    "layout": Constant(0.25, "of peak", "assumed: tilize/untilize and typecast conversions"),
    "pool": Constant(0.40, "of peak", "assumed: halo reads of sliding windows"),
}

# Compute of the ops TT-NN's model leaves at 1 ns: cycles one core spends per 32x32 tile of output.
TILE_CYCLES: dict[str, Constant] = {
    "eltwise": Constant(64, "cycles/tile", "assumed: unpack, FPU/SFPU op, pack of one tile"),
    "reduction": Constant(96, "cycles/tile", "assumed: eltwise plus the reduce"),
    "normalization": Constant(256, "cycles/tile", "assumed: mean, variance, rsqrt, scale (four passes)"),
    "data_movement": Constant(32, "cycles/tile", "assumed: address generation per tile"),
    "layout": Constant(64, "cycles/tile", "assumed: tilize/untilize one tile"),
    "pool": Constant(96, "cycles/tile", "assumed: window max/sum over a tile of outputs"),
}

# Fixed costs.
DISPATCH_NS = Constant(
    4000,
    "ns per device op",
    "fit: ResNet-50/ViT-base calibration; the order of "
    "tt-metal's per-op device overhead (program launch, "
    "core sync) with Metal Trace",
)
HOST_DISPATCH_NS = Constant(
    15000,
    "ns per ttnn call",
    "assumed: TT-NN's host-side dispatch of one op "
    "without Metal Trace; verdict runs only (runs with "
    "values measure it)",
)
L1_EFFICIENCY = Constant(
    0.5, "of the L1 port", "assumed: L1-resident tensors read/written at half the per-core L1 port width"
)


def table() -> list[dict]:
    """Every constant as a row (kind, name, value, unit, provenance) for run.json and docs."""
    rows = [
        {"table": t, "kind": k, "value": c.value, "unit": c.unit, "provenance": c.provenance}
        for t, d in (("utilisation", UTILISATION), ("dram_efficiency", DRAM_EFFICIENCY), ("tile_cycles", TILE_CYCLES))
        for k, c in d.items()
    ]
    rows += [
        {"table": "fixed", "kind": name, "value": c.value, "unit": c.unit, "provenance": c.provenance}
        for name, c in (("dispatch", DISPATCH_NS), ("host_dispatch", HOST_DISPATCH_NS), ("l1", L1_EFFICIENCY))
    ]
    return rows
