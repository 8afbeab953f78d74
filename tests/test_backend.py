"""The torch.compile backend: dynamic shapes, graph breaks, values Python branches on, the
reference check and bounded state, on the mock device."""

import json

import pytest
import torch
from torch import nn

import fxport
import fxport.backend as backend
from fxport.errors import FxportError


class Flatten(nn.Module):
    """A reshape that names the batch size: planned once for one size, it fails for the next.
    With dynamic=True dynamo also passes LayerNorm's eps as a 0-d tensor read with .item()."""

    def __init__(self):
        super().__init__()
        self.a, self.norm, self.b = nn.Linear(16, 32), nn.LayerNorm(32), nn.Linear(128, 8)

    def forward(self, x):
        return self.b(torch.relu(self.norm(self.a(x))).reshape(x.shape[0], -1))


class NearZeroBranch(nn.Module):
    """Python branches on a reduction whose fp32 value is about 1e-3: the device's bf16 sum
    often has the other sign."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(64, 64)

    def forward(self, x):
        y = self.a(x)
        if (y - y.mean()).sum() + 1e-3 * x[0, 0] > 0:
            return y * 2
        return y - 1


def _close(got, expected):
    return got.shape == expected.shape and torch.allclose(got, expected, rtol=0.05, atol=0.05)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("dynamic", [None, True])
def test_every_batch_size_is_planned_for_its_own_shape(dynamic, mock_device):
    torch.manual_seed(0)
    model = Flatten().eval()
    compiled = fxport.compile(model, device="mock", dynamic=dynamic)
    for batch in (1, 2, 3, 5, 2, 1):
        x = torch.randn(batch, 4, 16)
        with torch.no_grad():
            assert _close(compiled(x), model(x)), batch
        result = backend.results[-1]
        assert all(n.status == "device" for n in result.nodes)
    planned = {r.model for r in backend.results if r.model.startswith("graph")}
    assert len(planned) >= 4  # one plan per distinct batch size, reused when a size returns


def test_shape_cache_is_bounded_and_still_correct(mock_device):
    torch.manual_seed(0)
    model = Flatten().eval()
    compiled = fxport.compile(model, device="mock", dynamic=True, max_shapes=2)
    for batch in (2, 3, 4, 5, 2):
        x = torch.randn(batch, 4, 16)
        with torch.no_grad():
            assert _close(compiled(x), model(x))
    graph = backend.compiled_graphs()[-1]
    assert len(graph.shapes) == 2 and graph.planned == 5  # size 2 was dropped, planned again


def test_near_zero_branch_takes_eagers_path_on_every_call(mock_device):
    torch.manual_seed(0)
    model = NearZeroBranch().eval()
    compiled = fxport.compile(model, device="mock")
    disagreed = 0
    for _ in range(12):
        x = torch.randn(4, 64)
        with torch.no_grad():
            assert _close(compiled(x), model(x))
        control = next(r for r in reversed(backend.results) if r.control_values).control_values
        assert control[0].host == bool((model.a(x) - model.a(x).mean()).sum() + 1e-3 * x[0, 0] > 0)
        disagreed += not control[0].agreed
    assert disagreed > 0  # the device's own bf16 value would have taken the wrong branch


def test_graph_breaks_are_reported_per_function(mock_device, tmp_path):
    model = NearZeroBranch().eval()
    compiled = fxport.compile(model, device="mock", out=str(tmp_path))
    with torch.no_grad():
        compiled(torch.randn(4, 64))
    report = json.loads((tmp_path / "graph_breaks.json").read_text())
    forward = next(f for f in report["functions"] if f["function"].startswith("forward ("))
    assert "test_backend.py" in forward["function"]
    (brk,) = forward["breaks"]
    assert "data-dependent branch" in brk["reason"] and "test_backend.py:" in brk["location"]
    assert report["graphs"] >= 2
    assert backend.graph_break_report() == report
    run = json.loads(next(tmp_path.glob("graph*/shape0/run.json")).read_text())
    assert run["capture"]["method"] == "dynamo" and "function" in run["capture"]
    with_control = [json.loads(p.read_text()) for p in tmp_path.glob("graph*/shape0/run.json")]
    assert any(doc["control_values"] for doc in with_control)


@pytest.mark.parametrize("check, checked_calls", [("first", 1), ("every", 3), ("never", 0)])
def test_reference_check_option(check, checked_calls, mock_device):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 8)).eval()
    compiled = fxport.compile(model, device="mock", check=check)
    with torch.no_grad():
        for _ in range(3):
            compiled(torch.randn(4, 16))
    calls = list(backend.results)[-3:]
    assert sum(bool(r.output_pcc) for r in calls) == checked_calls
    assert all(p > 0.99 for r in calls for p in r.output_pcc)
    # State is built once per shape: later calls reuse the records and the memory analysis.
    assert calls[1].records is calls[0].records and calls[2].memory_analysis is calls[0].memory_analysis


def test_results_are_bounded(mock_device):
    model = nn.Linear(8, 8).eval()
    compiled = fxport.compile(model, device="mock", check="never")
    with torch.no_grad():
        for _ in range(backend.RESULTS_KEPT + 5):
            compiled(torch.randn(2, 8))
    assert len(backend.results) == backend.RESULTS_KEPT


@pytest.mark.parametrize(
    "options, message",
    [
        ({"check": "sometimes"}, "check='sometimes'"),
        ({"max_shapes": 0}, "max_shapes=0"),
        ({"colour": "red"}, "unknown fxport backend option"),
    ],
)
def test_bad_options_are_one_line(options, message):
    with pytest.raises(FxportError, match=message):
        backend.BackendOptions.parse(options)


# -- frozen weights -----------------------------------------------------------------------------


class ConvBnMlp(nn.Module):
    """Batch norm to fold, a ReLU to fuse and a Linear: weights and buffers the passes rewrite."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8 * 6 * 6, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def _randomised(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for buffer in model.buffers():
            if buffer.is_floating_point():
                buffer.uniform_(0.5, 1.5)
    return model.eval()


