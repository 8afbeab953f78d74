"""Stage 1, capture: model + example inputs -> aten graphs and op records with shapes and dtypes."""

from fxport.capture.engine import Capture, CapturedGraph, CaptureProblem, capture, export_program
from fxport.capture.inventory import UniqueOp, op_counts, unique_ops
from fxport.capture.records import OpRecord, TensorSpec

__all__ = [
    "Capture",
    "CapturedGraph",
    "CaptureProblem",
    "OpRecord",
    "TensorSpec",
    "UniqueOp",
    "capture",
    "export_program",
    "op_counts",
    "unique_ops",
]
