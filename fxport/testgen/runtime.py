"""What generated per-op tests import: load their cases, run one, record it, check it.

A generated test is three lines (see generate.py):

    result = run_case(case, fxport_ctx)   # native aten op (fp32) and the device pipeline
    fxport_record(result)                 # into results.json, whatever the outcome
    check(result)                         # the assertions

`check` raises an AssertionError subclass naming the outcome, so a strict xfail can say which
failure it expects (`raises=`): a case the memory model predicts to overflow is expected to fail
with `DeviceOutOfMemory` and nothing else (another device error is a real failure, and a device
run that succeeds is an XPASS, which strict xfail reports as a failure); a case the plan declines
is expected to fail with `NotLowered`. Nothing is ever skipped.

The conftest of a generated suite delegates its hooks here (`add_options`, `configure`,
`select_slow`, `session_finish`, `terminal_summary`).
"""

from __future__ import annotations

import json
import math
import time
import traceback
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch.utils._pytree import tree_flatten

from fxport.capture.records import OpRecord, TensorSpec, split_target
from fxport.durable import write_text
from fxport.testgen.values import (
    check_replayable,
    decode,
    describe,
    dtype_problem,
    make_inputs,
    resolve,
)

CASES_FILE = "cases.json"
RESULTS_FILE = "results.json"
TIMING_FILE = "timing.json"


# -- outcomes --------------------------------------------------------------------------------


class CaseFailure(AssertionError):
    """A generated test's failure; subclasses name the outcome."""


class NotLowered(CaseFailure):
    """The plan sent the op to the host (no rule, or a capability check declined it)."""


class DeviceOutOfMemory(CaseFailure):
    """The op was lowered, but the device's allocator ran out of memory (OUT_OF_MEMORY)."""


class DeviceError(CaseFailure):
    """The op was lowered, but the device failed it with anything but OUT_OF_MEMORY."""


class PccBelowThreshold(CaseFailure):
    """The op ran on the device, but its values do not match the aten op closely enough."""


class ReplayError(CaseFailure):
    """The recorded call cannot be replayed (no call recorded, an opaque argument, or the aten
    op itself fails on the generated inputs)."""


class PipelineError(CaseFailure):
    """fxport itself raised while planning, partitioning or executing (a bug, not a verdict)."""


EXPECTED_FAILURES = {"oom": DeviceOutOfMemory, "declined": NotLowered, "unreplayable": ReplayError}


# -- loading ---------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> dict:
    return json.loads(Path(path).read_text())


def load_suite(suite_dir: str | Path) -> dict:
    """The cases.json document of a generated suite (read once per version of the file)."""
    path = Path(suite_dir) / CASES_FILE
    return _load(str(path), path.stat().st_mtime_ns)


def load_params(test_file: str | Path, target: str | None = None) -> list:
    """pytest params of the cases of `test_file` (those whose "file" is its name; or, as suites
    generated before that had it, those of `target`), with their marks: strict xfail (and the
    exception it expects) for predicted OOM, declined ops and unreplayable calls; `slow` for big
    cases."""
    import pytest

    suite = load_suite(Path(test_file).parent)
    name = Path(test_file).name
    params = []
    for case in suite["cases"]:
        if (case["target"] != target) if target is not None else (case.get("file") != name):
            continue
        marks = []
        expected = EXPECTED_FAILURES.get(case["expect"])
        if expected is not None:
            marks.append(pytest.mark.xfail(reason=case["reason"], strict=True, raises=expected))
        if case.get("slow"):
            marks.append(pytest.mark.slow(reason=case["slow"]))
        params.append(pytest.param(case, id=case["id"], marks=marks))
    if not params:
        raise LookupError(f"{CASES_FILE} has no cases for {target or name}: regenerate the suite")
    return params


# -- running ---------------------------------------------------------------------------------


