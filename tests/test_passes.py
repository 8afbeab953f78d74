"""Graph passes (fxport/passes): each pass on small graphs (values exact on the host, PCC on the
mock device), the pipeline's selection and containment, ttnn call counting, verdict faithfulness,
and the passes end to end on zoo models at small inputs."""

import json

import pytest
import torch
from torch import nn

from fxport.cli import main
from fxport.errors import FxportError
from fxport.mapping import REGISTRY
from fxport.mapping.fused_ops import ops as fxport_ops
from fxport.passes import PASS_NAMES, PIPELINE, constants_of, run_passes, select
from fxport.run_options import RunOptions
from fxport.runner import compile_program, run_compiled, run_model
from fxport.tracing import export

aten = torch.ops.aten


def _optimized(model, *inputs, passes=PASS_NAMES):
    program = export(model.eval(), inputs)
    return program, run_passes(program.graph_module, constants_of(program), passes)


def _host_outputs(program, optimized, inputs):
    """Run the graph before and after the passes on the host (aten and fxport reference ops)."""
    from fxport.runner import flat_inputs

    args = flat_inputs(program, inputs)
    with torch.no_grad():
        return program.graph_module(*args), optimized.graph_module(*args)


def _targets(optimized):
    return [n.target for n in optimized.graph_module.graph.nodes if n.op == "call_function"]


def _record(optimized, name):
    return next(r for r in optimized.records if r.name == name)


def _run(model, inputs, dev, passes=PASS_NAMES, memory="dram", values="", weights="bfloat16"):
    model = model.eval()
    with torch.no_grad():
        ref = model(*inputs)
    options = RunOptions(memory=memory, values=values, passes=passes, weights=weights)
    compiled = compile_program(export(model, inputs), options)
    return run_compiled(compiled, inputs, ref, dev, options), compiled


# -- the pipeline -----------------------------------------------------------------------------------
def test_pipeline_is_one_ordered_list_and_selection_keeps_its_order():
    assert PASS_NAMES == tuple(p.name for p in PIPELINE)
    assert PASS_NAMES == ("noops", "packed_split", "batchnorm", "constants", "activations", "layout")
    assert select("all") == PASS_NAMES and select("none") == ()
    assert select("layout,noops") == ("noops", "layout")
    assert select("all", ["layout", "batchnorm", "packed_split"]) == ("noops", "constants", "activations")
    with pytest.raises(FxportError, match=r"unknown pass.*bogus"):
        select("all", ["bogus"])
    with pytest.raises(FxportError, match=r"unknown pass.*fold"):
        select("noops,fold")


def test_every_pass_says_what_it_rewrites_and_why_it_is_exact():
    for cls in PIPELINE:
        doc = __import__(cls.__module__, fromlist=["_"]).__doc__
        assert doc and "exact" in doc, cls.__module__


