"""The remedy ladder: what can make an out-of-memory node fit, in the order worth trying, and
how a remedy the device confirmed is chosen.

A remedy is data: where the node's activations go (`memory`), the layout its tensors keep
(`layout`: row-major instead of 32x32 tiles), TT-NN's DRAM slicing of a convolution (`slices`),
or a split of the node along one named dim (`dim`, `chunks`). The executor re-runs the node with
it (fxport/runtime/remedy_trials.py); a remedy is offered only when the allocator took it then
(verified). Rungs:

1. DRAM placement (when the node failed in L1);
2. row-major layout, in L1 then DRAM, for a tile-padding blow-up (a tensor the 32x32 tiles grow
   at least 2x, such as trailing 1x1 dims padded to 32x32: 1024x);
3. TT-NN's own DRAM slicing of a convolution (`ttnn.Conv2dSliceConfig`, height slices: TT-NN's
   own count, then 2, 4, ... 64);
4. a split along one named dim into the fewest chunks the tile arithmetic says fit DRAM
   (elementwise and activation ops, whose output dims each come from the same dim of every input).

Not on the ladder: L1 sharding. Interleaving already deals a buffer's pages evenly over every bank,
so a height, width or block shard is never smaller per core than the interleaved per-bank share
(the reason it never made a node fit when it was a rung); and a node that fails only on circular
buffers is moved out of their way by rung 1.

Of the remedies the device confirms, the cheapest wins: the fewest device bytes the node
allocates with it (TT-NN's record of the re-run), then the fewest chunks, then ladder order. So
a 1024x padded view takes the row-major rung (its bytes shrink 64x) even when DRAM holds the
padded tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from fxport.memory.model import dim_names

PADDING_BLOWUP = 2.0  # a tensor at least this much bigger in tiles than its data
CONV_SLICES = (0, 2, 4, 8, 16, 32, 64)  # 0: TT-NN picks the count
CHUNKABLE_FAMILIES = ("eltwise", "activation")


@dataclass(frozen=True)
class Remedy:
    kind: str  # "dram", "row_major", "conv_slices", "chunk"
    memory: str  # "l1" or "dram": where the node's activations go
    layout: str = ""  # "row_major": the node's tensors stay row-major
    slices: int = 0  # conv2d DRAM height slices (0 with kind conv_slices: TT-NN's choice)
    dim: int | None = None  # chunk: the output dim split
    chunks: int = 0
    dim_name: str = ""

    @property
    def text(self) -> str:
        where = self.memory.upper()
        if self.kind == "dram":
            return "DRAM instead of L1"
        if self.kind == "row_major":
            return f"ROW_MAJOR layout in {where} (no 32x32 tile padding)"
        if self.kind == "conv_slices":
            count = f"{self.slices} slices" if self.slices else "TT-NN's slice count"
            return f"TT-NN DRAM slicing of the convolution (Conv2dSliceConfig, height, {count})"
        return f"split dim {self.dim} ({self.dim_name}) into {self.chunks} chunks, in {where}"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "memory": self.memory,
            "layout": self.layout,
            "slices": self.slices,
            "dim": self.dim,
            "chunks": self.chunks,
            "text": self.text,
        }


@dataclass(frozen=True)
class Verified:
    """A remedy the device ran the node with, and what it cost."""

    remedy: Remedy
    bytes: int  # device bytes the node's buffers took (TT-NN's record of the re-run)
    tried: tuple[str, ...] = field(default=())  # the rungs tried, with how each ended

    @property
    def text(self) -> str:
        return f"{self.remedy.text} (verified: the allocator took it, {self.bytes:,} B on the device)"


def ladder(
    memory: str, family: str, is_conv: bool, padding_factor: float, chunking: Sequence[tuple[int, int, int]] = ()
) -> list[Remedy]:
    """The rungs to try for a node that ran out of memory with its activations in `memory`.
    `padding_factor`: the worst tile padding among its tensors; `chunking`: (dim, chunks, rank)
    candidates from the tile arithmetic (fewest chunks first)."""
    rungs: list[Remedy] = []
    if memory == "l1":
        rungs.append(Remedy("dram", "dram"))
    if padding_factor >= PADDING_BLOWUP:
        if memory == "l1":
            rungs.append(Remedy("row_major", "l1", layout="row_major"))
        rungs.append(Remedy("row_major", "dram", layout="row_major"))
    if is_conv:
        rungs += [Remedy("conv_slices", "dram", slices=k) for k in CONV_SLICES]
    if family in CHUNKABLE_FAMILIES:
        rungs += [Remedy("chunk", "dram", dim=d, chunks=k, dim_name=dim_names(rank)[d]) for d, k, rank in chunking]
    return rungs


def cheapest(found: Sequence[Verified]) -> Verified | None:
    """Fewest device bytes, then fewest chunks, then ladder order (`found` is in ladder order)."""
    if not found:
        return None
    return min(enumerate(found), key=lambda iv: (iv[1].bytes, iv[1].remedy.chunks, iv[0]))[1]


__all__ = ["CHUNKABLE_FAMILIES", "CONV_SLICES", "PADDING_BLOWUP", "Remedy", "Verified", "cheapest", "ladder"]
