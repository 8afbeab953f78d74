"""Turns what a user names on the command line into a model and example inputs.

A MODEL is a zoo name (`resnet50`, `pi0-tiny`, see `models/`) or `module.path:callable`, a class or
factory returning an `nn.Module` (the user's own model; its input is one float tensor of
`--input-shape`). Models are built on the meta device by default, so full-size models cost no
memory for weights.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from fxport.errors import FxportError

Shape = tuple[int, ...]
DEFAULT_USER_SHAPE: Shape = (1, 3, 224, 224)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    module: nn.Module
    inputs: tuple
    device: str  # where weights and inputs live: "meta" (no storage) or "cpu"
    repeated: tuple[str, ...] = ()  # submodules whose identical calls capture may fold


def parse_shape(text: str) -> Shape:
    """'1,3,224,224' -> (1, 3, 224, 224); anything else is a one-line error."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise FxportError(f"malformed input shape {text!r}: expected positive integers separated "
                          "by commas, such as 1,3,224,224")
    return dims


def load_model(spec: str, input_shape: Shape | None = None, device: str = "meta") -> LoadedModel:
    if ":" in spec:
        return _load_user_model(spec, input_shape, device)
    return _load_zoo_model(spec, input_shape, device)


def _load_zoo_model(name: str, input_shape: Shape | None, device: str) -> LoadedModel:
    import fxport_models

    try:
        entry = fxport_models.get(name)
    except KeyError:
        close = difflib.get_close_matches(name, fxport_models.names(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `fxport models` lists the zoo"
        raise FxportError(f"unknown model {name!r}{hint}") from None
    shape = entry.resolve_shape(input_shape)
    build_device = device if entry.build_on == "meta" else "cpu"
    module = _build(lambda: entry.build(shape), build_device, name)
    if build_device != device:
        module = module.to(device)
    return LoadedModel(name, module.eval(), entry.inputs(shape, device=device), device, entry.repeated)


def _load_user_model(spec: str, input_shape: Shape | None, device: str) -> LoadedModel:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise FxportError(f"malformed model {spec!r}: expected module.path:callable")
    if os.getcwd() not in sys.path:  # let users name modules next to where they run fxport
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: a SyntaxError or its own failure is bad input
        raise FxportError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise FxportError(f"{module_name!r} has no attribute {attr!r}")
    if not callable(factory):
        raise FxportError(f"{spec} is not a model: it is {type(factory).__name__}, "
                          "not a class or factory returning an nn.Module")
    if isinstance(factory, nn.Module):
        model = factory.to(device) if device == "meta" else factory
    else:
        model = _build_user(factory, spec, device)
    if not isinstance(model, nn.Module):
        raise FxportError(f"{spec} is not a model: it returned {type(model).__name__}, "
                          "not an nn.Module")
    shape = input_shape or DEFAULT_USER_SHAPE
    dtype = _float_dtype(model)
    return LoadedModel(spec, model.eval(), (torch.randn(shape, dtype=dtype, device=device),), device)


def _build_user(factory: Callable, spec: str, device: str) -> nn.Module:
    try:
        required = [p for p in inspect.signature(factory).parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        required = []
    if required:
        raise FxportError(f"{spec} needs arguments ({', '.join(p.name for p in required)}); "
                          "give a factory that takes none")
    return _build(factory, device, spec)


def _build(factory: Callable[[], nn.Module], device: str, name: str) -> nn.Module:
    """Build under `device`; a model whose constructor computes on data cannot be built on meta,
    so fall back to a real build and move the weights to meta afterwards."""
    try:
        with torch.device(device):
            return factory()
    except FxportError:
        raise
    except ValueError as exc:  # the builders' own argument checks (e.g. resolution)
        message = str(exc)
        raise FxportError(message if message.startswith(name) else f"{name}: {message}") from None
    except Exception as exc:
        if device != "meta":
            raise FxportError(f"cannot build {name}: {type(exc).__name__}: {exc}") from None
    try:
        return factory().to("meta")
    except Exception as exc:
        raise FxportError(f"cannot build {name}: {type(exc).__name__}: {exc}") from None


def _float_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32