def test_cli_rejects_an_unknown_pass_in_one_line(capsys):
    rc = main(["run", "tests.user_models:TinyCNN", "--device", "mock", "--no-pass", "bogus"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown pass(es) bogus" in err and len(err.strip().splitlines()) == 1


def test_a_failing_pass_is_recorded_and_the_others_still_run(monkeypatch):
    from fxport.passes.layout import PropagateLayout

    def broken(self, gm):
        raise RuntimeError("boom")

    monkeypatch.setattr(PropagateLayout, "run", broken)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    x = torch.randn(1, 3, 8, 8)
    program, optimized = _optimized(model, x)
    layout = _record(optimized, "layout")
    assert layout.error == "RuntimeError: boom"
    assert _record(optimized, "batchnorm").fused == 1 and _record(optimized, "activations").fused == 1
    before, after = _host_outputs(program, optimized, (x,))
    torch.testing.assert_close(after[0], before[0], rtol=1e-5, atol=1e-5)


def test_the_captured_graph_is_left_as_it_was():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    program, optimized = _optimized(model, torch.randn(1, 3, 8, 8))
    assert aten._native_batch_norm_legit_no_training.default in [n.target for n in program.graph.nodes]
    assert optimized.nodes_before == 3  # conv, batch norm, relu
    assert optimized.nodes_after == 3  # to_nhwc, the fused conv, to_nchw


# -- no-ops -----------------------------------------------------------------------------------------
class NoOps(nn.Module):
    def forward(self, x):
        a = x.view(x.shape).clone().contiguous()  # identity view, clone, contiguous
        b = a.to(torch.float32)[:, :]  # same-dtype cast, full slices
        c = b.reshape(2, 12).reshape(4, 6).reshape(24)  # a reshape chain
        d = x.t().contiguous().view(24)  # the copy made the transpose viewable: the view becomes a reshape
        dead = torch.exp(x)  # noqa: F841  (dead code)
        return c * 2 + d


def test_noops_removes_identities_reshape_chains_and_dead_code():
    x = torch.randn(4, 6)
    program, optimized = _optimized(NoOps(), x, passes=("noops",))
    record = _record(optimized, "noops")
    targets = _targets(optimized)
    # The chain is one reshape of x; the view of the transposed copy is a reshape of the transpose.
    assert targets.count(aten.reshape.default) == 2 and aten.view.default not in targets
    assert aten.clone.default not in targets and aten.exp.default not in targets
    assert record.removed >= 4 and any("dead code" in c for c in record.changes)
    before, after = _host_outputs(program, optimized, (x,))
    assert torch.equal(after[0], before[0])


# -- packed projections ----------------------------------------------------------------------------
class PackedSplit(nn.Module):
    """nn.MultiheadAttention's split of its packed in-projection, written out; `e` the embed dim."""

    def __init__(self, e=64, chunks=3):
        super().__init__()
        self.e, self.chunks = e, chunks
        self.proj = nn.Linear(e, chunks * e)

    def forward(self, x):  # x: [S, B, E]
        p = self.proj(x).unflatten(-1, (self.chunks, self.e)).unsqueeze(0).transpose(0, -2).squeeze(-2)
        parts = p.contiguous()
        return tuple(parts[i] * (i + 1) for i in range(self.chunks))


def test_packed_split_reads_q_k_v_as_slices_of_the_last_dim():
    x = torch.randn(5, 2, 64)
    program, optimized = _optimized(PackedSplit(), x, passes=("noops", "packed_split"))
    targets = _targets(optimized)
    assert aten.permute.default not in targets and aten.transpose.int not in targets
    slices = [n for n in optimized.graph_module.graph.nodes if n.target == aten.slice.Tensor]
    assert [n.args[1:] for n in slices] == [(2, 0, 64), (2, 64, 128), (2, 128, 192)]
    assert _record(optimized, "packed_split").rewritten == 3
    before, after = _host_outputs(program, optimized, (x,))
    for b, a in zip(before, after):
        assert torch.equal(a, b)


class NotASlice(nn.Module):
    """Selects that do not read a contiguous range of the last dim, and one that is not tile-aligned."""

    def forward(self, x, y):  # x: [4, 64, 96], y: [5, 2, 144]
        a = x.transpose(0, 1)[3]  # x[:, 3, :]: rows, not a range of the last dim
        b = x.permute(2, 0, 1)[32]  # one column of the last dim
        c = y.unflatten(-1, (3, 48)).unsqueeze(0).transpose(0, -2).squeeze(-2)[1]  # y[..., 48:96]
        return a, b, c


def test_packed_split_leaves_other_selects_and_unaligned_splits():
    inputs = (torch.randn(4, 64, 96), torch.randn(5, 2, 144))
    program, optimized = _optimized(NotASlice(), *inputs, passes=("noops", "packed_split"))
    assert _record(optimized, "packed_split").rewritten == 0
    assert aten.slice.Tensor not in _targets(optimized)
    before, after = _host_outputs(program, optimized, inputs)
    for b, a in zip(before, after):
        assert torch.equal(a, b)


def test_multihead_attention_splits_without_permutes_on_the_device(mock_device):
    """nn.MultiheadAttention as torchvision's ViT calls it: the same values, no 5-D permute, and a
    smaller device estimate (the permute padded its size-3 and size-1 dims to 32-row tiles)."""

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(64, 2, batch_first=True)

        def forward(self, x):
            return self.attn(x, x, x, need_weights=False)[0]

    torch.manual_seed(0)
    x = torch.randn(2, 40, 64)
    without = tuple(p for p in PASS_NAMES if p != "packed_split")
    split, _ = _run(Attention(), (x,), mock_device)
    permuted, _ = _run(Attention(), (x,), mock_device, passes=without)
    assert split.output_pcc[0] >= 0.99 and permuted.output_pcc[0] >= 0.99
    assert split.calls.ops["permute"] < permuted.calls.ops["permute"]
    assert split.calls.ops["slice"] >= 3
    assert split.estimate.device_ms < permuted.estimate.device_ms


@pytest.mark.slow
def test_vit_at_a_small_size_keeps_its_values_with_the_split(mock_device):
    result = run_model("vit_b_16", mock_device, (1, 3, 32, 32))
    without = run_model(
        "vit_b_16", mock_device, (1, 3, 32, 32), RunOptions(passes=tuple(p for p in PASS_NAMES if p != "packed_split"))
    )
    assert result.output_pcc[0] >= 0.99 and without.output_pcc[0] >= 0.99
    record = next(r for r in result.pass_records if r.name == "packed_split")
    assert record.rewritten and record.rewritten % 3 == 0  # Q, K and V of every traced layer
    assert result.calls.ops["permute"] < without.calls.ops["permute"]
    assert result.estimate.device_ms < without.estimate.device_ms


# -- batch norm folding -----------------------------------------------------------------------------
def _conv_bn(bias: bool):
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, bias=bias), nn.BatchNorm2d(8))
    with torch.no_grad():  # non-trivial statistics
        bn = model[1]
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    return model.eval()