@dataclass
class CaseResult:
    id: str
    target: str
    expect: str  # "device", "oom", "declined" or "unreplayable": what generation predicted
    status: str  # "device", "fallback", "host", "declined", "not run", "error"
    inputs: list[dict]
    threshold: float
    plan: dict = field(default_factory=dict)  # lowered, rule, ttnn, reason
    error_kind: str = ""  # device error class for fallbacks (OUT_OF_MEMORY, VALIDATION, ...)
    error: str = ""
    native: list[dict] = field(default_factory=list)  # output stats of the aten op, fp32 host
    device: list[dict] = field(default_factory=list)  # output stats of the pipeline's result
    pcc: list[float | None] = field(default_factory=list)  # per tensor output
    memory: dict = field(default_factory=dict)  # predicted at generation; this device's verdict
    notes: list[str] = field(default_factory=list)
    native_seconds: float = 0.0
    device_seconds: float = 0.0
    detail: str = field(default="", repr=False)  # traceback of a pipeline error

    @property
    def pcc_min(self) -> float | None:
        scores = [p for p in self.pcc if p is not None]
        return min(scores) if scores else None

    def to_dict(self, timings: bool = False) -> dict:
        d = asdict(self)
        d.pop("detail")
        d["pcc_min"] = self.pcc_min
        if not timings:
            d.pop("native_seconds")
            d.pop("device_seconds")
        return d


def run_case(case: dict, ctx: Any) -> CaseResult:
    """Build the inputs, run the aten op on the host (fp32) and through the fxport pipeline on
    `ctx`'s device, and compare. Never raises for an outcome: `check` judges the result."""
    from fxport.single_op import run_single_op

    result = CaseResult(
        id=case["id"],
        target=case["target"],
        expect=case["expect"],
        status="not run",
        inputs=[
            {"shape": s["shape"], "dtype": s["dtype"], "values": describe(v)}
            for s, v in zip(case["inputs"], case["values"])
        ],
        threshold=case["pcc"],
        notes=list(case.get("notes", [])),
    )
    result.memory = {"generated": case.get("memory", {}), "device": _live_memory(case, ctx)}
    op = resolve(case["target"])
    problem = (
        dtype_problem([s["dtype"] for s in (*case["inputs"], *case["outputs"])])
        or (None if op is not None else f"{case['target']} is not an operator overload fxport can call")
        or check_replayable(case.get("call"))
    )
    if problem:
        result.error = problem
        return result
    inputs = make_inputs(case["inputs"], case["values"], case["seed"])
    args, kwargs = decode(case["call"], [t.clone() for t in inputs])
    start = time.perf_counter()
    try:
        native = op(*args, **kwargs)
    except Exception as exc:
        result.error = f"the aten op fails on the generated inputs: {_one_line(exc)}"
        return result
    result.native_seconds = round(time.perf_counter() - start, 4)
    result.native = [_stats(t) for t in _tensors(native)]

    args, kwargs = decode(case["call"], [t.clone() for t in inputs])
    start = time.perf_counter()
    try:
        run = run_single_op(ctx, op, args, kwargs)
    except Exception as exc:
        result.status, result.error = "error", _one_line(exc)
        result.detail = traceback.format_exc()
        return result
    finally:
        result.device_seconds = round(time.perf_counter() - start, 4)
    plan = run.plan
    result.plan = {"lowered": plan.lowered, "rule": plan.rule, "ttnn": plan.ttnn, "reason": plan.reason}
    if not plan.lowered:
        result.status, result.error = "declined", plan.reason
    elif run.node is None:
        result.status = "host"
        result.error = "planned for the device, but the partitioner left it on the host"
    else:
        result.status = run.node.status
        result.error_kind, result.error = str(run.node.error_kind or ""), run.node.error
    got, want = _tensors(run.output), _tensors(native)
    result.device = [_stats(t) for t in got]
    if len(got) < len(want):  # run_single_op hands back the op's first output
        result.notes.append(
            f"outputs compared: the first {len(got)} of {len(want)} (the pipeline's result holds only those)"
        )
    elif len(got) > len(want):
        result.notes.append(f"the pipeline returned {len(got)} tensors, the aten op {len(want)}")
    from fxport.runtime.pcc import agreement

    result.pcc += [round(agreement(g, w), 6) for g, w in zip(got, want)]
    return result


