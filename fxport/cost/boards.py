"""The boards a run is priced on: compute grid, clock, DRAM and PCIe figures, as data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Board:
    name: str
    arch: str  # "wormhole_b0" / "blackhole"
    grid: tuple[int, int]  # compute grid (x, y) as TT-NN reports it (compute_with_storage_grid_size)
    clock_ghz: float  # Tensix clock (vendor spec; ttnn has no binding for it)
    dram_gib_s: float  # DRAM bandwidth TT-NN's performance model uses (GiB/s)
    pcie_gb_s: float  # effective host<->device bandwidth assumed (GB/s, after protocol overhead)
    pcie_latency_us: float  # fixed cost assumed per host<->device transfer (enqueue, tilize, sync)
    l1_bytes_per_cycle: int = 64  # per core, L1 read+write port width assumed for L1-resident tensors

    @property
    def cores(self) -> int:
        return self.grid[0] * self.grid[1]


BOARDS: dict[str, Board] = {
    b.name: b
    for b in (
        # n150: Wormhole, 8x8 compute grid on the mock, 12 DRAM banks; 1 GHz; PCIe 4.0 x16.
        Board("n150", "wormhole_b0", (8, 8), 1.0, 258.0, pcie_gb_s=12.0, pcie_latency_us=20.0),
        # p150: Blackhole, 13x10 compute grid on the mock, 8 DRAM banks; up to 1.35 GHz; PCIe 5.0 x16.
        Board("p150", "blackhole", (13, 10), 1.35, 512.0, pcie_gb_s=24.0, pcie_latency_us=20.0),
    )
}


def board_for(arch: str) -> Board:
    """The board of a device's arch name ("n150", "wormhole_b0", "p150", "blackhole")."""
    for b in BOARDS.values():
        if arch in (b.name, b.arch) or arch.lower().startswith(b.arch.split("_")[0]):
            return b
    raise ValueError(f"no cost-model board for arch {arch!r} (known: {', '.join(BOARDS)})")
