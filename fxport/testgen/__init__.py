"""Per-op pytest suites generated from captured op records (`fxport gen-tests`).

    cases = collect(capture_a, "out/resnet50/ops.json")   # unique (target, inputs, call) cases
    paths = generate(cases, "out/tests", memory="dram", arch="n150")

`runtime` is what the generated tests import; `values` decides and makes their inputs.
"""

from fxport.testgen.collect import Case, Source, collect, load_ops, optimized_capture
from fxport.testgen.generate import (
    PCC_DEFAULT,
    PCC_OVERRIDES,
    SLOW_ELEMENTS,
    describe_suite,
    generate,
)

__all__ = [
    "Case",
    "PCC_DEFAULT",
    "PCC_OVERRIDES",
    "SLOW_ELEMENTS",
    "Source",
    "collect",
    "describe_suite",
    "generate",
    "load_ops",
    "optimized_capture",
]
