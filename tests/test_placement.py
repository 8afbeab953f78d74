"""`auto` placement (fxport.memory.placement) on small synthetic graphs with footprints written
out by hand: the placement logic alone, in milliseconds (the real footprints, measured by TT-NN,
are tested in test_memory_model.py)."""

import torch
from torch import fx

from fxport.memory.devices import Banks, DeviceMemory
from fxport.memory.footprint_record import Buffer, Event, Footprint, InputSpec, Output
from fxport.memory.placement import place

# One L1 bank of 1,000 B (circular buffers grow up from 0, buffers down from the top), ample DRAM
DEVICE = DeviceMemory("tiny", l1=Banks(1, 1000, 32, 32), dram=Banks(1, 1 << 20, 32, 32), grid=(1, 1))
SHAPE = (1, 32, 32)


def _graph() -> tuple[fx.GraphModule, dict[str, fx.Node]]:
    """x -> producer -> view ----------> add
          x -> conv (large CBs) -------/
    The view's output is live across the conv, whose circular buffers need the bottom 600 B."""
    g = fx.Graph()
    x = g.placeholder("x")
    producer = g.call_function(torch.ops.aten.relu.default, (x,), name="producer")
    view = g.call_function(torch.ops.aten.view.default, (producer, list(SHAPE)), name="view")
    conv = g.call_function(torch.ops.aten.neg.default, (x,), name="conv")
    add = g.call_function(torch.ops.aten.add.Tensor, (view, conv), name="add")
    g.output(add)
    return fx.GraphModule(torch.nn.Module(), g), {n.name: n for n in g.nodes}


def _footprint(node: fx.Node, specs: list[InputSpec], memory: str) -> Footprint:
    """Each op's output (300 B per bank; the conv's 100 B) where it is placed, except the view,
    whose output follows its input's memory as TT-NN's reshape does; the conv's program has
    600 B of circular buffers per core, in L1 wherever its tensors are."""
    where = memory.upper()
    if node.name == "view" and specs and specs[0].where == "device":
        where = specs[0].memory
    size = 100 if node.name == "conv" else 300
    events = [Event("cbs", cb=600, op="Conv2dDeviceOperation")] if node.name == "conv" else []
    return Footprint(
        buffers=(Buffer(where, size, size, "output", output=0),),
        events=(*events, Event("alloc", 0)),
        outputs=(Output(0, None, SHAPE, "bfloat16", "TILE", where),),
    )


def test_a_view_kept_in_l1_by_its_input_is_moved_out_with_its_producer_for_a_conv_cb_region():
    gm, nodes = _graph()
    placed = place(gm, DEVICE, _footprint, on_device=lambda n: n.op == "call_function")
    # L1 first: the producer at 700..1000, the view below it at 400..700 (the producer is freed
    # after it), so the conv's 600 B of circular buffers clash with the view's tensor even with
    # the conv's own tensors in DRAM. Keeping the view out of L1 is not enough (its output follows
    # its input into L1): its producer goes to DRAM too, and then the conv fits.
    assert placed.unresolved == ()
    assert {"view", "producer"} <= set(placed.demoted)
    assert placed.memory["producer"] == placed.memory["view"] == "dram"
    states = {s.node: s for s in placed.states}
    assert all(s.fits for s in placed.states)
    assert states["conv"].cb == 600 and placed.memory["conv"] == "l1"  # its 100 B sit at the top
    assert placed.l1_nodes == 2 and placed.rounds == 3