@pytest.mark.parametrize("bias", [True, False])
def test_batchnorm_folds_into_the_conv_exactly(bias):
    x = torch.randn(2, 4, 8, 8)
    program, optimized = _optimized(_conv_bn(bias), x, passes=("batchnorm",))
    assert aten._native_batch_norm_legit_no_training.default not in _targets(optimized)
    record = _record(optimized, "batchnorm")
    assert record.fused == 1 and record.transfers_saved == 4 - (not bias)
    before, after = _host_outputs(program, optimized, (x,))
    torch.testing.assert_close(after[0], before[0], rtol=1e-5, atol=1e-5)


def test_batchnorm_is_not_folded_when_the_conv_output_is_read_elsewhere():
    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(4, 8, 1), nn.BatchNorm2d(8)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    _program, optimized = _optimized(Both(), torch.randn(1, 4, 4, 4), passes=("batchnorm",))
    assert _record(optimized, "batchnorm").fused == 0
    assert aten._native_batch_norm_legit_no_training.default in _targets(optimized)


def test_batchnorm_fold_on_meta_weights_is_structural():
    with torch.device("meta"):
        model = _conv_bn(bias=False)
    program = export(model, (torch.empty(1, 4, 8, 8, device="meta"),))
    optimized = run_passes(program.graph_module, constants_of(program), ("batchnorm",))
    assert _record(optimized, "batchnorm").fused == 1
    folded = {k: v for k, v in optimized.constants.items() if "bn_folded" in k}
    assert sorted(tuple(v.shape) for v in folded.values()) == [(8,), (8, 4, 3, 3)]
    assert all(v.is_meta for v in folded.values())


# -- activation fusion (each activation the table lists, on the mock device) -----------------------
def _fusable(rule_target):
    rule = REGISTRY.rules[rule_target]
    return [(a.target, a.name) for a in rule.fusion.activations]


_ACTIVATION_MODULES = {
    aten.relu.default: nn.ReLU(),
    aten.relu6.default: nn.ReLU6(),
    aten.hardtanh.default: nn.Hardtanh(0, 6),
    aten.silu.default: nn.SiLU(),
    aten.sigmoid.default: nn.Sigmoid(),
    aten.hardsigmoid.default: nn.Hardsigmoid(),
    aten.tanh.default: nn.Tanh(),
    aten.gelu.default: nn.GELU(),
    aten.mish.default: nn.Mish(),
}


