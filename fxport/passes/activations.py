"""Fuse activations into the conv2d or linear before them.

Rewrites `act(op(...))`, where `op`'s output feeds nothing but the activation, into one node of
fxport's fused op (`fxport.conv2d` / `fxport.linear` with `activation=<TT-NN's name>`), which
lowers to one ttnn.conv2d (`Conv2dConfig.activation`) or ttnn.linear (`activation=`). The fused
node keeps the conv's (or linear's) name and module, and its output is the activation's: the
memory model sizes exactly the tensors the fused kernel holds.

Which activations fuse, with which parameters, is the mapping table's to say: the conv2d and
linear rules list them (`Rule.fusion`), each checked on the mock device against its golden
function. Both nodes must be ones the table lowers: fusing never moves work between host and
device.

Why it is exact: the fused op computes act(op(x)) by definition (its reference implementation
applies the same torch activation to the op's output), and nothing else read the op's output.
"""

from __future__ import annotations

from torch import fx

from fxport.mapping import REGISTRY
from fxport.passes.base import FxportPass, set_call


class FuseActivations(FxportPass):
    name = "activations"

    def run(self, gm: fx.GraphModule) -> bool:
        for node in list(gm.graph.nodes):
            rule = REGISTRY.rule_for(node)
            if rule is None or rule.fusion is None or len(node.users) != 1:
                continue
            (act,) = node.users
            name = rule.fusion.activation_for(act)
            if name is None or act.args[0] is not node or REGISTRY.decide(node)[1] or REGISTRY.decide(act)[1]:
                continue
            form = rule.fusion.form(node, name)
            if form is None:
                continue
            set_call(node, *form, val=act.meta["val"])
            act.replace_all_uses_with(node)
            gm.graph.erase_node(act)
            self.record.fused += 1
            self.record.changes.append(f"{act.name} -> {node.name} (activation={name})")
        return self.record.fused > 0
