"""fxport as a torch.compile backend: `torch.compile(model, backend="fxport", options={...})`.

Registered through the `torch_dynamo_backends` entry point, so the name works after installation
without importing fxport. Dynamo hands over each captured graph; on its first call (with real
inputs) fxport exports it to aten, plans, partitions and runs it on the device; later calls reuse
the plan and the partitions. Options:

    device          "auto" (default), "mock" or "hardware"
    arch            mock board, "n150" (default) or "p150"
    memory_config   "dram" (default) or "l1"
    out             a directory: each graph's run.json and nodes.csv are written under it
    min_block_size  device partitions with fewer ops stay on the host (default 1)

Every run's `RunResult` is appended to `fxport.backend.results` for inspection.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import fx

from fxport.errors import FxportError

results: list = []  # RunResult of every graph run, in order

_OPTION_NAMES = {"device", "arch", "memory_config", "out", "min_block_size"}
_OPTION_VALUES = {"device": ("auto", "mock", "hardware"), "arch": (None, "n150", "p150"),
                  "memory_config": ("dram", "l1")}


@dataclass(frozen=True)
class BackendOptions:
    device: str = "auto"
    arch: str | None = None
    memory_config: str = "dram"
    out: str | None = None
    min_block_size: int = 1

    @classmethod
    def parse(cls, options: dict | None) -> "BackendOptions":
        options = dict(options or {})
        unknown = set(options) - _OPTION_NAMES
        if unknown:
            raise FxportError(f"unknown fxport backend option(s): {', '.join(sorted(unknown))}; "
                              f"known: {', '.join(sorted(_OPTION_NAMES))}")
        for name, allowed in _OPTION_VALUES.items():
            if name in options and options[name] not in allowed:
                raise FxportError(f"fxport backend option {name}={options[name]!r}: expected one of "
                                  f"{', '.join(map(repr, allowed))}")
        block = options.get("min_block_size", 1)
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise FxportError(f"fxport backend option min_block_size={block!r}: expected an integer >= 1")
        if options.get("out") is not None and not isinstance(options["out"], (str, Path)):
            raise FxportError(f"fxport backend option out={options['out']!r}: expected a directory path")
        return cls(**options)


def fxport_backend(gm: fx.GraphModule, example_inputs: list, options: dict | None = None):
    opts = BackendOptions.parse(options)
    if not _compiled_graphs:
        atexit.register(_release)
    return _CompiledGraph(gm, opts, index=len(_compiled_graphs))


def _release() -> None:
    """Drop dynamo's caches before exit: they keep objects alive that reference ttnn, and
    nanobind then reports every ttnn binding as leaked when the interpreter shuts down."""
    import gc

    _compiled_graphs.clear()
    torch._dynamo.reset()
    gc.collect()


_compiled_graphs: list["_CompiledGraph"] = []


def _session_device(opts: BackendOptions):
    from fxport.runtime.devices import open_session_device

    return open_session_device(opts.device, opts.arch)


class _CompiledGraph:
    def __init__(self, gm: fx.GraphModule, opts: BackendOptions, index: int):
        self.gm, self.opts, self.index = gm, opts, index
        self.compiled = None
        _compiled_graphs.append(self)

    def __call__(self, *args: Any) -> Any:
        from fxport.runner import compile_program, run_compiled
        from fxport.tracing import export

        inputs = tuple(args)
        with torch.no_grad():
            reference = self.gm(*inputs)
        single = not isinstance(reference, (list, tuple))
        reference_list = [reference] if single else list(reference)
        if self.compiled is None:  # first call: real inputs are known, export and plan once
            self.compiled = compile_program(export(self.gm, inputs), self.opts.min_block_size)
        result = run_compiled(self.compiled, inputs, reference_list, _session_device(self.opts),
                              self.opts.memory_config, f"graph{self.index}")
        results.append(result)
        if self.opts.out:
            from fxport.report.run_report import write_run

            write_run(result, Path(self.opts.out) / f"graph{self.index}")
        return result.outputs[0] if single else tuple(result.outputs)
