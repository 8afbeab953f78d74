"""The cost model (fxport/cost): TT-NN's formulas against TT-NN's own code, node costs and their
bounds, a run's estimate on a hand-built graph with a host island, and its determinism."""

import ctypes
import json
import math
import os

import pytest

from fxport.capture.records import TensorSpec
from fxport.cost.boards import BOARDS, board_for
from fxport.cost.formulas import compute_cycles, sdpa_ideal_cycles
from fxport.cost.nodes import Options, Tensor, node_cost, price
from fxport.run_options import RunOptions

# tt::tt_metal::MathFidelity as the wheel numbers it
MATH_FIDELITY_ENUM = {"lofi": 0, "hifi2": 2, "hifi3": 3, "hifi4": 4}


def _ttnn_sdpa_cycles():
    import ttnn

    lib = ctypes.CDLL(os.path.join(os.path.dirname(ttnn.__file__), "build", "lib", "_ttnncpp.so"))
    fn = lib._ZN4ttnn10operations11transformer4sdpa25compute_sdpa_ideal_cyclesEjjjjjjbN2tt8tt_metal12MathFidelityEi
    fn.restype = ctypes.c_int64
    fn.argtypes = [ctypes.c_uint32] * 6 + [ctypes.c_bool, ctypes.c_int, ctypes.c_int]
    return fn


@pytest.mark.parametrize("fidelity", ["lofi", "hifi2", "hifi3", "hifi4"])
@pytest.mark.parametrize(
    "b, nh, sq, sk, dh, dv, causal, cores",
    [
        (1, 8, 256, 256, 64, 64, False, 64),
        (1, 8, 256, 256, 64, 64, True, 64),
        (2, 12, 197, 197, 64, 64, False, 64),
        (2, 8, 256, 512, 64, 128, False, 130),
        (1, 16, 1024, 1024, 128, 128, True, 130),
        (3, 1, 33, 65, 32, 96, False, 7),
    ],
)
def test_sdpa_formula_equals_ttnns_own(b, nh, sq, sk, dh, dv, causal, cores, fidelity):
    ttnn_cycles = _ttnn_sdpa_cycles()(b, nh, sq, sk, dh, dv, causal, MATH_FIDELITY_ENUM[fidelity], cores)
    assert sdpa_ideal_cycles(b, nh, sq, sk, dh, dv, causal, cores, fidelity) == ttnn_cycles


def test_a_tile_product_takes_16_cycles_per_fidelity_pass():
    """tt-metal's GEMM_FLOPS: one 32x32x32 tile product on one core, 16/32/48/64 cycles."""
    flops = 2 * 32**3
    assert [compute_cycles(flops, 1, f) for f in ("lofi", "hifi2", "hifi3", "hifi4")] == [16, 32, 48, 64]


def test_boards_are_data_and_named_by_arch():
    assert BOARDS["n150"].cores == 64 and BOARDS["p150"].cores == 130
    assert board_for("wormhole_b0") is BOARDS["n150"] and board_for("blackhole") is BOARDS["p150"]
    with pytest.raises(ValueError):
        board_for("grayskull")


def test_each_estimate_names_its_bound():
    n150 = BOARDS["n150"]
    big = 2048 * 2048 * 2
    matmul = node_cost(
        "matmul", [Tensor(big, False), Tensor(big, True)], [Tensor(big, False)], 2.0 * 2048**3, 4096, n150, "hifi4"
    )
    assert matmul.bound == "compute"
    add = node_cost("eltwise", [Tensor(big, True)] * 2, [Tensor(big, True)], 0.0, 4096, n150, "hifi2")
    assert add.bound == "dram"
    tiny = node_cost("eltwise", [Tensor(2048, True)] * 2, [Tensor(2048, True)], 0.0, 1, n150, "hifi2")
    assert tiny.bound == "dispatch"
    # In L1 the same add is far cheaper than in DRAM; a view costs nothing.
    add_l1 = node_cost("eltwise", [Tensor(big, False)] * 2, [Tensor(big, False)], 0.0, 4096, n150, "hifi2")
    assert add_l1.est_ns < add.est_ns / 3
    assert node_cost("view", [], [], 0.0, 1, n150, "lofi").est_ns == 0.0


def test_fidelity_activations_and_board_change_a_matmul():
    specs = [TensorSpec((1024, 4096), "float32"), TensorSpec((4096, 4096), "float32")]
    out = [TensorSpec((1024, 4096), "float32")]

    def cost(board="n150", **options):
        return price(
            "aten.linear.default",
            "matmul",
            specs,
            out,
            BOARDS[board],
            Options(**options),
            [False],
            False,
            weight_index=1,
        ).est_ns

    assert cost(fidelity="lofi") < cost(fidelity="hifi2") < cost(fidelity="hifi4")
    assert cost(board="p150", fidelity="lofi") < cost(fidelity="lofi")
    # TT-NN's default: LoFi only when both operands are block floats
    assert cost(activations="bfloat8_b", weights="bfloat8_b") == cost(
        fidelity="lofi", activations="bfloat8_b", weights="bfloat8_b"
    )


