"""Every node carries a module: its own, or the nearest enclosing one (inferred) when it was traced
in none (decompositions, graph passes, dynamo pieces); the model's own forward is the root "" with
the model's class."""

import torch
from torch import fx

import fxport
from fxport.capture.records import attribute_modules, module_inferred, module_of, records_from_graph
from fxport.report.results import run_document
from fxport.report.tables import host_node_rows
from tests.user_models import DataDependent, TopLevelMath

aten = torch.ops.aten
ROOT = ("L__self__", ("", "pkg.Net"))


def _node(graph, target, args, stack):
    n = graph.call_function(target, args)
    if stack:
        n.meta["nn_module_stack"] = dict([ROOT, *stack])
    return n


def test_a_node_without_a_module_gets_the_deepest_one_its_neighbours_share():
    g = fx.Graph()
    x = g.placeholder("x")
    block = ("L__self___layer1_0", ("layer1.0", "pkg.Block"))
    conv1 = _node(g, aten.relu.default, (x,), [block, ("L__self___layer1_0_conv1", ("layer1.0.conv1", "pkg.Conv"))])
    made = _node(g, aten.neg.default, (conv1,), [])  # a pass's node: no stack of its own
    conv2 = _node(g, aten.relu.default, (made,), [block, ("L__self___layer1_0_conv2", ("layer1.0.conv2", "pkg.Conv"))])
    chained = _node(g, aten.neg.default, (made,), [])  # only an inferred producer
    lonely = _node(g, aten.neg.default, (x,), [])  # no neighbour with a module: the root
    g.output((conv2, chained, lonely))
    assert attribute_modules(g) == 3
    assert module_of(made) == ("layer1.0", "Block") and module_inferred(made)
    assert module_of(chained) == ("layer1.0", "Block")
    assert module_of(lonely) == ("", "Net") and module_inferred(lonely)
    assert module_of(conv1) == ("layer1.0.conv1", "Conv") and not module_inferred(conv1)
    records = {r.node: r for r in records_from_graph(g)}
    assert records[made.name].module == "layer1.0" and records[made.name].module_inferred
    assert not records[conv1.name].module_inferred


def test_top_level_host_nodes_show_the_model_and_their_source_line():
    result = fxport.run(TopLevelMath(), torch.randn(2, 4, 8), torch.randn(2, 4, 8), device="mock")
    doc = run_document(result)
    assert all(n["module_type"] for n in doc["nodes"])  # every node names a module class
    host = [n for n in doc["nodes"] if n["status"] == "host"]
    assert [n["target"] for n in host] == ["aten.lgamma.default"]
    assert host[0]["module"] == "" and host[0]["module_type"] == "TopLevelMath"
    assert host[0]["source"].startswith("tests/user_models.py:")
    headers, rows = host_node_rows(doc)
    assert rows[0][headers.index("module")] == "<top> (TopLevelMath)"


def test_nodes_the_passes_make_carry_an_inferred_module():
    # The layout pass makes channels-last conversions: traced in no module, they carry the
    # module of the conv they feed (the run's records and its nodes agree).
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
    doc = run_document(fxport.run(model, torch.randn(1, 3, 16, 16), device="mock"))
    made = [n for n in doc["nodes"] if n["module_inferred"]]
    assert made, "the passes made no node: this test needs another model"
    assert all(n["module"] and n["module_type"] for n in made)
    assert all(n["module_type"] for n in doc["nodes"])


def test_dynamo_pieces_name_the_model_as_their_root():
    # Exported one by one through a wrapper module, dynamo's pieces would name it as the root.
    cap = fxport.trace(DataDependent(), torch.randn(2, 8))
    assert cap.method == "dynamo"
    top = [r for r in cap.records if r.module == ""]
    assert top and {r.module_type for r in top} == {"DataDependent"}
    assert all(r.module_type for r in cap.records)
