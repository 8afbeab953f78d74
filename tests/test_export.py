"""`fxport export`: the program is written from the run's own ttnn calls, issues as many per
inference as `fxport run` counted, runs on the mock with the run's accuracy, is ruff-clean and
deterministic, and keeps names from the model out of its code."""

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.utils._pytree as pytree
from safetensors.torch import load_file
from torch import nn

from fxport.export import export
from fxport.export.device import program_device

ROOT = Path(__file__).resolve().parents[1]


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x))) + x


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.blocks = nn.Sequential(Block(16), Block(16))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


class MLP(nn.Module):
    """Two inputs, a dict output and a GELU: outputs keep the model's structure."""

    def __init__(self):
        super().__init__()
        self.up = nn.Linear(32, 64)
        self.act = nn.GELU()
        self.down = nn.Linear(64, 32)
        self.norm = nn.LayerNorm(32)

    def forward(self, x, y):
        h = self.down(self.act(self.up(x))) + y
        return {"hidden": self.norm(h), "pooled": h.mean(dim=1)}


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_program(exported, folder: Path):
    """The program on the mock: its outputs, and the ttnn calls of one forward."""
    program = _load(exported.program)
    inputs = load_file(str(folder / "inputs.safetensors"))
    with program_device(program) as device:
        params = program.load_weights(folder / "weights.safetensors")
        model = getattr(program, exported.class_name)(device.device, params)
        before = len(device.calls)
        outputs = model(*[inputs[f"input.{i}"] for i in range(len(inputs))])
        per_inference = len(device.calls) - before
        model(*[inputs[f"input.{i}"] for i in range(len(inputs))])  # the prepared weights reused
        second = len(device.calls) - before - per_inference
    return outputs, per_inference, second


def _pcc(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


CASES = {
    "small_cnn": (SmallCNN, lambda: (torch.randn(1, 3, 32, 32),)),
    "mlp": (MLP, lambda: (torch.randn(2, 8, 32), torch.randn(2, 8, 32))),
}


@pytest.fixture(scope="module")
def exported_cases(tmp_path_factory, mock_device):
    """Each case exported once (the tests below read the same export): name -> (model, folder, export)."""
    done = {}
    for name, (make, args) in CASES.items():
        torch.manual_seed(0)
        model = make().eval()
        folder = tmp_path_factory.mktemp(name)
        done[name] = (model, folder, export(model, *args(), out=folder, name=name, device=mock_device))
    return done


@pytest.mark.parametrize("name", list(CASES))
def test_program_issues_the_runs_calls_and_matches(exported_cases, name):
    model, folder, exported = exported_cases[name]
    assert exported.per_inference == exported.run_per_inference == exported.result.calls.per_inference
    outputs, per_inference, second = _run_program(exported, folder)
    # Counted by running the program, not by reading it: every forward issues the run's calls
    assert per_inference == second == exported.run_per_inference
    references = load_file(str(folder / "references.safetensors"))
    leaves = [leaf for leaf in pytree.tree_leaves(outputs) if isinstance(leaf, torch.Tensor)]
    assert len(leaves) == len(references) > 0
    for i, leaf in enumerate(leaves):
        assert _pcc(leaf, references[f"output.{i}"]) >= exported.result.pcc_threshold
    inputs = load_file(str(folder / "inputs.safetensors"))
    reference = model(*[inputs[f"input.{i}"] for i in range(len(inputs))])
    assert type(outputs) is type(reference)  # the model's own structure


def test_the_generated_tests_pass_on_their_own(exported_cases):
    # Every case's generated test, in one new pytest process (as a user runs them; one process
    # for all of them spares a start-up of torch and TT-NN per case)
    tests = [str(exported.test) for _, _, exported in exported_cases.values()]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        capture_output=True,
        text=True,
        cwd=exported_cases["small_cnn"][1].parent,
        timeout=600,
    )
    assert done.returncode == 0 and f"{len(tests)} passed" in done.stdout, done.stdout[-2000:]


