"""Memory of tensors and graph nodes on a device: bytes, per-bank need, verdicts, remedies.

A verdict is the allocator's own test: an interleaved buffer deals its pages round-robin over
all banks of a memory kind, and it fits when the fullest bank's share fits one bank.

Assumption for nodes: the inputs and the outputs of one op are live together (TT-NN allocates the
output while the inputs are held), and each is its own interleaved buffer. Nothing else is
counted: not other live tensors, not the op's circular buffers (those are per-core L1 and only the
device knows them). An input passed twice (x + x) counts twice: a record cannot tell one tensor
from two of the same spec, so the estimate errs high. `resident_bytes=` overrides the sum when a
caller knows better, e.g. from graph capture; it is then spread evenly over the banks.

Sizes in reports are exact bytes plus MiB (2^20 B). The seeds' "MB" figures (765.0, 255.34,
16,000) were MiB values, so severity bands are in MiB too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from fxport.memory.devices import CONFIGS, DRAM, L1, N150, DeviceMemory
from fxport.memory.tiles import (
    MIB,
    TILE_LAYOUT,
    Padding,
    Pages,
    device_dtype,
    fmt_bytes,
    padding,
    pages,
)

# (band, floor): a size belongs to the first band whose floor it exceeds.
SEVERITY_BANDS: tuple[tuple[str, int], ...] = (
    ("critical", 500 * MIB),
    ("high", 100 * MIB),
    ("medium", 50 * MIB),
    ("low", -1),
)


def severity(nbytes: int) -> str:
    """critical > 500 MiB, high > 100 MiB, medium > 50 MiB, low up to 50 MiB."""
    return next(band for band, floor in SEVERITY_BANDS if nbytes > floor)


@dataclass(frozen=True)
class Verdict:
    config: str  # "DRAM" or "L1" (interleaved)
    banks: int
    bank_size: int
    per_bank: int  # bytes the fullest bank must hold

    @property
    def fits(self) -> bool:
        return self.per_bank <= self.bank_size

    @property
    def short_by(self) -> int:
        """Bytes per bank missing (0 when it fits)."""
        return max(0, self.per_bank - self.bank_size)

    def __str__(self) -> str:
        if self.fits:
            return f"{self.config}: fits, each of {self.banks} banks needs {self.per_bank:,} B of {self.bank_size:,} B"
        return (
            f"{self.config}: short by {self.short_by:,} B per bank, each of {self.banks} banks "
            f"needs {self.per_bank:,} B but bank size is {self.bank_size:,} B"
        )

    def to_dict(self) -> dict:
        return {
            "config": self.config,
            "banks": self.banks,
            "bank_size": self.bank_size,
            "per_bank": self.per_bank,
            "fits": self.fits,
            "short_by": self.short_by,
        }


def _verdicts(device: DeviceMemory, per_bank: dict[str, int]) -> dict[str, Verdict]:
    return {c: Verdict(c, device.banks(c).count, device.banks(c).size, per_bank[c]) for c in CONFIGS}


def verdicts_for_bytes(total: int, device: DeviceMemory = N150) -> dict[str, Verdict]:
    """Verdicts for `total` bytes spread evenly over the banks (no page structure known), e.g.
    the requested size of a parsed OOM message, to say which config would have held it."""
    return _verdicts(device, {c: -(-total // device.banks(c).count) for c in CONFIGS})


@dataclass(frozen=True)
class TensorMemory:
    shape: tuple[int, ...]
    dtype: str  # as given (torch or ttnn name)
    device_dtype: str  # what the device stores
    layout: str
    pages: Pages
    padding: Padding
    verdicts: dict[str, Verdict]

    @property
    def logical_bytes(self) -> int:
        return self.padding.logical_bytes

    @property
    def padded_bytes(self) -> int:
        return self.padding.padded_bytes

    def per_bank(self, config: str) -> int:
        return self.verdicts[config].per_bank

    def to_dict(self) -> dict:
        return {
            "shape": list(self.shape),
            "dtype": self.dtype,
            "device_dtype": self.device_dtype,
            "layout": self.layout,
            "pages": self.pages.count,
            "page_size": self.pages.size,
            "logical_bytes": self.logical_bytes,
            "padded_bytes": self.padded_bytes,
            "padding_factor": round(self.padding.factor, 4),
            "padding": self.padding.note,
            "verdicts": {c: v.to_dict() for c, v in self.verdicts.items()},
        }


def tensor_memory(
    shape: Sequence[int], dtype: str, device: DeviceMemory = N150, layout: str = TILE_LAYOUT
) -> TensorMemory:
    return _tensor_memory(tuple(int(d) for d in shape), dtype, device, layout)


@functools.lru_cache(maxsize=4096)  # graphs repeat their shapes (every block, every step)
def _tensor_memory(shape: tuple[int, ...], dtype: str, device: DeviceMemory, layout: str) -> TensorMemory:
    p = pages(shape, dtype, layout)
    return TensorMemory(
        shape,
        dtype,
        device_dtype(dtype).name,
        layout,
        p,
        padding(shape, dtype, layout),
        _verdicts(device, {c: device.banks(c).need(p) for c in CONFIGS}),
    )


@dataclass(frozen=True)
class Remedy:
    """The first rung of the ladder that makes a node fit: DRAM instead of L1, then chunking."""

    kind: str  # "DRAM", "CHUNK", or "NONE" when nothing on the ladder fits
    config: str  # where the node would live
    per_bank: int  # bytes the fullest bank then needs
    bank_size: int
    text: str
    dim: int | None = None  # CHUNK: dim index in the node's largest tensor
    dim_name: str | None = None
    factor: int | None = None  # CHUNK: number of chunks
    tried: tuple[str, ...] = ()  # why the earlier rungs did not fit

    def to_dict(self) -> dict:
        d = {k: v for k, v in vars(self).items() if v is not None}
        d["tried"] = list(self.tried)
        return d


@dataclass(frozen=True)
class NodeMemory:
    node: str
    tensors: tuple[TensorMemory, ...]  # inputs, then outputs
    num_inputs: int
    resident_bytes: int  # padded bytes live at once (or the override)
    overridden: bool
    verdicts: dict[str, Verdict]
    device: DeviceMemory = field(repr=False)

    @property
    def outputs(self) -> tuple[TensorMemory, ...]:
        return self.tensors[self.num_inputs :]

    @property
    def logical_bytes(self) -> int:
        return sum(t.logical_bytes for t in self.tensors)

    @property
    def severity(self) -> str:
        return severity(self.resident_bytes)

    @property
    def worst_padding(self) -> Padding | None:
        padded = [t.padding for t in self.tensors if t.padding.dims]
        return max(padded, key=lambda p: p.padded_bytes - p.logical_bytes, default=None)

    def fits(self, config: str) -> bool:
        return self.verdicts[config].fits

    def remedy(self, config: str = L1) -> Remedy | None:
        """None when the node fits `config`; else the first remedy that fits (see `remedy`)."""
        return remedy(self, config)

    def explain(self, config: str = L1) -> str:
        """A few lines for a human: what is resident, padding, verdicts, the remedy."""
        what = (
            "override"
            if self.overridden
            else (f"{self.num_inputs} input(s) + {len(self.outputs)} output(s) resident together")
        )
        lines = [
            f"{self.node or 'node'}: {fmt_bytes(self.resident_bytes)} ({what}; "
            f"logical {fmt_bytes(self.logical_bytes)}), severity {self.severity}"
        ]
        worst = self.worst_padding
        if worst is not None and worst.factor >= 1.5:  # below that, padding explains little
            lines.append(f"tile padding {worst.factor:.2f}x on {list(worst.shape)} {worst.dtype}: {worst.note}")
        lines += [str(self.verdicts[c]) for c in CONFIGS]
        fix = self.remedy(config)
        if fix is not None:
            lines.append(f"remedy for {config}: {fix.text}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        fix = {c: (r.to_dict() if (r := self.remedy(c)) else None) for c in CONFIGS}
        return {
            "node": self.node,
            "device": self.device.name,
            "num_inputs": self.num_inputs,
            "tensors": [t.to_dict() for t in self.tensors],
            "resident_bytes": self.resident_bytes,
            "overridden": self.overridden,
            "logical_bytes": self.logical_bytes,
            "severity": self.severity,
            "verdicts": {c: v.to_dict() for c, v in self.verdicts.items()},
            "remedies": fix,
        }


def _shape_dtype(spec: Any) -> tuple[tuple[int, ...], str]:
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], str):
        return tuple(spec[0]), spec[1]
    return tuple(spec.shape), spec.dtype


def node_memory(
    record: Any = None,
    device: DeviceMemory = N150,
    *,
    inputs: Iterable[Any] = (),
    outputs: Iterable[Any] = (),
    name: str = "",
    layout: str = TILE_LAYOUT,
    resident_bytes: int | None = None,
) -> NodeMemory:
    """Memory of one node: `record` is an OpRecord (anything with .node, .inputs, .outputs of
    TensorSpec-likes), or pass `inputs`/`outputs` as specs or (shape, dtype) pairs."""
    if record is not None:
        inputs, outputs, name = record.inputs, record.outputs, name or record.node
    ins = [tensor_memory(*_shape_dtype(s), device, layout) for s in inputs]
    outs = [tensor_memory(*_shape_dtype(s), device, layout) for s in outputs]
    tensors = tuple(ins + outs)
    if resident_bytes is None:
        resident = sum(t.padded_bytes for t in tensors)
        verdicts = _verdicts(device, {c: sum(t.per_bank(c) for t in tensors) for c in CONFIGS})
    else:
        resident, verdicts = resident_bytes, verdicts_for_bytes(resident_bytes, device)
    return NodeMemory(name, tensors, len(ins), resident, resident_bytes is not None, verdicts, device)


# --- remedies -------------------------------------------------------------------------------


def dim_names(rank: int) -> tuple[str, ...]:
    """Names for the dims of a tensor, by NCHW convention: [batch, channels, height, width]."""
    names = [f"dim{i}" for i in range(rank)]
    if rank >= 3:
        names[0] = "batch"
    if rank == 4:
        names[1] = "channels"
    if rank >= 2:
        names[-2] = "height"
    if rank >= 1:
        names[-1] = "width"
    return tuple(names)


def _largest(node: NodeMemory) -> TensorMemory | None:
    return max(node.tensors, key=lambda t: t.padded_bytes, default=None)


def _chunked_need(node: NodeMemory, config: str, dim: int, size: int, rank: int, k: int) -> int:
    """Per-bank need of one chunk: tensors shaped like the reference along `dim` are cut into k
    chunks; the others (weights, broadcast operands) stay whole."""
    banks = node.device.banks(config)
    chunk = -(-size // k)
    total = 0
    for t in node.tensors:
        shape = t.shape
        if len(shape) == rank and shape[dim] == size:
            shape = shape[:dim] + (chunk,) + shape[dim + 1 :]
        total += banks.need(pages(shape, t.dtype, t.layout))
    if node.overridden:  # the override scales with the tensors it stands for
        whole = sum(t.per_bank(config) for t in node.tensors)
        return -(-node.verdicts[config].per_bank * total // whole) if whole else 0
    return total


def _smallest_chunking(node: NodeMemory, config: str) -> tuple[int, int, int] | None:
    """(dim, k, need) with the fewest chunks along one dim of the node's largest tensor; per-bank
    need only falls as k grows, so each dim is a binary search. Ties go to the outermost dim."""
    ref = _largest(node)
    if ref is None:
        return None
    bank_size = node.device.banks(config).size
    best = None
    for dim, size in enumerate(ref.shape):
        if size < 2 or _chunked_need(node, config, dim, size, len(ref.shape), size) > bank_size:
            continue
        lo, hi = 2, size
        while lo < hi:
            mid = (lo + hi) // 2
            if _chunked_need(node, config, dim, size, len(ref.shape), mid) <= bank_size:
                hi = mid
            else:
                lo = mid + 1
        if best is None or lo < best[1]:
            best = (dim, lo, _chunked_need(node, config, dim, size, len(ref.shape), lo))
    return best


def remedy(node: NodeMemory, config: str = L1) -> Remedy | None:
    """What makes `node` fit when it does not fit `config` (None when it fits):

    1. L1 wanted and DRAM fits: "DRAM instead of L1".
    2. Chunking: the fewest chunks k along one named dim of the node's largest tensor such that
       each chunk fits DRAM (tensors of the same rank and size along that dim are cut with it).
    Otherwise kind "NONE", with every rung's reason in `tried`.

    Sharding in L1 is no rung: interleaving already deals a buffer's pages evenly over every
    bank, so a height, width or block shard on one core is never smaller than the interleaved
    per-bank share, and cannot rescue a node interleaved L1 cannot hold.
    """
    if node.fits(config):
        return None
    tried: list[str] = []
    dram = node.verdicts[DRAM]
    if config == L1:
        if dram.fits:
            return Remedy(
                "DRAM",
                DRAM,
                dram.per_bank,
                dram.bank_size,
                f"DRAM instead of L1: each of {dram.banks} DRAM banks needs "
                f"{dram.per_bank:,} B of {dram.bank_size:,} B",
            )
        tried.append(str(dram))
    found = _smallest_chunking(node, DRAM)
    if found is None:
        tried.append("chunking: no single dim can be cut fine enough to fit DRAM")
        return Remedy(
            "NONE",
            config,
            node.verdicts[config].per_bank,
            node.verdicts[config].bank_size,
            "no remedy on the ladder fits: " + "; ".join(tried),
            tried=tuple(tried),
        )
    dim, k, need = found
    ref = _largest(node)
    size = ref.shape[dim]
    name = dim_names(len(ref.shape))[dim]
    return Remedy(
        "CHUNK",
        DRAM,
        need,
        dram.bank_size,
        f"split dim {dim} ({name}, size {size}) into {k} chunks of at most "
        f"{-(-size // k)}: each chunk needs {need:,} B per DRAM bank of "
        f"{dram.bank_size:,} B",
        dim=dim,
        dim_name=name,
        factor=k,
        tried=tuple(tried),
    )


__all__ = [
    "SEVERITY_BANDS",
    "NodeMemory",
    "Remedy",
    "TensorMemory",
    "Verdict",
    "dim_names",
    "node_memory",
    "remedy",
    "severity",
    "tensor_memory",
    "verdicts_for_bytes",
]
