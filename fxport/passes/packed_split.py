"""Split packed projections by slicing: Q, K and V of one packed linear as slices of its last dim.

nn.MultiheadAttention (torchvision's ViT, and models built on it) projects Q, K and V with one
linear of 3E outputs and splits them by `unflatten(-1, (3, E))`, `unsqueeze(0)`,
`transpose(0, -2)`, `squeeze(-2)` and `select(0, i)`. On the device that transpose is a 5-D
permute whose second-to-last dims (3, then 1) are padded to 32-row tiles: it writes ~10x the
tensor's bytes. TT-NN's own ViT splits the same output along its last dim, which is tile-aligned
when E is a multiple of 32.

Rewrites
- `select(chain(x), dim, i)`, where `chain` is views, reshapes, squeezes, unsqueezes, permutes,
  transposes and copies of `x` with at least one permute or transpose, into
  `slice(x, -1, a, b)` (reshaped to the select's shape when it differs), when the selected
  elements are exactly `x[..., a:b]` in row-major order and `a`, `b` are multiples of the tile
  width. The chain is left to dead-code elimination once no select reads it.

Why it is exact: the pass replays the chain on the element indices of `x` (an arange of its
shape) and rewrites only when the select's indices equal those of `x[..., a:b]`, element by
element: the new graph reads the same elements of `x` in the same order.
"""

from __future__ import annotations

import torch
from torch import fx

from fxport.passes.base import PERMUTES, RESHAPES, FxportPass, insert_call, op_count, set_call

aten = torch.ops.aten

# Ops that only rearrange their first input (their other arguments are ints and int lists).
_REARRANGE = RESHAPES | PERMUTES | {aten.unflatten.int, aten.clone.default, aten.contiguous.default}
_VIEWS = {aten.view.default, aten._unsafe_view.default}
_SELECTS = {aten.select.int}
TILE = 32
# Replaying a chain costs an index tensor of x's size (int32): larger sources are not searched.
MAX_ELEMENTS = 1 << 25


def _val(node) -> torch.Tensor | None:
    v = node.meta.get("val") if isinstance(node, fx.Node) else None
    return v if isinstance(v, torch.Tensor) else None


def _reads_nodes(node: fx.Node) -> bool:
    """Does `node` read graph values besides its first input?"""
    found: list[fx.Node] = []
    fx.node.map_arg((node.args[1:], node.kwargs), found.append)
    return bool(found)


def _chain(node: fx.Node) -> tuple[fx.Node, list[fx.Node]] | None:
    """The source of a select's input and the rearranging ops from it, in order; None when the
    chain has no permute (nothing to save) or its source has no known shape."""
    chain: list[fx.Node] = []
    while isinstance(node, fx.Node) and node.op == "call_function" and node.target in _REARRANGE:
        if _reads_nodes(node):  # sizes computed in the graph: not replayable on indices
            return None
        chain.append(node)
        node = node.args[0]
    if not any(n.target in PERMUTES for n in chain) or _val(node) is None:
        return None
    return node, chain[::-1]


def _slice_of(select: fx.Node, source: fx.Node, chain: list[fx.Node]) -> tuple[int, int] | None:
    """(a, b) when `select` reads exactly source[..., a:b] in order, both tile-aligned."""
    shape = tuple(_val(source).shape)
    if not shape or not all(isinstance(d, int) for d in shape):  # symbolic sizes: not proven here
        return None
    numel = _val(source).numel()
    if numel == 0 or numel > MAX_ELEMENTS:
        return None
    base = torch.arange(numel, dtype=torch.int32).reshape(shape)
    idx = base
    for node in chain:  # a view of a permuted index tensor would refuse it: reshape is the same map
        op = aten.reshape.default if node.target in _VIEWS else node.target
        idx = op(idx, *node.args[1:], **node.kwargs)
    out = idx.select(*select.args[1:3]).reshape(-1)
    last, rows = shape[-1], numel // shape[-1]
    if out.numel() % rows:
        return None
    a = int(out[0]) % last
    b = a + out.numel() // rows
    if a % TILE or b % TILE or b > last:
        return None
    return (a, b) if torch.equal(out, base[..., a:b].reshape(-1)) else None


class SplitPackedProjections(FxportPass):
    name = "packed_split"

    def run(self, gm: fx.GraphModule) -> bool:
        graph = gm.graph
        before = op_count(graph)
        for node in list(graph.nodes):
            if node.op != "call_function" or node.target not in _SELECTS or _val(node) is None or _reads_nodes(node):
                continue
            found = _chain(node.args[0])
            if found is None:
                continue
            source, chain = found
            bounds = _slice_of(node, source, chain)
            if bounds is None:
                continue
            a, b = bounds
            x = _val(source)
            sliced_shape = (*x.shape[:-1], b - a)
            dim = x.dim() - 1
            if tuple(_val(node).shape) == sliced_shape:
                set_call(node, aten.slice.Tensor, (source, dim, a, b))
            else:
                with graph.inserting_before(node):
                    part = insert_call(graph, aten.slice.Tensor, (source, dim, a, b), node)
                set_call(node, aten.reshape.default, (part, list(_val(node).shape)))
                self.record.added += 1
            self.record.rewritten += 1
            self.record.changes.append(f"{node.name}: {source.name}[..., {a}:{b}] instead of a permuted select")
        if not self.record.rewritten:
            return False
        graph.eliminate_dead_code()
        self.record.removed = before + self.record.added - op_count(graph)
        return True
