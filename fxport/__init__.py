"""fxport: capture PyTorch models as aten graphs, lower them to TT-NN, and report what runs where.

Importing fxport is cheap: torch is imported, ttnn only when a device is opened.
"""

from __future__ import annotations

__version__ = "0.1.0"


def trace(model, *example_inputs, name: str | None = None):
    """Capture `model(*example_inputs)` as aten graphs with per-node shapes and dtypes.

    Inputs may be real, meta or fake tensors; returns a `fxport.capture.Capture`.
    """
    from fxport.tracing import trace as trace_at_table_level

    return trace_at_table_level(model, tuple(example_inputs), name=name or type(model).__name__)


__all__ = ["trace", "__version__"]
