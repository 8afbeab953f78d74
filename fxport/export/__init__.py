"""`fxport export`: a model as a standalone TT-NN program, written from the calls of one run.

The model runs once through fxport (`fxport run`'s path) with a recorder on the lowering context;
every ttnn call the rules issue, every read back and every host op is recorded with its real
arguments, and fxport.export.codegen writes that record as Python. The program therefore issues
the calls the run counted per inference, built by the same rules (no second translator).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch.export.graph_signature import InputKind

from fxport import durable
from fxport.capture.loader import InputOptions, LoadedModel, load_model
from fxport.export.codegen import ExportError, Program, write_program
from fxport.export.names import identifier
from fxport.run_options import DEFAULTS, RunOptions
from fxport.runner import flat_inputs, run_loaded
from fxport.runtime.devices import DeviceHandle, open_session_device
from fxport.runtime.recording import Recorder
from fxport.settings import SEED

LINE_LENGTH = 120  # the project's ruff settings (pyproject.toml), which the program is formatted to


@dataclass
class Exported:
    """What `export` wrote, with the run it was written from."""

    name: str
    program: Path
    data: Path  # <name>_ttnn.json: per-instance arguments the program reads when imported
    test: Path | None
    weights: Path | None
    lines: int
    per_inference: int  # ttnn calls the program's forward issues
    run_per_inference: int  # what `fxport run` counted for the same run
    once: int  # weight preparations in __init__
    pcc: float | None  # the run's lowest output PCC
    result: Any  # the RunResult
    class_name: str = ""  # the model's class in the program


def export(
    model: Any,
    *args: Any,
    out: str | Path,
    name: str | None = None,
    weights: bool = True,
    kwargs: dict | None = None,
    inputs: InputOptions | None = None,
    device: DeviceHandle | None = None,
    options: RunOptions = DEFAULTS,
) -> Exported:
    """Export `model` (an nn.Module called with `*args, **kwargs`, or a zoo name / module:callable
    built with `inputs`) to the folder `out`, from a run with `options` (`pcc_threshold`: what the
    written test requires). Without `weights` the default values are a verdict run ("none": meta
    weights, any size, every repeated call traced), since nothing written then needs a value."""
    options = replace(options, values=options.values or ("" if weights else "none"))
    if options.values == "none" and weights:
        raise ExportError("a verdict run (values none) has no weights or references to save: use --no-weights")
    torch.manual_seed(SEED)
    if isinstance(model, torch.nn.Module):
        loaded = LoadedModel(name or type(model).__name__, model.eval(), tuple(args), "cpu", kwargs=dict(kwargs or {}))
    else:
        loaded = load_model(str(model), inputs, device="meta" if options.values == "none" else "cpu")
    name = identifier(name or loaded.name.rsplit(":", 1)[-1], "model").lower()
    dev = device or open_session_device("auto")
    recorder, kept = Recorder(), []
    result = run_loaded(loaded, dev, options, recorder=recorder, compiled_out=kept, fold=False)
    if not kept:  # run in pieces (fxport.capture.pieces): no one program to write
        raise ExportError(
            f"{loaded.name} runs as several graphs with Python between them (torch.export cannot capture it "
            "whole); fxport export writes models captured as one graph"
        )
    compiled = kept[0]
    program = _program(compiled, loaded, recorder, dev, name, result)  # the class: named as the files
    run_calls = result.calls.per_inference
    if program.per_inference != run_calls:
        raise ExportError(
            f"the record holds {program.per_inference} ttnn calls per inference but the run "
            f"counted {run_calls}: a call left fxport outside the recorded path"
        )
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    source = _formatted(program.source)
    program_path = durable.write_text(folder / f"{name}_ttnn.py", source)
    data_path = durable.write_text(folder / f"{name}_ttnn.json", _data_text(program.data))
    weights_path = test_path = None
    if weights:
        with torch.no_grad():
            reference = loaded.module(*loaded.inputs, **loaded.kwargs)
        weights_path = _save(folder / "weights.safetensors", program.weights)
        _save(folder / "inputs.safetensors", {f"input.{i}": t for i, (_, t) in enumerate(program.inputs)})
        refs = [t for t in pytree.tree_leaves(reference) if isinstance(t, torch.Tensor)]
        _save(folder / "references.safetensors", {f"output.{i}": t.float() for i, t in enumerate(refs)})
        test_path = durable.write_text(
            folder / f"test_{name}_ttnn.py", _formatted(_test_source(name, program.class_name, options.pcc_threshold))
        )
    pccs = [c.pcc for c in result.output_checks if c.pcc is not None]
    return Exported(
        name,
        program_path,
        data_path,
        test_path,
        weights_path,
        source.count("\n"),
        program.per_inference,
        run_calls,
        program.once,
        min(pccs) if pccs else None,
        result,
        program.class_name,
    )


def _program(
    compiled: Any, loaded: LoadedModel, recorder: Recorder, dev: DeviceHandle, name: str, result: Any
) -> Program:
    import ttnn

    program = compiled.program
    flat = flat_inputs(program, loaded.inputs, loaded.kwargs)
    params: dict[int, tuple[str, torch.Tensor]] = {}
    inputs = []
    for spec, value in zip(program.graph_signature.input_specs, flat, strict=True):
        if spec.kind == InputKind.USER_INPUT:
            inputs.append((identifier(spec.arg.name, "x"), value))
        elif isinstance(value, torch.Tensor):
            params[id(value)] = (spec.target, value)
    placeholder_names = {spec.arg.name for spec in program.graph_signature.input_specs}
    for key, value in compiled.optimized.constants.items():
        if id(value) not in params and key not in placeholder_names:
            params[id(value)] = (f"folded.{key}", value)  # made by a graph pass (batch-norm folding)
    header = (
        f"{loaded.name} on TT-NN, written by `fxport export` from the ttnn calls of one run "
        f"({result.memory} activations, {result.weights} weights). "
        f"Per inference: {result.calls.per_inference} ttnn calls."
    )
    if result.values == "none":
        header += " Written from a verdict run (meta weights): the program has not been run with values"
        if recorder.noted:
            header += f"; {recorder.noted} calls carry a NOTE on a number the run did not have"
        header += "."
    return write_program(
        recorder.entries,
        ttnn=ttnn,
        device=dev.device,
        model_name=name,
        inputs=inputs,
        params=params,
        outputs=result.outputs,
        header=header,
    )


def _data_text(data: dict[str, dict]) -> str:
    """The program's data as JSON, one weight or module instance a line."""
    parts = []
    for section, items in data.items():
        lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in items.items()]
        parts.append(f"{json.dumps(section)}: {{\n" + ",\n".join(lines) + ("\n }" if lines else "}"))
    return "{\n " + ",\n ".join(parts) + "\n}\n"


