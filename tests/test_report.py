"""Reports: Markdown, HTML and CSV renderings of run and sweep documents, and comparisons."""

from __future__ import annotations

import copy
import csv
import json
import re
from pathlib import Path

import pytest

from fxport.cli import main
from fxport.errors import FxportError
from fxport.report.compare import RUN_SCHEMA, compare, compare_text
from fxport.report.html import run_html, sweep_html
from fxport.report.markdown import run_markdown, sweep_markdown
from fxport.report.render import compare_dirs, render_dir

PROVENANCE = {
    "device": "mock (no card: TT-NN host stack and allocator, kernels not run)",
    "validation": "real (TT-NN host stack)",
    "allocation": "real (TT-Metal allocator)",
    "memory_model": "predicted (tile and bank arithmetic, fxport/memory)",
    "values": "emulated (ttnn golden functions, rounded to the device dtype)",
    "timing": "not measured (no kernels run)",
}
DEVICE = {
    "kind": "mock",
    "arch": "n150",
    "l1_bank_count": 64,
    "l1_bank_size": 1360544,
    "dram_bank_count": 12,
    "dram_bank_size": 1072693184,
}


def _node(node, target, module, status, **kw):
    return {
        "node": node,
        "target": target,
        "module": module,
        "partition": "fused_0" if status == "device" else "",
        "status": status,
        "ttnn": kw.get("ttnn", ""),
        "reason": kw.get("reason", ""),
        "error_kind": kw.get("error_kind", ""),
        "error": kw.get("error", ""),
        "pcc": kw.get("pcc"),
        "repeat": 1,
    }


def run_doc(model="tiny") -> dict:
    """A small run: conv and relu on the device, mean declined by the plan, linear out of L1."""
    oom = {
        "node": "linear",
        "target": "aten.linear.default",
        "module": "head",
        "repeat": 1,
        "config": "L1",
        "inputs": [{"shape": [1, 4096], "dtype": "float32"}],
        "outputs": [{"shape": [1, 4096], "dtype": "float32"}],
        "resident_bytes": 33816576,
        "logical_bytes": 33587200,
        "per_bank": 2097152,
        "bank_size": 1360544,
        "banks": 64,
        "severity": "high",
        "cause": "L1 capacity",
        "padding": "1.00x",
        "remedy": "DRAM instead of L1: each of 12 DRAM banks needs 2,818,048 B of 1,072,693,184 B",
        "predicted": True,
        "observed": "OUT_OF_MEMORY",
    }
    return {
        "schema": RUN_SCHEMA,
        "model": model,
        "inputs": [{"shape": [1, 3, 16, 16], "dtype": "float32"}],
        "device": dict(DEVICE),
        "memory_config": "l1",
        "values": "emulate",
        "provenance": dict(PROVENANCE),
        "capture": {"method": "export", "complete": True, "problems": []},
        "coverage": {
            "total": 4,
            "planned": 3,
            "on_device": 2,
            "fallback": 1,
            "host": 1,
            "not_run": 0,
            "planned_pct": 75.0,
            "device_pct": 50.0,
        },
        "coverage_by_family": {
            "convolution/pooling": {"total": 1, "lowered": 1, "on_device": 1, "lowered_pct": 100.0},
            "activation": {"total": 1, "lowered": 1, "on_device": 1, "lowered_pct": 100.0},
            "reduction": {"total": 1, "lowered": 0, "on_device": 0, "lowered_pct": 0.0},
            "linear/matmul": {"total": 1, "lowered": 1, "on_device": 0, "lowered_pct": 100.0},
        },
        "coverage_by_module": {
            "<top>": {"total": 2, "lowered": 1, "on_device": 1, "lowered_pct": 50.0},
            "conv": {"total": 1, "lowered": 1, "on_device": 1, "lowered_pct": 100.0},
            "head": {"total": 1, "lowered": 1, "on_device": 0, "lowered_pct": 100.0},
        },
        "output_pcc": [0.998765],
        "unsupported": [
            {
                "target": "aten.mean.dim",
                "family": "reduction",
                "count": 1,
                "reasons": ["reduction over dims (2, 3) of a rank-4 tensor | not tiled"],
                "modules": [""],
            }
        ],
        "fallbacks": [
            {
                "node": "linear",
                "target": "aten.linear.default",
                "module": "head",
                "kind": "OUT_OF_MEMORY",
                "error": "Out of Memory: Not enough space to allocate 134217728 B L1 buffer across 64 banks",
                "repeat": 1,
            }
        ],
        "memory": {
            "device": "n150",
            "config": "L1",
            "nodes": 4,
            "oom_nodes": [oom],
            "agreement": {"agree": 2, "predicted_only": 0, "observed_only": 0, "not_run": 2},
        },
        "partitions": [
            {
                "name": "fused_0",
                "op_count": 2,
                "nodes": ["conv2d", "relu"],
                "inputs": ["x", "p_conv_weight"],
                "outputs": ["relu"],
            }
        ],
        "transfers": {"to_device": 2, "to_host": 1, "layout_changes": 1},
        "nodes": [
            _node("conv2d", "aten.conv2d.default", "conv", "device", ttnn="ttnn.conv2d", pcc=0.9999),
            _node("relu", "aten.relu.default", "", "device", ttnn="ttnn.relu", pcc=0.9998),
            _node("mean", "aten.mean.dim", "", "host", reason="reduction over dims (2, 3) of a rank-4 tensor"),
            _node(
                "linear",
                "aten.linear.default",
                "head",
                "fallback",
                ttnn="ttnn.linear",
                error_kind="OUT_OF_MEMORY",
                error="Out of Memory: Not enough space",
            ),
        ],
    }


