"""Turns what a user names on the command line into a model and example inputs.

A MODEL is a zoo name (`resnet50`, `pi0-tiny`, see `models/`) or `module.path:callable`, a class or
factory returning an `nn.Module` (the user's own model), called with the `--model-arg` keyword
arguments. Its example inputs are one float tensor of `--input-shape`, or the positional tensors
of repeated `--input SHAPE[:DTYPE[:LOW..HIGH]]`, or whatever `--inputs module:callable` returns
(a tuple of args, a dict of kwargs, or both as `(args, kwargs)`). Models are built on the meta
device by default, so full-size models cost no memory for weights.

Command-line values are data: `--model-arg` values are Python literals read by
`ast.literal_eval`, and only the callables the user names are ever called.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from fxport.arguments import DTYPE_NAMES, parse_model_arg, parse_shape  # noqa: F401 (re-exported)
from fxport.arguments import parse_input as parse_input_text
from fxport.capture.pytrees import forward_signature, map_tensors
from fxport.errors import FxportError

Shape = tuple[int, ...]
DEFAULT_USER_SHAPE: Shape = (1, 3, 224, 224)

# `--input` dtypes by name (fxport.arguments checks the names without torch).
DTYPES: dict[str, torch.dtype] = {alias: getattr(torch, name) for alias, name in DTYPE_NAMES.items()}
# Integers without a range are drawn from [0, 10): valid indices for any table of 10 or more.
DEFAULT_INT_RANGE = (0, 10)


@dataclass(frozen=True)
class InputSpec:
    """One `--input`: a shape, a dtype (None: the model's float dtype) and an optional value range
    [low, high) (floats: uniform; integers: `torch.randint`; no range: standard normal floats,
    integers in DEFAULT_INT_RANGE, random booleans)."""

    shape: Shape
    dtype: torch.dtype | None = None
    low: float | None = None
    high: float | None = None

    def make(self, float_dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.Tensor:
        dtype = self.dtype or float_dtype
        if dtype == torch.bool:
            return torch.randint(0, 2, self.shape, device=device).bool()
        if not dtype.is_floating_point:
            low, high = (int(self.low), int(self.high)) if self.low is not None else DEFAULT_INT_RANGE
            return torch.randint(low, high, self.shape, dtype=dtype, device=device)
        if self.low is None:
            return torch.randn(self.shape, dtype=dtype, device=device)
        return torch.empty(self.shape, dtype=dtype, device=device).uniform_(self.low, self.high)


@dataclass(frozen=True)
class InputOptions:
    """What the user asked for: inputs and model arguments (empty fields: the model's defaults)."""

    shape: Shape | None = None  # --input-shape: one float input (for a zoo model, its resolution)
    specs: tuple[InputSpec, ...] = ()  # --input, the positional inputs in order
    source: str | None = None  # --inputs module:callable
    model_args: dict[str, Any] = field(default_factory=dict)  # --model-arg key=value

    @classmethod
    def of(cls, value: "InputOptions | Shape | None") -> "InputOptions":
        if isinstance(value, InputOptions):
            return value
        return cls(shape=tuple(value) if value else None)

    def __post_init__(self):
        given = [
            name for name, v in (("--input-shape", self.shape), ("--input", self.specs), ("--inputs", self.source)) if v
        ]
        if len(given) > 1:
            raise FxportError(f"give one of {' or '.join(given)}, not both: each says what the inputs are")


@dataclass(frozen=True)
class LoadedModel:
    name: str
    module: nn.Module
    inputs: tuple  # positional inputs of forward
    device: str  # where weights and inputs live: "meta" (no storage) or "cpu"
    repeated: tuple[str, ...] = ()  # submodules whose identical calls capture may fold
    kwargs: dict = field(default_factory=dict)  # keyword inputs of forward


def parse_input(text: str) -> InputSpec:
    """'1,48:int64:0..32000' -> InputSpec((1, 48), torch.int64, 0, 32000)."""
    checked = parse_input_text(text)
    return InputSpec(checked.shape, DTYPES[checked.dtype] if checked.dtype else None, checked.low, checked.high)


def load_model(spec: str, inputs: InputOptions | Shape | None = None, device: str = "meta") -> LoadedModel:
    options = InputOptions.of(inputs)
    if ":" in spec:
        loaded = _load_user_model(spec, options, device)
    else:
        loaded = _load_zoo_model(spec, options, device)
    check_inputs(loaded.module, loaded.inputs, loaded.kwargs, loaded.name)
    return loaded


def check_inputs(module: nn.Module, args: tuple, kwargs: dict, name: str) -> None:
    """Inputs that cannot bind to forward's parameters are the user's error, said in one line."""
    try:
        inspect.signature(module.forward).bind(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValueError) and "signature" in str(exc):
            return  # a forward inspect cannot read: let the call itself decide
        given = ", ".join([*(f"args[{i}]" for i in range(len(args))), *(f"{k}=" for k in kwargs)])
        raise FxportError(
            f"{name}: wrong inputs ({given or 'none'}) for {forward_signature(module)}: "
            f"{exc}; give them with --input (repeatable) or --inputs module:callable"
        ) from None


def _load_zoo_model(name: str, options: InputOptions, device: str) -> LoadedModel:
    import fxport_models

    try:
        entry = fxport_models.get(name)
    except KeyError:
        close = difflib.get_close_matches(name, fxport_models.names(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `fxport models` lists the zoo"
        raise FxportError(f"unknown model {name!r}{hint}") from None
    if options.model_args:
        raise FxportError(f"--model-arg is for module.path:callable models; {name} is a zoo model")
    # A single --input names the zoo model's resolution, as --input-shape does.
    resolution = options.shape or (options.specs[0].shape if len(options.specs) == 1 else None)
    shape = entry.resolve_shape(resolution)
    build_device = device if entry.build_on == "meta" else "cpu"
    module = _build(lambda: entry.build(shape), build_device, name)
    if build_device != device:
        module = module.to(device)
    args, kwargs = entry.inputs(shape, device=device), {}
    if options.specs or options.source:
        args, kwargs = _example_inputs(options, module, device)
    return LoadedModel(name, module.eval(), args, device, entry.repeated, kwargs)


def _load_user_model(spec: str, options: InputOptions, device: str) -> LoadedModel:
    factory = _resolve(spec, "model")
    if not callable(factory):
        raise FxportError(
            f"{spec} is not a model: it is {type(factory).__name__}, not a class or factory returning an nn.Module"
        )
    if isinstance(factory, nn.Module):
        if options.model_args:
            raise FxportError(f"{spec} is a module instance: --model-arg needs a class or factory")
        model = factory.to(device) if device == "meta" else factory
    else:
        model = _build_user(factory, spec, device, options.model_args)
    if not isinstance(model, nn.Module):
        raise FxportError(f"{spec} is not a model: it returned {type(model).__name__}, not an nn.Module")
    args, kwargs = _example_inputs(options, model, device)
    return LoadedModel(spec, model.eval(), args, device, (), kwargs)


def _resolve(spec: str, what: str) -> Any:
    """The attribute `module.path:name` names (importing the module; the working directory is on
    the path, so users can name modules next to where they run fxport)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise FxportError(f"malformed {what} {spec!r}: expected module.path:callable")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: a SyntaxError or its own failure is bad input
        raise FxportError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    value = getattr(module, attr, None)
    if value is None:
        raise FxportError(f"{module_name!r} has no attribute {attr!r}")
    return value


def _example_inputs(options: InputOptions, model: nn.Module, device: str) -> tuple[tuple, dict]:
    dtype = _float_dtype(model)
    if options.source:
        args, kwargs = load_inputs(options.source)
        # Float inputs follow the model's dtype; everything moves to where the weights are.
        cast = lambda t: t.to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
        return map_tensors(cast, args), map_tensors(cast, kwargs)
    if options.specs:
        return tuple(s.make(dtype, device) for s in options.specs), {}
    return (InputSpec(options.shape or DEFAULT_USER_SHAPE).make(dtype, device),), {}


MAX_INPUT_DEPTH = 64  # far below Python's recursion limit, which every pytree walk would hit


def _nested_deeper(value: Any, limit: int) -> bool:
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(v, (list, tuple)):
            stack.extend((x, depth + 1) for x in v)
        elif isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
    return False


def load_inputs(spec: str) -> tuple[tuple, dict]:
    """Call `--inputs module:callable` (no arguments) and read what it returns: a tuple or list of
    positional inputs, a dict of keyword inputs, `(args, kwargs)`, or a single tensor."""
    factory = _resolve(spec, "--inputs")
    if not callable(factory):
        raise FxportError(f"--inputs {spec} is {type(factory).__name__}, not a callable returning inputs")
    try:
        value = factory()
    except Exception as exc:
        raise FxportError(f"--inputs {spec} failed: {type(exc).__name__}: {exc}") from None
    if _nested_deeper(value, MAX_INPUT_DEPTH):
        raise FxportError(
            f"--inputs {spec} returned containers nested more than {MAX_INPUT_DEPTH} deep; "
            "a model's inputs are a few levels of tuples, lists and dicts"
        )
    if isinstance(value, torch.Tensor):
        return (value,), {}
    if isinstance(value, dict):
        return (), dict(value)
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and isinstance(value[0], (tuple, list))
        and isinstance(value[1], dict)
    ):
        return tuple(value[0]), dict(value[1])
    if isinstance(value, (tuple, list)):
        return tuple(value), {}
    raise FxportError(
        f"--inputs {spec} returned {type(value).__name__}: expected a tuple of args, "
        "a dict of kwargs, or (args, kwargs)"
    )


def _build_user(factory: Callable, spec: str, device: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        required = [
            p
            for p in inspect.signature(factory).parameters.values()
            if p.default is p.empty
            and p.name not in kwargs
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
    except (TypeError, ValueError):
        required = []
    if required:
        raise FxportError(
            f"{spec} needs arguments ({', '.join(p.name for p in required)}); "
            "give them with --model-arg key=value, or name a factory that takes none"
        )
    return _build(lambda: factory(**kwargs), device, spec)


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