@pytest.fixture(scope="module")
def island_run(mock_device):
    from fxport.report.results import run_document
    from fxport.runner import run_model

    return run_document(run_model("tests.user_models:HostIsland", mock_device, (4, 64)))


def test_a_host_island_is_costed_with_the_transfers_it_forces(island_run):
    doc = island_run
    est = doc["estimate"]
    assert est["arch"] == "n150" and est["batch"] == 4
    nodes = {n["target"]: n for n in doc["nodes"]}
    assert nodes["aten.cumprod.default"]["bound"] == "host" and nodes["aten.cumprod.default"]["est_ns"] > 0
    for n in doc["nodes"]:
        if n["status"] == "device":
            assert n["bound"] in ("compute", "dram", "dispatch")
    board = BOARDS["n150"]
    one_move = board.pcie_latency_us * 1e-3 + 4 * 64 * 4 / board.pcie_gb_s / 1e6  # ms: [4, 64] fp32
    (cumprod,) = [u for u in doc["unsupported"] if u["target"] == "aten.cumprod.default"]
    # Its input comes back from the device and its output goes to it: two moves, charged to it
    assert cumprod["transfer_ms"] == pytest.approx(2 * one_move, rel=1e-3)
    assert cumprod["cost_ms"] == pytest.approx(cumprod["host_ms"] + cumprod["transfer_ms"], abs=3e-4)
    assert cumprod["speedup_if_lowered"] > 1.0
    # The model's own input and output move too: four moves in all
    assert est["transfers"] == 4 and est["transfer_ms"] == pytest.approx(4 * one_move, rel=1e-3)
    (island,) = est["host_islands"]
    assert island["nodes"] == 1 and island["cost_ms"] == cumprod["cost_ms"]
    assert est["latency_ms"] == pytest.approx(est["device_ms"] + est["host_ms"] + est["transfer_ms"], abs=1e-3)


def test_the_estimate_is_stable_apart_from_measured_times(mock_device, island_run):
    from fxport.report.results import run_document, without_measured
    from fxport.runner import run_model

    again = run_document(run_model("tests.user_models:HostIsland", mock_device, (4, 64)))
    assert json.dumps(without_measured(island_run), sort_keys=True) == json.dumps(
        without_measured(again), sort_keys=True
    )
    assert again["estimate"]["device_ms"] == island_run["estimate"]["device_ms"] > 0


def test_math_fidelity_and_activations_change_the_lowering(mock_device):
    from fxport.runner import run_model

    plain = run_model("tests.user_models:HostIsland", mock_device, (4, 64))
    block = run_model(
        "tests.user_models:HostIsland", mock_device, (4, 64), RunOptions(fidelity="lofi", activations="bfloat8_b")
    )
    # bfloat8_b outputs carry the device's block-float rounding into the emulated values
    assert block.output_pcc[0] != plain.output_pcc[0]
    assert block.estimate.device_ms < plain.estimate.device_ms or math.isclose(
        block.estimate.device_ms, plain.estimate.device_ms
    )


def test_kernel_options_are_what_rules_pass(mock_device):
    from fxport.runtime.context import LoweringContext

    ctx = LoweringContext(mock_device, fidelity="hifi4", activations="bfloat8_b")
    import ttnn

    matmul, conv, sdpa = (ctx.kernel_options(k) for k in ("matmul", "conv2d", "sdpa"))
    assert matmul["dtype"] == ttnn.bfloat8_b and "compute_kernel_config" in matmul
    assert "compute_config" in conv and "dtype" in conv
    assert set(sdpa) == {"compute_kernel_config"}
    assert LoweringContext(mock_device).kernel_options("matmul") == {}
    with pytest.raises(ValueError):
        LoweringContext(mock_device, fidelity="medium")


def test_compare_and_sweep_carry_the_estimate(island_run):
    import copy

    from fxport.report.compare import compare
    from fxport.report.tables import fmt_latency
    from fxport.sweep import SweepItem, entry

    faster = copy.deepcopy(island_run)
    faster["estimate"]["latency_ms"] = island_run["estimate"]["latency_ms"] / 2
    (cmp,) = compare(island_run, faster).entries
    (delta,) = [d for d in cmp.counts if d.name == "est. latency ms"]
    assert delta.change == pytest.approx(-island_run["estimate"]["latency_ms"] / 2, abs=1e-6)
    summary = entry(SweepItem("tests.user_models:HostIsland", (4, 64)), island_run)["estimate"]
    assert summary["latency_ms"] == island_run["estimate"]["latency_ms"] and summary["arch"] == "n150"
    assert fmt_latency(summary).endswith(f"({summary['bound']})") and fmt_latency(None) == "-"


