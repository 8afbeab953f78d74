"""Any inputs a user brings (--input, --inputs, --model-arg, args and kwargs in the API) and any
outputs (pytrees, PCC per leaf by path, uninformative PCC said so), on the mock device."""

import json

import pytest
import torch

import fxport
from fxport.capture.loader import InputOptions, InputSpec, load_model, parse_input, parse_model_arg
from fxport.cli import main
from fxport.errors import FxportError
from tests.user_models import NestedOutputs, TwoInputs


@pytest.mark.parametrize(
    "text, spec",
    [
        ("1,3,224,224", InputSpec((1, 3, 224, 224))),
        ("1,48:int64:0..32000", InputSpec((1, 48), torch.int64, 0, 32000)),
        ("1,48:bool", InputSpec((1, 48), torch.bool)),
        ("2,8:float32:-1..1", InputSpec((2, 8), torch.float32, -1.0, 1.0)),
    ],
)
def test_parse_input(text, spec):
    assert parse_input(text) == spec


@pytest.mark.parametrize(
    "text, message",
    [
        ("1,48:int65", "unknown dtype 'int65'"),
        ("1,48:int64:5..2", "malformed range '5..2'"),
        ("1,48:int64:0-9", "malformed range"),
        ("1,48:bool:0..1", "not for bool"),
        ("1,x", "malformed input shape"),
    ],
)
def test_parse_input_errors(text, message):
    with pytest.raises(FxportError, match=message):
        parse_input(text)


def test_input_values_follow_dtype_and_range():
    ids = InputSpec((4, 64), torch.int64, 3, 7).make()
    assert ids.dtype == torch.int64 and int(ids.min()) >= 3 and int(ids.max()) < 7
    assert InputSpec((4, 4), torch.bool).make().dtype == torch.bool
    x = InputSpec((100,), None, 2.0, 3.0).make(torch.float16)
    assert x.dtype == torch.float16 and float(x.min()) >= 2.0 and float(x.max()) <= 3.0


def test_model_args_are_literals_and_never_code():
    assert parse_model_arg("weights=None") == ("weights", None)
    assert parse_model_arg("num_classes=10") == ("num_classes", 10)
    assert parse_model_arg("sizes=[1, 2]") == ("sizes", [1, 2])
    assert parse_model_arg("backbone_name=resnet18") == ("backbone_name", "resnet18")
    assert parse_model_arg("x=__import__('os').getcwd()") == ("x", "__import__('os').getcwd()")
    with pytest.raises(FxportError, match="malformed --model-arg"):
        parse_model_arg("no equals sign")


