"""Tile arithmetic: how many bytes a tensor takes on a Tenstorrent device, and why.

TILE layout stores 32x32 tiles, one tile per page: the last two dims (H, W) are padded up to
multiples of 32. ROW_MAJOR stores one row (the last dim) per page. TT-NN keeps at least two dims,
so a rank-1 tensor [n] is stored as [1, n] and a rank-0 tensor as [1, 1]: in TILE layout both
grow to 32 rows. Shapes are plain tuples and dtypes plain names: no torch, no ttnn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

TILE = 32
TILE_ELEMENTS = TILE * TILE
TILE_LAYOUT = "TILE"
ROW_MAJOR_LAYOUT = "ROW_MAJOR"
LAYOUTS = (TILE_LAYOUT, ROW_MAJOR_LAYOUT)


@dataclass(frozen=True)
class DType:
    name: str
    tile_bytes: int  # one 32x32 tile, i.e. one TILE-layout page
    element_bytes: int | None  # None: block-float formats exist only in TILE layout


# Device dtypes (ttnn names). Block floats share one exponent per 16 values: bfloat8_b is 1024
# mantissa bytes + 64 exponent bytes a tile, bfloat4_b 512 + 64.
DTYPES: dict[str, DType] = {
    d.name: d
    for d in (
        DType("float32", 4096, 4),
        DType("bfloat16", 2048, 2),
        DType("bfloat8_b", 1088, None),
        DType("bfloat4_b", 576, None),
        DType("int32", 4096, 4),
        DType("uint32", 4096, 4),
        DType("uint16", 2048, 2),
        DType("int8", 1024, 1),
        DType("uint8", 1024, 1),
    )
}

# What `ttnn.from_torch` stores for each torch dtype (measured with ttnn 0.81.1). float64 is not
# accepted at all (from_torch aborts), so a lowering must cast it; it is sized as that float32.
TORCH_TO_DEVICE: dict[str, str] = {
    "float32": "float32",
    "bfloat16": "bfloat16",
    "float16": "bfloat16",
    "float64": "float32",
    "int64": "uint32",
    "int32": "int32",
    "int16": "uint16",
    "uint16": "uint16",
    "uint32": "uint32",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "uint8",
}


def device_dtype(name: str) -> DType:
    """The device dtype a tensor of dtype `name` (torch or ttnn name) is stored as."""
    name = name.removeprefix("torch.")
    key = TORCH_TO_DEVICE.get(name, name)
    if key not in DTYPES:
        raise ValueError(
            f"no TT-NN storage for dtype {name!r}; known: {', '.join(sorted(set(TORCH_TO_DEVICE) | set(DTYPES)))}"
        )
    return DTYPES[key]


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def storage_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """The shape TT-NN stores: at least two dims ([n] -> [1, n], [] -> [1, 1])."""
    shape = tuple(int(d) for d in shape)
    return ((1,) * (2 - len(shape)) + shape) if len(shape) < 2 else shape


def padded_shape(shape: Sequence[int], layout: str = TILE_LAYOUT) -> tuple[int, ...]:
    _check_layout(layout)
    stored = storage_shape(shape)
    if layout == ROW_MAJOR_LAYOUT:
        return stored
    return stored[:-2] + (round_up(stored[-2], TILE), round_up(stored[-1], TILE))


@dataclass(frozen=True)
class Pages:
    """How a tensor is cut into pages: the unit interleaved buffers deal out to banks."""

    count: int
    size: int  # bytes per page, before any bank alignment

    @property
    def bytes(self) -> int:
        return self.count * self.size


def pages(shape: Sequence[int], dtype: str, layout: str = TILE_LAYOUT) -> Pages:
    dt = device_dtype(dtype)
    padded = padded_shape(shape, layout)
    if layout == TILE_LAYOUT:
        return Pages(math.prod(padded) // TILE_ELEMENTS, dt.tile_bytes)
    if dt.element_bytes is None:
        raise ValueError(f"{dt.name} exists only in TILE layout")
    return Pages(math.prod(padded[:-1]), padded[-1] * dt.element_bytes)


def logical_bytes(shape: Sequence[int], dtype: str) -> int:
    """The data itself, no padding (block floats count their share of exponent bytes)."""
    dt = device_dtype(dtype)
    return -(-math.prod(int(d) for d in shape) * dt.tile_bytes // TILE_ELEMENTS)


def padded_bytes(shape: Sequence[int], dtype: str, layout: str = TILE_LAYOUT) -> int:
    """Bytes of all pages, i.e. what the device stores (before bank alignment of small pages)."""
    return pages(shape, dtype, layout).bytes


@dataclass(frozen=True)
class DimPadding:
    name: str  # "H" or "W": the two dims TILE layout pads
    logical: int
    padded: int

    def __str__(self) -> str:
        return f"{self.name} {self.logical}->{self.padded}"


@dataclass(frozen=True)
class Padding:
    """Padding overhead of one tensor: factor = padded / logical bytes, and the dims responsible."""

    shape: tuple[int, ...]
    dtype: str
    layout: str
    logical_bytes: int
    padded_bytes: int
    dims: tuple[DimPadding, ...]  # only dims that grew
    note: str  # e.g. "H 49->64, W 4->32" or "trailing 1x1 dims padded to 32x32"

    @property
    def factor(self) -> float:
        return self.padded_bytes / self.logical_bytes if self.logical_bytes else 1.0

    def __str__(self) -> str:
        return f"{self.factor:.2f}x ({self.note})" if self.dims else "1.00x (no padding)"


def padding(shape: Sequence[int], dtype: str, layout: str = TILE_LAYOUT) -> Padding:
    shape = tuple(int(d) for d in shape)
    stored, padded = storage_shape(shape), padded_shape(shape, layout)
    dims = tuple(DimPadding(name, stored[i], padded[i]) for name, i in (("H", -2), ("W", -1)) if padded[i] != stored[i])
    note = ", ".join(str(d) for d in dims)
    if len(shape) < 2 and dims:
        note = f"rank-{len(shape)} {list(shape)} stored as {list(stored)}: {note}"
    elif len(dims) == 2 and stored[-2:] == (1, 1):
        note = "trailing 1x1 dims padded to 32x32"
    return Padding(
        shape,
        device_dtype(dtype).name,
        layout,
        logical_bytes(shape, dtype),
        padded_bytes(shape, dtype, layout),
        dims,
        note,
    )


MIB = 1 << 20


def fmt_bytes(n: int) -> str:
    """'802,160,640 B (765.0 MiB)': exact bytes first, MiB (2^20) for scale."""
    return f"{n:,} B ({n / MIB:,.1f} MiB)" if n >= MIB else f"{n:,} B"
