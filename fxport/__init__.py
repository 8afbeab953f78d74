"""fxport: capture PyTorch models as aten graphs, lower them to TT-NN, and report what runs where.

Importing fxport is cheap: torch is imported, ttnn only when a device is opened.

    cap = fxport.trace(model, x, mask, kwargs={"labels": y})       # inventory, no device
    result = fxport.run(model, x, mask, device="mock")             # a RunResult
    compiled = fxport.compile(model, device="mock"); compiled(x)   # torch.compile(backend="fxport")

Positional inputs follow the model, keyword inputs go in `kwargs` (so that they never collide with
fxport's own options); inputs and outputs may be any pytree of tensors.
"""

from __future__ import annotations

__version__ = "0.1.0"


def trace(model, *args, kwargs: dict | None = None, name: str | None = None):
    """Capture `model(*args, **kwargs)` as aten graphs with per-node shapes and dtypes.

    Inputs may be real, meta or fake tensors; returns a `fxport.capture.Capture`. The model is put
    in eval mode first, as `fxport run`, `fxport trace` and `fxport.run` do: an inventory of
    training-mode batch norms and dropouts is not what runs on the device.
    """
    from fxport.capture.loader import check_inputs
    from fxport.tracing import trace as trace_at_table_level

    name = name or type(model).__name__
    check_inputs(model, args, kwargs or {}, name)
    return trace_at_table_level(model.eval(), tuple(args), name=name, kwargs=kwargs)


def run(
    model,
    *args,
    kwargs: dict | None = None,
    device: str = "auto",
    arch: str | None = None,
    memory_config: str = "dram",
    values: str = "",
    min_block_size: int = 1,
    name: str | None = None,
    passes="all",
):
    """Run `model(*args, **kwargs)` through TT-NN (the pipeline of `fxport run`) and return its
    `fxport.report.results.RunResult`: coverage, fallbacks, memory verdicts, PCC per output.
    `passes`: the graph passes, "all", "none" or names (fxport.passes.PASS_NAMES)."""
    from fxport.capture.loader import LoadedModel, check_inputs
    from fxport.passes import select
    from fxport.run_options import RunOptions
    from fxport.runner import run_loaded
    from fxport.runtime.devices import open_session_device

    name = name or type(model).__name__
    check_inputs(model, args, kwargs or {}, name)
    loaded = LoadedModel(name, model.eval(), tuple(args), "cpu", (), dict(kwargs or {}))
    options = RunOptions(memory=memory_config, values=values, min_block_size=min_block_size, passes=select(passes))
    return run_loaded(loaded, open_session_device(device, arch), options)


def compile(model, *, dynamic: bool | None = None, fullgraph: bool = False, **options):
    """`torch.compile(model, backend="fxport", options=options)`: call the result with the model's
    own args and kwargs. Options are those of `fxport.backend` (device, memory_config, check, ...)."""
    import torch

    return torch.compile(model, backend="fxport", dynamic=dynamic, fullgraph=fullgraph, options=options)


__all__ = ["trace", "run", "compile", "__version__"]