def check(result: CaseResult) -> None:
    """The assertions of a generated test: the op was lowered, ran on the device, and every
    tensor output has PCC >= the case's threshold against the aten op in fp32."""
    where = f"{result.target} [{result.id}]"
    if result.status == "not run":
        raise ReplayError(f"{where}: {result.error}")
    if result.status == "error":
        raise PipelineError(f"{where}: fxport raised: {result.error}\n{result.detail}")
    if result.status == "declined":
        raise NotLowered(f"{where}: the plan sends it to the host: {result.error}")
    if result.status == "host":
        raise NotLowered(f"{where}: {result.error}")
    if result.status != "device":
        predicted = result.memory.get("device", {}).get("text", "")
        if result.error_kind == "OUT_OF_MEMORY":
            raise DeviceOutOfMemory(
                f"{where}: device {result.error}" + (f"\nmemory model on this device: {predicted}" if predicted else "")
            )
        raise DeviceError(f"{where}: device failed ({result.error_kind or 'error'}): {result.error}")
    if not result.pcc:
        raise PccBelowThreshold(f"{where}: ran on the device but returned no tensor to compare")
    low = [(i, p) for i, p in enumerate(result.pcc) if p is None or not p >= result.threshold]
    if len(result.device) > len(result.native) or low:
        detail = ", ".join(f"output {i}: PCC {p}" for i, p in low) or "more outputs than the aten op"
        raise PccBelowThreshold(
            f"{where}: {detail} (threshold {result.threshold}); native {result.native}, device {result.device}"
        )


def _live_memory(case: dict, ctx: Any) -> dict:
    """The memory model's verdict for this case on the device the suite runs on (generation
    used bank figures of the arch; a different device or option set can change the verdict)."""
    try:
        from fxport.memory.analysis import predict
        from fxport.memory.devices import DeviceMemory

        config = "L1" if ctx.memory == "l1" else "DRAM"
        mem = predict(case_record(case), DeviceMemory.from_handle(ctx.device))
        v = mem.verdicts[config]
        return {
            "config": config,
            "fits": v.fits,
            "per_bank": v.per_bank,
            "bank_size": v.bank_size,
            "banks": v.banks,
            "text": str(v),
        }
    except Exception as exc:  # the record is diagnostic only
        return {"error": _one_line(exc)}


def case_record(case: dict) -> OpRecord:
    """An OpRecord standing for the case (what the memory model sizes)."""
    target = case["target"]
    op, overload = split_target(target)
    specs = lambda xs: tuple(TensorSpec(tuple(x["shape"]), x["dtype"]) for x in xs)
    return OpRecord(
        index=0,
        node=case["id"],
        graph="main",
        target=target,
        op=op,
        overload=overload,
        inputs=specs(case["inputs"]),
        outputs=specs(case["outputs"]),
        args=case.get("args", ""),
        module="",
        module_type="",
        source="",
        call=case.get("call"),
    )


def _tensors(value: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]


def _stats(t: torch.Tensor) -> dict:
    d: dict[str, Any] = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
    if t.numel() and not t.is_complex():
        x = t.detach().double()
        finite = x[torch.isfinite(x)]
        d["nonfinite"] = int(x.numel() - finite.numel())
        if finite.numel():
            d.update(
                min=_r(finite.min()),
                max=_r(finite.max()),
                mean=_r(finite.mean()),
                std=_r(finite.std()) if finite.numel() > 1 else 0.0,
            )
    return d


