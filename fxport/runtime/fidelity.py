"""Math fidelity in emulated values: the operand bits the Tensix FPU multiplies at each fidelity.

The matrix engine's multipliers take 5 significand bits of SrcA (the implicit 1 and the top 4
mantissa bits) by 7 of SrcB (the implicit 1 and the top 6). A product at full precision runs in
up to four passes ("phases"), each multiplying one part of each operand, accumulated in Dst:

    phase 0: B_hi * A_hi    phase 1: B_hi * A_lo    phase 2: B_lo * A_hi    phase 3: B_lo * A_lo

where A_hi is SrcA's top 4 mantissa bits and A_lo its next 5, B_hi SrcB's top 6 and B_lo its next
4 (the Tensix ISA's MVMUL and its fidelity-phase description; tt-llk's golden model uses the same
masks). LoFi runs phase 0, HiFi2 phases 0-1, HiFi3 0-2, HiFi4 all four. MVMUL computes
Dst += SrcB @ SrcA, so for a matmul in0 (the left operand: activations) is SrcB and in1 (the
right: weights) is SrcA; a convolution is the matmul of its unfolded activations by its weights.

For bfloat16 operands (7 mantissa bits) HiFi2 and above keep all of A and HiFi4 all of B: LoFi
drops A's last 3 bits and B's last bit, HiFi2 and HiFi3 B's last bit in part of the product.
The emulation truncates the operands' fp32 bit patterns as the unpacker feeds them and sums the
phases' products; accumulation stays in fp32 (Dst's precision is not modelled).
"""

from __future__ import annotations

from typing import Any

import torch

# Mantissa bits kept of (part of) each operand: SrcA's hi is its top 4, hi + lo its top 9; SrcB's
# hi its top 6, hi + lo its top 10.
A_HI, A_ALL, B_HI, B_ALL = 4, 9, 6, 10
PHASES = {"LoFi": 1, "HiFi2": 2, "HiFi3": 3, "HiFi4": 4}
# (SrcB part, SrcA part) multiplied in each phase, in order.
_PHASE_PARTS = (("hi", "hi"), ("hi", "lo"), ("lo", "hi"), ("lo", "lo"))


def fidelity_of(config: Any) -> str:
    """The math fidelity ("LoFi", ...) a compute kernel config asks for; "" for none."""
    fidelity = getattr(config, "math_fidelity", None)
    return getattr(fidelity, "name", "") if fidelity is not None else ""


def keep_mantissa(x: torch.Tensor, bits: int) -> torch.Tensor:
    """x as fp32 with its sign, exponent and top `bits` mantissa bits (the rest zeroed)."""
    mask = -(1 << (23 - bits))  # ...1110...0 as an int32: sign, exponent, `bits` mantissa bits
    return (x.float().contiguous().view(torch.int32) & mask).view(torch.float32)


def _parts(x: torch.Tensor, hi_bits: int, all_bits: int) -> dict[str, torch.Tensor]:
    hi = keep_mantissa(x, hi_bits)
    return {"hi": hi, "lo": keep_mantissa(x, all_bits) - hi}


def operand_terms(left: torch.Tensor, right: torch.Tensor, fidelity: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(left, right) pairs whose products, summed, are what the FPU computes of left @ right at
    `fidelity` (left: in0, SrcB; right: in1, SrcA). Phases with the same left part are merged
    (B_hi @ A_hi + B_hi @ A_lo = B_hi @ (A_hi + A_lo)): at most two products."""
    b = _parts(left, B_HI, B_ALL)
    a = _parts(right, A_HI, A_ALL)
    merged: dict[str, torch.Tensor] = {}
    for b_part, a_part in _PHASE_PARTS[: PHASES[fidelity]]:
        merged[b_part] = merged[b_part] + a[a_part] if b_part in merged else a[a_part]
    return [(b[b_part], right_part) for b_part, right_part in merged.items()]


def matmul_operands(left: torch.Tensor, right: torch.Tensor, fidelity: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One (left, right) pair whose plain product is the FPU's at `fidelity`: the phases' pairs
    concatenated along K (sum_i L_i @ R_i = [L_1 .. L_n] @ [R_1; ..; R_n]), in the operands' dtype
    when it holds them exactly (truncated parts of a bfloat16 are bfloat16 values)."""
    terms = operand_terms(left, right, fidelity)
    lefts = torch.cat([t[0] for t in terms], dim=-1) if len(terms) > 1 else terms[0][0]
    rights = torch.cat([t[1] for t in terms], dim=-2) if len(terms) > 1 else terms[0][1]
    return lefts.to(left.dtype), rights.to(right.dtype)
