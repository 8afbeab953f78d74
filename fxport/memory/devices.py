"""Device memory as data: banks per memory kind, bank size, page alignment, worker grid.

Presets are the figures of a freshly opened device with default options, measured on mock
devices with ttnn 0.81.1 (`ttnn.get_memory_view`); the allocatable L1 bank shrinks when a device
is opened with a larger `l1_small_size` or trace region, so prefer `DeviceMemory.from_banks` with
the figures of the device actually opened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from fxport.memory.tiles import Pages, round_up

L1 = "L1"
DRAM = "DRAM"
CONFIGS = (DRAM, L1)  # interleaved memory configs, in order of preference for big tensors


@dataclass(frozen=True)
class Banks:
    count: int
    size: int  # allocatable bytes per bank
    # Measured on mock devices with ROW_MAJOR buffers (tile pages are multiples of 64 B, so
    # neither rounding changes them): every page is rounded up to `alignment` (a 6-byte row takes
    # 16 B in L1, 32 B in Wormhole DRAM, 64 B in Blackhole DRAM), then each bank's share up to
    # `granule` (32 B on Wormhole, 64 B on Blackhole, in L1 and DRAM alike).
    alignment: int
    granule: int

    @property
    def total(self) -> int:
        return self.count * self.size

    def need(self, pages: Pages) -> int:
        """Bytes each bank must hold for an interleaved buffer: pages are dealt round-robin,
        so the fullest bank gets ceil(pages / banks) of them."""
        share = -(-pages.count // self.count) * round_up(pages.size, self.alignment)
        return round_up(share, self.granule)


@dataclass(frozen=True)
class BankSpec:
    """The bank figures of an opened device, as its allocator reports them (ttnn.get_memory_view):
    the one form of them the device handle, run documents and the memory model share."""

    l1_bank_count: int
    l1_bank_size: int
    dram_bank_count: int
    dram_bank_size: int
    # The L1_SMALL region (device option `l1_small_size`) sits between the L1 banks and the top
    # of L1: circular buffers may grow into it, so it bounds them too.
    l1_small_bank_size: int = 0


@dataclass(frozen=True)
class DeviceMemory:
    name: str  # board, e.g. "n150"
    l1: Banks
    dram: Banks
    grid: tuple[int, int]  # worker cores (columns, rows); each worker core holds one L1 bank
    l1_small_size: int = 0  # bytes per bank of the L1_SMALL region above the L1 banks

    @property
    def cores(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def cb_limit(self) -> int:
        """How far circular buffers may grow from the L1 bank's base: the rest of L1 (the L1
        banks and L1_SMALL above them; TT-Metal's "max L1 size" less the base)."""
        return self.l1.size + self.l1_small_size

    def banks(self, config: str) -> Banks:
        if config == L1:
            return self.l1
        if config == DRAM:
            return self.dram
        raise ValueError(f"unknown memory config {config!r}; expected one of {', '.join(CONFIGS)}")

    @classmethod
    def from_banks(cls, name: str, banks: BankSpec, grid: tuple[int, int] | None = None) -> DeviceMemory:
        """From the bank figures of an opened device. Alignment and grid come from the board's
        preset when known; otherwise Blackhole's roundings (the coarser) and the most square
        grid with l1_bank_count cores are assumed."""
        known = PRESETS.get(name)
        l1 = Banks(banks.l1_bank_count, banks.l1_bank_size, 16, 64)
        dram = Banks(banks.dram_bank_count, banks.dram_bank_size, 64, 64)
        if known is not None:
            l1 = replace(known.l1, count=banks.l1_bank_count, size=banks.l1_bank_size)
            dram = replace(known.dram, count=banks.dram_bank_count, size=banks.dram_bank_size)
        if grid is None:
            same_grid = known is not None and known.cores == banks.l1_bank_count
            grid = known.grid if same_grid else _square_grid(banks.l1_bank_count)
        return cls(name, l1, dram, grid, banks.l1_small_bank_size)

    @classmethod
    def from_handle(cls, handle: Any) -> DeviceMemory:
        """From an open device handle (fxport.runtime.devices.DeviceHandle, or anything with its
        `arch` and `banks`)."""
        return cls.from_banks(handle.arch, handle.banks)


def _square_grid(cores: int) -> tuple[int, int]:
    rows = max(r for r in range(1, math.isqrt(cores) + 1) if cores % r == 0)
    return cores // rows, rows


# n150: Wormhole, 8x8 worker grid, 12 DRAM banks of 1 GiB (soc descriptor dram_view_size
# 1,073,741,824) less 1 MiB reserved. p150: Blackhole, 13x10 worker grid, 8 DRAM banks
# (blackhole_140_arch.yaml: 8 dram_views of 4,278,190,080 B) less the same 1 MiB.
N150 = DeviceMemory("n150", l1=Banks(64, 1_393_312, 16, 32), dram=Banks(12, 1_072_693_184, 32, 32), grid=(8, 8))
P150 = DeviceMemory("p150", l1=Banks(130, 1_461_120, 16, 64), dram=Banks(8, 4_277_141_376, 64, 64), grid=(13, 10))
PRESETS: dict[str, DeviceMemory] = {d.name: d for d in (N150, P150)}


def preset(name: str) -> DeviceMemory:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"no memory preset for {name!r}; known: {', '.join(PRESETS)}") from None
