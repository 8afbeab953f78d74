"""The steady state's call list (fxport.runtime.call_list): a partition's ttnn calls recorded by
one unchecked run and replayed by later ones, on the mock device through the torch.compile
backend. A replay issues the recorded calls and computes the same values as running the rules;
a changed weight still re-plans; a partition whose rules depend on values is never replayed."""

import pytest
import torch
import torchvision
from torch import nn

import fxport
import fxport.backend as backend
from fxport.runtime.call_list import CallList
from fxport.runtime.execute import call_lists
from fxport.runtime.watchdog import DeviceCalls


class Residual(nn.Module):
    """Conv, batch norm, ReLU, max pool, a residual add, global pooling and a Linear: a host
    layout change of the input (NCHW to flat NHWC) before its upload, and prepared weights."""

    def __init__(self):
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.body = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn(self.stem(x))), 2)
        x = torch.relu(x + self.body(x))
        return self.fc(x.mean((2, 3)))


class Lookup(nn.Module):
    """Integer indices from the caller: their upload converts them on the host (int32), so the
    partition is not replayed and every call runs its rules."""

    def __init__(self):
        super().__init__()
        self.emb, self.fc = nn.Embedding(50, 32), nn.Linear(32, 8)

    def forward(self, ids):
        return self.fc(self.emb(ids))


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _lists(graph=None) -> list:
    """The call lists (or reasons) of a compiled graph's planned shapes (default: the latest)."""
    graph = graph or backend.compiled_graphs()[-1]
    return [
        entry
        for state in graph.shapes.values()
        for entries in call_lists(state.compiled.parts.graph_module).values()
        for entry in entries
    ]


def _replays(graph=None) -> int:
    return sum(e.replays for e in _lists(graph) if isinstance(e, CallList))


def _model(cls) -> nn.Module:
    torch.manual_seed(0)
    model = cls()
    with torch.no_grad():
        for buffer in model.buffers():
            if buffer.is_floating_point():
                buffer.uniform_(0.5, 1.5)
    return model.eval()


def test_a_steady_state_call_replays_exactly_the_recorded_calls(mock_device):
    model = _model(Residual)
    compiled = fxport.compile(model, device="mock", check="never")
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        first = compiled(x)  # prepares the weights: not recorded
        assert _replays() == 0 and not any(isinstance(e, CallList) for e in _lists())
        second = compiled(x)  # records
        recorded = backend.results[-1]
        (calls,) = [e for e in _lists() if isinstance(e, CallList)]
        assert _replays() == 0
        third = compiled(x)  # replays
        replayed = backend.results[-1]
    assert _replays() == 1
    assert torch.equal(first, second) and torch.equal(second, third)
    # The same ttnn calls, per op and per node, as the run that ran every rule
    assert replayed.calls.to_dict() == recorded.calls.to_dict() and replayed.calls.per_inference > 0
    per_node = lambda result: [(n.node, n.status, n.calls) for n in result.nodes]
    assert per_node(replayed) == per_node(recorded)
    device_calls = sum(1 for node in calls.nodes for c in node.calls if c.host is None)
    assert device_calls == replayed.calls.per_inference - replayed.calls.ops["to_torch"]  # outputs read after
    assert any(c.host is not None for node in calls.nodes for c in node.calls)  # the input's NHWC on the host


def test_replayed_values_are_the_rules_values_on_new_inputs(mock_device):
    """A replay on other inputs computes what running every rule computes (check="every" scores
    every node, so it never replays), to the bit."""
    model = _model(Residual)
    steady = fxport.compile(model, device="mock", check="never")
    rules = fxport.compile(model, device="mock", check="every")
    with torch.no_grad():
        for _ in range(3):
            steady(torch.randn(2, 3, 16, 16))
        graph = backend.compiled_graphs()[-1]
        replays = _replays(graph)
        for _ in range(3):
            x = torch.randn(2, 3, 16, 16)
            got = steady(x)
            assert _replays(graph) == replays + 1
            replays += 1
            assert torch.equal(got, rules(x))
            assert torch.allclose(got, model(x), rtol=0.05, atol=0.05)


def test_a_changed_weight_re_plans_a_replaying_graph(mock_device, caplog):
    model = _model(Residual)
    compiled = fxport.compile(model, device="mock", check="never")
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        for _ in range(3):
            before = compiled(x)
        assert _replays() == 1
        replans = backend.replans
        model.fc.weight.mul_(-2)
        with caplog.at_level("WARNING", logger="fxport.backend"):
            after = compiled(x)
        assert backend.replans == replans + 1 and "re-planned" in caplog.text
        assert torch.allclose(after, model(x), rtol=0.05, atol=0.05) and not torch.allclose(after, before, atol=0.05)
        again = compiled(x)  # records the new plan's calls
        assert _replays() == 0 and torch.equal(again, after)  # the old list is gone with its plan
        again = compiled(x)
        assert _replays() == 1 and torch.equal(again, after)