def test_loader_builds_inputs_of_every_kind():
    loaded = load_model(
        "tests.user_models:Embed",
        InputOptions(specs=(parse_input("2,5:int64:0..50"),), model_args={"vocab": 50, "width": 8}),
    )
    assert loaded.module.table.num_embeddings == 50 and loaded.inputs[0].dtype == torch.int64
    assert loaded.inputs[0].is_meta
    both = load_model("tests.user_models:TwoInputs", InputOptions(source="tests.user_models:two_inputs_kwargs"))
    assert len(both.inputs) == 1 and set(both.kwargs) == {"y", "mask"}
    assert all(t.is_meta for t in (*both.inputs, *both.kwargs.values()))


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["tests.user_models:TwoInputs", "--input", "2,8"],
            "wrong inputs (args[0]) for forward(x, y, mask=None): missing a required argument: 'y'",
        ),
        (
            ["tests.user_models:TinyCNN", "--inputs", "tests.user_models:two_inputs_args"],
            "wrong inputs (args[0], args[1]) for forward(x)",
        ),
        (
            ["tests.user_models:TwoInputs", "--inputs", "tests.user_models:not_inputs"],
            "returned str: expected a tuple of args",
        ),
        (["tests.user_models:TwoInputs", "--inputs", "tests.user_models:nothing_here"], "has no attribute"),
        (["tests.user_models:TwoInputs", "--input", "2,8", "--input-shape", "2,8"], "not both"),
        (["tests.user_models:Embed", "--model-arg", "depth=3"], "unexpected keyword argument 'depth'"),
        (["tests.user_models:NeedsArgs", "--model-arg", "height=3"], "needs arguments (width)"),
        (["resnet50", "--model-arg", "weights=None"], "--model-arg is for module.path:callable models"),
    ],
)
def test_wrong_inputs_are_one_line_with_exit_2(args, message, tmp_path, capsys):
    rc = main(["trace", *args, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err and len(err.strip().splitlines()) == 1


def test_run_names_the_signature_when_forward_fails_on_its_inputs(tmp_path, capsys):
    rc = main(
        [
            "run",
            "tests.user_models:TwoInputs",
            "--input",
            "2,8",
            "--input",
            "2,5",
            "--device",
            "mock",
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "forward(x, y, mask=None) failed on its inputs (args[0] [2, 8]:float32, " in err
    assert len(err.strip().splitlines()) == 1


def test_cli_two_inputs_and_keyword_inputs(tmp_path, capsys):
    rc = main(
        ["trace", "tests.user_models:TwoInputs", "--input", "2,4,8", "--input", "2,4,8", "--out", str(tmp_path / "t")]
    )
    assert rc == 0
    doc = json.loads((tmp_path / "t" / "ops.json").read_text())
    assert [i["path"] for i in doc["inputs"]] == ["args[0]", "args[1]"]
    assert doc["outputs"] == [{"path": "out", "shape": [2, 4, 8], "dtype": "float32"}]
    rc = main(
        [
            "run",
            "tests.user_models:TwoInputs",
            "--inputs",
            "tests.user_models:two_inputs_kwargs",
            "--device",
            "mock",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert rc == 0
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert [i["path"] for i in run["inputs"]] == ["args[0]", "kwargs['y']", "kwargs['mask']"]
    assert run["outputs"][0]["informative"] is True and run["outputs"][0]["pcc"] > 0.99
    assert "end-to-end PCC vs fp32 torch: 0.99" in capsys.readouterr().out


def test_integer_inputs_and_model_args(tmp_path, capsys):
    rc = main(
        [
            "run",
            "tests.user_models:Embed",
            "--model-arg",
            "vocab=64",
            "--model-arg",
            "width=32",
            "--input",
            "1,32:int64:0..64",
            "--device",
            "mock",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["inputs"] == [{"path": "args[0]", "shape": [1, 32], "dtype": "int64"}]
    assert run["coverage"]["device_pct"] == 100.0 and run["output_pcc"][0] > 0.99


def test_nested_outputs_get_a_pcc_per_leaf_by_path(mock_device, tmp_path, capsys):
    torch.manual_seed(0)
    x = torch.randn(4, 8)
    cap = fxport.trace(NestedOutputs(), x)
    paths = [
        "out['pair'][0]",
        "out['pair'][1]",
        "out['parts'].main",
        "out['parts'].extras[0]",
        "out['parts'].extras[1]",
    ]
    assert [leaf.path for leaf in cap.outputs] == paths
    result = fxport.run(NestedOutputs(), x, device="mock")
    assert [c.path for c in result.output_checks] == paths
    assert all(c.informative and c.pcc > 0.99 for c in result.output_checks)
    assert type(result.outputs["parts"]).__name__ == "Parts"  # the model's own structure comes back
    rc = main(["run", "tests.user_models:NestedOutputs", "--input", "4,8", "--device", "mock", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "end-to-end PCC vs fp32 torch, per output:" in out and "out['parts'].extras[1]" in out


def test_uninformative_pcc_is_said_and_never_a_pass(tmp_path, capsys):
    from fxport.report.render import render_dir

    rc = main(["run", "tests.user_models:Independent", "--input", "4,8", "--device", "mock", "--out", str(tmp_path)])
    assert rc == 0
    doc = json.loads((tmp_path / "run.json").read_text())
    by_path = {o["path"]: o for o in doc["outputs"]}
    assert by_path["out['live']"]["informative"] is True and by_path["out['live']"]["pcc"] > 0.99
    assert by_path["out['fixed']"]["informative"] is False
    assert by_path["out['fixed']"]["note"] == "output does not depend on input"
    assert by_path["out['constant']"]["note"] == "reference output is constant"
    assert doc["output_pcc"][1:] == [None, None]  # no figure for a PCC that means nothing
    out = capsys.readouterr().out
    assert out.count("PCC uninformative: output does not depend on input") == 1
    assert "PCC uninformative: reference output is constant" in out
    render_dir(tmp_path)
    assert "PCC uninformative: output does not depend on input" in (tmp_path / "report.md").read_text()


def test_api_takes_args_and_kwargs(mock_device):
    model = TwoInputs().eval()
    x, y, mask = torch.randn(2, 4, 8), torch.randn(2, 4, 8), torch.ones(2, 4)
    cap = fxport.trace(model, x, kwargs={"y": y, "mask": mask})
    assert [leaf.path for leaf in cap.inputs] == ["args[0]", "kwargs['y']", "kwargs['mask']"]
    result = fxport.run(model, x, y, kwargs={"mask": mask}, device="mock")
    assert result.output_pcc[0] > 0.99
    with pytest.raises(FxportError, match=r"forward\(x, y, mask=None\)"):
        fxport.trace(model, x, kwargs={"z": y})


def test_compile_returns_the_models_own_outputs(mock_device):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = NestedOutputs().eval()
    compiled = fxport.compile(model, device="mock")
    x = torch.randn(4, 8)
    with torch.no_grad():
        got, expected = compiled(x), model(x)
    assert type(got["parts"]).__name__ == "Parts" and len(got["parts"].extras) == 2
    assert torch.allclose(got["pair"][1], expected["pair"][1], rtol=0.05, atol=0.05)
    torch._dynamo.reset()


def test_gen_tests_takes_the_input_options(tmp_path, capsys):
    rc = main(
        [
            "gen-tests",
            "tests.user_models:TwoInputs",
            "--inputs",
            "tests.user_models:two_inputs_kwargs",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    cases = json.loads((tmp_path / "cases.json").read_text())
    assert "aten.linear.default" in json.dumps(cases) and "[2, 4, 8]" in json.dumps(cases)


def test_api_trace_is_in_eval_mode_as_the_cli_and_run_are():
    # A freshly built model is in training mode; fxport.trace must capture what runs (the README's
    # `fxport.trace(model, ...)`), not training-mode batch norms with their running-stat updates.
    def build():
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Dropout(0.5), torch.nn.ReLU()
        )

    x = torch.randn(1, 3, 16, 16)
    fresh = [r.target for r in fxport.trace(build(), x).records]
    assert not any("functional" in t or "dropout" in t for t in fresh), fresh
    assert fresh == [r.target for r in fxport.trace(build().eval(), x).records]
