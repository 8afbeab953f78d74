"""`fxport sweep`: one process per entry, failures kept, resume, reports rendered."""

import json

import pytest

from fxport.cli import main
from fxport.run_options import RunOptions
from fxport.sweep import SweepItem, sweep


@pytest.mark.slow  # default twins: test_faults' failed entries and resumed sweeps
def test_sweep_keeps_going_records_failures_and_resumes(tmp_path, capsys):
    items = [SweepItem("resnet50", (1, 3, 32, 32)), SweepItem("vit_b_16", (1, 3, 30, 30))]
    doc = sweep(items, tmp_path, device="mock", options=RunOptions(memory="l1", values="none"))
    ok, bad = doc["entries"]
    assert ok["status"] == "ok" and ok["coverage"]["total"] > 80  # 175 captured, 91 after the passes
    assert ok["ttnn_calls"] < 100
    assert bad["status"] == "failed" and "divisible by 16" in bad["error"]
    assert json.loads((tmp_path / "sweep.json").read_text()) == doc
    assert doc["provenance"]["values"].startswith("not computed")

    run_json = tmp_path / "resnet50@32x32" / "run.json"
    stamp = run_json.stat().st_mtime_ns
    again = sweep(items, tmp_path, device="mock", options=RunOptions(memory="l1", values="none"))
    assert run_json.stat().st_mtime_ns == stamp  # reused, not rerun
    assert again["entries"][0] == ok
    assert doc["passes"] == ["noops", "packed_split", "batchnorm", "constants", "activations", "layout"]
    none = sweep(items[:1], tmp_path, device="mock", options=RunOptions(memory="l1", values="none", passes=()))
    assert run_json.stat().st_mtime_ns != stamp and none["passes"] == []  # other passes: rerun
    assert json.loads(run_json.read_text())["graph"]["passes"] == []


def test_sweep_command_renders_reports(tmp_path, capsys):
    rc = main(["sweep", "resnet50", "--input-shape", "1,3,32,32", "--memory-config", "auto", "--out", str(tmp_path)])
    assert rc == 0
    for name in ("sweep.json", "index.md", "sweep.csv", "blocking_matrix.csv", "resnet50@32x32/report.md"):
        assert (tmp_path / name).exists(), name
    assert not list(tmp_path.rglob("*.html"))  # built on demand by `fxport report`
    out = capsys.readouterr().out
    header = out.split("-----")[0].split()  # the header may wrap (the table fits 120 columns): its words
    assert "resnet50@32x32" in out and {"L1", "share", "latency", "(est.)"} <= set(header)
    # auto: the memory model judged against the allocator, and the L1-resident share, per entry
    (e,) = json.loads((tmp_path / "sweep.json").read_text())["entries"]
    assert e["oom_nodes"] == 0 and e["coverage"]["fallback"] == 0
    agreement, share = e["memory_agreement"], e["l1_share"]
    assert agreement["judged"] == e["coverage"]["on_device"] and agreement["agree"] == agreement["judged"]
    assert 0 < share["bytes"] <= 1 and 0 < share["nodes"] <= 1  # a 32x32 ResNet fits L1 in part at least
    index = (tmp_path / "index.md").read_text()
    assert "memory model = allocator" in index and "L1 share" in index
    assert main(["report", str(tmp_path)]) == 0
    assert (tmp_path / "index.html").exists() and (tmp_path / "resnet50@32x32" / "report.html").exists()
    assert (tmp_path / "plots" / "coverage.png").exists()


def test_sweep_rejects_unknown_models(capsys):
    assert main(["sweep", "nope"]) == 2
    assert "unknown model(s) nope" in capsys.readouterr().err


def test_sweep_passes_input_options_to_user_models(tmp_path, capsys):
    rc = main(
        [
            "sweep",
            "tests.user_models:Embed",
            "--input",
            "2,8:int64:0..20",
            "--model-arg",
            "vocab=20",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    (entry,) = json.loads((tmp_path / "sweep.json").read_text())["entries"]
    assert entry["status"] == "ok" and entry["key"].startswith("tests.user_models:Embed@default-")
    run = json.loads((tmp_path / entry["run"]).read_text())
    assert run["inputs"] == [{"path": "args[0]", "shape": [2, 8], "dtype": "int64"}]
