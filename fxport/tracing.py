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
from fxport.errors import CaptureError
from fxport.mapping import REGISTRY

# Retrying a failed meta capture with real random weights costs their memory; above this many
# parameters (about 2 GB in fp32) fxport reports the partial capture instead.
REAL_RETRY_MAX_PARAMS = 500_000_000


def kept_ops() -> tuple[torch._ops.OpOverload, ...]:
    """The ops capture keeps whole: the mapping table's rules marked `fused=True`."""
    return tuple(REGISTRY.fused_targets())


def trace(
    model: nn.Module,
    inputs: tuple,
    name: str = "model",
    repeated: tuple[str, ...] = (),
    kwargs: dict | None = None,
    fallback: bool = True,
) -> Capture:
    return capture(model, inputs, name=name, repeated=repeated, keep=kept_ops(), kwargs=kwargs, fallback=fallback)


def trace_cached(
    model: nn.Module,
    inputs: tuple,
    cache: CaptureCache | None,
    name: str = "model",
    repeated: tuple[str, ...] = (),
    kwargs: dict | None = None,
    model_args: dict | None = None,
    fallback: bool = True,
) -> Capture:
    """`trace`, answered from the capture cache when it holds this capture (see
    fxport.capture.cache: meta weights only), and stored there when not."""
    if cache is None:
        return trace(model, inputs, name, repeated, kwargs, fallback)
    try:
        key = capture_key(name, model, inputs, kwargs or {}, repeated, kept_ops(), model_args)
    except Uncacheable:
        cache.stats.uncacheable += 1
        return trace(model, inputs, name, repeated, kwargs, fallback)
    cap = cache.load(key, inputs, kwargs or {}, name)
    if cap is None:
        cap = trace(model, inputs, name, repeated, kwargs, fallback)
        if cap.graphs:  # a failed export is tried again next time
            cache.store(key, cap)
    return cap


def export(model: nn.Module, inputs: tuple, kwargs: dict | None = None) -> torch.export.ExportedProgram:
    return export_program(model, inputs, kept_ops(), kwargs)


def trace_model(spec: str, inputs: InputOptions | Shape | None = None, fold: bool = True) -> Capture:
    """Capture a zoo model or `module:callable` on the meta device, folding repeated identical
    calls the zoo entry declares (`fold=False` traces every call). When the dynamo fallback fails
    on meta tensors, for whatever reason (the Python between graph breaks reads values: `.item()`,
    a branch on a value, NMS; a fake-tensor call that meta cannot make), a small model is captured
    again with real random weights. A CaptureError raised carries torch's output as `log`."""
    with progress.step(f"building {spec} on the meta device"):
        loaded = load_model(spec, inputs, device="meta")
    try:
        with progress.step("capture"):
            cap = trace(
                loaded.module,
                loaded.inputs,
                name=loaded.name,
                repeated=loaded.repeated if fold else (),
                kwargs=loaded.kwargs,
            )
        failure = None
    except CaptureError as exc:  # no graph at all on meta
        cap, failure = None, exc
    params = sum(p.numel() for p in loaded.module.parameters())
    if (cap is not None and not _dynamo_failed(cap)) or params > REAL_RETRY_MAX_PARAMS:
        if failure is not None:
            raise failure
        return cap
    with progress.step("capture again with real random weights"):
        real = load_model(spec, inputs, device="cpu")
        try:
            retried = trace(real.module, real.inputs, name=real.name, kwargs=real.kwargs)
        except CaptureError as exc:
            exc.log = (getattr(failure, "log", "") or (cap.log if cap else "")) + getattr(exc, "log", "")
            raise
    first = failure if failure is not None else next(p for p in cap.problems if p.stage in ("dynamo", "export"))
    retried.problems.append(
        CaptureProblem(
            "note",
            f"captured with real random weights: on meta weights the dynamo fallback failed ({_first_line(first)})",
        )
    )
    retried.log = (cap.log if cap else getattr(failure, "log", "")) + retried.log
    return retried


def _dynamo_failed(cap: Capture) -> bool:
    """The dynamo fallback stopped early, or a piece it found could not be exported."""
    return cap.method == "dynamo" and any(
        p.stage == "dynamo" or (p.stage == "export" and p.message.startswith("graph")) for p in cap.problems
    )


def _first_line(problem) -> str:
    text = problem.message if isinstance(problem, CaptureProblem) else str(problem)
    return (text.splitlines() or [""])[0][:160]
