"""Dtype names every layer shares (a leaf module).

Records, documents and cases carry dtypes as torch's names without the "torch." prefix
("float32"); this is the one list of which of those are floating-point.
"""

from __future__ import annotations

from typing import Any

FLOAT = frozenset({"float16", "bfloat16", "float32", "float64"})


def name_of(dtype: Any) -> str:
    """torch.float32 (or "torch.float32") -> "float32"."""
    return str(dtype).removeprefix("torch.")


def is_float(dtype: Any) -> bool:
    return name_of(dtype) in FLOAT
