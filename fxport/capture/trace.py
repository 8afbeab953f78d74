"""`fxport trace` as a function: name a model, get its capture."""

from __future__ import annotations

from fxport.capture.engine import Capture, CaptureProblem, capture
from fxport.capture.loader import Shape, load_model

# Retrying a failed meta capture with real random weights costs their memory; above this many
# parameters (about 2 GB in fp32) fxport reports the partial capture instead.
REAL_RETRY_MAX_PARAMS = 500_000_000


def trace_model(spec: str, input_shape: Shape | None = None, fold: bool = True) -> Capture:
    """Capture a zoo model or `module:callable` on the meta device, folding repeated identical
    calls the zoo entry declares (`fold=False` traces every call). When the dynamo fallback has to
    execute Python between graph breaks (`.item()`, a branch on a value), meta tensors have no
    values, so a small model is captured again with real random weights."""
    loaded = load_model(spec, input_shape, device="meta")
    cap = capture(loaded.module, loaded.inputs, name=loaded.name,
                  repeated=loaded.repeated if fold else ())
    needs_values = any(p.stage == "dynamo" and "meta" in p.message for p in cap.problems)
    params = sum(p.numel() for p in loaded.module.parameters())
    if not needs_values or params > REAL_RETRY_MAX_PARAMS:
        return cap
    real = load_model(spec, input_shape, device="cpu")
    retried = capture(real.module, real.inputs, name=real.name)
    retried.problems.append(CaptureProblem(
        "note", "captured with real random weights: the code between graph breaks needs values"))
    return retried
