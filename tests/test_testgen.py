"""fxport.testgen: unique op cases from captures, a generated per-op pytest suite, and that suite
run in a subprocess on a mock n150 (one mock device per process) with the expected outcomes:
device cases pass, a predicted L1 OOM and a declined op are strict xfails, a case beyond the CPU
size budget is deselected as slow, and nothing is skipped."""

import json
import re
import shutil
import subprocess
import sys

import pytest
import torch
from torch import nn

from fxport.capture.records import TensorSpec
from fxport.report.inventory import write_inventory
from fxport.testgen import collect, generate
from fxport.testgen.runtime import (
    CaseResult,
    DeviceError,
    DeviceOutOfMemory,
    NotLowered,
    PccBelowThreshold,
    check,
)
from fxport.testgen.values import make_inputs, value_plan
from fxport.tracing import trace as capture
from fxport.tracing import trace_model


class Mixed(nn.Module):
    """One case per expectation: index inputs (embedding, gather), an op without a TT-NN rule
    (cumprod), an add of two [1,16,1024,1024] tensors (48 MiB each in bf16: does not fit
    interleaved L1 on an n150) and a neg beyond the 64 Mi-element CPU budget (slow)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 32)

    def forward(self, ids, idx, x, big, huge):
        return self.emb(ids), torch.gather(x, 1, idx), torch.cumprod(x, 1), big + big, huge.neg()


def _meta(*shape, dtype=torch.float32):
    return torch.empty(*shape, dtype=dtype, device="meta")


@pytest.fixture(scope="module")
def captures():
    tiny = trace_model("tests.user_models:TinyCNN", (1, 3, 16, 16))
    mixed = capture(
        Mixed().to("meta"),
        (
            _meta(2, 8, dtype=torch.int64),
            _meta(4, 6, dtype=torch.int64),
            _meta(4, 16),
            _meta(1, 16, 1024, 1024),
            _meta(1, 80, 1024, 1024),
        ),
        name="Mixed",
    )
    return tiny, mixed


@pytest.fixture(scope="module")
def suite(captures, tmp_path_factory):
    out = tmp_path_factory.mktemp("suite")
    paths = generate(collect(*captures), out, memory="l1", arch="n150")
    return out, paths, json.loads((out / "cases.json").read_text())


def _case(doc, target):
    (case,) = [c for c in doc["cases"] if c["target"] == target]
    return case


# -- collect ---------------------------------------------------------------------------------


def test_collect_merges_sources_and_orders_deterministically(captures, tmp_path):
    tiny, mixed = captures
    cases = collect(("a", tiny.records), ("b", tiny.records), mixed)
    conv = next(c for c in cases if c.target == "aten.conv2d.default")
    assert conv.count == 2 and conv.models == ("a", "b") and conv.modules == ("conv",)
    assert [c.target for c in cases] == sorted(c.target for c in cases)
    assert [c.to_dict() for c in cases] == [
        c.to_dict() for c in collect(("a", tiny.records), ("b", tiny.records), mixed)
    ]
    # `fxport trace` output (ops.json, or its directory) gives the same cases as the capture
    write_inventory(tiny, tmp_path / "tiny")
    from_file = collect(tmp_path / "tiny" / "ops.json")
    assert [c.to_dict() for c in from_file] == [c.to_dict() for c in collect(tiny)]
    assert collect(str(tmp_path / "tiny"))[0].models == ("tests.user_models:TinyCNN",)


def test_same_shapes_other_arguments_are_distinct_cases():
    class TwoConvs(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=2, dilation=2)

        def forward(self, x):
            return self.a(x), self.b(x)

    cases = collect(capture(TwoConvs().to("meta"), (_meta(1, 8, 16, 16),), name="two"))
    assert len([c for c in cases if c.target == "aten.conv2d.default"]) == 2


# -- values ----------------------------------------------------------------------------------


def test_index_inputs_get_values_valid_for_the_op(suite):
    _, _, doc = suite
    emb = _case(doc, "aten.embedding.default")
    assert emb["values"][1] | {"why": ""} == {"kind": "randint", "low": 0, "high": 50, "why": ""}
    assert "num_embeddings" in emb["values"][1]["why"]
    gather = _case(doc, "aten.gather.default")
    assert (gather["values"][1]["low"], gather["values"][1]["high"]) == (0, 16)  # x.shape[1]
    bn = _case(doc, "aten._native_batch_norm_legit_no_training.default")
    assert bn["values"][4]["low"] > 0  # running_var
    ids = make_inputs(emb["inputs"], emb["values"], seed=7)[1]
    assert ids.dtype == torch.int64 and 0 <= int(ids.min()) and int(ids.max()) < 50
    again = make_inputs(emb["inputs"], emb["values"], seed=7)
    assert torch.equal(again[1], ids) and torch.equal(again[0], again[0].bfloat16().float())


def test_index_tensor_with_none_and_unknown_integer_inputs():
    specs = (TensorSpec((4, 6, 8), "float32"), TensorSpec((3,), "int64"))
    plan = value_plan(
        "aten.index.Tensor",
        specs,
        (TensorSpec((4, 3, 8), "float32"),),
        {"args": [{"tensor": 0}, [None, {"tensor": 1}]], "kwargs": {}},
    )
    assert (plan[1]["low"], plan[1]["high"]) == (0, 6)  # None takes dim 0 whole: dim 1 indexed
    # an integer input of an op with no rule and no known bounds: zeros, and the plan says so
    unknown = value_plan(
        "aten.bitwise_left_shift.Tensor",
        (specs[1], specs[1]),
        (specs[1],),
        {"args": [{"tensor": 0}, {"tensor": 1}], "kwargs": {}},
        has_rule=lambda t: False,
    )
    assert unknown[1]["kind"] == "zeros" and "unknown" in unknown[1]["why"]


# -- generate --------------------------------------------------------------------------------


def test_generated_files_and_expectations(suite, captures, tmp_path):
    out, paths, doc = suite
    names = {p.name for p in paths}
    assert {
        "conftest.py",
        "cases.json",
        "test_aten_conv2d_default.py",
        "test_aten_add_tensor.py",
        "test_aten_cumprod_default.py",
    } <= names
    conftest = (out / "conftest.py").read_text()
    assert "open_session_device(" in conftest and '"mock"' in conftest
    assert "skip" not in conftest and "skip" not in (out / "test_aten_add_tensor.py").read_text()

    add = _case(doc, "aten.add.Tensor")
    assert add["expect"] == "oom" and add["id"] == "1x16x1024x1024_1x16x1024x1024"
    assert "each of 64 banks needs 1,572,864 B but bank size is 1,360,544 B" in add["reason"]
    assert "remedy: DRAM instead of L1" in add["reason"]
    cumprod = _case(doc, "aten.cumprod.default")
    assert cumprod["expect"] == "declined" and "no TT-NN rule" in cumprod["reason"]
    neg = _case(doc, "aten.neg.default")
    assert neg["slow"].startswith("160.0 Mi elements") and neg["id"].endswith("-slow")
    assert _case(doc, "aten.conv2d.default")["expect"] == "device"

    # deterministic: the same cases give byte-identical files; stale generated tests go away
    again = tmp_path / "again"
    generate(collect(*captures), again, memory="l1", arch="n150")
    for p in paths:
        assert (again / p.name).read_bytes() == p.read_bytes()
    generate(collect(captures[0]), again, memory="l1")
    assert not (again / "test_aten_add_tensor.py").exists()


def test_check_names_each_outcome():
    base = dict(id="x", target="aten.add.Tensor", expect="device", inputs=[], threshold=0.99)
    with pytest.raises(NotLowered, match="no TT-NN rule"):
        check(CaseResult(status="declined", error="no TT-NN rule for aten.add.Tensor", **base))
    with pytest.raises(DeviceOutOfMemory, match="bank size"):
        check(
            CaseResult(
                status="fallback",
                error_kind="OUT_OF_MEMORY",
                error="L1 out of memory: ... bank size 1,360,544 B",
                **base,
            )
        )
    with pytest.raises(DeviceError, match="VALIDATION"):
        check(CaseResult(status="fallback", error_kind="VALIDATION", error="TT_FATAL", **base))
    with pytest.raises(PccBelowThreshold, match="PCC 0.5"):
        check(CaseResult(status="device", pcc=[0.5], native=[{}], device=[{}], **base))
    check(CaseResult(status="device", pcc=[0.999], native=[{}], device=[{}], **base))


# -- the generated suite, run ----------------------------------------------------------------


def _run_pytest(*args, cwd):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rxXf", "-p", "no:cacheprovider", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    tail = proc.stdout.strip().splitlines()[-1]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (\w+)", tail.split(" in ")[0])}
    return proc, counts


def test_generated_suite_runs_with_expected_outcomes(suite, tmp_path):
    out, _, _ = suite
    proc, counts = _run_pytest(out, cwd=tmp_path)
    # TinyCNN's 5 ops, embedding and gather pass; the L1 OOM and the declined cumprod are strict
    # xfails; the 160 Mi-element neg is deselected as slow; nothing skipped, nothing failed
    assert counts == {"passed": 7, "xfailed": 2, "deselected": 1}, proc.stdout[-3000:]
    assert "bank size is 1,360,544 B" in proc.stdout and "1 slow case(s) deselected" in proc.stdout
    results = json.loads((out / "results.json").read_text())
    by_target = {r["target"]: r for r in results["results"]}
    oom = by_target["aten.add.Tensor"]
    assert oom["status"] == "fallback" and oom["error_kind"] == "OUT_OF_MEMORY"
    assert oom["memory"]["device"]["fits"] is False
    conv = by_target["aten.conv2d.default"]
    assert conv["status"] == "device" and conv["pcc_min"] >= 0.99 and conv["native"][0]["shape"]
    assert by_target["aten.cumprod.default"]["status"] == "declined"


def test_stale_expectation_fails_strictly(suite, tmp_path):
    """A case expected to OOM that runs fine is an XPASS, which strict xfail turns into a
    failure: a stale expectation cannot hide."""
    out, _, _ = suite
    stale = tmp_path / "stale"
    stale.mkdir()
    for name in ("conftest.py", "test_aten_relu_default.py"):
        shutil.copy(out / name, stale / name)
    doc = json.loads((out / "cases.json").read_text())
    relu = _case(doc, "aten.relu.default")
    relu.update(expect="oom", reason="deliberately stale expectation")
    doc["cases"] = [relu]
    (stale / "cases.json").write_text(json.dumps(doc))
    proc, counts = _run_pytest(stale, cwd=tmp_path)
    assert counts == {"failed": 1}, proc.stdout[-3000:]
    assert "XPASS(strict)" in proc.stdout