@pytest.mark.parametrize("target, name", _fusable(aten.conv2d.default), ids=lambda v: str(v))
def test_conv_fuses_each_activation_the_table_lists_and_tt_nn_runs_it(target, name, mock_device):
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), _ACTIVATION_MODULES[target])
    x = torch.randn(1, 8, 8, 8)
    result, compiled = _run(model, (x,), mock_device, passes=("activations",))
    fused = [n for n in compiled.optimized.graph_module.graph.nodes if n.target == fxport_ops.conv2d.default]
    assert len(fused) == 1 and fused[0].args[7] == name
    assert all(n.status == "device" for n in result.nodes)
    assert result.calls.ops["conv2d"] == 1 and sum(result.calls.ops.values()) == result.calls.per_inference
    assert result.output_pcc[0] >= 0.99, result.output_pcc


@pytest.mark.parametrize("target, name", _fusable(aten.linear.default), ids=lambda v: str(v))
def test_linear_fuses_each_activation_the_table_lists_and_tt_nn_runs_it(target, name, mock_device):
    model = nn.Sequential(nn.Linear(64, 32), _ACTIVATION_MODULES[target])
    result, compiled = _run(model, (torch.randn(4, 64),), mock_device, passes=("activations",))
    assert [
        n.args[3] for n in compiled.optimized.graph_module.graph.nodes if n.target == fxport_ops.linear.default
    ] == [name]
    assert all(n.status == "device" for n in result.nodes) and result.calls.ops["linear"] == 1
    assert result.output_pcc[0] >= 0.99, result.output_pcc


def test_activations_tt_nn_does_not_fuse_stay_separate():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Hardswish(), nn.Conv2d(8, 8, 1), nn.Hardtanh(-1, 1))
    _, optimized = _optimized(model, torch.randn(1, 3, 8, 8), passes=("activations",))
    targets = _targets(optimized)
    assert aten.hardswish.default in targets and aten.hardtanh.default in targets
    assert _record(optimized, "activations").fused == 0