def _r(x: torch.Tensor) -> float:
    v = float(x)
    return v if v == 0 or not math.isfinite(v) else float(f"{v:.6g}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


# -- pytest hooks of a generated suite (its conftest delegates here) -------------------------

_SLOW_HELP = (
    "run the cases marked slow (tensors beyond the CPU size budget); they are "
    "deselected by default unless -m selects markers"
)


def add_options(parser: Any) -> None:
    group = parser.getgroup("fxport", "fxport generated op tests")
    for args, kwargs in (
        (("--fxport-slow",), {"action": "store_true", "help": _SLOW_HELP}),
        (("--fxport-results",), {"default": None, "help": "where to write results.json (default: next to cases.json)"}),
    ):
        try:
            group.addoption(*args, **kwargs)
        except ValueError:  # two generated suites in one run: the first registered it
            pass


def configure(config: Any) -> None:
    config.addinivalue_line(
        "markers",
        "slow(reason): a case beyond the CPU size budget of a default run; deselected unless --fxport-slow or -m",
    )
    if not hasattr(config, "_fxport_results"):
        config._fxport_results = {}  # suite dir -> {case id: result}
        config._fxport_deselected = {}


def select_slow(config: Any, items: list, suite_dir: str | Path) -> None:
    """Deselect (never skip) this suite's slow cases unless asked for; the terminal summary
    says how many and why."""
    if config.getoption("fxport_slow", False) or config.getoption("markexpr", ""):
        return
    suite_dir = Path(suite_dir).resolve()
    keep, drop = [], []
    for item in items:
        in_suite = suite_dir in Path(str(item.path)).resolve().parents
        (drop if in_suite and item.get_closest_marker("slow") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        config._fxport_deselected[str(suite_dir)] = [
            f"{i.nodeid}: {i.get_closest_marker('slow').kwargs.get('reason', '')}" for i in drop
        ]


def recorder(request: Any, suite_dir: str | Path):
    """The fxport_record fixture's function: keeps the result for results.json and attaches it
    to the test report (junit-xml property "fxport")."""
    store = request.config._fxport_results.setdefault(str(Path(suite_dir).resolve()), {})

    def record(result: CaseResult) -> None:
        store[(result.target, result.id)] = result
        request.node.user_properties.append(("fxport", json.dumps(result.to_dict(), sort_keys=True)))

    return record


def session_finish(session: Any, suite_dir: str | Path) -> None:
    suite_dir = Path(suite_dir).resolve()
    results = session.config._fxport_results.get(str(suite_dir))
    if not results:
        return
    out = session.config.getoption("fxport_results", None)
    path = Path(out) if out else suite_dir / RESULTS_FILE
    ordered = [results[k] for k in sorted(results)]
    doc = {
        "suite": load_suite(suite_dir)["suite"],
        "results": [r.to_dict() for r in ordered],
        "summary": _summary(ordered),
    }
    write_text(path, dump_json(doc) + "\n")
    timing = {f"{r.target} [{r.id}]": {"native": r.native_seconds, "device": r.device_seconds} for r in ordered}
    write_text(path.with_name(TIMING_FILE), json.dumps(timing, indent=1, sort_keys=True) + "\n")


def dump_json(value: Any, indent: str = "", width: int = 100) -> str:
    """JSON with sorted keys, one line for anything that fits `width` (shapes, calls, specs),
    nested otherwise: deterministic and readable."""
    flat = json.dumps(value, sort_keys=True)
    if len(flat) + len(indent) <= width or not isinstance(value, (dict, list)) or not value:
        return flat
    inner = indent + " "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {dump_json(v, inner, width)}" for k, v in sorted(value.items())]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    items = [inner + dump_json(v, inner, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + indent + "]"


def _summary(results: list[CaseResult]) -> dict:
    counts: dict[str, int] = {}
    for r in results:
        key = r.status if r.status != "fallback" else f"fallback:{r.error_kind}"
        counts[key] = counts.get(key, 0) + 1
    return {"cases": len(results), "by_status": dict(sorted(counts.items()))}


def terminal_summary(reporter: Any, config: Any, suite_dir: str | Path) -> None:
    suite_dir = Path(suite_dir).resolve()
    results = getattr(config, "_fxport_results", {}).get(str(suite_dir), {})
    dropped = getattr(config, "_fxport_deselected", {}).get(str(suite_dir), [])
    if not results and not dropped:
        return
    reporter.section(f"fxport op suite {suite_dir.name}", sep="-")
    if results:
        s = _summary(list(results.values()))
        reporter.write_line(
            f"{s['cases']} case(s) run: " + ", ".join(f"{n} {k}" for k, n in s["by_status"].items()) + f"; records in "
            f"{config.getoption('fxport_results', None) or suite_dir / RESULTS_FILE}"
        )
    if dropped:
        reporter.write_line(f"{len(dropped)} slow case(s) deselected (not run; --fxport-slow runs them):")
        for line in dropped:
            reporter.write_line(f"  {line}")
