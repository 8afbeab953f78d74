"""Running a model that captures as several graphs: TorchDynamo splits it at graph breaks, each
graph (a "piece") is handed to a caller-supplied function, and the Python between the pieces (a
detector's anchor generation, NMS, box decoding) runs on the host as eager code.

One call of the model runs everything: dynamo compiles each piece the first time it is reached and
calls it with the values the host glue computed. This module knows nothing of devices: the
`call` given to `run_in_pieces` decides what running a piece means (fxport.runner runs it through
TT-NN). Every piece records the break that ended it, with dynamo's reason and the user's source line.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import fx, nn

from fxport.capture.engine import CaptureProblem, collect_log


@dataclass
class Piece:
    """One graph dynamo captured, in the order dynamo compiled them."""

    label: str  # "graph0", "graph1", ...
    gm: fx.GraphModule
    function: str  # the function it belongs to: "forward (torchvision/.../generalized_rcnn.py)"
    graph_break: CaptureProblem | None  # the break that ended it (None: it ran to its function's end)
    # Positions of Python floats dynamo passes as 0-d tensors and reads back with .item()
    wrapped_scalars: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "function": self.function,
            "break": self.graph_break.to_dict() if self.graph_break else None,
        }


def run_in_pieces(
    model: nn.Module, args: tuple, kwargs: dict, call: Callable[[Piece, tuple], Any]
) -> tuple[Any, list[Piece], str]:
    """Run `model(*args, **kwargs)` with every captured graph executed by `call(piece, inputs)`
    (it returns what the graph returns) and the code between graphs run eagerly. Returns the
    model's outputs, the pieces in compile order and what torch printed meanwhile (its warnings
    about the library code it traces). Shapes are static: a graph reached again with other
    shapes (a loop over images) is compiled again as another piece."""
    pieces: list[Piece] = []

    def backend(gm: fx.GraphModule, example_inputs: list) -> Callable:
        placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        wrapped = tuple(
            i for i, n in enumerate(placeholders) if getattr(n.meta.get("grapharg"), "pass_arg_as_tensor", False)
        )
        function, graph_break = _origin(gm)
        piece = Piece(f"graph{len(pieces)}", gm, function, graph_break, wrapped)
        pieces.append(piece)
        return lambda *inputs: call(piece, tuple(inputs))

    torch._dynamo.reset()
    try:
        with torch.no_grad(), collect_log() as log:
            out = torch.compile(model, backend=backend, fullgraph=False, dynamic=False)(*args, **kwargs)
    finally:
        torch._dynamo.reset()
    return out, pieces, log.getvalue()


def specialize_scalars(gm: fx.GraphModule, values: dict[int, float]) -> fx.GraphModule:
    """A copy of `gm` whose `.item()` reads of the wrapped scalars at those placeholder positions
    are the given Python numbers (export needs them as constants)."""
    if not values:
        return gm
    gm = copy.deepcopy(gm)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for position, value in values.items():
        for user in list(placeholders[position].users):
            if user.op == "call_method" and user.target == "item":
                user.replace_all_uses_with(value)
                gm.graph.erase_node(user)
    gm.recompile()
    return gm


def _origin(gm: fx.GraphModule) -> tuple[str, CaptureProblem | None]:
    """The function a graph was compiled for, and the break that ended it (reason, source line)."""
    reason = getattr(gm, "compile_subgraph_reason", None)
    stack = list(getattr(reason, "user_stack", None) or [])
    function = f"{stack[0].name} ({_short(stack[0].filename)})" if stack else "<unknown function>"
    if reason is None or not reason.graph_break:
        return function, None
    frame = stack[-1] if stack else None
    where = f"{_short(frame.filename)}:{frame.lineno} in {frame.name}" if frame else ""
    return function, CaptureProblem("graph-break", break_reason(reason.reason), where)


def break_reason(reason: str) -> str:
    """Dynamo's break reason as one line: its first line and its explanation."""
    lines = [ln.strip() for ln in str(reason).splitlines() if ln.strip()]
    head = lines[0] if lines else "unknown"
    if head.startswith("generic_jump"):
        head = f"data-dependent branch: Python decides on a tensor value ({head})"
    explanation = next((ln for ln in lines[1:] if ln.startswith("Explanation:")), "")
    return f"{head}. {explanation}"[:300] if explanation else head[:300]


def _short(filename: str) -> str:
    """A source path from its package down ("torchvision/ops/boxes.py"), as records name sources."""
    parts = filename.replace(os.sep, "/").split("/")
    for marker in ("site-packages", "dist-packages"):
        if marker in parts:
            return "/".join(parts[parts.index(marker) + 1 :])
    return filename