def test_a_partition_whose_rules_convert_inputs_on_the_host_runs_its_rules(mock_device):
    model = _model(Lookup)
    compiled = fxport.compile(model, device="mock", check="never")
    with torch.no_grad():
        for _ in range(4):
            ids = torch.randint(0, 50, (4, 6))
            assert torch.allclose(compiled(ids), model(ids), rtol=0.05, atol=0.05)
    reasons = [e for e in _lists() if isinstance(e, str)]
    assert reasons and "host tensor made by the rule" in reasons[0] and _replays() == 0


def test_each_replayed_node_is_its_own_bounded_call_and_ctrl_c_stops_at_the_next(mock_device, monkeypatch):
    """The watchdog's guarantees hold for a replay: each node's calls run under a device call
    named for the node (a hung node is named), and Ctrl-C stops the partition at the next node."""
    model = _model(Residual)
    compiled = fxport.compile(model, device="mock", check="never")
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        for _ in range(3):
            expected = compiled(x)
    nodes = [n.node for n in backend.results[-1].nodes if n.status == "device"]
    labels: list[str] = []
    real = DeviceCalls.__call__

    def watched(self, fn, label="", timeout=None):
        labels.append(label)
        if label.startswith("node ") and sum(lb.startswith("node ") for lb in labels) == 4 and stop["on"]:
            raise KeyboardInterrupt
        return real(self, fn, label, timeout)

    stop = {"on": False}
    monkeypatch.setattr(DeviceCalls, "__call__", watched)
    with torch.no_grad():
        compiled(x)
        assert [lb.split()[1] for lb in labels if lb.startswith("node ")] == nodes
        labels.clear()
        stop["on"] = True
        with pytest.raises(KeyboardInterrupt) as info:
            compiled(x)
        assert len(info.value.result.nodes) == 3
        stop["on"] = False
        assert torch.equal(compiled(x), expected)  # the next call replays as before


@pytest.mark.slow
@pytest.mark.parametrize(
    "build",
    [
        lambda: (torchvision.models.mobilenet_v3_small(weights=None).eval(), (torch.randn(1, 3, 64, 64),)),
        lambda: _zoo("yolov8n", (1, 3, 128, 128)),
        lambda: _zoo("vit_b_16", (1, 3, 64, 64)),
    ],
    ids=["mobilenet_v3_small", "yolov8n", "vit_b_16"],
)
def test_other_families_replay_their_rules_values(build, mock_device):
    """Families the call list was not built on (depthwise convs, hardswish and squeeze-excite;
    YOLO's concatenations, upsampling and SiLU; attention): they replay, and a replay computes
    what running every rule computes, to the bit."""
    torch.manual_seed(0)
    model, inputs = build()
    steady = fxport.compile(model, device="mock", check="never")
    rules = fxport.compile(model, device="mock", check="every")
    with torch.no_grad():
        for _ in range(3):
            got = steady(*inputs)
        graph = backend.compiled_graphs()[-1]
        expected = rules(*inputs)
    assert _replays(graph) >= 1
    got, expected = torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(expected)
    assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))


def _zoo(spec: str, shape: tuple) -> tuple:
    from fxport.capture.loader import load_model

    loaded = load_model(spec, shape, device="cpu")
    return loaded.module.eval(), loaded.inputs


@pytest.mark.slow
def test_a_hugging_face_encoder_with_token_ids_gets_each_calls_values(mock_device):
    """BERT from a small config: its token ids change from call to call, and its values are
    those of running every rule on each call's ids, whether a partition replays or says why not."""
    from hf_models import bert_tiny, lm_inputs

    torch.manual_seed(0)
    model = bert_tiny().eval()
    steady = fxport.compile(model, device="mock", check="never")
    rules = fxport.compile(model, device="mock", check="every")
    inputs = lm_inputs()
    with torch.no_grad():
        for step in range(4):
            ids = torch.randint(0, 512, inputs["input_ids"].shape, generator=torch.Generator().manual_seed(step))
            got = steady(input_ids=ids, attention_mask=inputs["attention_mask"]).last_hidden_state
            if step == 0:
                graph = backend.compiled_graphs()[-1]
        expected = rules(input_ids=ids, attention_mask=inputs["attention_mask"]).last_hidden_state
    assert torch.equal(got, expected)
    assert _lists(graph) and all(isinstance(e, (CallList, str)) for e in _lists(graph))
