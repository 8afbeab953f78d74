"""The liveness-aware memory model on the mock n150 (real TT-NN captures, real allocator): node
footprints measured by TT-NN and cached (validated, never trusted), the model's verdicts against
the allocator's node by node, attribution of refused buffers, verified remedies, and `auto`
placement making a model that overflows L1 run whole on the device."""

import json
import sqlite3

import torch
from torch import fx

from fxport.memory.footprint_record import InputSpec
from fxport.run_options import RunOptions
from fxport.runner import run_model
from fxport.runtime.footprint_probe import FootprintProbe


def _relu_node() -> fx.Node:
    graph = fx.Graph()
    x = graph.placeholder("x")
    x.meta["val"] = torch.empty(1, 32, 64, 64, device="meta")
    node = graph.call_function(torch.ops.aten.relu.default, (x,))
    node.meta["val"] = torch.empty(1, 32, 64, 64, device="meta")
    graph.output(node)
    return node


SPEC = InputSpec("device", (1, 32, 64, 64), "bfloat16", "TILE", "L1")


def test_footprint_is_measured_by_ttnn_then_cached_and_a_damaged_row_is_measured_again(mock_device, tmp_path):
    cache = tmp_path / "footprints.sqlite"
    node = _relu_node()
    first = FootprintProbe(mock_device, cache)
    fp = first.footprint(node, [SPEC], "l1")
    first.flush()
    assert first.measured == 1 and not fp.error
    out = [b for b in fp.buffers if b.role == "output"]
    assert out and out[0].memory == "L1" and out[0].size == 32 * 64 * 64 * 2  # bf16, tiles fit exactly

    again = FootprintProbe(mock_device, cache)
    assert again.footprint(node, [SPEC], "l1") == fp and (again.measured, again.reused) == (0, 1)

    with sqlite3.connect(cache) as db:  # a damaged row, and a row whose signature is not ours
        db.execute("UPDATE footprints SET footprint = ?", (json.dumps({"buffers": "nonsense"}),))
    damaged = FootprintProbe(mock_device, cache)
    assert damaged.footprint(node, [SPEC], "l1") == fp and (damaged.measured, damaged.reused) == (1, 0)
    damaged.flush()
    with sqlite3.connect(cache) as db:
        db.execute("UPDATE footprints SET signature = 'someone else'")
    foreign = FootprintProbe(mock_device, cache)
    assert foreign.footprint(node, [SPEC], "l1") == fp and foreign.measured == 1

    dram = FootprintProbe(mock_device, cache).footprint(node, [SPEC], "dram")  # placement is in the key
    assert [b.memory for b in dram.buffers if b.role == "output"] == ["DRAM"]


def test_model_agrees_with_the_allocator_and_auto_places_a_model_that_overflows_l1(mock_device):
    # yolov8n at 1280x1280 in L1: nodes fail on what earlier nodes left live in L1, not on their
    # own size (the tile arithmetic alone called one of them wrong).
    l1 = run_model("yolov8n", mock_device, (1, 3, 1280, 1280), RunOptions(memory="l1", values="none"))
    analysis = l1.memory_analysis
    assert analysis.method == "liveness"
    assert analysis.predicted_only == analysis.observed_only == 0 and not analysis.disagreements
    assert analysis.agree == sum(1 for n in l1.nodes if n.status != "host")
    refused = [o for o in analysis.oom if o.observed != "fits"]
    assert refused  # the allocator refused some nodes in L1
    for o in refused:
        assert o.predicted and o.remedy_verified and "verified" in o.remedy
        assert o.allocator and o.buffer  # the failing buffer, named by the allocator and by the model
        if o.cause == "circular buffers":  # the program's CBs reach up into an L1 buffer
            assert o.room < o.per_bank and f"{o.per_bank:,} B per core" in o.allocator
            continue
        assert o.peak == o.allocator_peak  # the model's peak per bank is the allocator's (from its error)
        # Either the bank overflows, or its free space is split too small for the buffer
        assert o.peak > o.bank_size or (o.cause == "fragmentation" and o.room < o.per_bank)
    # Refusals the tensors alone do not explain: the first conv's circular buffers (its channels-
    # last input stays in L1 under the layout pass; without passes a halo intermediate) and a
    # softmax output that L1 fragmentation refuses
    causes = {o.cause for o in refused}
    assert "fragmentation" in causes and causes & {"op intermediates", "circular buffers"}

    auto = run_model("yolov8n", mock_device, (1, 3, 1280, 1280), RunOptions(memory="auto", values="none"))
    assert all(n.status == "device" for n in auto.nodes if n.status != "host")
    assert auto.memory_analysis.observed_only == auto.memory_analysis.predicted_only == 0
    share = auto.placement
    assert share["unresolved"] == [] and 0 < share["l1_nodes"] < share["nodes"]
