"""TT-NN's own ideal performance formulas (its device operations' `create_op_performance_model`,
compiled into the wheel but unreachable from Python), restated. Pure arithmetic: no torch, no ttnn.

cycles = ceil(flops / (cores * 4096) * fidelity) where one core multiplies a 32x32x32 tile in 16
cycles at LoFi (2*32^3 / 16 = 4096 flops a cycle) and 2x/3x/4x that at HiFi2/HiFi3/HiFi4. Every
DRAM tensor costs bytes / bandwidth, an L1 tensor 1 ns; the ideal is max(compute, bandwidth).
"""

from __future__ import annotations

import math

FIDELITY = {"lofi": 1, "hifi2": 2, "hifi3": 3, "hifi4": 4}
FLOPS_PER_CORE_CYCLE = 4096  # 2 * 32^3 flops of a tile product / 16 cycles at LoFi


def compute_cycles(flops: float, cores: int, fidelity: str) -> int:
    return math.ceil(flops / (cores * FLOPS_PER_CORE_CYCLE) * FIDELITY[fidelity])


def matmul_flops(m: int, k: int, n: int, batch: int = 1) -> float:
    """TT-NN's matmul model: 2*M*K*N*batch (bias not modelled)."""
    return 2.0 * m * k * n * batch


def conv2d_flops(c_in: int, kh: int, kw: int, h_out: int, w_out: int, c_out: int, batch: int) -> float:
    """TT-NN's conv2d model: 2*Cin*kh*kw*Hout*Wout*Cout*B. TT-NN ignores groups (it overestimates
    a depthwise conv by the group count); callers pass Cin per group to price the real work."""
    return 2.0 * c_in * kh * kw * h_out * w_out * c_out * batch


def sdpa_flops(dh: int, dv: int, sq: int, sk: int, heads: int, batch: int, causal: bool) -> float:
    """TT-NN's SDPA model: Q.K^T and P.V, 2*(DH+DV)*Sq*Sk*H*B, halved when causal."""
    flops = 2.0 * (dh + dv) * sq * sk * heads * batch
    return flops / 2 if causal else flops


def sdpa_ideal_cycles(
    b: int, nh: int, sq: int, sk: int, dh: int, dv: int, causal: bool, cores: int, fidelity: str
) -> int:
    """TT-NN's `compute_sdpa_ideal_cycles` (tests compare this with the wheel's own)."""
    return compute_cycles(sdpa_flops(dh, dv, sq, sk, nh, b, causal), cores, fidelity)


def tensor_ns(nbytes: int, dram_gib_s: float, in_dram: bool = True) -> float:
    """One tensor's ideal transfer time: bytes over the DRAM bandwidth; an L1 tensor 1 ns."""
    return nbytes / (dram_gib_s * 2**30) * 1e9 if in_dram else 1.0


def ideal_ns(cycles: int, clock_ghz: float, tensors: list[tuple[int, bool]], dram_gib_s: float) -> float:
    """TT-NN's ideal: max(compute ns, the slowest tensor's ns) over (bytes, in_dram) tensors."""
    bandwidth = max((tensor_ns(b, dram_gib_s, d) for b, d in tensors), default=0.0)
    return max(cycles / clock_ghz, bandwidth)
