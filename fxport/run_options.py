"""The settings of a run through the pipeline (`fxport run`, `fxport.run`, a sweep entry, the
torch.compile backend, `fxport export`), with their defaults, in one place: callers build one
`RunOptions` and change a setting with `dataclasses.replace`.

Per-call state that is not a user's setting (the loaded model, the device, a recorder, timings)
stays a parameter of the functions that take these options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fxport.passes import PASS_NAMES
from fxport.settings import (
    DTYPES,
    MATH_FIDELITIES,
    MEMORY_CONFIGS,
    PCC_THRESHOLD,
    VALUE_MODES,
    check_choice,
    pass_settings,
    run_settings,
)

if TYPE_CHECKING:
    from fxport.capture.cache import CaptureCache
    from fxport.runtime.verdict_cache import VerdictCache


@dataclass(frozen=True)
class RunOptions:
    memory: str = "dram"  # where activations live: dram, l1, or auto (placed per activation)
    values: str = ""  # emulate, device or none (verdicts only, meta weights); "": the device's own
    min_block_size: int = 1  # device partitions with fewer ops stay on the host
    passes: tuple[str, ...] = PASS_NAMES  # the graph passes applied before the plan, in order
    weights: str = "bfloat16"  # dtype of constant conv and linear weights on the device
    fidelity: str = ""  # math fidelity of compute ops ("": TT-NN's own per op)
    activations: str = "bfloat16"  # dtype of matmul, linear and conv outputs on the device
    pcc_threshold: float = PCC_THRESHOLD  # end-to-end PCC every informative output must reach
    localize: bool = False  # find the nodes where error enters (keeps every node's output)
    ttnn_report: Path | None = None  # a folder for TT-NN's own report of the run; None: none
    cache: VerdictCache | None = None  # replays device calls judged before (verdict runs only)
    capture_cache: CaptureCache | None = None  # answers captures made before (verdict runs only)

    def __post_init__(self) -> None:
        # Checked when a run is set up, before a model is built (the CLI's choices check its own)
        check_choice("memory", self.memory, MEMORY_CONFIGS)
        check_choice("values", self.values, ("", *VALUE_MODES))
        check_choice("weights", self.weights, DTYPES)
        check_choice("math fidelity", self.fidelity, ("", *MATH_FIDELITIES))
        check_choice("activations", self.activations, DTYPES)

    def settings(
        self, model: str, input_shape: tuple[int, ...], device: str, arch: str | None, inputs: tuple[str, ...] = ()
    ) -> dict:
        """run.json's settings block (fxport.settings) of a run of `model` with these options."""
        return run_settings(
            model,
            input_shape,
            device,
            arch,
            self.memory,
            self.values,
            self.min_block_size,
            passes=pass_settings(self.passes, self.weights, self.fidelity, self.activations),
            inputs=inputs,
        )


DEFAULTS = RunOptions()  # a run with every setting at its default
VERDICT_RUNS = RunOptions(values="none")  # a sweep's default: full-size models on meta weights
