import torch
from torch import nn

import fxport
from fxport.capture import op_counts, unique_ops
from fxport.capture.loader import load_model
from fxport.report.inventory import inventory_document
from fxport.tracing import trace as capture
from fxport.tracing import trace_model
from tests.user_models import TinyCNN


def test_trace_api_records_shapes_dtypes_modules_and_sources():
    cap = fxport.trace(TinyCNN(), torch.randn(2, 3, 16, 16))
    assert cap.complete and cap.method == "export"
    by_target = {r.target: r for r in cap.records}
    conv = by_target["aten.conv2d.default"]
    assert conv.inputs[0].shape == (2, 3, 16, 16) and conv.inputs[0].dtype == "float32"
    assert conv.outputs[0].shape == (2, 8, 16, 16)
    assert conv.module == "conv" and conv.module_type == "Conv2d"
    assert "padding=[1, 1]" in conv.args
    linear = by_target["aten.linear.default"]  # kept fused: TT-NN runs linear as one op
    assert linear.module == "head" and linear.outputs[0].shape == (2, 10)
    assert by_target["aten.relu.default"].source.startswith("tests/user_models.py:")


def test_meta_capture_materialises_no_weights():
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(4096, 4096), nn.SiLU(), nn.Linear(4096, 4096))
        x = torch.randn(8, 4096)
    cap = fxport.trace(model, x)
    assert [r.target for r in cap.records] == ["aten.linear.default", "aten.silu.default", "aten.linear.default"]
    assert all(p.is_meta for p in model.parameters())


def test_bf16_dtypes_are_recorded():
    model = nn.Linear(8, 8).to(torch.bfloat16)
    cap = fxport.trace(model, torch.randn(1, 8, dtype=torch.bfloat16))
    assert cap.records[0].inputs[0].dtype == "bfloat16"


def test_unique_ops_group_identical_signatures():
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU())
    cap = fxport.trace(model, torch.randn(1, 8))
    rows = {u.target: u for u in unique_ops(cap.records)}
    assert rows["aten.linear.default"].count == 2
    assert rows["aten.linear.default"].modules == ("0", "2")


def test_data_dependent_model_is_captured_in_pieces_with_the_break_located():
    cap = trace_model("tests.user_models:DataDependent", (2, 8))
    assert not cap.complete and cap.method == "dynamo"
    stages = {p.stage for p in cap.problems}
    assert {"export", "graph-break"} <= stages
    brk = next(p for p in cap.problems if p.stage == "graph-break")
    assert "user_models.py" in brk.location
    assert sum(r.target == "aten.linear.default" for r in cap.records) == 2


def test_inventory_json_is_deterministic():
    docs = [inventory_document(trace_model("tests.user_models:TinyCNN", (1, 3, 8, 8))) for _ in range(2)]
    assert docs[0] == docs[1]
    assert docs[0]["summary"]["nodes"] == len(docs[0]["ops"]) == 5


def test_loader_builds_user_models_on_meta():
    loaded = load_model("tests.user_models:tiny_mlp", (3, 16))
    assert loaded.device == "meta" and loaded.inputs[0].shape == (3, 16)
    assert all(p.is_meta for p in loaded.module.parameters())


def test_folding_repeated_denoise_steps_keeps_the_inventory_exact():
    """PI0 with 3 denoise steps: trace 2 calls and count 3, or trace all 3: same inventory."""
    from fxport_models.pi0 import PI0, PI0Config, make_inputs

    cfg = PI0Config.preset("pi0-tiny", num_steps=3)
    with torch.device("meta"):
        model = PI0(cfg).eval()
    inputs = make_inputs(cfg, 1, "meta")
    full = capture(model, inputs, "pi0-tiny")
    folded = capture(model, inputs, "pi0-tiny", repeated=("denoise",))
    assert len(folded.records) < len(full.records)  # fewer nodes traced...
    assert folded.node_count == full.node_count  # ...the same counted
    assert op_counts(folded.records) == op_counts(full.records)
    signature = lambda cap: {(u.target, u.inputs, u.args, u.count) for u in unique_ops(cap.records)}
    assert signature(folded) == signature(full)
    assert folded.complete and "denoise: 3 identical calls" in folded.problems[0].message


def test_folding_falls_back_when_calls_differ():
    class Step(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 8)

        def forward(self, x):
            return self.lin(x)

    class Grows(nn.Module):
        def __init__(self):
            super().__init__()
            self.step = Step()

        def forward(self, x):
            for _ in range(3):
                x = torch.cat([self.step(x), x], dim=0)  # each call sees a bigger batch
            return x

    cap = fxport.trace(Grows(), torch.randn(1, 8))
    folded = capture(Grows(), (torch.randn(1, 8),), "grows", repeated=("step",))
    assert "not folded" in folded.problems[0].message
    assert folded.node_count == cap.node_count