def clean_run_doc(model="clean") -> dict:
    """The same model with everything on the device."""
    doc = run_doc(model)
    doc["coverage"] = {
        "total": 4,
        "planned": 4,
        "on_device": 4,
        "fallback": 0,
        "host": 0,
        "not_run": 0,
        "planned_pct": 100.0,
        "device_pct": 100.0,
    }
    for groups in (doc["coverage_by_family"], doc["coverage_by_module"]):
        for g in groups.values():
            g.update(lowered=g["total"], on_device=g["total"], lowered_pct=100.0)
    doc["unsupported"], doc["fallbacks"] = [], []
    doc["memory"]["oom_nodes"] = []
    for n in doc["nodes"]:
        n.update(status="device", reason="", error_kind="", error="")
    return doc


def _entry(key, run, status="ok", error=""):
    model = key.split("@")[0]
    if status != "ok":
        return {
            "key": key,
            "model": model,
            "input_shape": [1, 3, 16, 16],
            "status": status,
            "error": error,
            "run": None,
            "coverage": None,
            "coverage_by_family": None,
            "coverage_by_module": None,
            "fallbacks": 0,
            "oom_nodes": 0,
            "unsupported_ops": 0,
            "output_pcc": [],
        }
    return {
        "key": key,
        "model": model,
        "input_shape": [1, 3, 16, 16],
        "status": "ok",
        "error": "",
        "run": f"{key}/run.json",
        "coverage": run["coverage"],
        "coverage_by_family": run["coverage_by_family"],
        "coverage_by_module": run["coverage_by_module"],
        "fallbacks": sum(f["repeat"] for f in run["fallbacks"]),
        "oom_nodes": len(run["memory"]["oom_nodes"]),
        "unsupported_ops": len(run["unsupported"]),
        "output_pcc": run["output_pcc"],
    }


FAILED_ERROR = "cannot capture broken as one graph for execution: data-dependent control flow"


