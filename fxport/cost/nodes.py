"""The device time of one node: TT-NN's ideal for its op, plus what the ideal leaves out.

A node is priced from its op as lowered: the shapes the device holds (a rule's `device_layout`,
tile-padded), the dtypes (activations, and the weights' dtype for constant weights), where each
tensor lives (DRAM or L1, as placed), the math fidelity and the board's core grid. Compute is
TT-NN's cycle formula over the kernel's utilisation; DRAM time is every DRAM tensor read or written
over the achieved bandwidth (TT-NN's ideal takes the slowest tensor alone); ops TT-NN leaves at
1 ns (eltwise, data movement, layout conversions) are priced by tiles processed and bytes moved.
Each device op the node issues adds the dispatch overhead. The estimate names its bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fxport.capture.records import TensorSpec, split_target
from fxport.cost import constants as C
from fxport.cost.boards import Board
from fxport.cost.formulas import FIDELITY, compute_cycles, conv2d_flops, ideal_ns, matmul_flops, sdpa_flops
from fxport.memory.tiles import TILE_ELEMENTS, TORCH_TO_DEVICE, padded_bytes

# Ops by kind (names without overload); anything else is priced by its mapping family (FAMILY_KIND).
KINDS: dict[str, tuple[str, ...]] = {
    "conv": ("aten.convolution", "aten._convolution", "aten.conv1d", "aten.conv2d", "fxport.conv2d"),
    "matmul": (
        "aten.mm",
        "aten.bmm",
        "aten.matmul",
        "aten.linear",
        "aten.addmm",
        "aten.baddbmm",
        "aten.mv",
        "aten.dot",
        "fxport.linear",
    ),
    "sdpa": (
        "aten.scaled_dot_product_attention",
        "aten._scaled_dot_product_flash_attention",
        "aten._scaled_dot_product_efficient_attention",
    ),
    "layout": ("fxport.to_nhwc", "fxport.to_nchw", "aten._to_copy", "aten.clone", "aten.contiguous"),
    "pool": ("fxport.max_pool2d", "fxport.avg_pool2d", "fxport.adaptive_avg_pool2d", "fxport.upsample_nearest2d"),
}
_KIND_OF = {op: kind for kind, ops in KINDS.items() for op in ops}
FAMILY_KIND = {
    "eltwise": "eltwise",
    "activation": "eltwise",
    "reduction": "reduction",
    "normalization": "normalization",
    "data_movement": "data_movement",
    "creation": "data_movement",
    "embedding": "data_movement",
    "conv_pool": "pool",
    "matmul": "eltwise",
    "attention": "eltwise",
}
# Kinds whose operand 1 is a weight when it is a constant (stored in the weights' dtype, in DRAM).
WEIGHT_KINDS = ("conv", "matmul")
# Ops that only re-describe a tensor on the device (TT-NN returns a view): no kernel runs.
VIEWS = (
    "aten.view",
    "aten._unsafe_view",
    "aten.reshape",
    "aten.squeeze",
    "aten.unsqueeze",
    "aten.expand",
    "aten.alias",
    "aten.flatten",
    "aten.unflatten",
)


def op_kind(target: str, family: str) -> str:
    op = split_target(target)[0]
    if op in VIEWS:
        return "view"
    return _KIND_OF.get(op) or FAMILY_KIND.get(family, "eltwise")


@dataclass(frozen=True)
class Options:
    """How the model runs: math fidelity ("" = TT-NN's default per op), activation and weight dtypes."""

    fidelity: str = ""
    activations: str = "bfloat16"
    weights: str = "bfloat16"

    def fidelity_for(self, kind: str, weight_block_float: bool) -> str:
        """TT-NN's default when none is given: HiFi2, LoFi when both operands are block floats."""
        if self.fidelity:
            return self.fidelity
        block = self.activations == "bfloat8_b"
        return "lofi" if block and (weight_block_float or kind == "sdpa") else "hifi2"


@dataclass(frozen=True)
class Tensor:
    """A tensor as the device holds it: its padded bytes and whether it lives in DRAM."""

    nbytes: int
    in_dram: bool


@dataclass(frozen=True)
class NodeCost:
    kind: str
    est_ns: float
    bound: str  # "compute", "dram" or "dispatch"
    compute_ns: float
    dram_ns: float
    dispatch_ns: float
    ideal_ns: float  # TT-NN's own ideal (max of compute and the slowest tensor), for comparison
    flops: float = 0.0


def device_tensor(spec: TensorSpec | tuple, dtype: str, in_dram: bool) -> Tensor:
    """A float activation in the run's activation dtype `dtype`; other dtypes as from_torch stores them."""
    shape, torch_dtype = (spec.shape, spec.dtype) if isinstance(spec, TensorSpec) else spec
    floating = torch_dtype.startswith(("float", "bfloat")) or torch_dtype == "half"
    stored = dtype if floating else TORCH_TO_DEVICE.get(torch_dtype, "bfloat16")
    return Tensor(padded_bytes(tuple(shape), stored), in_dram)


def _elements(spec: TensorSpec) -> int:
    return math.prod(spec.shape) if spec.shape else 1


def _flops(target: str, kind: str, inputs: list[TensorSpec], outputs: list[TensorSpec], causal: bool) -> float:
    out = outputs[0] if outputs else None
    if out is None or not inputs:
        return 0.0
    if kind == "matmul":
        # Every matmul form is 2 * (output elements) * K, K the contraction of the left operand
        # (addmm/baddbmm: operand 1, after the addend). A bias is not modelled, as in TT-NN.
        left = inputs[1] if split_target(target)[0] in ("aten.addmm", "aten.baddbmm") else inputs[0]
        k = left.shape[-1] if left.shape else 1
        return matmul_flops(_elements(out), k, 1)
    if kind == "conv" and len(inputs) > 1 and len(inputs[1].shape) >= 3:
        w = inputs[1].shape  # [C_out, C_in / groups, kh(, kw)]: the real work of a grouped conv
        return conv2d_flops(w[1], w[2], w[3] if len(w) > 3 else 1, 1, 1, 1, 1) * _elements(out)
    if kind == "sdpa" and len(inputs) >= 3 and len(inputs[0].shape) >= 2:
        q, k, v = inputs[0].shape, inputs[1].shape, inputs[2].shape
        heads_batch = math.prod(q[:-2])
        return sdpa_flops(q[-1], v[-1], q[-2], k[-2], heads_batch, 1, causal)
    return 0.0


def node_cost(
    kind: str,
    inputs: list[Tensor],
    outputs: list[Tensor],
    flops: float,
    out_tiles: int,
    board: Board,
    fidelity: str,
    device_ops: int = 1,
) -> NodeCost:
    """Price one node from its tensors as held. `out_tiles`: tiles of output (ops priced per tile);
    `device_ops`: the device operations its lowering issues (each pays the dispatch overhead)."""
    if kind == "view":
        return NodeCost(kind, 0.0, "dispatch", 0.0, 0.0, 0.0, 0.0)
    tensors = inputs + outputs
    cycles = compute_cycles(flops, board.cores, fidelity) if flops else 0
    ideal = ideal_ns(cycles, board.clock_ghz, [(t.nbytes, t.in_dram) for t in tensors], board.dram_gib_s)
    if kind in C.UTILISATION:
        compute = cycles / board.clock_ghz / C.UTILISATION[kind].value
    else:
        compute = math.ceil(out_tiles / board.cores) * C.TILE_CYCLES[kind].value / board.clock_ghz
    dram_bw = board.dram_gib_s * 2**30 / 1e9 * C.DRAM_EFFICIENCY[kind].value  # bytes per ns
    l1_bw = board.cores * board.l1_bytes_per_cycle * board.clock_ghz * C.L1_EFFICIENCY.value
    dram = sum(t.nbytes for t in tensors if t.in_dram) / dram_bw
    l1 = sum(t.nbytes for t in tensors if not t.in_dram) / l1_bw
    dispatch = device_ops * C.DISPATCH_NS.value
    work = max(compute, dram + l1)
    bound = "dispatch" if dispatch >= work else ("compute" if compute >= dram + l1 else "dram")
    return NodeCost(kind, work + dispatch, bound, compute, dram + l1, dispatch, ideal, flops)


def price(
    target: str,
    family: str,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    board: Board,
    options: Options,
    in_dram: list[bool],
    out_dram: bool,
    weight_index: int | None = None,
    causal: bool = False,
    device_ops: int = 1,
    logical: tuple[list[TensorSpec], list[TensorSpec]] | None = None,
) -> NodeCost:
    """A node's cost from its specs as the device holds them. `in_dram` per input; `weight_index`:
    the input that is a constant weight (stored in the weights' dtype, always in DRAM);
    `logical`: the op's own (inputs, outputs) when the held ones are re-laid (a conv's flattened
    NHWC activations and weight matrix), for counting its flops."""
    kind = op_kind(target, family)
    if kind not in WEIGHT_KINDS:  # another op's constant operand (an add's bias) keeps the activations' dtype
        weight_index = None
    acts = options.activations
    held_in = [
        device_tensor(
            s,
            options.weights if i == weight_index else acts,
            True if i == weight_index else (in_dram[i] if i < len(in_dram) else True),
        )
        for i, s in enumerate(inputs)
    ]
    held_out = [device_tensor(s, acts, out_dram) for s in outputs]
    tiles = sum(math.ceil(_elements(s) / TILE_ELEMENTS) for s in outputs) or 1
    fidelity = options.fidelity_for(kind, weight_index is not None and options.weights == "bfloat8_b")
    assert fidelity in FIDELITY
    flop_in, flop_out = logical or (inputs, outputs)
    return node_cost(
        kind, held_in, held_out, _flops(target, kind, flop_in, flop_out, causal), tiles, board, fidelity, device_ops
    )
