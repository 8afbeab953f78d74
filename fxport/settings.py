"""Everything that changes a run's result, as one JSON block: run.json's "settings", which is also
the key `fxport sweep --resume` compares before it reuses a saved result.

`fxport run` writes the block from its arguments; the sweep computes it for each entry from the
same arguments, through the same function, so the two agree exactly. Defaults are resolved here
(the device kind "auto", the mock arch, the value mode) so that an explicit default and an omitted
one give the same key. Light on purpose: nothing here imports torch or ttnn.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.metadata
import importlib.util
from functools import lru_cache
from pathlib import Path

from fxport.errors import InvalidSetting

# The end-to-end PCC every informative output of a run must reach (`fxport run --pcc`).
PCC_THRESHOLD = 0.99
DEFAULT_MOCK_ARCH = "n150"  # the mock board when none is named (fxport.runtime.devices)
SEED = 0  # torch's seed before a model is built with random weights (every run: results repeat)

# The values each run setting takes: the CLI's choices, the backend's option checks, the device
# context's validation
DEVICES = ("auto", "mock", "hardware")
ARCHS = ("n150", "p150")  # the mock boards
MEMORY_CONFIGS = ("dram", "l1", "auto")  # where activations live (auto: placed per activation)
VALUE_MODES = ("emulate", "device", "none")  # golden functions, read back, or verdicts only
DTYPES = ("bfloat16", "bfloat8_b")  # of constant weights and of compute ops' outputs
MATH_FIDELITIES = ("lofi", "hifi2", "hifi3", "hifi4")


def check_choice(setting: str, value: object, allowed: tuple) -> None:
    """`value` is one `setting` takes, or a one-line error naming the ones it does."""
    if value not in allowed:
        raise InvalidSetting(f"{setting} must be one of {', '.join(map(repr, allowed))}, not {value!r}")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=1)
def mapping_hash() -> str:
    """sha256 (first 16 hex digits) of the mapping table's source: every .py file of the
    `fxport.mapping` package, by relative path and content. A changed rule, check or lowering
    changes results, so it changes the key."""
    spec = importlib.util.find_spec("fxport.mapping")
    digest = hashlib.sha256()
    for location in spec.submodule_search_locations or []:
        base = Path(location)
        for path in sorted(base.rglob("*.py")):
            digest.update(str(path.relative_to(base)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def resolve_device(kind: str) -> str:
    """ "auto" as `fxport.runtime.devices.open_device` resolves it (a card when one is visible)."""
    if kind != "auto":
        return kind
    # The probe of devices.hardware_present, repeated here so that this module imports no torch.
    return "hardware" if glob.glob("/dev/tenstorrent/*") else "mock"


def run_settings(
    model: str,
    input_shape: list[int] | tuple[int, ...],
    device: str = "auto",
    arch: str | None = None,
    memory: str = "dram",
    values: str = "",
    min_block_size: int = 1,
    passes: dict | None = None,
    inputs: tuple[str, ...] = (),
) -> dict:
    """The settings block of one run. `input_shape` is the full shape (batch included); `inputs`
    the --input / --inputs / --model-arg options, when given (then they say what the inputs are)."""
    kind = resolve_device(device)
    return {
        **({"inputs": list(inputs)} if inputs else {}),
        "model": model,
        "input_shape": list(input_shape),
        "device": kind,
        "arch": arch or (DEFAULT_MOCK_ARCH if kind == "mock" else ""),  # "" = whichever card
        "memory_config": memory,
        "values": values or ("emulate" if kind == "mock" else "device"),
        "min_block_size": min_block_size,
        "passes": dict(sorted((passes or {}).items())),
        "versions": {"fxport": _version("fxport"), "ttnn": _version("ttnn"), "torch": _version("torch")},
        "mapping_table": mapping_hash(),
    }


def pass_settings(passes, weights: str = "bfloat16", fidelity: str = "", activations: str = "bfloat16") -> dict:
    """The graph-pass settings of a run (`run_settings`'s `passes`): the passes it applies, in
    order, the dtype of its device weights, and its compute options when not TT-NN's defaults
    (math fidelity, activations' dtype: both change the lowering)."""
    compute = {
        **({"math_fidelity": fidelity} if fidelity else {}),
        **({"activations": activations} if activations != "bfloat16" else {}),
    }
    return {"applied": list(passes), "weights": weights, **compute}


def differences(saved: object, expected: dict) -> list[str]:
    """The settings that differ between a saved block and the expected one (names), or
    ["settings"] when the saved block is missing or malformed."""
    if not isinstance(saved, dict):
        return ["settings"]
    return [k for k in expected if saved.get(k) != expected[k]] + [k for k in saved if k not in expected]