def sweep_doc(runs: dict[str, dict], failed: dict[str, str] | None = None) -> dict:
    from fxport.report.schema import SWEEP_SCHEMA as SCHEMA

    entries = [_entry(k, r) for k, r in runs.items()]
    entries += [_entry(k, None, "failed", e) for k, e in (failed or {}).items()]
    matrix: dict[str, dict[str, int]] = {}
    for k, r in runs.items():
        for u in r["unsupported"]:
            matrix.setdefault(u["target"], {})[k] = u["count"]
        for f in r["fallbacks"]:
            row = matrix.setdefault(f["target"], {})
            row[k] = row.get(k, 0) + f["repeat"]
    return {
        "schema": SCHEMA,
        "device": dict(DEVICE),
        "memory_config": "l1",
        "values": "emulate",
        "provenance": dict(PROVENANCE),
        "entries": entries,
        "blocking_matrix": matrix,
    }


def write_sweep(root: Path, runs: dict[str, dict], failed: dict[str, str] | None = None) -> dict:
    doc = sweep_doc(runs, failed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "sweep.json").write_text(json.dumps(doc))
    for key, run in runs.items():
        (root / key).mkdir()
        (root / key / "run.json").write_text(json.dumps(run))
    return doc


def external_refs(page: str) -> list[str]:
    """src/href values that would load or link something outside the page's own directory."""
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', page)
    return [r for r in refs if not r.startswith("data:") and (re.match(r"[a-z]+:|//", r) or r.startswith("/"))]


def test_run_markdown_explains_every_failure():
    doc = run_doc()
    before = copy.deepcopy(doc)
    md = run_markdown(doc)
    assert doc == before  # renderers never touch the document
    for text in PROVENANCE.values():
        assert text in md
    assert "aten.mean.dim" in md and "reduction over dims (2, 3)" in md
    assert "not tiled" in md and "\\| not tiled" in md  # a pipe in a reason does not break the table
    assert "OUT_OF_MEMORY" in md and "Not enough space to allocate 134217728 B" in md
    assert "2,097,152 B" in md and "1,360,544 B" in md  # need per bank vs bank size
    assert "L1 capacity" in md and "DRAM instead of L1" in md
    assert "fused_0" in md and "0.998765" in md
    assert "&lt;top>" in md  # the root module's group is not swallowed as an HTML tag
    assert run_markdown(doc) == md  # deterministic


def test_run_html_draws_its_plots_as_separate_images():
    page = run_html(run_doc())
    text = page.text
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert external_refs(text) == []
    assert "<script" not in text and "<link" not in text and "base64" not in text
    # coverage, families, modules, off-device reasons, OOM: each an image file beside the page
    assert set(page.plots) == {"coverage.png", "families.png", "modules.png", "off_device.png", "oom.png"}
    assert sorted(re.findall(r'src="(plots/[^"]+)"', text)) == sorted(f"plots/{n}" for n in page.plots)
    for text_ in PROVENANCE.values():
        assert text_ in text
    assert "Not enough space to allocate 134217728 B" in text and "&lt;top&gt;" in text


def test_markdown_and_html_follow_one_page_structure():
    from fxport.report.pages import Section, run_page

    run = run_doc()
    md, page = run_markdown(run), run_html(run).text
    titles = [b.title for b in run_page(run).blocks if isinstance(b, Section)]
    assert titles[:3] == ["Coverage", "Coverage by op family", "Coverage by module"]
    md_order = [md.index(f"## {title}\n") for title in titles]
    html_order = [page.index(f"<h2>{title}</h2>") for title in titles]
    assert md_order == sorted(md_order) and html_order == sorted(html_order)


def test_markdown_tables_are_not_padded():
    """A changed cell changes its own line: no column is padded to the widest cell."""
    md = run_markdown(run_doc())
    assert "| aten nodes | count | share |" in md and "|---|---|---|" in md
    longer = run_doc()
    longer["coverage_by_module"]["a_much_longer_module_name"] = dict(longer["coverage_by_module"]["conv"])
    before, after = md.splitlines(), run_markdown(longer).splitlines()
    assert len(after) == len(before) + 1 and len(set(after) - set(before)) == 1


