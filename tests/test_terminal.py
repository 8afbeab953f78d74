"""The terminal: bad input refused before torch is imported, progress on an interactive stderr
only, tables that fit 120 columns and say what they left out, one labelled number per concept."""

import io
import json
import subprocess
import sys

import pytest

from fxport import progress
from fxport.cli import main
from fxport.report.run_report import run_summary_text
from fxport.report.terminal import TERMINAL_WIDTH, terminal_table
from tests.test_report import run_doc

# Each refused by the command line with exit code 2; none may import torch or ttnn first.
REFUSED = [
    (["trace", "nosuchmodel"], "unknown model 'nosuchmodel'"),
    (["run", "resnt50"], "did you mean resnet50"),
    (["run", "resnet50", "--input-shape", "1,3,two,224"], "malformed input shape"),
    (["run", "resnet50", "--input", "1,3:complex7"], "unknown dtype"),
    (["run", "pkg.mod:Net", "--model-arg", "3=4"], "malformed --model-arg"),
    (["sweep", "resnet50", "nosuchmodel"], "unknown model(s) nosuchmodel"),
    (["gen-tests", "nosuchmodel"], "unknown model(s) nosuchmodel"),
]


def test_bad_input_is_refused_before_torch_is_imported(tmp_path):
    script = (
        "import json, sys\nfrom fxport.cli import main\nout = []\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    out.append([main(argv), 'torch' in sys.modules, 'ttnn' in sys.modules])\n"
        "print(json.dumps(out))\n"
    )
    argvs = [[*argv, "--out", str(tmp_path / str(i))] for i, (argv, _) in enumerate(REFUSED)]
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(argvs)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    results = json.loads(proc.stdout)
    errors = proc.stderr.strip().splitlines()
    assert len(errors) == len(REFUSED)
    for (argv, message), (code, torch_loaded, ttnn_loaded), error in zip(REFUSED, results, errors):
        assert code == 2 and message in error, (argv, error)
        assert not torch_loaded and not ttnn_loaded, argv


def test_zoo_names_are_known_without_model_code_and_match_the_entries():
    import fxport_models
    from fxport_models import registry

    assert fxport_models.known("resnet50") and not fxport_models.known("resnet5000")
    assert fxport_models.names() == sorted(e.name for e in fxport_models.entries())
    assert set(registry.CATALOGUE) == set(registry.ZOO_MODULES)


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _run_cli(argv, monkeypatch, stderr):
    monkeypatch.setattr(sys, "stderr", stderr)
    return main(argv)


def test_progress_on_a_terminal(tmp_path, monkeypatch, capsys):
    err = _Terminal()
    rc = _run_cli(
        ["run", "tests.test_pipeline:HostIsland", "--input-shape", "4,32", "--device", "mock", "--out", str(tmp_path)],
        monkeypatch,
        err,
    )
    assert rc == 0
    text = err.getvalue()
    for step in (
        "loading torch and the pipeline...",
        "opening the device",
        "building ",
        "fp32 reference on the host",
        "capture...",
        "capture: ",
        "graph passes",
        "plan and partition",
        "memory model walk",
        "writing ",
    ):
        assert f"fxport: {step}" in text, step
    # the node counter: 3 op nodes (two linears on the device, one host op)
    assert "executing on the mock device" in text and "3/3" in text
    assert "fxport:" not in capsys.readouterr().out  # the summary on stdout has no progress in it
    assert not progress.enabled()  # off again after the command


@pytest.mark.parametrize("quiet", [True, False])
def test_no_progress_when_quiet_or_not_a_terminal(quiet, tmp_path, monkeypatch):
    err = _Terminal() if quiet else io.StringIO()
    argv = ["trace", "tests.user_models:TinyCNN", "--input-shape", "1,3,32,32", "--out", str(tmp_path)]
    rc = _run_cli(argv + (["--quiet"] if quiet else []), monkeypatch, err)
    assert rc == 0 and err.getvalue() == ""


def test_trace_prints_the_capture_time_timing_json_records(tmp_path, capsys):
    assert main(["trace", "tests.user_models:TinyCNN", "--input-shape", "1,3,32,32", "--out", str(tmp_path)]) == 0
    seconds = json.loads((tmp_path / "timing.json").read_text())["capture_seconds"]
    assert f"in {seconds:.3f} s (timing.json capture_seconds)" in capsys.readouterr().out


