"""Benchmark: `torch.compile(model, backend="fxport")` against eager and against `fxport run`'s
program, on the mock device (values emulated by golden functions, so a "device" call costs host
time). One process, one torch thread; every timed figure is a median over CALLS calls taken
interleaved (eager, then each compiled variant, in turn), so that load from other processes falls
on all of them alike and the ratios stay meaningful on a busy machine.

Three tables:
1. ttnn calls per inference: the compiled graph (second call, check="never") beside the program
   `fxport run` executes for the same model and inputs, and the one-off weight preparations.
2. Steady state: eager ms/call; the compiled model with check="never", "first" (the default: its
   later calls) and "every"; `fxport run`'s runtime path driven directly (weights as constants,
   no reference), and the same with every rule run on every call (no call list); each with its
   ratio to eager. First call: dynamo + export + passes + plan +
   partition + memory analysis + a checked run.
   Beside it, where a check="never" call's time goes: inside the ttnn ops (TT-NN's own host
   code on the mock: validation, program selection, allocation), emulating values (golden
   functions, and rounding their results to the device's dtype), and the rest (fxport,
   dynamo's guards, the device worker's handoff), from the replayed call lists' own timers
   (fxport.runtime.call_list); and the CPU time per call (all threads), which the machine's
   load inflates far less than the wall time.
3. A dynamic batch (sizes 1, 2, 3, 5, each planned once) on the small MLP.

    .venv/bin/python bench/compile.py            # all tables
    .venv/bin/python bench/compile.py --quick    # skip ResNet-50, YOLO and ViT in table 1
    .venv/bin/python bench/compile.py --steady   # table 2 only (about a minute)

A call through fxport waits for the device worker thread (fxport.runtime.watchdog) once per
device partition: on a loaded machine that wake-up waits for a free core, a fixed cost per call
that eager does not pay and that dominates a small model's figure (the MLP), not a large one's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torchvision
from tabulate import tabulate
from torch import nn

import fxport
import fxport.backend as backend
from fxport.capture.loader import load_model
from fxport.runner import compile_program, run_compiled
from fxport.runtime.call_list import CallList
from fxport.runtime.devices import open_session_device
from fxport.runtime.execute import call_lists
from fxport.tracing import trace

CALLS = 10


def mlp() -> tuple[nn.Module, tuple]:
    """The issue's MLP: three Linear 512, batch 32."""
    model = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512))
    return model.eval(), (torch.randn(32, 512),)


def resnet18() -> tuple[nn.Module, tuple]:
    return torchvision.models.resnet18(weights=None).eval(), (torch.randn(1, 3, 224, 224),)


def zoo(spec: str, shape: tuple) -> tuple[nn.Module, tuple]:
    loaded = load_model(spec, shape, device="cpu")
    return loaded.module.eval(), loaded.inputs


def run_path(model: nn.Module, inputs: tuple, replay: bool = True):
    """`fxport run`'s program for `model` (export with the weights as constants, every pass) and a
    function running it on the mock device without a reference, as a steady-state call.
    `replay=False`: every rule runs on every call (no call list)."""
    dev = open_session_device("mock")
    cap = trace(model, inputs)
    compiled = compile_program(cap.graphs[0].program)
    state = {}

    def call(*args):
        result = run_compiled(compiled, args, None, dev, node_pcc=False, analysis=state.get("analysis"), replay=replay)
        state["analysis"] = result.memory_analysis
        state["result"] = result
        return result.outputs

    return call, state


def calls_row(name: str, model: nn.Module, inputs: tuple) -> list:
    torch._dynamo.reset()
    compiled = fxport.compile(model, device="mock", check="never")
    start = time.perf_counter()
    with torch.no_grad():
        compiled(*inputs)
    first = time.perf_counter() - start
    weights = backend.results[-1].calls.weights
    with torch.no_grad():
        compiled(*inputs)
    through = backend.results[-1].calls
    run, state = run_path(model, inputs)
    with torch.no_grad():
        run(*inputs)
        direct_weights = state["result"].calls.weights
        run(*inputs)
    direct = state["result"].calls
    torch._dynamo.reset()
    return [
        name,
        through.per_inference,
        through.ops.get("from_torch", 0),
        weights,
        direct.per_inference,
        direct_weights,
        f"{first:.1f}",
    ]


