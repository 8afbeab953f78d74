"""Benchmark: `fxport export` on the issue's models, on the mock device. For each model: the
program's lines, the ttnn calls its `forward` issues per inference (counted by running it twice on
the mock through the generated files' device helper) against `fxport run`'s count for the same
run, the program's worst output PCC against the saved fp32 references, the generated test's
result and whether the files pass the project's ruff settings. Each model runs in a fresh process.

    .venv/bin/python bench/export.py [TAG ...]
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "resnet50": ["resnet50"],
    "yolov8n@640": ["yolov8n"],
    "vit_b_16@64": ["vit_b_16", "--input-shape", "1,3,64,64"],
    "pi0-tiny": ["pi0-tiny"],
    "hf bert (config)": ["tests.hf_models:bert_tiny", "--inputs", "tests.hf_models:lm_inputs"],
    "hf llama (config)": ["tests.hf_models:llama_tiny", "--input", "2,16:int64:0..512", "--input", "2,16:int64:1..2"],
    "torchvision resnet18@64": ["torchvision.models:resnet18", "--input-shape", "1,3,64,64"],
    "torchvision mobilenet_v3_small@64": ["torchvision.models:mobilenet_v3_small", "--input-shape", "1,3,64,64"],
    # full size, no weights: written from a verdict run, built and run on meta sizes (no values)
    "pi0 (full, --no-weights)": ["pi0", "--no-weights"],
}


def _pcc(a, b) -> float:
    import torch

    a, b = a.double().flatten(), b.double().flatten()
    return 1.0 if torch.equal(a, b) else float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def one(args: list[str], out: Path) -> dict:
    """In a fresh process: export, then run the program on the mock and count its calls."""
    import torch
    import torch.utils._pytree as pytree
    from safetensors.torch import load_file

    from fxport.capture.loader import InputOptions, parse_input
    from fxport.cli import parse_shape
    from fxport.export import export
    from fxport.export.device import program_device

    spec, rest = args[0], args[1:]
    shape = rest[rest.index("--input-shape") + 1] if "--input-shape" in rest else None
    source = rest[rest.index("--inputs") + 1] if "--inputs" in rest else None
    specs = tuple(parse_input(rest[i + 1]) for i, a in enumerate(rest) if a == "--input")
    options = InputOptions(shape=parse_shape(shape) if shape else None, specs=specs, source=source)
    start = time.perf_counter()
    weights = "--no-weights" not in rest
    done = export(spec, out=out, inputs=options, weights=weights)
    seconds = time.perf_counter() - start
    module_spec = importlib.util.spec_from_file_location(done.program.stem, done.program)
    program = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(program)
    classes = [k for k, v in vars(program).items() if isinstance(v, type) and v.__module__ == program.__name__]
    figures = {"classes": len(classes) - 1, "lines": done.lines, "run_calls": done.run_per_inference}
    figures.update(once=done.once, export_s=round(seconds, 1))
    if not weights:  # meta weights and inputs of the listed sizes: built and run, nothing computed
        # in a process of its own: the export's run still holds its weights on this one's device
        specs = [[list(i.spec.shape), i.spec.dtype] for i in done.result.inputs]
        meta = subprocess.run(
            [sys.executable, __file__, "--meta", str(done.program), done.class_name, json.dumps(specs)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=3600,
        )
        if meta.returncode != 0:
            raise RuntimeError("the program on meta sizes: " + (meta.stderr.strip().splitlines() or ["?"])[-1])
        built, calls = json.loads(meta.stdout.strip().splitlines()[-1])
        figures["once"] = f"{done.once} (program: {built})"
        return {**figures, "program_calls": [calls], "pcc": None, "run_pcc": None}
    inputs = load_file(str(out / "inputs.safetensors"))
    references = load_file(str(out / "references.safetensors"))
    cls = getattr(program, done.class_name)
    with program_device(program) as device:
        model = cls(device.device, program.load_weights(out / "weights.safetensors"))
        counts = []
        for _ in range(2):
            before = len(device.calls)
            outputs = model(*[inputs[f"input.{i}"] for i in range(len(inputs))])
            counts.append(len(device.calls) - before)
    leaves = [t for t in pytree.tree_leaves(outputs) if isinstance(t, torch.Tensor)]
    pcc = min(_pcc(t.float(), references[f"output.{i}"]) for i, t in enumerate(leaves))
    return {**figures, "program_calls": counts, "pcc": pcc, "run_pcc": done.pcc}


def on_meta(path: Path, class_name: str, specs: list) -> tuple[int, int]:
    """The program built from meta weights of the sizes its data lists and run on meta inputs on
    the mock (validated and allocated, nothing computed): its calls to build and per forward."""
    import torch

    from fxport.export.device import program_device

    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    program = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(program)
    params = {k: torch.empty(s, dtype=getattr(torch, d), device="meta") for k, (s, d) in program.WEIGHTS.items()}
    inputs = [torch.empty(s, dtype=getattr(torch, d), device="meta") for s, d in specs]
    with program_device(program, values=False) as device:
        model = getattr(program, class_name)(device.device, program.check_weights(params))
        built = len(device.calls)
        model(*inputs)
    return built, len(device.calls) - built


def bench(tag: str, args: list[str], folder: Path) -> list:
    out = folder / tag.replace(" ", "_").replace("@", "_")
    done = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(args), str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=3600,
    )
    if done.returncode != 0:
        return [tag, "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:100]]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    test = next(out.glob("test_*_ttnn.py"), None)
    passed = test is not None and (
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:logging", test.name],
            capture_output=True,
            text=True,
            cwd=out,
            timeout=3600,
        ).returncode
        == 0
    )
    clean = all(
        subprocess.run([sys.executable, "-m", "ruff", *cmd, str(out)], capture_output=True, cwd=ROOT).returncode == 0
        for cmd in (
            ["check", "--config", str(ROOT / "pyproject.toml")],
            ["format", "--check", "--isolated", "--line-length", "120"],
        )
    )
    calls = "/".join(str(c) for c in r["program_calls"])
    return [
        tag,
        r["lines"],
        r["classes"],
        f"{calls} vs {r['run_calls']}",
        r["once"],
        "n/a (meta)" if r["pcc"] is None else f"{r['pcc']:.6f}",
        "n/a (verdict)" if r["run_pcc"] is None else f"{r['run_pcc']:.6f}",
        "none (no weights)" if test is None else "pass" if passed else "FAIL",
        "yes" if clean else "NO",
        r["export_s"],
    ]


def main() -> None:
    if sys.argv[1:2] == ["--meta"]:
        print(json.dumps(on_meta(Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4]))))
        return
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(one(json.loads(sys.argv[2]), Path(sys.argv[3]))))
        return
    tags = sys.argv[1:] or list(CASES)
    unknown = [t for t in tags if t not in CASES]
    if unknown:
        sys.exit(f"usage: bench/export.py [TAG ...]; unknown {', '.join(unknown)}; tags: {', '.join(CASES)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for tag in tags:
            rows.append(bench(tag, CASES[tag], Path(tmp)))
            print(" | ".join(map(str, rows[-1])), file=sys.stderr)
    print(
        tabulate(
            rows,
            headers=[
                "model",
                "program lines",
                "module classes",
                "calls per inference (program runs vs fxport run)",
                "weight preparations",
                "program PCC",
                "run PCC",
                "generated test",
                "ruff clean",
                "export s",
            ],
        )
    )


if __name__ == "__main__":
    main()
