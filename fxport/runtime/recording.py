"""A record of the ttnn calls a run issued, in order, for `fxport export` to write as a program.

The record is taken where the calls leave fxport (`DualOps` and the context's own reads), so the
program issues the calls the run made: the same lowering code, no second translator. The torch
functions rules apply on the host (an input permuted before it moves, a weight transposed before
its upload) are recorded too, through a torch function mode; golden functions (emulated values)
are not. Each entry keeps the objects themselves (arguments and outputs); the exporter names them.
Keeping them also keeps their identities unique for the length of the record.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch.overrides import TorchFunctionMode


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


@dataclass
class Recorder:
    entries: list[Entry] = field(default_factory=list)
    node: Any = None  # the node now running, set by the executor
    paused: int = 0
    notes: list[str] = field(default_factory=list)  # for the next call recorded
    noted: int = 0  # calls recorded with a note

    def add(
        self, step: str, name: str, kind: str, args: tuple, kwargs: dict, out: Any, reason: str = "", fn: Any = None
    ) -> None:
        if not self.paused:
            note = "; ".join(self.notes) if step == "ttnn" else ""
            if note:
                self.notes, self.noted = [], self.noted + 1
            self.entries.append(Entry(step, name, kind, args, kwargs, out, self.node, reason, fn, note))

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
