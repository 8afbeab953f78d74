import json
import subprocess
import sys

import pytest

from fxport.cli import main


def test_trace_writes_inventory(tmp_path, capsys):
    rc = main(["trace", "tests.user_models:TinyCNN", "--input-shape", "1,3,32,32", "--out", str(tmp_path)])
    assert rc == 0
    doc = json.loads((tmp_path / "ops.json").read_text())
    assert doc["summary"]["nodes"] == 5 and doc["capture"]["complete"]
    assert {"target", "inputs", "outputs", "module", "source"} <= set(doc["ops"][0])
    for name in ("ops.csv", "unique_ops.csv", "unique_ops.md", "timing.json"):
        assert (tmp_path / name).stat().st_size > 0
    out = capsys.readouterr().out
    assert "tests.user_models:TinyCNN: 5 aten nodes" in out and "aten.conv2d.default" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["trace", "resnet5000"], "unknown model 'resnet5000'"),
        (["trace", "tests.user_models:TinyCNN", "--input-shape", "1,3,x"], "malformed input shape"),
        (["trace", "tests.user_models:TinyCNN", "--input-shape", "0,3"], "malformed input shape"),
        (["trace", "tests.user_models:not_a_model"], "is not a model: it returned int"),
        (["trace", "tests.user_models:NOT_CALLABLE"], "is not a model"),
        (["trace", "tests.user_models:NeedsArgs"], "needs arguments (width)"),
        (["trace", "tests.user_models:Missing"], "has no attribute 'Missing'"),
        (["trace", "no_such_module:Model"], "cannot import 'no_such_module'"),
        (["trace", "tests.user_models:Broken", "--input-shape", "1,4"], "cannot capture"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message, tmp_path, capsys):
    rc = main(args + ["--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc != 0
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_script_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fxport.cli",
            "trace",
            "tests.user_models:Broken",
            "--input-shape",
            "1,4",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("fxport: error: cannot capture") and "Traceback" not in proc.stderr


def test_help_lists_every_graph_pass(capsys):
    from fxport.passes import PASS_NAMES

    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "noops, packed_split, batchnorm, constants, activations, layout" in text
    assert ", ".join(PASS_NAMES) in text  # in pipeline order, none left out


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            "run m --memory-config l1 --values none --min-block-size 3 --weights bfloat8_b --math-fidelity lofi "
            "--activations bfloat8_b --pcc 0.9 --localize --passes layout,noops",
            {
                "memory": "l1",
                "values": "none",
                "min_block_size": 3,
                "weights": "bfloat8_b",
                "fidelity": "lofi",
                "activations": "bfloat8_b",
                "pcc_threshold": 0.9,
                "localize": True,
                "passes": ("noops", "layout"),
            },
        ),
        ("run m", {}),
        # Commands without a flag keep its default; a sweep's values default to verdict runs
        (
            "sweep m --memory-config auto --math-fidelity hifi2 --passes none",
            {"memory": "auto", "values": "none", "fidelity": "hifi2", "passes": ()},
        ),
        ("export m --out o --weights bfloat8_b --pcc 0.95", {"weights": "bfloat8_b", "pcc_threshold": 0.95}),
    ],
)
def test_every_run_flag_reaches_the_run_options(argv, expected):
    from fxport.cli import _parser, _run_options
    from fxport.run_options import RunOptions

    assert _run_options(_parser().parse_args(argv.split())) == RunOptions(**expected)


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"memory_config": "L1"}, "memory must be one of 'dram', 'l1', 'auto', not 'L1'"),
        ({"values": "golden"}, "values must be one of '', 'emulate', 'device', 'none', not 'golden'"),
    ],
)
def test_fxport_run_refuses_a_setting_outside_its_choices_before_building_anything(setting, message):
    import torch

    import fxport
    from fxport.errors import InvalidSetting

    with pytest.raises(InvalidSetting) as refused:
        fxport.run(torch.nn.Linear(4, 4), torch.randn(1, 4), device="mock", **setting)
    assert str(refused.value) == message


def test_sweep_refuses_an_unknown_pass_before_making_any_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FXPORT_CACHE", str(tmp_path / "cache"))
    assert main(["sweep", "resnet50", "--passes", "bogus", "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