def test_tables_wrap_long_cells_without_cutting_numbers():
    message = (
        "Out of Memory: Not enough space to allocate 134,217,728 B L1 buffer across 64 banks, "
        "where each bank needs 2,097,152 B, but bank size is 1,360,544 B (allocated: 1,048,576 B)"
    )
    rows = [[f"node_{i}", "aten.linear.default", message, f"{2_097_152 + i:,}"] for i in range(3)]
    table = terminal_table(["node", "aten op", "failing buffer", "peak"], rows)
    assert max(map(len, table.splitlines())) <= TERMINAL_WIDTH
    words = table.split()
    for number in ("134,217,728", "2,097,152", "1,360,544", "1,048,576", "2,097,154"):
        assert number in words  # whole, never cut at the column's edge


def test_truncated_tables_say_how_many_rows_they_left_out_and_where():
    table = terminal_table(["n"], [[i] for i in range(15)], total=44, where="out/x/run.json", what="OOM nodes")
    assert table.splitlines()[-1] == "... 29 more OOM nodes in out/x/run.json"
    assert "more" not in terminal_table(["n"], [[i] for i in range(15)], total=15)


def _many(doc: dict, n: int) -> dict:
    """The run document with n OOM nodes (long allocator messages), n partitions and n fallbacks."""
    oom = doc["memory"]["oom_nodes"][0]
    doc["memory"]["oom_nodes"] = [
        {
            **oom,
            "node": f"linear_{i}",
            "allocator": "Not enough space to allocate 134217728 B L1 buffer "
            "across 64 banks, where each bank needs 2097152 B, but bank size is 1,360,544 B",
        }
        for i in range(n)
    ]
    part = doc["partitions"][0]
    doc["partitions"] = [{**part, "name": f"fused_{i}", "op_count": n - i} for i in range(n)]
    doc["fallbacks"] = [{**doc["fallbacks"][0], "node": f"linear_{i}"} for i in range(n)]
    return doc


def test_run_summary_fits_120_columns_and_counts_what_it_leaves_out():
    text = run_summary_text(_many(run_doc(), 44), top=15, out="out/yolo")
    lines = text.splitlines()
    assert max(map(len, lines)) <= TERMINAL_WIDTH, max(lines, key=len)
    assert "... 29 more OOM nodes in out/yolo/run.json and oom_nodes.csv (`fxport report`)" in lines
    assert "... 29 more partitions in out/yolo/run.json" in lines
    assert "... 29 more fallbacks in out/yolo/run.json" in lines
    assert "1,360,544" in text.split()  # the bank size whole, never "1,360,"


def test_run_summary_labels_transfers_and_repeated_nodes_once():
    doc = run_doc()
    doc["transfers"] = {"to_device": 3, "to_host": 1, "layout_changes": 0, "constants": 20}
    doc["ttnn_calls"] = {
        "per_inference": 10,
        "compute": 6,
        "layout": 0,
        "transfer": 4,
        "weights_once": 20,
        "captured_nodes": 4,
    }
    doc["nodes"] = doc["nodes"][:2]  # a folded capture: 2 distinct nodes stand for the 4 counted
    text = run_summary_text(doc)
    assert "activation transfers per inference: 3 host -> device, 1 device -> host" in text
    assert "constants uploaded once: 20" in text
    assert "transfer calls 4" in text and "transfers 2" not in text
    assert "aten nodes 4 (counting repeated calls: 2 distinct nodes in the graph run" in text
    assert "memory model vs allocator, node by node (distinct nodes, each judged once)" in text


def test_ops_and_models_fit_120_columns(capsys):
    assert main(["ops"]) == 0 and main(["models"]) == 0
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= TERMINAL_WIDTH


class _GroupNormNet(__import__("torch").nn.Module):
    """conv -> group norm (whose lowering uploads its own mask) -> an op left on the host -> conv."""

    def __init__(self):
        import torch

        super().__init__()
        self.a, self.norm, self.b = torch.nn.Conv2d(3, 32, 3), torch.nn.GroupNorm(4, 32), torch.nn.Conv2d(32, 8, 1)

    def forward(self, x):
        import torch

        return self.b(torch.logcumsumexp(self.norm(self.a(x)), dim=-1))


def test_transfers_and_transfer_calls_are_one_set_of_numbers(mock_device):
    import torch

    import fxport

    result = fxport.run(_GroupNormNet(), torch.randn(1, 3, 16, 16), device="mock")
    assert any(n.target == "aten.group_norm.default" and n.status == "device" for n in result.nodes)
    assert result.transfers.to_device + result.transfers.to_host == result.calls.transfer
    assert result.transfers.constants > 0  # the convolutions' weights, once