def test_blocks_differing_by_an_optional_child_are_one_class(tmp_path, mock_device):
    """torchvision's BasicBlock with and without its downsample: one class, the downsample under
    `if self.downsample:`, per-block numbers in the data file. The last block, which also converts
    the model's output back to NCHW, stays inline."""
    from torchvision.models.resnet import BasicBlock

    torch.manual_seed(0)
    down = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Sequential(BasicBlock(8, 16, stride=2, downsample=down), BasicBlock(16, 16), BasicBlock(16, 16)),
    ).eval()
    exported = export(model, torch.randn(1, 3, 16, 16), out=tmp_path, name="blocks", device=mock_device)
    text = exported.program.read_text()
    assert text.count("class BasicBlock") == 1 and text.count("if self.downsample:") == 2
    data = json.loads(exported.program.with_suffix(".json").read_text())
    assert [data["modules"][f"1.{i}"]["downsample"] for i in range(2)] == [True, False]
    outputs, per_inference, second = _run_program(exported, tmp_path)
    assert per_inference == second == exported.run_per_inference
    reference = load_file(str(tmp_path / "references.safetensors"))["output.0"]
    assert _pcc(outputs, reference) >= exported.result.pcc_threshold


def test_export_is_ruff_clean_and_byte_identical(tmp_path, mock_device, exported_cases):
    # The same model and input as the small_cnn case, exported again: the same bytes
    model, folder, first = exported_cases["small_cnn"]
    x = load_file(str(folder / "inputs.safetensors"))["input.0"]
    export(model, x, out=tmp_path / "b", name="small_cnn", device=mock_device)
    files = sorted(p for p in folder.iterdir() if p.is_file())  # not the __pycache__ of the tests that ran it
    assert [p.name for p in files] == sorted(p.name for p in (tmp_path / "b").iterdir())
    for path in files:
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
    text = first.program.read_text()
    # Block written once, used twice, its weights read by the model's names below its prefix
    assert text.count("class Block:") == 1
    # the nn.Sequential as a list, its blocks called in a loop
    assert 'self.blocks = [Block(device, params, f"blocks.{i}.") for i in range(2)]' in text
    assert "for block in self.blocks:" in text
    assert 'params[prefix + "conv.folded.0"]' in text  # a folded weight, named as such
    for args in (
        ["check", "--config", str(ROOT / "pyproject.toml")],
        ["format", "--check", "--line-length", "120", "--isolated"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *args, str(folder)], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_container_named_block_keeps_its_loop_apart(tmp_path, mock_device):
    """torchvision's InvertedResidual calls its layers `self.block`: the loop over a container of
    that name must not take its variable's name."""

    class Stage(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.block = nn.Sequential(Block(8), Block(8))

        def forward(self, x):
            return self.block(self.stem(x)) * 2

    torch.manual_seed(0)
    model = Stage().eval()
    exported = export(model, torch.randn(1, 3, 16, 16), out=tmp_path, name="named_block", device=mock_device)
    assert "block = block(block)" not in exported.program.read_text()
    outputs, per_inference, _ = _run_program(exported, tmp_path)
    assert per_inference == exported.run_per_inference
    reference = load_file(str(tmp_path / "references.safetensors"))["output.0"]
    assert _pcc(outputs, reference) >= exported.result.pcc_threshold


def test_a_hostile_module_name_stays_out_of_the_code(tmp_path, mock_device):
    torch.manual_seed(0)
    # What torch.export lets through in a module name (quotes and newlines it refuses itself):
    # statement separators, calls, comments, backslashes, non-ASCII letters
    hostile = "x);__import__(os)\\nsystem(touch PWNED)#été"
    model = nn.Sequential()
    model.add_module(hostile, nn.Linear(8, 8))
    model.add_module("relu", nn.ReLU())
    exported = export(model, torch.randn(2, 8), out=tmp_path, name='evil"\nname', device=mock_device)
    text = exported.program.read_text()
    tree = ast.parse(text)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert not names & {"__import__", "os", "system", "eval", "exec"}  # escaped into identifiers
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert f"{hostile}.weight" in strings  # the state_dict key, as a string literal
    compile(text, str(exported.program), "exec")
    _, per_inference, _ = _run_program(exported, tmp_path)
    assert per_inference == exported.run_per_inference
    assert not (tmp_path / "PWNED").exists() and not Path("PWNED").exists()


def test_cli_writes_the_program_only_with_no_weights(tmp_path, capsys, mock_device):
    # In this process (the session's mock device): the exit codes of the console script itself are
    # test_cli's; here what `export --no-weights` writes and a bad name's one-line error.
    from fxport.cli import main

    out = tmp_path / "out"
    args = ["export", "tests.user_models:TinyCNN", "--input-shape", "1,3,16,16", "--device", "mock"]
    assert main([*args, "--no-weights", "--out", str(out)]) == 0
    # the lock marks the folder as an fxport result, as every command's --out
    assert sorted(p.name for p in out.iterdir()) == [".fxport.lock", "tinycnn_ttnn.json", "tinycnn_ttnn.py"]
    printed = capsys.readouterr().out  # each file written, the data the program reads on import too
    assert "ttnn calls per inference (fxport run:" in printed and f"{out / 'tinycnn_ttnn.json'}\n" in printed
    program = _load(out / "tinycnn_ttnn.py")
    with pytest.raises(KeyError, match="is missing"):
        program.check_weights({})
    assert main(["export", "no_such_model", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fxport: error:")
    # a folder of the user's is not written over without --force; a file is no --out
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main([*args, "--no-weights", "--out", str(mine)]) == 2
    assert "--force" in capsys.readouterr().err and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("")
    assert main([*args, "--no-weights", "--out", str(tmp_path / "file")]) == 2


def test_a_verdict_export_builds_and_runs_on_meta_sizes(tmp_path, mock_device):
    """Without weights the program is written from a verdict run (meta weights, as full-size PI0
    runs): it imports, builds its modules from meta weights of the sizes it lists and issues the
    run's calls per inference on meta inputs."""
    exported = export("pi0-tiny", out=tmp_path, weights=False, device=mock_device)
    assert exported.result.values == "none" and exported.weights is None and exported.test is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pi0_tiny_ttnn.json", "pi0_tiny_ttnn.py"]
    program = _load(exported.program)
    params = {k: torch.empty(s, dtype=getattr(torch, d), device="meta") for k, (s, d) in program.WEIGHTS.items()}
    specs = [i.spec for i in exported.result.inputs]
    inputs = [torch.empty(s.shape, dtype=getattr(torch, s.dtype), device="meta") for s in specs]
    with program_device(program, values=False) as device:
        model = getattr(program, exported.class_name)(device.device, program.check_weights(params))
        assert len(device.calls) == exported.once > 0
        output = model(*inputs)
        assert len(device.calls) - exported.once == exported.run_per_inference == exported.per_inference
    assert output.is_meta and tuple(output.shape) == (1, 4, 6)  # the actions' shape


ZOO = [
    ("resnet50", "1,3,64,64"),
    ("yolov8n", "1,3,320,320"),
    ("vit_b_16", "1,3,64,64"),
    ("pi0-tiny", None),
]


@pytest.mark.slow
@pytest.mark.parametrize("spec, shape", ZOO)
def test_zoo_models_export_and_their_tests_pass(tmp_path, mock_device, spec, shape):
    from fxport.arguments import parse_shape
    from fxport.capture.loader import InputOptions

    options = InputOptions(shape=parse_shape(shape)) if shape else None
    exported = export(spec, out=tmp_path, inputs=options, device=mock_device)
    _, per_inference, second = _run_program(exported, tmp_path)
    assert per_inference == second == exported.run_per_inference
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(exported.test)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    if spec == "resnet50":  # one Bottleneck class: the downsample of each stage's first block optional
        text = exported.program.read_text()
        assert text.count("class Bottleneck") == 1 and text.count("if self.downsample:") == 2
        assert exported.lines < 300
        data = json.loads(exported.program.with_suffix(".json").read_text())
        assert [data["modules"][f"layer{i}.0"]["downsample"] for i in range(1, 5)] == [True] * 4
        assert not any(data["modules"][f"layer{i}.1"]["downsample"] for i in range(1, 5))
        # the README's excerpt of this program is what the program says, in its order
        sys.path.insert(0, str(ROOT / "scripts"))
        import readme_commands

        lines = [line.strip() for line in text.splitlines()]
        at = 0
        for line in readme_commands.excerpt("resnet50_ttnn.py"):
            assert line in lines[at:], f"README excerpt line not in the program (after line {at}): {line}"
            at = lines.index(line, at) + 1


def test_outputs_a_program_cannot_rebuild_are_a_one_line_refusal(tmp_path, mock_device):
    # GPT-2 with its default settings returns a DynamicCache: its structure is the library's, not
    # data a program can rebuild, so the export says so and how to get plain tensors
    from fxport.capture.loader import InputOptions
    from fxport.export.codegen import ExportError

    with pytest.raises(ExportError, match=r"DynamicCache.*use_cache=False"):
        export(
            "tests.hf_models:gpt2_tiny",
            out=tmp_path,
            inputs=InputOptions(source="tests.hf_models:ids_only"),
            device=mock_device,
        )