def test_weights_are_frozen_and_every_pass_runs(mock_device):
    torch.manual_seed(0)
    model = _randomised(ConvBnMlp())
    compiled = fxport.compile(model, device="mock", check="never")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        compiled(x)
        first = backend.results[-1]
        assert _close(compiled(x), model(x))
    result = backend.results[-1]
    changed = {r.name: r.changes for r in result.pass_records}
    assert changed["batchnorm"] and changed["activations"] and changed["layout"]
    assert first.calls.weights > 0 and result.calls.weights == 0  # prepared once, by the first call
    assert "from_torch" not in (result.calls.ops - first.calls.ops)
    assert result.calls.ops["from_torch"] == 1  # the activation only


@pytest.mark.parametrize("change", ["in place", "load_state_dict", "new parameter", "buffer"])
def test_a_changed_weight_changes_the_output_and_says_it_replanned(change, mock_device, caplog):
    torch.manual_seed(0)
    model = _randomised(ConvBnMlp())
    compiled = fxport.compile(model, device="mock", check="never")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        before = compiled(x)
        assert _close(before, model(x))
        replans = backend.replans
        if change == "in place":
            model.fc.weight.mul_(-2)
        elif change == "load_state_dict":
            state = {k: 2 * v + 0.5 if v.is_floating_point() else v for k, v in model.state_dict().items()}
            model.load_state_dict(state)
        elif change == "new parameter":
            model.fc.weight = nn.Parameter(-2 * model.fc.weight)
        else:
            model.bn.running_mean.add_(3.0)  # folded into the conv's weights by the batch-norm pass
        with caplog.at_level("WARNING", logger="fxport.backend"):
            after = compiled(x)
        assert _close(after, model(x)) and not _close(after, before)
        assert backend.replans == replans + 1 and "re-planned" in caplog.text
        assert _close(compiled(x), model(x)) and backend.replans == replans + 1  # planned once more only


def test_a_graph_that_writes_its_buffers_is_not_frozen(mock_device):
    """Batch norm in training mode updates its running statistics: those buffers change on every
    call, so they stay graph inputs and the plan is not dropped every call."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 16), nn.BatchNorm1d(16)).train()
    compiled = fxport.compile(model, device="mock", check="never")
    with torch.no_grad():
        for _ in range(3):
            compiled(torch.randn(8, 16))
    assert not backend.compiled_graphs()[-1].frozen.positions and backend.compiled_graphs()[-1].replans == 0


def _calls(model: nn.Module, *inputs) -> tuple:
    """The per-inference ttnn calls of `model` through torch.compile and through `fxport run`."""
    compiled = fxport.compile(model, device="mock", check="never")
    with torch.no_grad():
        compiled(*inputs)
        compiled(*inputs)
    through = backend.results[-1].calls
    direct = fxport.run(model, *inputs, device="mock").calls
    return through.per_inference, direct.per_inference, through.ops, direct.ops


def _zoo(spec: str, shape: tuple):
    from fxport.capture.loader import load_model

    loaded = load_model(spec, shape, device="cpu")
    return loaded.module.eval(), *loaded.inputs


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(
            lambda: (__import__("torchvision").models.resnet18().eval(), torch.randn(1, 3, 64, 64)), id="resnet18-64"
        ),
        pytest.param(
            lambda: (
                nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64), nn.LayerNorm(64)).eval(),
                torch.randn(8, 64),
            ),
            id="mlp",
        ),
        pytest.param(lambda: _zoo("resnet50", (1, 3, 224, 224)), id="resnet50", marks=pytest.mark.slow),
        pytest.param(lambda: _zoo("yolov8n", (1, 3, 128, 128)), id="yolov8n", marks=pytest.mark.slow),
        pytest.param(lambda: _zoo("vit_b_16", (1, 3, 64, 64)), id="vit_b_16", marks=pytest.mark.slow),
    ],
)
def test_the_compiled_graph_runs_fxport_runs_program(build, mock_device):
    torch.manual_seed(0)
    model, *inputs = build()
    through, direct, through_ops, direct_ops = _calls(model, *inputs)
    assert through == direct and through_ops == direct_ops


def test_a_dropped_compiled_model_frees_its_programs_and_device_weights(mock_device):
    """The planned programs and recorded calls (weights prepared on the device) live as long as
    dynamo keeps the compiled code, not until the process ends."""
    import gc
    import weakref

    from fxport.runtime.execute import _PartitionPlan

    def plans() -> list:
        return [o for o in gc.get_objects() if type(o) is _PartitionPlan]

    before = {id(p) for p in plans()}
    compiled = fxport.compile(Flatten().eval(), device="mock")
    with torch.no_grad():
        for _ in range(2):  # the second call replays the recorded calls
            compiled(torch.randn(2, 4, 16))
    graph = weakref.ref(backend.compiled_graphs()[-1])
    held = [weakref.ref(p) for p in plans() if id(p) not in before]
    assert held and any(p().calls for p in held)
    del compiled
    torch._dynamo.reset()
    gc.collect()
    assert graph() is None and all(p() is None for p in held)
