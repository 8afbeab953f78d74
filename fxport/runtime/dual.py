"""Runs ttnn calls for real and, on a mock device, their golden functions for the values.

A mock device validates and allocates for real but computes nothing (reads back zeros). Lowering
rules are written once against the ttnn API through `DualOps`: every call goes to the real ttnn
op (argument validation, program selection, allocation: real verdicts) and, on a mock device,
the same arguments with torch tensors in place of device tensors go to the op's golden function
(emulated values). On hardware the values are read back from the device when needed.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator

import torch

from fxport.runtime.golden import golden_function
from fxport.runtime.verdict_cache import VerdictCache
from fxport.values import TTValue


class ShapeMismatch(RuntimeError):
    """The golden function disagrees with the device op on the output shape: the lowering's
    argument translation is wrong (a bug in a rule, never a device verdict)."""


class DualOps:
    """`ops.add(a, b, memory_config=...)` calls `ttnn.add` and, on a mock, its golden function."""

    def __init__(
        self,
        ttnn_module: Any,
        emulate: bool,
        on_call: Callable[[str], None] | None = None,
        cache: VerdictCache | None = None,
        device: Any = None,
        is_environment_error: Callable[[BaseException], bool] = lambda exc: False,
        on_result: Callable[[str, tuple, dict, Any], None] | None = None,
        quiet: Callable[[], Any] | None = None,
    ):
        self._ttnn = ttnn_module
        self._on_result = on_result  # sees every call with its result (fxport export's record)
        self._quiet = quiet  # a context in which ttnn's own work and golden functions run unrecorded
        self._emulate = emulate
        self._on_call = on_call
        # Verdict runs only: with values to compute, a replayed call would have none.
        self._cache = cache if not emulate else None
        self._device, self._is_environment_error = device, is_environment_error
        self.tape: Any = None  # a partition's call list being recorded (fxport.runtime.call_list)

    @contextmanager
    def uncached(self) -> Iterator[None]:
        """Calls whose allocations are measured run for real: a replayed call allocates its
        outputs only, not its intermediates and circular buffers."""
        cache, self._cache = self._cache, None
        try:
            yield
        finally:
            self._cache = cache

    def _call(self, name: str, op: Any, args: tuple, kwargs: dict) -> Any:
        tt_args, tt_kwargs = _swap(args, _tt), _swap(kwargs, _tt)
        if self._cache is not None:
            out = self._cache.call(self._ttnn, self._device, name, op, tt_args, tt_kwargs, self._is_environment_error)
        else:
            out = op(*tt_args, **tt_kwargs)
        golden = None
        if self._emulate:
            golden = golden_function(name, op)(*_swap(args, _golden), **_swap(kwargs, _golden))
        return pair(name, out, golden)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        op = self._ttnn
        for part in name.split("."):
            op = getattr(op, part)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._on_call:
                self._on_call(name)
            with self._quiet() if self._quiet else nullcontext():
                result = self._call(name, op, args, kwargs)
            if self._on_result:
                self._on_result(name, args, kwargs, result)
            if self.tape is not None:
                self.tape.call(name, op, args, kwargs, result)
            return result

        call.__name__ = name
        return call


def _swap(value: Any, fn: Callable[[Any], Any]) -> Any:
    """`fn` applied to every value in nested lists, tuples and dicts: what pytree's tree_map does
    for the containers ttnn's arguments use, at a fraction of its per-call cost (every ttnn call
    maps its arguments twice)."""
    if isinstance(value, (list, tuple)):
        mapped = [_swap(v, fn) for v in value]
        if type(value) in (list, tuple):
            return mapped if type(value) is list else tuple(mapped)
        return type(value)(*mapped) if hasattr(value, "_fields") else type(value)(mapped)  # namedtuple, Size
    if isinstance(value, dict):
        return {k: _swap(v, fn) for k, v in value.items()}
    return fn(value)


def _tt(v: Any) -> Any:
    return v.tt if isinstance(v, TTValue) else v


def _golden(v: Any) -> Any:
    return v.golden if isinstance(v, TTValue) else v


def pair(name: str, out: Any, golden: Any) -> Any:
    """The ttnn result with its golden value beside each device tensor (TTValue), rounded to the
    dtype the device stores."""
    if isinstance(out, (list, tuple)):
        if not isinstance(golden, (list, tuple)):  # golden functions may return the main output only
            golden = [golden]
        golden = [*golden, *[None] * (len(out) - len(golden))]
        return type(out)(pair(name, o, g) for o, g in zip(out, golden))
    if not is_ttnn_tensor(out):
        return out
    if isinstance(golden, torch.Tensor):
        golden = _as_device_precision(out, golden)
        if tuple(golden.shape) != tuple(out.shape):
            raise ShapeMismatch(f"ttnn.{name}: device output {list(out.shape)} but golden {list(golden.shape)}")
    return TTValue(out, golden)


def is_ttnn_tensor(x: Any) -> bool:
    return type(x).__name__ == "Tensor" and hasattr(x, "storage_type")


def _as_device_precision(out: Any, golden: torch.Tensor) -> torch.Tensor:
    """Round the emulated value to the dtype the device stores (bf16 by default), so that a mock
    run shows the precision loss a device run would have."""
    import ttnn

    torch_dtype = {
        ttnn.bfloat16: torch.bfloat16,
        ttnn.float32: torch.float32,
        ttnn.uint32: torch.int64,
        ttnn.int32: torch.int64,
    }.get(out.dtype)
    if torch_dtype is None and out.dtype in (ttnn.bfloat8_b, ttnn.bfloat4_b) and golden.is_floating_point():
        return _block_float(golden, out.dtype)
    if torch_dtype is None:  # other formats: bf16 is the closest torch dtype
        torch_dtype = torch.bfloat16 if golden.is_floating_point() else golden.dtype
    if golden.is_floating_point() and torch_dtype in (torch.int64,):
        return golden.round().to(torch_dtype)
    return golden.to(torch_dtype)


def _block_float(golden: torch.Tensor, dtype) -> torch.Tensor:
    """The value packed as the device packs a block-float tensor (one exponent per 16 values of
    a row, through ttnn's own host conversion) and read back, in bf16 like other activations."""
    import ttnn

    rows = golden.detach().float().reshape(-1, golden.shape[-1]) if golden.dim() >= 2 else golden.float().reshape(1, -1)
    if rows.numel() == 0:
        return golden.to(torch.bfloat16)
    packed = ttnn.Tensor(tensor=rows.contiguous(), data_type=dtype, layout=ttnn.TILE_LAYOUT).to_torch()
    return packed.reshape(golden.shape).to(torch.bfloat16)
