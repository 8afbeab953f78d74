"""The device an exported program runs on in its generated test: the only fxport import the
generated files make.

On a Tenstorrent card the program runs as written, on real ttnn. Without one it runs on fxport's
mock device, which validates and allocates for real but computes nothing: the program's `ttnn`
is then swapped for a namespace that issues every call to ttnn and computes its value with the
op's golden function (fxport.runtime.dual), as `fxport run` does. It counts the calls.
"""

from __future__ import annotations

import contextlib
import types
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

from fxport.runtime.devices import open_session_device
from fxport.runtime.dual import DualOps
from fxport.values import TTValue


@dataclass
class ProgramDevice:
    device: Any  # the ttnn device to build the program with
    kind: str  # "hardware" or "mock"
    calls: list[str] = field(default_factory=list)  # ttnn calls issued through the program (mock)


class EmulatedTTNN:
    """`ttnn` for a program on the mock: functions run through DualOps (device call plus golden
    value), classes and constants are ttnn's own."""

    def __init__(
        self, calls: list[str], ops: DualOps | None = None, prefix: str = "", module: Any = None, values: bool = True
    ):
        import ttnn

        self._ttnn, self._calls, self._prefix, self._values = module or ttnn, calls, prefix, values
        self._ops = ops or DualOps(ttnn, emulate=values, on_call=calls.append)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._ttnn, name)
        if not self._prefix and name == "to_torch":
            return self._to_torch
        if not self._prefix and name == "conv2d":
            return self._conv2d
        if not self._prefix and name == "from_torch" and not self._values:
            return self._from_meta
        if isinstance(value, types.ModuleType):  # ttnn.transformer.scaled_dot_product_attention
            return EmulatedTTNN(self._calls, self._ops, f"{self._prefix}{name}.", value)
        if callable(value) and not isinstance(value, type):
            return getattr(self._ops, f"{self._prefix}{name}")
        return value

    def _conv2d(self, *args: Any, **kwargs: Any) -> Any:
        """Prepared weights come back without values (the golden computes the output only): they
        keep the host weights' values, as the conv rule's own prepared copies do."""
        out = self._ops.conv2d(*args, **kwargs)
        if not kwargs.get("return_weights_and_bias"):
            return out
        y, (w, b) = out
        return y, (_with_value(w, kwargs.get("weight_tensor")), _with_value(b, kwargs.get("bias_tensor")))

    def _to_torch(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        self._calls.append("to_torch")
        if not self._values and isinstance(value, TTValue):  # no values: the read back's size
            dtype = torch.int32 if value.tt.dtype in (self._ttnn.uint32, self._ttnn.int32) else torch.bfloat16
            dtype = torch.float32 if value.tt.dtype == self._ttnn.float32 else dtype
            return torch.empty(tuple(value.tt.shape), dtype=dtype, device="meta")
        return value.golden if isinstance(value, TTValue) else self._ttnn.to_torch(value, *args, **kwargs)

    def _from_meta(self, tensor: Any, *args: Any, **kwargs: Any) -> Any:
        """Without values (meta weights and inputs, as a verdict run has): a device tensor is
        allocated, not filled, as the run did; a host-side one (a conv weight, prepared later) is
        zeros of its size."""
        if not isinstance(tensor, torch.Tensor) or not tensor.is_meta:
            return self._ops.from_torch(tensor, *args, **kwargs)
        if kwargs.get("device") is None:
            return self._ops.from_torch(torch.zeros(tensor.shape, dtype=tensor.dtype), *args, **kwargs)
        self._calls.append("from_torch")
        layout = kwargs.get("layout") or self._ttnn.ROW_MAJOR_LAYOUT
        dtype = kwargs.get("dtype") or self._ttnn.bfloat16
        memory = kwargs.get("memory_config") or self._ttnn.DRAM_MEMORY_CONFIG
        device = kwargs["device"]
        empty = self._ttnn.empty(list(tensor.shape), dtype=dtype, layout=layout, device=device, memory_config=memory)
        return TTValue(empty, None)


@contextlib.contextmanager
def program_device(module: Any, kind: str = "auto", values: bool = True) -> Iterator[ProgramDevice]:
    """Open the device for the program `module` (an imported `<name>_ttnn.py`). `values=False`:
    the program is given meta weights and inputs (sizes only, as a verdict run has): the mock
    allocates and validates every call, and computes nothing."""
    handle = open_session_device(kind)
    calls: list[str] = []
    saved = module.ttnn
    if handle.is_mock:
        module.ttnn = EmulatedTTNN(calls, values=values)
    try:
        yield ProgramDevice(handle.device, handle.kind, calls)
    finally:
        module.ttnn = saved


def _with_value(prepared: Any, given: Any) -> Any:
    if isinstance(prepared, TTValue) and prepared.golden is None and isinstance(given, TTValue):
        return TTValue(prepared.tt, None if given.golden is None else given.golden.float())
    return prepared