# -- layout propagation -----------------------------------------------------------------------------
class Net(nn.Module):
    """conv, pool, residual add, channel concat and split, nearest upsample, a per-channel scale,
    global pool, flatten, linear: the channels-last chain ends only at the flatten."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.a, self.b = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(32, 32, 1)
        self.scale = nn.Parameter(torch.rand(32, 1, 1) + 0.5)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.stem(x)))
        y = torch.relu(self.a(x)) + x
        left, right = torch.cat([x, y], 1).split([16, 16], 1)
        z = self.b(torch.cat([right, left], 1)) * self.scale
        z = nn.functional.interpolate(z, scale_factor=2.0, mode="nearest")
        return self.head(nn.functional.adaptive_avg_pool2d(z, 1).flatten(1))


def test_layout_keeps_the_chain_channels_last_and_converts_once_each_way():
    x = torch.randn(2, 3, 16, 16)
    program, optimized = _optimized(Net(), x)
    targets = _targets(optimized)
    assert targets.count(fxport_ops.to_nhwc.default) == 1 and targets.count(fxport_ops.to_nchw.default) == 1
    assert aten.max_pool2d.default not in targets and fxport_ops.max_pool2d.default in targets
    layout = _record(optimized, "layout")
    assert layout.conversions_saved == 2 * 6 - 2  # 3 convs, max pool, upsample, global pool: 12 - 2
    before, after = _host_outputs(program, optimized, (x,))
    torch.testing.assert_close(after[0], before[0], rtol=1e-5, atol=1e-5)


def test_layout_on_the_mock_device_permutes_nothing(mock_device):
    x = torch.randn(2, 3, 16, 16)
    with_passes, _ = _run(Net(), (x,), mock_device)
    without, _ = _run(Net(), (x,), mock_device, passes=())
    assert with_passes.output_pcc[0] >= 0.99 and without.output_pcc[0] >= 0.99
    # The input is rearranged on the host; what is left are TILE <-> ROW_MAJOR conversions (pool
    # and upsample kernels) and the one reshape back to NCHW of the pooled [1, 1, N, C].
    assert with_passes.calls.ops["permute"] == 0 and without.calls.ops["permute"] == 10
    assert with_passes.calls.layout <= without.calls.layout / 3
    assert with_passes.calls.per_inference < without.calls.per_inference


def test_nodes_keep_their_names_through_the_rewrites():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    program, optimized = _optimized(model, torch.randn(1, 3, 8, 8))
    conv = next(n for n in program.graph.nodes if n.target == aten.conv2d.default)
    fused = next(n for n in optimized.graph_module.graph.nodes if n.target == fxport_ops.conv2d.default)
    assert fused.name == conv.name and fused.meta["nn_module_stack"] == conv.meta["nn_module_stack"]
    assert tuple(fused.meta["val"].shape) == (1, 1, 36, 8)  # the tensor the device holds


# -- counting, weights once, verdicts ---------------------------------------------------------------
def test_calls_are_counted_per_inference_and_weights_move_once(mock_device):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 4))
    x = torch.randn(1, 3, 8, 8)
    first, compiled = _run(model, (x,), mock_device)
    assert first.calls.weights > 0 and first.calls.transfer == 2  # the input in, the output out
    with torch.no_grad():
        ref = model(x)
    second = run_compiled(compiled, (x,), ref, mock_device)
    assert second.calls.weights == 0  # conv weights prepared on the device and kept
    assert second.calls.to_dict()["by_op"] == first.calls.to_dict()["by_op"]
    assert second.output_pcc[0] >= 0.99


def test_calls_of_a_folded_capture_count_every_repeat(mock_device):
    """A folded capture traces a repeated block twice and counts it n times: so do the calls."""
    from fxport.tracing import trace

    class Loop(nn.Module):
        def __init__(self):
            super().__init__()
            self.step = nn.Sequential(nn.Linear(32, 32), nn.ReLU())

        def forward(self, x):
            for _ in range(5):
                x = self.step(x)
            return x

    x = torch.empty(4, 32, device="meta")
    with torch.device("meta"):
        model = Loop().eval()
    results = {}
    for folded in (False, True):
        cap = trace(model, (x,), repeated=("step",) if folded else ())
        compiled = compile_program(cap.graphs[0].program, repeats=cap.repeats)
        results[folded] = run_compiled(compiled, (x,), [], mock_device, RunOptions(values="none"))
    assert len(results[True].nodes) < len(results[False].nodes)
    assert results[True].calls.to_dict()["by_op"] == results[False].calls.to_dict()["by_op"]
    assert results[True].calls.per_inference == results[False].calls.per_inference


def test_resnet50_issues_at_most_150_ttnn_calls_per_inference(mock_device):
    # Also ResNet-50 end to end on the mock (tests/test_pipeline.py runs the other zoo families)
    result = run_model("resnet50", mock_device, (1, 3, 64, 64))
    assert "device" in {n.status for n in result.nodes}
    calls = result.calls
    assert calls.per_inference <= 150, calls.to_dict()
    assert calls.transfer == 2 and calls.layout <= 4
    assert result.output_pcc[0] >= 0.99


def test_fused_node_carries_its_oom_in_a_verdict_run(mock_device):
    """At a size whose activations do not fit L1, the fused conv is reported out of memory with
    the tensors it holds (flattened NHWC): folding and fusing hide nothing."""
    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()).eval()
    x = torch.empty(1, 32, 1024, 1024, device="meta")
    options = RunOptions(memory="l1", values="none")
    compiled = compile_program(export(model, (x,)), options)
    result = run_compiled(compiled, (x,), [], mock_device, options)
    conv = next(r for r in result.records if r.target == "fxport.conv2d.default")
    assert conv.outputs[0].shape == (1, 1, 1024 * 1024, 32)
    oom = {o.node: o for o in result.memory_analysis.oom}
    assert conv.node in oom and oom[conv.node].predicted, oom
    assert oom[conv.node].per_bank > oom[conv.node].room  # its buffer exceeds the largest free block
    assert {n.node for n in result.nodes if n.error_kind == "OUT_OF_MEMORY"} <= set(oom)


def test_bfloat8_weights_cost_some_pcc_and_are_reported(mock_device):
    model = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 64, 16))
    x = torch.randn(1, 16, 8, 8)
    bf16, _ = _run(model, (x,), mock_device)
    bf8, _ = _run(model, (x,), mock_device, weights="bfloat8_b")
    assert bf8.weights == "bfloat8_b" and bf8.output_pcc[0] >= 0.98
    assert bf8.output_pcc[0] != bf16.output_pcc[0]  # the emulated values carry the quantization


def test_run_json_records_the_passes_and_compare_shows_the_calls(tmp_path, capsys):
    common = ["run", "tests.user_models:TinyCNN", "--input-shape", "1,3,16,16", "--device", "mock"]
    assert main([*common, "--passes", "none", "--out", str(tmp_path / "a")]) == 0
    assert main([*common, "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "ttnn calls per inference" in out and "graph passes: noops, packed_split, batchnorm" in out
    doc = json.loads((tmp_path / "b" / "run.json").read_text())
    assert doc["graph"]["passes"] == list(PASS_NAMES)
    assert {r["name"]: r["fused"] for r in doc["graph"]["applied"]}["batchnorm"] == 1
    assert doc["ttnn_calls"]["per_inference"] == sum(doc["ttnn_calls"]["by_op"].values())
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    assert "ttnn calls per inference" in text and "graph passes differs" in text


def test_backend_takes_pass_options(mock_device):
    import fxport.backend

    with pytest.raises(FxportError, match="unknown pass"):
        fxport.backend.BackendOptions.parse({"passes": "all", "no_pass": ["nope"]})
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8)).eval()
    compiled = torch.compile(
        model, backend="fxport", options={"device": "mock", "no_pass": ["layout"], "weights": "bfloat8_b"}
    )
    with torch.no_grad():
        compiled(torch.randn(4, 16))
    result = fxport.backend.results[-1]
    assert (
        result.passes == ("noops", "packed_split", "batchnorm", "constants", "activations")
        and result.weights == "bfloat8_b"
    )
    assert _record_named(result, "activations").fused == 1


def _record_named(result, name):
    return next(r for r in result.pass_records if r.name == name)


def test_gen_tests_cases_come_from_the_graph_after_the_passes():
    from fxport.testgen import collect, optimized_capture
    from fxport.tracing import trace

    with torch.device("meta"):
        model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()).eval()
    cap = trace(model, (torch.empty(1, 3, 8, 8, device="meta"),), name="tiny")
    targets = {c.target for c in collect(optimized_capture(cap, PASS_NAMES))}
    assert "fxport.conv2d.default" in targets and "aten.relu.default" not in targets
    assert {c.target for c in collect(optimized_capture(cap, ()))} >= {"aten.relu.default"}


# -- zoo models end to end with every pass (small inputs; the bench runs the defaults) ---------------
# A YOLO and a depthwise CNN by default; the others (5-9 s each) with the slow tests, which also
# run every zoo model at its default input (test_every_zoo_model_at_its_default_input_...).
@pytest.mark.parametrize(
    "model, shape",
    [
        ("yolov8n", (1, 3, 64, 64)),
        pytest.param("yolov12n", (1, 3, 64, 64), marks=pytest.mark.slow),
        ("mobilenet_v3_large", (1, 3, 32, 32)),
        pytest.param("efficientnet_b0", (1, 3, 32, 32), marks=pytest.mark.slow),
        pytest.param("convnext_tiny", (1, 3, 32, 32), marks=pytest.mark.slow),
    ],
)
def test_zoo_models_keep_their_pcc_with_every_pass(model, shape, mock_device):
    with_passes = run_model(model, mock_device, shape)
    # The PCC itself: a YOLO head at random weights barely depends on its input (flagged
    # uninformative, so output_pcc hides it), but the values are still compared.
    pccs = [c.pcc for c in with_passes.output_checks]
    assert min(pccs) >= 0.99, with_passes.output_checks
    assert all(not r.error for r in with_passes.pass_records)
    assert with_passes.calls.per_inference < with_passes.captured_nodes


@pytest.mark.slow
@pytest.mark.parametrize(
    "model",
    [
        "convnext_tiny",
        "efficientnet_b0",
        "mobilenet_v2",
        "mobilenet_v3_large",
        "resnet50",
        "retinanet_resnet50_fpn",
        "siglip",
        "swin_t",
        "swin_v2_t",
        "vit_b_16",
        "yolo11n",
        "yolo11x",
        "yolov12n",
        "yolov12x",
        "yolov8n",
        "yolov8x",
        "pi0-tiny",
    ],
)
def test_every_zoo_model_at_its_default_input_keeps_pcc_with_every_pass(model, mock_device):
    result = run_model(model, mock_device)
    pccs = [c.pcc for c in result.output_checks]
    assert min(pccs) >= (0.93 if model == "pi0-tiny" else 0.99), result.output_checks
    assert all(not r.error for r in result.pass_records)


# -- constant folding ---------------------------------------------------------------------------------
class WeightStandardised(nn.Module):
    """A conv whose weight is standardised every call (BiT/NFNet style): `batch_norm` in training
    mode over the weight, then reshapes: a subgraph on parameters only."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)

    def forward(self, x):
        w = self.conv.weight
        w = torch.nn.functional.batch_norm(
            w.reshape(1, 8, -1), None, None, training=True, momentum=0.0, eps=1e-5
        ).reshape_as(w)
        return torch.nn.functional.conv2d(x, w, self.conv.bias, padding=1)


