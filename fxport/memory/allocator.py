"""TT-Metal's bank allocator as data: where each buffer lands, and what is left free.

An interleaved (or lockstep-sharded) buffer takes the same address range in every bank of its
memory kind, so one free list per kind describes the whole device. TT-Metal's free-list allocator
in ttnn 0.81.1 places a buffer in the free block nearest its starting end that holds it (first
fit): from the bottom of the bank for DRAM, from the top for L1 (interleaved L1 buffers grow down
from the top of the bank while circular buffers grow up from its base), splitting the block at
that end; a freed block merges with free neighbours. Checked against the allocator of a mock n150
(tests/test_allocator.py): random sequences of allocations and frees give the same address for
every buffer and the same largest free block at every step. (A best-fit variant, which the
allocator's sources also offer, disagrees on most steps of those sequences.)

Cost is proportional to the free blocks between the scan origin and the block found (a handful:
live buffers are few). The bytes allocated and the lowest allocated address are kept as buffers
come and go rather than summed over the live buffers (hundreds of them in an unrolled recurrence,
asked for at every buffer), so a walk over a graph stays linear in its node count.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class Stats:
    allocated: int
    free: int
    largest_free: int
    lowest_occupied: int | None  # relative address of the lowest allocated byte (None: empty)


class BankAllocator:
    """One memory kind's free list. Addresses are relative to the bank's base (the allocator's
    own offset): for L1 that base is also where circular buffers start."""

    def __init__(self, bank_size: int, top_down: bool, alignment: int = 32):
        self.size = bank_size
        self.top_down = top_down
        self.alignment = alignment
        self._free: list[int] = [0]  # free block starts, sorted
        self._free_size: dict[int, int] = {0: bank_size}
        self._used: dict[int, int] = {}  # allocated block start -> size
        self._starts: list[int] = []  # allocated block starts, sorted
        self.allocated = 0  # bytes per bank allocated

    def clone(self) -> "BankAllocator":
        """An independent copy (for trial placements)."""
        other = BankAllocator.__new__(BankAllocator)
        other.size, other.top_down, other.alignment = self.size, self.top_down, self.alignment
        other._free, other._free_size, other._used = list(self._free), dict(self._free_size), dict(self._used)
        other._starts, other.allocated = list(self._starts), self.allocated
        return other

    def aligned(self, nbytes: int) -> int:
        return -(-max(nbytes, self.alignment) // self.alignment) * self.alignment

    def allocate(self, nbytes: int) -> int | None:
        """The relative address the buffer gets, or None when no free block holds it."""
        size = self.aligned(nbytes)
        order = reversed(self._free) if self.top_down else self._free
        start = next((s for s in order if self._free_size[s] >= size), None)
        if start is None:
            return None
        block = self._drop_free(start)
        address = start + block - size if self.top_down else start
        if address > start:
            self._add_free(start, address - start)
        if address + size < start + block:
            self._add_free(address + size, start + block - address - size)
        self._used[address] = size
        bisect.insort(self._starts, address)
        self.allocated += size
        return address

    def free(self, address: int) -> None:
        size = self._used.pop(address)
        del self._starts[bisect.bisect_left(self._starts, address)]
        self.allocated -= size
        start, end = address, address + size
        i = bisect.bisect_left(self._free, address)
        if i > 0 and self._free[i - 1] + self._free_size[self._free[i - 1]] == start:
            start = self._free[i - 1]
            self._drop_free(start)
        if end in self._free_size:
            end += self._drop_free(end)
        self._add_free(start, end - start)

    def stats(self) -> Stats:
        return Stats(self.allocated, self.size - self.allocated, self.largest_free, self.lowest_occupied)

    @property
    def largest_free(self) -> int:
        return max(self._free_size.values(), default=0)

    @property
    def lowest_occupied(self) -> int | None:
        return self._starts[0] if self._starts else None

    def blocks(self) -> list[tuple[int, int, bool]]:
        """(address, size, allocated) in address order, like ttnn.get_memory_view's block table."""
        return sorted(
            [(a, s, True) for a, s in self._used.items()] + [(a, s, False) for a, s in self._free_size.items()]
        )

    def used_blocks(self) -> tuple[tuple[int, int], ...]:
        """(address, size) of every allocated block, lowest first."""
        return tuple((a, self._used[a]) for a in self._starts)

    def _add_free(self, start: int, size: int) -> None:
        self._free_size[start] = size
        bisect.insort(self._free, start)

    def _drop_free(self, start: int) -> int:
        del self._free[bisect.bisect_left(self._free, start)]
        return self._free_size.pop(start)


__all__ = ["BankAllocator", "Stats"]
