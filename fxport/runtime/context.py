"""What a lowering rule sees: the device, the dual ttnn namespace and value conversions."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import torch

from fxport.runtime.devices import DeviceHandle, environment_error
from fxport.runtime.dual import DualOps
from fxport.runtime.recording import Recorder
from fxport.runtime.verdict_cache import VerdictCache
from fxport.settings import DTYPES, MATH_FIDELITIES, MEMORY_CONFIGS, VALUE_MODES, check_choice
from fxport.values import HostValue, TTValue


@dataclass
class TransferLog:
    """Moves between host and device, counted from the same ttnn calls as CallCounts' `transfer`
    (to_device + to_host == transfer): activations' moves happen on every inference; constants
    are uploaded once per compiled model (CallCounts' `weights`)."""

    to_device: int = 0  # activations host -> device (boundary inputs, re-entries after the host)
    to_host: int = 0  # activations device -> host (boundary outputs, fallback inputs)
    layout_changes: int = 0
    constants: int = 0  # weights, buffers and folded constants uploaded (once)


CALL_KINDS = ("compute", "layout", "transfer", "weights")
_TRANSFERS = frozenset({"from_torch", "to_torch", "to_device", "from_device", "empty"})
_TO_HOST = frozenset({"to_torch", "from_device"})


@dataclass
class CallCounts:
    """The ttnn calls a run issued, counted where they leave fxport (every `ctx.ops` call and the
    context's own conversions and transfers), by kind:
    compute: the ops of the model; layout: conversions the lowering adds (TILE <-> ROW_MAJOR,
    NCHW <-> flattened NHWC, dtype casts); transfer: host <-> device moves of activations;
    weights: uploads and preparation of the model's constants, made once per compiled model and
    reused by later inferences (they are not part of the per-inference total)."""

    compute: int = 0
    layout: int = 0
    transfer: int = 0
    weights: int = 0
    ops: Counter = field(default_factory=Counter)  # per-inference calls by ttnn op name

    @property
    def per_inference(self) -> int:
        return self.compute + self.layout + self.transfer

    def add(self, kind: str, name: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if kind != "weights":
            self.ops[name] += 1

    def copy(self) -> "CallCounts":
        return CallCounts(self.compute, self.layout, self.transfer, self.weights, Counter(self.ops))

    def since(self, earlier: "CallCounts") -> "CallCounts":
        """The calls made after `earlier` (a copy of these counts taken then)."""
        return CallCounts(
            self.compute - earlier.compute,
            self.layout - earlier.layout,
            self.transfer - earlier.transfer,
            self.weights - earlier.weights,
            self.ops - earlier.ops,
        )

    def repeated(self, calls: "CallCounts", times: int) -> None:
        """Add `times` more runs of a node's `calls` (a node a folded capture traced once but runs
        `times` + 1 times). Its compute and conversions repeat; weights are made once, and its
        transfers brought in the first call's inputs (later calls take the previous one's)."""
        self.compute += times * calls.compute
        self.layout += times * calls.layout
        for name, n in calls.ops.items():
            if name not in _TRANSFERS:
                self.ops[name] += times * n

    def to_dict(self) -> dict:
        return {
            "compute": self.compute,
            "layout": self.layout,
            "transfer": self.transfer,
            "per_inference": self.per_inference,
            "weights_once": self.weights,
            "by_op": dict(sorted(self.ops.items())),
        }


class DeviceConstants:
    """The device copies of a compiled model's constants (parameters, buffers, folded weights):
    made by the first inference that needs them, kept for every later one, as a deployed model
    keeps its weights on the device (in DRAM: activations alone use the configured memory).
    Tensors are known by identity; the cache holds them, so identities stay unique."""

    def __init__(self, tensors: Iterable[torch.Tensor] = ()):
        self._tensors = {id(t): t for t in tensors}
        self.copies: dict[tuple, Any] = {}

    def holds(self, tensor: torch.Tensor) -> bool:
        return id(_root(tensor)) in self._tensors

    def key(self, tensor: torch.Tensor, *what: Any) -> tuple:
        """A view of a constant (a transposed weight) is its own entry."""
        root = _root(tensor)
        return (id(root), tuple(tensor.shape), tuple(tensor.stride()), tensor.storage_offset(), *what)


def _root(t: torch.Tensor) -> torch.Tensor:
    return t._base if t._base is not None else t


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
    constants: DeviceConstants = field(default_factory=DeviceConstants)
    weights: str = "bfloat16"  # the dtype of constant conv and linear weights on the device
    calls: CallCounts = field(default_factory=CallCounts)
    # How deployed TT-NN models run their compute ops (`--math-fidelity`, `--activations`): ""
    # keeps TT-NN's default fidelity; bfloat8_b makes matmul, linear and conv outputs block floats.
    fidelity: str = ""
    activations: str = "bfloat16"
    recorder: Recorder | None = None  # records every call for `fxport export`

    def __post_init__(self) -> None:
        import ttnn

        self.values = self.values or ("emulate" if self.device.is_mock else "device")
        check_choice("values", self.values, VALUE_MODES)
        if self.values == "emulate" and not self.device.is_mock:
            raise ValueError("golden-function values are for mock devices; hardware computes them")
        if self.values == "device" and self.device.is_mock:
            raise ValueError(
                "a mock device runs no kernels, so it has no values to read back; "
                "use values 'emulate' (golden functions) or 'none'"
            )
        check_choice("memory", self.memory, MEMORY_CONFIGS)
        check_choice("weights", self.weights, DTYPES)
        check_choice("math fidelity", self.fidelity, ("", *MATH_FIDELITIES))
        check_choice("activations", self.activations, DTYPES)
        self.ttnn = ttnn
        self.ops = DualOps(
            ttnn,
            emulate=self.values == "emulate",
            on_call=self.count,
            cache=self.cache if self.values == "none" else None,
            device=self.device.device,
            is_environment_error=lambda exc: environment_error(self.device, exc) is not None,
            on_result=self._record if self.recorder is not None else None,
            quiet=self.recorder.pause if self.recorder is not None else None,
        )
        self.memory_config = self._config(self.memory)
        # Per-node knobs the executor sets from the plan's placement and remedies (`placed`);
        # rules read them like the memory config: tensors kept row-major, conv DRAM slicing.
        self.layout = ""
        self.slice_config = None
        self.dtype = ttnn.bfloat16
        self.weights_dtype = getattr(ttnn, self.weights)
        self._kinds: list[str] = []
        self._last_kind = ""
        self.tape: Any = None  # a partition's call list being recorded (fxport.runtime.call_list)

    def kernel_options(self, op: str) -> dict:
        """The compute kernel arguments of the run's options for a compute op ("matmul" for
        matmul/linear, "conv2d", "sdpa"): the one place rules get math fidelity and the
        activations' dtype from. Empty for TT-NN's defaults (bf16 outputs, its own fidelity)."""
        ttnn = self.ttnn
        extra: dict = {}
        if self.fidelity:
            fidelity = {
                "lofi": ttnn.MathFidelity.LoFi,
                "hifi2": ttnn.MathFidelity.HiFi2,
                "hifi3": ttnn.MathFidelity.HiFi3,
                "hifi4": ttnn.MathFidelity.HiFi4,
            }[self.fidelity]
            config = ttnn.init_device_compute_kernel_config(self.device.device.arch(), math_fidelity=fidelity)
            extra["compute_config" if op == "conv2d" else "compute_kernel_config"] = config
        if self.activations != "bfloat16" and op in ("matmul", "conv2d"):
            extra["dtype"] = getattr(ttnn, self.activations)
        return extra

    # -- counting -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def counting(self, kind: str) -> Iterator[None]:
        """Count the ttnn calls made inside as `kind` ("layout" for a lowering's conversions,
        "weights" for constants' one-time preparation); transfers stay transfers."""
        self._kinds.append(kind)
        try:
            yield
        finally:
            self._kinds.pop()

    def count(self, name: str, kind: str = "") -> None:
        """Count one ttnn call (`ctx.ops` calls count themselves; a rule calling ttnn directly
        counts its call here). `kind`: as counted when the call was recorded (a replayed call
        list, fxport.runtime.call_list); else from the `counting` the call is made in."""
        if not kind:
            kind = self._kinds[-1] if self._kinds else "compute"
            if kind != "weights" and name in _TRANSFERS:
                kind = "transfer"
            elif kind == "compute" and name == "to_layout":
                kind = "layout"
        self._last_kind = kind
        self.calls.add(kind, name)
        # The transfer log counts the same calls: one set of numbers (a rule's own uploads too)
        if kind == "transfer":
            if name in _TO_HOST:
                self.transfers.to_host += 1
            else:
                self.transfers.to_device += 1
        elif kind == "weights" and name in _TRANSFERS:
            self.transfers.constants += 1

    @property
    def last_kind(self) -> str:
        """The kind the latest counted call was counted as."""
        return self._last_kind

    def _record(self, name: str, args: tuple, kwargs: dict, out: Any) -> None:
        self.recorder.add("ttnn", name, self._last_kind, args, kwargs, out)

    # -- constants ------------------------------------------------------------------------------
    def is_constant(self, value: Any) -> bool:
        return isinstance(value, HostValue) and self.constants.holds(value.tensor)

    def prepared(self, value: Any, key: tuple) -> Any:
        """What `keep_prepared` stored for a constant under `key` (a conv's device weights)."""
        if not self.is_constant(value):
            return None
        return self.constants.copies.get(self.constants.key(value.tensor, *key))

    def keep_prepared(self, value: Any, key: tuple, prepared: Any) -> None:
        if self.is_constant(value):
            self.constants.copies[self.constants.key(value.tensor, *key)] = prepared

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
                slice_type=self.ttnn.Conv2dDRAMSliceHeight, num_slices=slices
            )
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
            if self.is_constant(value):
                key = self.constants.key(value.tensor, layout, str(dtype))
                if key not in self.constants.copies:
                    with self.counting("weights"):
                        self.constants.copies[key] = self._upload(
                            value.tensor, want_layout, dtype, ttnn.DRAM_MEMORY_CONFIG
                        )
                return self.constants.copies[key]
            key = (layout, str(dtype))
            # Cached on the value: a host value feeding several nodes moves once, and its device
            # copy is freed with it after its last use.
            if key not in value.device_copies:
                value.device_copies[key] = self._upload(value.tensor, want_layout, dtype, self.memory_config)
            return value.device_copies[key]
        if isinstance(value, TTValue):
            if dtype is not None and value.tt.dtype != dtype:
                with self.counting("layout"):
                    value = self.ops.typecast(value, dtype)
            if want_layout != ttnn.TILE_LAYOUT and value.tt.dtype in (ttnn.bfloat8_b, ttnn.bfloat4_b):
                with self.counting("layout"):  # block floats exist in TILE layout only
                    value = self.ops.typecast(value, self.dtype)
            if value.tt.layout != want_layout:
                self.transfers.layout_changes += 1
                with self.counting("layout"):
                    value = self.ops.to_layout(value, want_layout)
            return value
        return value

    def _upload(self, t: torch.Tensor, layout: Any, dtype: Any, memory_config: Any) -> TTValue:
        ttnn = self.ttnn
        if dtype is None and not t.is_floating_point():  # indices: uint32 unless negative
            dtype = ttnn.int32 if (not t.is_meta and bool((t < 0).any())) else ttnn.uint32
        dtype = dtype or self.dtype
        if dtype in (ttnn.uint32, ttnn.int32):
            t = t.to(torch.int32)
        if t.is_meta:  # verdicts only: allocate, transfer nothing
            self.count("empty")
            out = TTValue(
                ttnn.empty(
                    list(t.shape), dtype=dtype, layout=layout, device=self.device.device, memory_config=memory_config
                ),
                None,
            )
            if self.recorder is not None:  # the program uploads what the run only allocated
                upload = {"dtype": dtype, "layout": layout, "device": self.device.device}
                upload["memory_config"] = memory_config
                self.recorder.add("ttnn", "from_torch", self._last_kind, (t,), upload, out)
            return out
        return self.ops.from_torch(
            t, dtype=dtype, layout=layout, device=self.device.device, memory_config=memory_config
        )

    def host(self, value: Any, like: torch.Tensor | None = None, count: bool = True) -> Any:
        """The value as a torch tensor on the host (golden value on a mock; read back on hardware),
        in the dtype of `like` when given (bf16 device results return as fp32 activations).
        `count=False` for reads that only measure (PCC), which a deployment would not do."""
        if self.tape is not None:  # a rule reading values: its calls may depend on them
            self.tape.read(value)
        if isinstance(value, HostValue):
            t = value.tensor
        elif isinstance(value, TTValue):
            if count:
                self.count("to_torch")
            if value.golden is not None:
                t = value.golden
            elif self.values == "none":  # the dtype a read back gives, converted below as values are
                with self.recorder.pause() if self.recorder is not None else contextlib.nullcontext():
                    t = torch.empty(value.shape, dtype=self._host_dtype(value.tt.dtype), device="meta")
            else:
                t = self.ttnn.to_torch(value.tt)
            if count and self.recorder is not None:
                self.recorder.add("to_torch", "to_torch", "transfer", (value,), {}, t)
        else:
            return value
        if like is not None and t.dtype != like.dtype:
            if t.is_floating_point() and not like.is_floating_point() and like.dtype != torch.bool:
                t = t.round()  # integer results computed in bf16 on the device
            t = t.to(like.dtype)
        return t

    def derive(self, value: HostValue, fn: Callable[[torch.Tensor], torch.Tensor]) -> HostValue:
        """A host value computed from `value` by `fn`, a function of its shape alone (a layout
        change made on the host before an upload): a recorded call list repeats `fn` on every
        replay (fxport.runtime.call_list)."""
        out = HostValue(fn(value.tensor))
        if self.tape is not None:
            self.tape.derive(value, fn, out.tensor)
        return out

    def _host_dtype(self, dtype: Any) -> torch.dtype:
        ttnn = self.ttnn
        if dtype in (ttnn.uint32, ttnn.int32):
            return torch.int32
        return torch.float32 if dtype == ttnn.float32 else torch.bfloat16

    def weight(self, value: Any) -> torch.Tensor:
        """Host data an op needs as an argument (conv or group-norm weights). Without values
        (meta weights), zeros of the right shape stand in: sizes, not numbers, decide verdicts."""
        t = self.host(value, count=False)
        if not t.is_meta:
            return t
        if self.recorder is None:
            return torch.zeros(t.shape, dtype=t.dtype)
        with self.recorder.pause():
            zeros = torch.zeros(t.shape, dtype=t.dtype)
        self.recorder.alias(zeros, t)  # the program reads the weight itself
        return zeros

    def host_weight(self, tensor: torch.Tensor, dtype: Any = None) -> TTValue:
        """A weight as a host-side ttnn tensor (ROW_MAJOR): conv2d prepares its own device copy
        from this form (see `prepared` for keeping that copy). A host-side conversion: no device
        verdict to cache."""
        with self.ops.uncached():
            return self.ops.from_torch(tensor, dtype=dtype or self.dtype)