def test_constants_fold_a_weight_transform_once_exactly():
    x = torch.randn(2, 4, 8, 8)
    program, optimized = _optimized(WeightStandardised(), x, passes=("constants",))
    targets = _targets(optimized)
    assert aten._native_batch_norm_legit.no_stats not in targets and aten.view.default not in targets
    assert _record(optimized, "constants").removed >= 3
    before, after = _host_outputs(program, optimized, (x,))
    torch.testing.assert_close(after[0], before[0], rtol=1e-6, atol=1e-6)


def test_constants_fold_coordinates_but_not_what_reads_the_input_or_grows():
    class Mixed(nn.Module):
        def forward(self, x):
            cols = torch.arange(8) * 2 % 8  # index arithmetic: folded
            big = torch.zeros(64, 128).expand(4, 64, 128)  # grows: left alone
            return x[:, cols] + torch.rand(2, 8) * 0, big

    program, optimized = _optimized(Mixed(), torch.randn(2, 8), passes=("constants",))
    targets = _targets(optimized)
    assert aten.arange.start_step not in targets and aten.remainder.Scalar not in targets
    assert aten.expand.default in targets and aten.rand.default in targets
    before, after = _host_outputs(program, optimized, (torch.ones(2, 8),))
    assert torch.equal(before[1], after[1])