def _save(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    from safetensors.torch import save

    data = save({k: t.detach().contiguous().clone() for k, t in sorted(tensors.items())})
    with durable.atomic_open(path, "wb") as f:
        f.write(data)
    return path


def _formatted(source: str) -> str:
    """`ruff format` with the project's settings; the source as written when ruff is not installed."""
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "ruff",
                "format",
                "--line-length",
                str(LINE_LENGTH),
                "--isolated",
                "--stdin-filename",
                "program.py",
                "-",
            ],
            input=source,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return source
    if done.returncode != 0:
        if "No module named ruff" in done.stderr:
            return source
        raise ExportError(f"the generated program does not parse: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout


def _test_source(name: str, cls: str, threshold: float) -> str:
    return f'''"""{name}_ttnn.py on a device (a Tenstorrent card, else fxport's mock device), on the saved
example inputs, against the model's fp32 outputs."""

import importlib.util
from pathlib import Path

import torch
import torch.utils._pytree as pytree
from safetensors.torch import load_file

from fxport.export.device import program_device

HERE = Path(__file__).parent
PCC = {threshold!r}


def _program():
    spec = importlib.util.spec_from_file_location("{name}_ttnn", HERE / "{name}_ttnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pcc(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    if torch.equal(a, b):
        return 1.0
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_{name}_matches_reference():
    program = _program()
    inputs = load_file(str(HERE / "inputs.safetensors"))
    references = load_file(str(HERE / "references.safetensors"))
    with program_device(program) as device:
        model = program.{cls}(device.device, program.load_weights(HERE / "weights.safetensors"))
        outputs = model(*[inputs[f"input.{{i}}"] for i in range(len(inputs))])
    leaves = [leaf for leaf in pytree.tree_leaves(outputs) if isinstance(leaf, torch.Tensor)]
    assert len(leaves) == len(references)
    for i, leaf in enumerate(leaves):
        assert _pcc(leaf.float(), references[f"output.{{i}}"]) >= PCC, f"output {{i}}"
'''


__all__ = ["Exported", "ExportError", "export"]
