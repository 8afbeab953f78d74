"""A record of the ttnn calls a run issued, in order, for `fxport export` to write as a program.

The record is taken where the calls leave fxport (`DualOps` and the context's own reads), so the
program issues the calls the run made: the same lowering code, no second translator. The torch
functions rules apply on the host (an input permuted before it moves, a weight transposed before
its upload) are recorded too, through a torch function mode; golden functions (emulated values)
are not. Each entry keeps the objects themselves (arguments and outputs); the exporter names them.
Device tensors are kept as handles (identity and size), so that the record does not keep the
run's activations allocated.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch.overrides import TorchFunctionMode

from fxport.values import TTValue


@dataclass
class Entry:
    """One step of the run: a ttnn call ("ttnn"), a read back to the host ("to_torch"), a torch
    function a rule applied on the host ("torch"), an aten op run on the host ("host", a host
    node or a device node's fallback with its reason), or a stand-in for a value ("alias": the
    zeros a verdict run passes for a meta weight; the program passes the weight), or a
    "comment" (fxport's own op run on the host as its reference's torch calls, with the reason)."""

    step: str  # "ttnn", "to_torch", "torch", "host", "alias", "comment"
    name: str  # ttnn function name, or the aten op's name
    kind: str  # CallCounts kind: compute, layout, transfer, weights ("" for torch and host ops)
    args: tuple
    kwargs: dict
    out: Any
    node: Any = None  # the fx node being lowered (None outside a node)
    reason: str = ""  # a fallback's error, in one line
    fn: Any = None  # the torch function ("torch" entries)
    note: str = ""  # what the program should know about the call (a number the run did not have)


@dataclass(eq=False)
class Handle:
    """A device tensor as the record keeps it: its identity and size, not its buffer. Holding the
    tensors themselves would keep every activation of the run allocated (a full-size model then
    runs out of device memory that the run without a record frees as it goes)."""

    shape: tuple
    dtype: Any = None


@dataclass
class Recorder:
    entries: list[Entry] = field(default_factory=list)
    node: Any = None  # the node now running, set by the executor
    paused: int = 0
    notes: list[str] = field(default_factory=list)  # for the next call recorded
    noted: int = 0  # calls recorded with a note
    handles: dict[int, Handle] = field(default_factory=dict)  # id(live device tensor) -> its handle

    def add(
        self, step: str, name: str, kind: str, args: tuple, kwargs: dict, out: Any, reason: str = "", fn: Any = None
    ) -> None:
        if not self.paused:
            note = "; ".join(self.notes) if step == "ttnn" else ""
            if note:
                self.notes, self.noted = [], self.noted + 1
            args, kwargs = self._held(args, False), self._held(kwargs, False)
            out = self._held(out, True)
            self.entries.append(Entry(step, name, kind, args, kwargs, out, self.node, reason, fn, note))

    def _held(self, value: Any, made: bool) -> Any:
        """`value` with its device tensors as handles: fresh ones for a call's outputs (`made`),
        the handle given at its making for an argument (the same size: an id is reused only
        after its tensor is gone)."""
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            return type(value)(self._held(v, made) for v in value)
        if isinstance(value, dict):
            return {k: self._held(v, made) for k, v in value.items()}
        tt = value.tt if isinstance(value, TTValue) else value
        if isinstance(tt, torch.Tensor) or type(tt).__name__ != "Tensor" or not hasattr(tt, "storage_type"):
            return value
        shape = tuple(tt.shape)
        known = self.handles.get(id(tt))
        if made or known is None or known.shape != shape:
            known = self.handles[id(tt)] = Handle(shape, tt.dtype)
        return known

    def note(self, text: str) -> None:
        """A fact about the next ttnn call the program must say (a rule's stand-in number)."""
        if not self.paused:
            self.notes.append(text)

    def alias(self, stand_in: Any, value: Any) -> None:
        """`stand_in` takes the place of `value` in the run (zeros for a meta weight in a verdict
        run): the program reads `value` wherever the run read the stand-in."""
        self.add("alias", "alias", "", (value,), {}, stand_in)

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        """Golden functions and measurements: computed by fxport, not part of the program."""
        self.paused += 1
        try:
            yield
        finally:
            self.paused -= 1

    @contextlib.contextmanager
    def torch_functions(self) -> Iterator[None]:
        with _TorchCalls(self):
            yield


class _TorchCalls(TorchFunctionMode):
    def __init__(self, recorder: Recorder):
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if (
            not self.recorder.paused
            and not isinstance(func, (torch._ops.OpOverload, torch._ops.OpOverloadPacket))
            and _has_tensor(out)
        ):
            self.recorder.add("torch", getattr(func, "__name__", str(func)), "", args, kwargs, out, fn=func)
        return out


def _has_tensor(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_tensor(v) for v in value)
    return False