def test_constants_fold_on_meta_weights_is_structural():
    with torch.device("meta"):
        model = WeightStandardised()
    program = export(model, (torch.empty(1, 4, 8, 8, device="meta"),))
    optimized = run_passes(program.graph_module, constants_of(program), ("constants",))
    folded = {k: v for k, v in optimized.constants.items() if k.endswith("_folded")}
    assert [tuple(v.shape) for v in folded.values()] == [(8, 4, 3, 3)]
    assert all(v.is_meta for v in folded.values())


def test_a_scalar_folded_on_meta_weights_is_still_a_device_operand(mock_device):
    """Swin's shifted-window mask: masked_fill of a buffer-derived mask. On meta weights the
    constants pass folds the mask and the fill value to valueless constants; the where that reads
    them still runs on the device (it fell back with "item() on meta tensors" before)."""
    from fxport.capture.loader import LoadedModel
    from fxport.runner import run_loaded

    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("index", torch.arange(64).reshape(8, 8))

        def forward(self, x):
            return x.masked_fill(self.index % 3 == 0, -100.0).softmax(-1)

    with torch.device("meta"):
        model = Masked()
    loaded = LoadedModel("masked", model, (torch.empty(2, 8, 8, device="meta"),), "meta")
    result = run_loaded(loaded, mock_device, RunOptions(values="none"))
    assert _record_named(result, "constants").removed > 0
    assert [n.error for n in result.nodes if n.status != "device"] == []
