"""activation rules."""

from __future__ import annotations

import torch

from fxport.mapping.checks import BASIC, dtypes, max_rank, param  # noqa: F401
from fxport.mapping.registry import rule  # noqa: F401

aten = torch.ops.aten