def test_real_run_renders(mock_device, tmp_path):
    from fxport.report.run_report import write_run
    from fxport.runner import run_model

    result = run_model("tests.user_models:TinyCNN", mock_device, (1, 3, 16, 16))
    doc = write_run(result, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "timing.json"]
    assert [p.name for p in render_dir(tmp_path, html=False)] == ["report.md"]
    written = render_dir(tmp_path)
    assert [p.name for p in written][:2] == ["report.md", "report.html"]
    assert {"nodes.csv", "oom_nodes.csv", "coverage.png"} <= {p.name for p in written}
    md, page = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    assert doc["provenance"]["values"] in md and doc["provenance"]["values"] in page
    assert external_refs(page) == []
    assert all((tmp_path / src).is_file() for src in re.findall(r'src="([^"]+)"', page))
    assert f"{doc['coverage']['device_pct']:.1f}%" in md
    nodes = list(csv.DictReader((tmp_path / "nodes.csv").open()))
    assert [n["node"] for n in nodes] == [n["node"] for n in doc["nodes"]]


def test_sweep_directory(tmp_path):
    runs = {"tiny@16x16": run_doc("tiny"), "clean@16x16": clean_run_doc()}
    write_sweep(tmp_path, runs, failed={"broken@16x16": FAILED_ERROR})
    readable = [p.relative_to(tmp_path).as_posix() for p in render_dir(tmp_path, html=False)]
    assert readable == ["index.md", "sweep.csv", "blocking_matrix.csv", "tiny@16x16/report.md", "clean@16x16/report.md"]
    written = render_dir(tmp_path)
    names = [p.relative_to(tmp_path).as_posix() for p in written]
    assert names[:4] == ["index.md", "sweep.csv", "blocking_matrix.csv", "index.html"]
    assert {
        "tiny@16x16/report.md",
        "tiny@16x16/report.html",
        "clean@16x16/report.html",
        "plots/coverage.png",
        "tiny@16x16/plots/oom.png",
    } <= set(names)
    assert not (tmp_path / "broken@16x16").exists()

    md, page = (tmp_path / "index.md").read_text(), (tmp_path / "index.html").read_text()
    for text in (FAILED_ERROR, "broken@16x16", PROVENANCE["memory_model"], "aten.linear.default"):
        assert text in md and text in page
    assert "FAILED" in md and "(tiny%4016x16/report.md)" in md
    assert external_refs(page) == [] and 'href="tiny%4016x16/report.html"' in page
    assert all((tmp_path / src).is_file() for src in re.findall(r'src="([^"]+)"', page))

    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    broken = next(r for r in rows if r["key"] == "broken@16x16")
    assert broken["status"] == "failed" and broken["error"] == FAILED_ERROR and broken["device_pct"] == ""
    matrix = list(csv.DictReader((tmp_path / "blocking_matrix.csv").open()))
    linear = next(r for r in matrix if r["target"] == "aten.linear.default")
    assert linear == {"target": "aten.linear.default", "tiny@16x16": "1", "clean@16x16": "0", "broken@16x16": ""}
    oom = list(csv.DictReader((tmp_path / "tiny@16x16" / "oom_nodes.csv").open()))
    assert oom[0]["per_bank"] == "2097152" and oom[0]["bank_size"] == "1360544"


def test_sweep_with_a_missing_run_document_says_so():
    runs = {"tiny@16x16": run_doc("tiny"), "gone@16x16": clean_run_doc("gone")}
    doc = sweep_doc(runs)
    md, page = (
        sweep_markdown(doc, {"tiny@16x16": runs["tiny@16x16"]}),
        sweep_html(doc, {"tiny@16x16": runs["tiny@16x16"]}).text,
    )
    assert "missing" in md and "gone@16x16" in md and "gone@16x16" in page


