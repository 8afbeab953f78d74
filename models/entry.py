"""A zoo entry: a named model that knows how to build itself and its inputs (data, no registry)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Callable[[Shape], nn.Module]
    input_shape: Shape
    family: str  # "classification", "detection", "vision-encoder", "vla"
    description: str = ""
    # Builds example inputs from an image shape (the overridable resolution). The default is one
    # float image batch of that shape. `device` is where the tensors live ("meta" for capture).
    make_inputs: Callable[[Shape, str], tuple] | None = None
    # "meta" when the module can be built on the meta device (no storage); "real" when its
    # constructor needs data (then capture builds it for real and moves it to meta).
    build_on: str = "meta"
    # Submodules called several times per forward with identical input shapes, each call's output
    # feeding the next (PI0's denoise step). Inventory capture may trace one call and count the
    # rest (see fxport/capture/engine.py); execution always traces every call.
    repeated: tuple[str, ...] = ()
    # Input shapes the zoo sweep covers (default: the input shape alone).
    sweep_shapes: tuple[Shape, ...] = ()
    # Free-form labels used to select models (e.g. "tiny" for test-sized configs, "zoo" for the sweep).
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def sweep(self) -> tuple[Shape, ...]:
        return self.sweep_shapes or (self.input_shape,)

    def resolve_shape(self, input_shape: Shape | None) -> Shape:
        return tuple(input_shape) if input_shape else self.input_shape

    def module(self, input_shape: Shape | None = None) -> nn.Module:
        return self.build(self.resolve_shape(input_shape)).eval()

    def inputs(self, input_shape: Shape | None = None, device: str = "cpu") -> tuple:
        shape = self.resolve_shape(input_shape)
        if self.make_inputs is not None:
            return self.make_inputs(shape, device)
        return (torch.randn(shape, device=device),)
