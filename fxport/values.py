"""The values a lowering rule receives and returns: device tensors and host tensors.

A leaf module: the mapping rules (which know nothing of the runtime) and the runtime that runs
them share these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class TTValue:
    """A ttnn tensor (on the device, or a host-side ttnn tensor such as prepared conv weights)
    paired with its value: the golden value on a mock device, None on hardware (read lazily)."""

    tt: Any
    golden: torch.Tensor | None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.tt.shape)


@dataclass
class HostValue:
    """A torch tensor on the host: a partition input, or the output of a node that fell back."""

    tensor: torch.Tensor
    device_copies: dict = field(default_factory=dict, repr=False)  # (layout, dtype) -> TTValue

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.tensor.shape)