def test_compare_runs_finds_coverage_change_and_new_fallback():
    a, b = clean_run_doc("m"), run_doc("m")
    c = compare(a, b)
    [e] = c.entries
    assert c.kind == "run" and e.changed
    device_pct = next(d for d in e.coverage if d.name == "device_pct")
    assert (device_pct.before, device_pct.after, device_pct.change) == (100.0, 50.0, -50.0)
    assert [f["node"] for f in e.fallbacks_appeared] == ["linear"] and not e.fallbacks_disappeared
    assert [o["node"] for o in e.oom_appeared] == ["linear"]
    assert e.newly_blocking == ["aten.linear.default", "aten.mean.dim"] and e.newly_lowered == []
    text = compare_text(c)
    assert "fallbacks appeared (1)" in text and "aten.linear.default" in text and "-50" in text

    back = compare(b, a).entries[0]
    assert back.newly_lowered == ["aten.linear.default", "aten.mean.dim"]
    assert [f["node"] for f in back.fallbacks_disappeared] == ["linear"]
    assert compare_text(compare(a, copy.deepcopy(a))).rstrip().endswith("no differences")


def test_compare_sweeps_per_entry(tmp_path):
    a_runs = {"m@16x16": clean_run_doc("m"), "n@16x16": clean_run_doc("n")}
    b_runs = {"m@16x16": run_doc("m"), "new@16x16": clean_run_doc("new")}
    write_sweep(tmp_path / "a", a_runs)
    write_sweep(tmp_path / "b", b_runs, failed={"n@16x16": FAILED_ERROR})
    c = compare_dirs(tmp_path / "a", tmp_path / "b")
    by_key = {e.key: e for e in c.entries}
    assert c.kind == "sweep" and set(by_key) == {"m@16x16", "n@16x16", "new@16x16"}
    assert by_key["m@16x16"].fallbacks_appeared and "aten.mean.dim" in by_key["m@16x16"].newly_blocking
    assert by_key["n@16x16"].status == ("ok", "failed") and by_key["n@16x16"].errors[1] == FAILED_ERROR
    assert by_key["new@16x16"].status == ("missing", "ok")
    text = compare_text(c)
    assert FAILED_ERROR in text and "ok -> failed" in text and "missing -> ok" in text

    # Without run documents the sweep's own numbers and blocking matrix still tell the difference.
    plain = {e.key: e for e in compare(sweep_doc(a_runs), sweep_doc(b_runs)).entries}
    assert plain["m@16x16"].newly_blocking == ["aten.linear.default", "aten.mean.dim"]
    assert not plain["m@16x16"].fallbacks_appeared  # node level needs the run documents


def test_compare_warns_about_different_settings():
    b = run_doc()
    b["memory_config"] = "dram"
    text = compare_text(compare(run_doc(), b))
    assert "warning: memory_config differs (A l1, B dram)" in text


def test_bad_paths_and_documents(tmp_path):
    with pytest.raises(FxportError, match="no such file"):
        render_dir(tmp_path / "nowhere")
    with pytest.raises(FxportError, match="no run.json or sweep.json"):
        render_dir(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"schema": "fxport.run/0"}))
    with pytest.raises(FxportError, match="unknown schema 'fxport.run/0'"):
        render_dir(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(FxportError, match="cannot read"):
        render_dir(tmp_path / "run.json")
    (tmp_path / "run.json").write_text(json.dumps(run_doc()))
    write_sweep(tmp_path / "sweep", {"m@16x16": run_doc("m")})
    with pytest.raises(FxportError, match="cannot compare a run"):
        compare_dirs(tmp_path, tmp_path / "sweep")
    with pytest.raises(FxportError, match="cannot compare a run with a sweep"):
        compare(run_doc(), sweep_doc({}))


def test_report_refuses_a_sweep_it_cannot_rebuild_and_writes_nothing(tmp_path, capsys):
    # The checked-in reports/ keep sweep.json and the Markdown, not the run documents: `fxport report`
    # on them must not rewrite index.md with every entry "missing" (one line, exit 2, files untouched).
    runs = {"tiny@16x16": run_doc("tiny"), "gone@16x16": clean_run_doc("gone")}
    write_sweep(tmp_path, runs)
    render_dir(tmp_path, html=False)
    (tmp_path / "gone@16x16" / "run.json").unlink()
    files = lambda: {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != ".fxport.lock"}
    before = files()
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1 of 2 entries are missing (gone@16x16)" in err and "hint:" in err
    assert files() == before
