"""Command-line values checked as text, before anything heavy is imported.

A malformed shape, `--input` or `--model-arg` is refused here in a fraction of a second: this
module imports neither torch nor ttnn. `fxport.capture.loader` turns the checked values into
tensors and model arguments.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Any

from fxport.errors import FxportError

Shape = tuple[int, ...]

# `--input` dtype names (and their aliases) -> the torch dtype's name.
DTYPE_NAMES: dict[str, str] = {
    "float32": "float32",
    "float": "float32",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "float64": "float64",
    "int64": "int64",
    "long": "int64",
    "int32": "int32",
    "int": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}
_FLOATS = {"float32", "float16", "bfloat16", "float64"}
# The values each dtype holds (torch.iinfo / torch.finfo, written out so that no torch is imported):
# a range is checked against them before any tensor is made (torch would fail deep inside randint
# or uniform_, or wrap the values silently). Integer HIGH is exclusive, as randint's.
DTYPE_BOUNDS: dict[str, tuple[float, float]] = {
    "float32": (-3.4028234663852886e38, 3.4028234663852886e38),
    "float16": (-65504.0, 65504.0),
    "bfloat16": (-3.3895313892515355e38, 3.3895313892515355e38),
    "float64": (-1.7976931348623157e308, 1.7976931348623157e308),
    "int64": (-(2**63), 2**63),
    "int32": (-(2**31), 2**31),
    "int16": (-(2**15), 2**15),
    "int8": (-128, 128),
    "uint8": (0, 256),
}
MAX_DIM = 2**31 - 1  # TT-NN and torch index dimensions with 32-bit or 64-bit integers
MAX_ELEMENTS = 2**48  # more than any host could hold; beyond it sizes overflow before memory runs out


@dataclass(frozen=True)
class InputText:
    """One `--input SHAPE[:DTYPE[:LOW..HIGH]]`, checked: dtype is a torch dtype name or None
    (the model's float dtype)."""

    shape: Shape
    dtype: str | None = None
    low: float | None = None
    high: float | None = None


def parse_shape(text: str) -> Shape:
    """'1,3,224,224' -> (1, 3, 224, 224); anything else is a one-line error."""
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise FxportError(
            f"malformed input shape {text!r}: expected positive integers separated by commas, such as 1,3,224,224"
        )
    if any(d > MAX_DIM for d in dims) or math.prod(dims) > MAX_ELEMENTS:
        raise FxportError(
            f"input shape {text[:60]!r} is too large: each dimension at most {MAX_DIM:,}, "
            f"at most {MAX_ELEMENTS:,} elements"
        )
    return dims


def parse_input(text: str) -> InputText:
    """'1,48:int64:0..32000' -> InputText((1, 48), 'int64', 0, 32000)."""
    shape_text, _, rest = text.partition(":")
    dtype_text, _, range_text = rest.partition(":")
    shape = parse_shape(shape_text)
    dtype = None
    if dtype_text:
        dtype = DTYPE_NAMES.get(dtype_text.strip().lower())
        if dtype is None:
            raise FxportError(f"unknown dtype {dtype_text!r} in --input {text!r}; known: {', '.join(DTYPE_NAMES)}")
    if not range_text:
        return InputText(shape, dtype)
    low_text, sep, high_text = range_text.partition("..")
    number = float if dtype is None or dtype in _FLOATS else int
    try:
        low, high = number(low_text), number(high_text)
    except ValueError:
        low = high = None
    if not sep or low is None or not low < high or dtype == "bool":
        raise FxportError(
            f"malformed range {range_text!r} in --input {text!r}: expected LOW..HIGH with "
            f"LOW < HIGH ({'integers' if number is int else 'numbers'}; not for bool)"
        )
    lowest, highest = DTYPE_BOUNDS[dtype or "float32"]
    if not (math.isfinite(low) and math.isfinite(high) and lowest <= low and high <= highest):
        raise FxportError(
            f"range {range_text!r} in --input {text!r} does not fit {dtype or 'float32'}: "
            f"LOW and HIGH must be finite and within [{lowest:g}, {highest:g}]"
        )
    return InputText(shape, dtype, low, high)


def parse_model_arg(text: str) -> tuple[str, Any]:
    """'weights=None' -> ('weights', None); a value that is not a Python literal is a string."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise FxportError(f"malformed --model-arg {text!r}: expected key=value, such as num_classes=10")
    try:
        return key, ast.literal_eval(value.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return key, value.strip()


def check_model_names(specs: list[str], many: bool = False) -> None:
    """Zoo names that are not in the zoo are refused with suggestions, without importing any model
    code; `module.path:callable` is checked when it is imported. `many`: the command takes a list
    (every unknown name is said at once)."""
    import difflib

    import fxport_models

    unknown = []
    for spec in specs:
        if ":" in spec:
            module_name, _, attr = spec.partition(":")
            if not module_name or not attr:
                raise FxportError(f"malformed model {spec!r}: expected module.path:callable")
        elif not fxport_models.known(spec):
            unknown.append(spec)
    if not unknown:
        return
    close = [c for name in unknown for c in difflib.get_close_matches(name, fxport_models.names(), n=3)]
    hint = f"; did you mean {', '.join(dict.fromkeys(close))}?" if close else "; `fxport models` lists the zoo"
    if many:
        raise FxportError(f"unknown model(s) {', '.join(unknown)}{hint}")
    raise FxportError(f"unknown model {unknown[0]!r}{hint}")