def test_a_damaged_estimate_is_one_line(island_run, tmp_path):
    import copy

    from fxport.errors import FxportError
    from fxport.report.render import read_run

    doc = copy.deepcopy(island_run)
    del doc["estimate"]["latency_ms"]
    (tmp_path / "run.json").write_text(json.dumps(doc))
    with pytest.raises(FxportError, match="estimate: missing 'latency_ms'"):
        read_run(tmp_path / "run.json")
    (tmp_path / "run.json").write_text(json.dumps(island_run))
    assert read_run(tmp_path / "run.json")["estimate"]["arch"] == "n150"


def test_block_float_activations_join_on_the_device(mock_device):
    """A bfloat8_b conv output joined with row-major pool outputs: cast to the conv's block float,
    they fail ("Only TILE layout is supported for BFLOAT8_B"); the cat rule joins as bfloat16."""
    from fxport.runner import run_model

    result = run_model(
        "tests.user_models:ConvCat", mock_device, (2, 3, 8, 8), RunOptions(activations="bfloat8_b", weights="bfloat8_b")
    )
    cats = [n for n in result.nodes if n.target == "aten.cat.default"]
    assert cats and all(n.status == "device" for n in cats), [(n.status, n.error) for n in cats]
    assert result.output_pcc[0] is not None and result.output_pcc[0] > 0.98


def test_a_verdict_runs_estimate_is_deterministic_whole(mock_device):
    """Verdict runs time nothing (meta tensors, replayed calls): host nodes and host dispatch are
    modelled, so their documents stay identical run to run, as sweeps and caches rely on."""
    from fxport.report.results import run_document
    from fxport.runner import run_model

    docs = [
        run_document(run_model("tests.user_models:HostIsland", mock_device, (4, 64), RunOptions(values="none")))
        for _ in range(2)
    ]
    assert json.dumps(docs[0], sort_keys=True) == json.dumps(docs[1], sort_keys=True)
    est = docs[0]["estimate"]
    assert est["host_ms"] > 0 and est["assumptions"]["host_timing"].startswith("not measured")
    assert est["assumptions"]["dispatch_timing"].startswith("not measured")


# -- math fidelity in the emulated values -----------------------------------------------------------
def test_fidelity_phases_multiply_the_bits_the_fpu_multiplies():
    import torch

    from fxport.runtime.fidelity import keep_mantissa, matmul_operands

    # 1 + 2^-1 + ... + 2^-7: every mantissa bit of a bfloat16 set
    full = torch.tensor([[sum(2.0**-i for i in range(8))]], dtype=torch.bfloat16)
    assert keep_mantissa(full, 4).item() == sum(2.0**-i for i in range(5))
    assert keep_mantissa(-full, 6).item() == -sum(2.0**-i for i in range(7))
    product = {
        f: (lambda lr: (lr[0].float() @ lr[1].float()).item())(matmul_operands(full, full, f))
        for f in ("LoFi", "HiFi2", "HiFi3", "HiFi4")
    }
    a_hi, b_hi = keep_mantissa(full, 4).item(), keep_mantissa(full, 6).item()
    exact = full.float().item() ** 2
    assert product["LoFi"] == b_hi * a_hi  # left (in0) is SrcB: 6 bits; right (in1) SrcA: 4
    assert product["HiFi2"] == b_hi * full.float().item()  # all of A, B's top 6
    assert product["HiFi3"] == b_hi * full.float().item() + (full.float().item() - b_hi) * a_hi
    assert product["HiFi4"] == exact
    assert product["LoFi"] < product["HiFi2"] < product["HiFi3"] < product["HiFi4"]


@pytest.mark.parametrize(
    "model, shape", [("tests.user_models:HostIsland", (4, 64)), ("tests.user_models:TinyCNN", None)]
)
def test_lofi_costs_pcc_that_hifi4_keeps(model, shape, mock_device):
    """--math-fidelity changes the emulated values of matmul, linear and conv2d: LoFi multiplies
    4 mantissa bits of the weights, HiFi4 all of them."""
    from fxport.runner import run_model

    runs = {f: run_model(model, mock_device, shape, RunOptions(fidelity=f)) for f in ("lofi", "hifi2", "hifi4")}
    plain = run_model(model, mock_device, shape)
    pcc = {f: r.output_pcc[0] for f, r in runs.items()}
    assert pcc["lofi"] < pcc["hifi2"] <= pcc["hifi4"], pcc
    assert 1 - pcc["lofi"] > 2 * (1 - pcc["hifi4"]), pcc  # measurably: LoFi's error dominates
    assert pcc["hifi4"] == pytest.approx(plain.output_pcc[0], abs=1e-6)  # bf16 operands: HiFi4 is exact