def steady(name: str, model: nn.Module, inputs: tuple, calls: int = CALLS) -> tuple[list, list]:
    """The steady-state row, and the breakdown row of the check="never" calls: where their time
    went (inside the ttnn ops, inside golden functions, the rest) and their CPU time."""
    torch._dynamo.reset()
    variants = {"eager": model}
    firsts = {}
    graphs = {}
    for check in ("never", "first", "every"):
        variants[check] = fxport.compile(model, device="mock", check=check)
        known = set(map(id, backend.compiled_graphs()))
        start = time.perf_counter()
        with torch.no_grad():
            variants[check](*inputs)
        firsts[check] = 1000 * (time.perf_counter() - start)
        graphs[check] = [g for g in backend.compiled_graphs() if id(g) not in known]
    variants["run path"], _ = run_path(model, inputs)
    variants["rules"], _ = run_path(model, inputs, replay=False)
    times = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    with torch.no_grad():
        for fn in variants.values():  # warm-up; the second call records the call lists
            fn(*inputs)
            fn(*inputs)
        partitions = _partitions(graphs["never"])
        lists = [e for entries in partitions for e in entries if isinstance(e, CallList)]
        spent = sum(c.ttnn_seconds for c in lists), sum(c.golden_seconds for c in lists)
        replays = sum(c.replays for c in lists)
        for _ in range(calls):
            for key, fn in variants.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                fn(*inputs)
                times[key].append(time.perf_counter() - start)
                cpu[key].append(time.process_time() - start_cpu)
        replayed = sum(c.replays for c in lists) - replays
        in_ttnn = sum(c.ttnn_seconds for c in lists) - spent[0]
        in_golden = sum(c.golden_seconds for c in lists) - spent[1]
    torch._dynamo.reset()
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    cpu_ms = {k: 1000 * statistics.median(v) for k, v in cpu.items()}
    eager = ms["eager"]
    cells = [f"{ms[k]:.1f} ({ms[k] / eager:.2f}x)" for k in ("never", "first", "every", "run path", "rules")]
    # Means over the replayed calls (the medians above are of whole calls)
    mean_never = 1000 * statistics.fmean(times["never"])
    per_call = 1000 / max(replayed, 1)
    breakdown = [
        name,
        f"{sum(any(isinstance(e, CallList) for e in p) for p in partitions)} of {len(partitions)}",
        f"{mean_never:.2f}",
        f"{in_ttnn * per_call:.2f}",
        f"{in_golden * per_call:.2f}",
        f"{mean_never - (in_ttnn + in_golden) * per_call:.2f}",
        f"{cpu_ms['never']:.2f}",
        f"{1000 * statistics.fmean(times['eager']):.2f}",
        f"{cpu_ms['eager']:.2f}",
        f"{cpu_ms['run path']:.2f}",
        f"{cpu_ms['rules']:.2f}",
    ]
    return [name, f"{eager:.1f}", *cells, f"{firsts['first']:.0f}"], breakdown


def _partitions(graphs: list) -> list[list]:
    """For each device partition of these compiled graphs: its call lists, or why none."""
    return [
        entries
        for graph in graphs
        for state in graph.shapes.values()
        for entries in call_lists(state.compiled.parts.graph_module).values()
    ]


def dynamic_row() -> list:
    torch._dynamo.reset()
    model, _ = mlp()
    compiled = fxport.compile(model, device="mock", dynamic=True, check="never")
    planning = []
    with torch.no_grad():
        for b in (1, 2, 3, 5):
            x = torch.randn(b, 512)
            start = time.perf_counter()
            compiled(x)
            planning.append(1000 * (time.perf_counter() - start))
        times = {"eager": [], "compiled": []}
        for i in range(CALLS):
            x = torch.randn((1, 2, 3, 5)[i % 4], 512)
            for key, fn in (("eager", model), ("compiled", compiled)):
                start = time.perf_counter()
                fn(x)
                times[key].append(time.perf_counter() - start)
    torch._dynamo.reset()
    eager, comp = (1000 * statistics.median(times[k]) for k in ("eager", "compiled"))
    return [
        "MLP 3x Linear 512, batch 1/2/3/5",
        " / ".join(f"{p:.0f}" for p in planning),
        f"{eager:.2f}",
        f"{comp:.1f} ({comp / eager:.1f}x)",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip ResNet-50, YOLO and ViT in the calls table")
    parser.add_argument("--steady", action="store_true", help="the steady-state table only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = [("ResNet-18, 1x3x224x224", resnet18), ("MLP 3x Linear 512, batch 32", mlp)]
    if not args.quick:
        models = [
            ("ResNet-50, 1x3x224x224", lambda: zoo("resnet50", (1, 3, 224, 224))),
            *models,
            ("YOLOv8n, 1x3x128x128", lambda: zoo("yolov8n", (1, 3, 128, 128))),
            ("ViT-B/16, 1x3x64x64", lambda: zoo("vit_b_16", (1, 3, 64, 64))),
        ]
    rows = []
    for name, build in [] if args.steady else models:
        model, inputs = build()
        rows.append(calls_row(name, model, inputs))
        print(f"counted {name}", file=sys.stderr)
    if rows:
        print("ttnn calls per inference (mock device)")
        print(
            tabulate(
                rows,
                headers=[
                    "model",
                    "torch.compile calls/inference",
                    "of them from_torch",
                    "weight preparations (once)",
                    "fxport run calls/inference",
                    "fxport run weight preparations",
                    "compile: 1st call s",
                ],
            )
        )
    rows, breakdowns = [], []
    for name, build, calls in (
        ("ResNet-18, batch 1, 3x224x224", resnet18, CALLS),
        ("MLP 3x Linear 512, batch 32", mlp, 5 * CALLS),
    ):
        model, inputs = build()
        row, breakdown = steady(name, model, inputs, calls)
        rows.append(row)
        breakdowns.append(breakdown)
        print(f"timed {name}", file=sys.stderr)
    print(f"\nsteady state, ms/call (median of {CALLS} calls, the MLP's of {5 * CALLS}, interleaved; ratio to eager)")
    print(
        tabulate(
            rows,
            headers=[
                "model",
                "eager",
                "check=never",
                "check=first (default)",
                "check=every",
                "fxport run's runtime path",
                "the same, every rule run (no call list)",
                "1st call ms",
            ],
        )
    )
    print("\ncheck=never, where a call's time goes, ms/call (means; in ttnn ops: TT-NN's host code on the mock)")
    print(
        tabulate(
            breakdowns,
            headers=[
                "model",
                "partitions replayed",
                "call",
                "in ttnn ops",
                "emulating values (goldens)",
                "rest: fxport, dynamo, handoff",
                "CPU ms (median)",
                "eager",
                "eager CPU ms",
                "run path CPU ms",
                "every rule run CPU ms",
            ],
        )
    )
    if args.steady:
        return 0
    print("\ndynamic batch")
    print(
        tabulate(
            [dynamic_row()], headers=["model", "1st call per batch 1/2/3/5 ms", "eager ms/call", "check=never ms/call"]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
