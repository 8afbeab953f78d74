"""What a lowering rule sees: the device, the dual ttnn namespace and value conversions."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from fxport.runtime.devices import DeviceHandle, environment_error
from fxport.runtime.dual import DualOps
from fxport.runtime.verdict_cache import VerdictCache
from fxport.values import HostValue, TTValue


@dataclass
class TransferLog:
    to_device: int = 0  # host -> device conversions (boundary inputs, constants, re-entries)
    to_host: int = 0  # device -> host reads (boundary outputs, fallback inputs)
    layout_changes: int = 0


VALUE_MODES = ("emulate", "device", "none")
MEMORY_MODES = ("dram", "l1", "auto")  # auto: per node, from the plan's placement (default DRAM)


@dataclass
class LoweringContext:
    """`values` says where values come from: "emulate" (golden functions; a mock's default),
    "device" (read back; hardware's default) or "none" (verdicts only: inputs and weights are meta
    tensors, device tensors are allocated empty, host nodes propagate shapes on meta; this is how
    full-size models get real validation and allocator verdicts without their weights)."""

    device: DeviceHandle
    memory: str = "dram"  # "dram", "l1", or "auto" (per node: `placement`)
    values: str = ""  # "" picks the device's default
    transfers: TransferLog = field(default_factory=TransferLog)
    placement: dict[str, str] = field(default_factory=dict)  # node -> "l1" / "dram" (the plan's)
    cache: VerdictCache | None = None  # used by verdict runs only (values "none")

    def __post_init__(self) -> None:
        import ttnn

        self.values = self.values or ("emulate" if self.device.is_mock else "device")
        if self.values not in VALUE_MODES:
            raise ValueError(f"values must be one of {VALUE_MODES}, not {self.values!r}")
        if self.values == "emulate" and not self.device.is_mock:
            raise ValueError("golden-function values are for mock devices; hardware computes them")
        if self.values == "device" and self.device.is_mock:
            raise ValueError("a mock device runs no kernels, so it has no values to read back; "
                             "use values 'emulate' (golden functions) or 'none'")
        if self.memory not in MEMORY_MODES:
            raise ValueError(f"memory must be one of {MEMORY_MODES}, not {self.memory!r}")
        self.ttnn = ttnn
        self.ops = DualOps(ttnn, emulate=self.values == "emulate",
                           cache=self.cache if self.values == "none" else None,
                           device=self.device.device,
                           is_environment_error=lambda exc: environment_error(self.device, exc) is not None)
        self.memory_config = self._config(self.memory)
        # Per-node knobs the executor sets from the plan's placement and remedies (`placed`);
        # rules read them like the memory config: tensors kept row-major, conv DRAM slicing.
        self.layout = ""
        self.slice_config = None
        self.dtype = ttnn.bfloat16
        self._constants: dict[tuple, TTValue] = {}

    # -- placement --------------------------------------------------------------------------------
    def _config(self, memory: str) -> Any:
        return self.ttnn.L1_MEMORY_CONFIG if memory == "l1" else self.ttnn.DRAM_MEMORY_CONFIG

    def memory_of(self, node: str) -> str:
        """Where `node`'s activations go: its placement, else the run's memory ("auto": DRAM)."""
        return self.placement.get(node) or ("dram" if self.memory == "auto" else self.memory)

    @contextlib.contextmanager
    def placed(self, node: str, remedy: Any = None) -> Iterator[None]:
        """Lower `node` with its placement (or `remedy`'s: memory, layout, conv slicing)."""
        saved = (self.memory_config, self.layout, self.slice_config)
        memory = getattr(remedy, "memory", "") or self.memory_of(node)
        self.memory_config = self._config(memory)
        self.layout = getattr(remedy, "layout", "")
        slices = getattr(remedy, "slices", 0)
        if slices:
            self.slice_config = self.ttnn.Conv2dSliceConfig(
                slice_type=self.ttnn.Conv2dDRAMSliceHeight, num_slices=slices)
        try:
            yield
        finally:
            self.memory_config, self.layout, self.slice_config = saved

    # -- values ---------------------------------------------------------------------------------
    def tensor(self, value: Any, layout: str = "tile", dtype: Any = None) -> Any:
        """The value as a device tensor in `layout`; Python scalars pass through unchanged."""
        ttnn = self.ttnn
        layout = self.layout or layout  # a row-major remedy keeps the node's tensors row-major
        want_layout = ttnn.TILE_LAYOUT if layout == "tile" else ttnn.ROW_MAJOR_LAYOUT
        if isinstance(value, HostValue):
            key = (layout, str(dtype))
            # Cached on the value: a host value feeding several nodes moves once, and its device
            # copy is freed with it after its last use.
            if key not in value.device_copies:
                self.transfers.to_device += 1
                t = value.tensor
                if dtype is None and not t.is_floating_point():  # indices: uint32 unless negative
                    dtype = ttnn.int32 if (not t.is_meta and bool((t < 0).any())) else ttnn.uint32
                dtype = dtype or self.dtype
                if t.is_meta:  # verdicts only: allocate, transfer nothing
                    moved = TTValue(ttnn.empty(list(t.shape), dtype=dtype, layout=want_layout,
                                               device=self.device.device,
                                               memory_config=self.memory_config), None)
                else:
                    if dtype in (ttnn.uint32, ttnn.int32):
                        t = t.to(torch.int32)
                    moved = self.ops.from_torch(t, dtype=dtype, layout=want_layout,
                                                device=self.device.device,
                                                memory_config=self.memory_config)
                value.device_copies[key] = moved
            return value.device_copies[key]
        if isinstance(value, TTValue):
            if dtype is not None and value.tt.dtype != dtype:
                value = self.ops.typecast(value, dtype)
            if value.tt.layout != want_layout:
                self.transfers.layout_changes += 1
                value = self.ops.to_layout(value, want_layout)
            return value
        return value

    def host(self, value: Any, like: torch.Tensor | None = None, count: bool = True) -> Any:
        """The value as a torch tensor on the host (golden value on a mock; read back on hardware),
        in the dtype of `like` when given (bf16 device results return as fp32 activations).
        `count=False` for reads that only measure (PCC), which a deployment would not do."""
        if isinstance(value, HostValue):
            t = value.tensor
        elif isinstance(value, TTValue):
            self.transfers.to_host += count
            if value.golden is not None:
                t = value.golden
            elif self.values == "none":
                t = torch.empty(value.shape, dtype=like.dtype if like is not None else torch.float32,
                                device="meta")
            else:
                t = self.ttnn.to_torch(value.tt)
        else:
            return value
        if like is not None and t.dtype != like.dtype:
            if t.is_floating_point() and not like.is_floating_point() and like.dtype != torch.bool:
                t = t.round()  # integer results computed in bf16 on the device
            t = t.to(like.dtype)
        return t

    def weight(self, value: Any) -> torch.Tensor:
        """Host data an op needs as an argument (conv or group-norm weights). Without values
        (meta weights), zeros of the right shape stand in: sizes, not numbers, decide verdicts."""
        t = self.host(value, count=False)
        return torch.zeros(t.shape, dtype=t.dtype) if t.is_meta else t

    def host_weight(self, key: str, tensor: torch.Tensor, dtype: Any = None) -> TTValue:
        """A weight as a host-side ttnn tensor (ROW_MAJOR): conv2d prepares its own weights from
        this form. Converted once per key."""
        key_ = ("host", key, str(dtype))
        if key_ not in self._constants:
            self._constants[key_] = self.ops.from_torch(tensor, dtype=dtype or self.dtype)
        return self._constants[key_]
