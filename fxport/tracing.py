"""Stage 1 at the mapping table's level: capture with the table's fused ops kept whole.

`fxport.capture` knows nothing of the mapping table; this is where the two meet. Everything
that traces a model for fxport (`fxport trace`, `fxport run`, the torch.compile backend,
`fxport.trace`) goes through here, so captured graphs always have the level the table lowers.
"""

from __future__ import annotations

import torch
from torch import nn

from fxport import progress
from fxport.capture import Capture, CaptureProblem, capture, export_program
from fxport.capture.cache import CaptureCache, Uncacheable, capture_key
from fxport.capture.loader import InputOptions, Shape, load_model
from fxport.mapping import REGISTRY

# Retrying a failed meta capture with real random weights costs their memory; above this many
# parameters (about 2 GB in fp32) fxport reports the partial capture instead.
REAL_RETRY_MAX_PARAMS = 500_000_000


def kept_ops() -> tuple[torch._ops.OpOverload, ...]:
    """The ops capture keeps whole: the mapping table's rules marked `fused=True`."""
    return tuple(REGISTRY.fused_targets())


def trace(
    model: nn.Module, inputs: tuple, name: str = "model", repeated: tuple[str, ...] = (), kwargs: dict | None = None
) -> Capture:
    return capture(model, inputs, name=name, repeated=repeated, keep=kept_ops(), kwargs=kwargs)


def trace_cached(
    model: nn.Module,
    inputs: tuple,
    cache: CaptureCache | None,
    name: str = "model",
    repeated: tuple[str, ...] = (),
    kwargs: dict | None = None,
    model_args: dict | None = None,
) -> Capture:
    """`trace`, answered from the capture cache when it holds this capture (see
    fxport.capture.cache: meta weights only), and stored there when not."""
    if cache is None:
        return trace(model, inputs, name, repeated, kwargs)
    try:
        key = capture_key(name, model, inputs, kwargs or {}, repeated, kept_ops(), model_args)
    except Uncacheable:
        cache.stats.uncacheable += 1
        return trace(model, inputs, name, repeated, kwargs)
    cap = cache.load(key, inputs, kwargs or {}, name)
    if cap is None:
        cap = trace(model, inputs, name, repeated, kwargs)
        cache.store(key, cap)
    return cap


def export(model: nn.Module, inputs: tuple, kwargs: dict | None = None) -> torch.export.ExportedProgram:
    return export_program(model, inputs, kept_ops(), kwargs)


def trace_model(spec: str, inputs: InputOptions | Shape | None = None, fold: bool = True) -> Capture:
    """Capture a zoo model or `module:callable` on the meta device, folding repeated identical
    calls the zoo entry declares (`fold=False` traces every call). When the dynamo fallback has to
    execute Python between graph breaks (`.item()`, a branch on a value), meta tensors have no
    values, so a small model is captured again with real random weights."""
    with progress.step(f"building {spec} on the meta device"):
        loaded = load_model(spec, inputs, device="meta")
    with progress.step("capture"):
        cap = trace(
            loaded.module,
            loaded.inputs,
            name=loaded.name,
            repeated=loaded.repeated if fold else (),
            kwargs=loaded.kwargs,
        )
    needs_values = any(p.stage == "dynamo" and "meta" in p.message for p in cap.problems)
    params = sum(p.numel() for p in loaded.module.parameters())
    if not needs_values or params > REAL_RETRY_MAX_PARAMS:
        return cap
    with progress.step("capture again with real random weights"):
        real = load_model(spec, inputs, device="cpu")
        retried = trace(real.module, real.inputs, name=real.name, kwargs=real.kwargs)
    retried.problems.append(
        CaptureProblem("note", "captured with real random weights: the code between graph breaks needs values")
    )
    return retried
