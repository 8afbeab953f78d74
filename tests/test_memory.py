"""Memory model: tile arithmetic, per-bank verdicts, remedies, severity, OOM classification.

Pure arithmetic: no device. The error texts are real ones raised by ttnn 0.81.1 on a mock n150
(backtraces shortened).
"""

import json

import pytest

from fxport.capture.records import OpRecord, TensorSpec
from fxport.memory import (
    DRAM,
    L1,
    N150,
    P150,
    BankSpec,
    DeviceMemory,
    Kind,
    classify,
    node_memory,
    padded_bytes,
    padded_shape,
    padding,
    pages,
    preset,
    severity,
    tensor_memory,
    verdicts_for_bytes,
)
from fxport.memory.tiles import MIB, device_dtype, logical_bytes

# --- the seed cases ----------------------------------------------------------------------------


def test_seed_yolo_activation_ooms_in_l1_but_fits_dram_on_n150():
    t = tensor_memory([1, 96, 2176, 1920], "bfloat16", N150)
    assert t.padded_bytes == t.logical_bytes == 802_160_640  # no padding: 2176, 1920 are x32
    l1, dram = t.verdicts[L1], t.verdicts[DRAM]
    assert (l1.banks, l1.per_bank, l1.bank_size, l1.fits) == (64, 12_533_760, 1_393_312, False)
    assert l1.short_by == 12_533_760 - 1_393_312
    assert (dram.banks, dram.per_bank, dram.fits) == (12, 66_846_720, True)
    assert "short by 11,140,448 B per bank" in str(l1)
    assert tensor_memory([1, 96, 2176, 1920], "bfloat16", P150).verdicts[L1].banks == 130


def test_seed_10x_overhead_is_tile_padding_after_permute_to_channels_last():
    before = padding([1334, 4, 49, 49], "bfloat16")
    assert before.logical_bytes == 1334 * 4 * 49 * 49 * 2 == 25_623_472  # 24.44 MiB
    after = padding([1334, 49, 49, 4], "bfloat16")
    assert after.padded_bytes == 1334 * 49 * 64 * 32 * 2 == 267_739_136
    assert round(after.padded_bytes / MIB, 2) == 255.34  # the seeds' "255.34 MB" was MiB
    assert round(after.factor, 2) == 10.45
    assert [str(d) for d in after.dims] == ["H 49->64", "W 4->32"]
    assert str(after) == "10.45x (H 49->64, W 4->32)"
    assert before.note == "H 49->64, W 49->64" and round(before.factor, 2) == 1.71


def test_seed_16000_mb_view_is_trailing_1x1_dims_padded_to_32x32():
    p = padding([160, 100, 512, 1, 1], "bfloat16")
    assert p.padded_bytes == 16_777_216_000 and p.padded_bytes / MIB == 16_000
    assert p.logical_bytes == 16_384_000 and p.factor == 1024
    assert p.note == "trailing 1x1 dims padded to 32x32"
    text = node_memory(
        inputs=[((160, 100, 512), "bfloat16")], outputs=[((160, 100, 512, 1, 1), "bfloat16")], name="view"
    ).explain()
    assert "tile padding 1024.00x on [160, 100, 512, 1, 1] bfloat16: trailing 1x1" in text


# --- tiles ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, dtype, padded, nbytes",
    [
        ([5], "float32", (32, 32), 4096),  # rank 1: [n] -> [1, n] -> [32, 32]
        ([100], "bfloat16", (32, 128), 4 * 2048),
        ([], "bfloat16", (32, 32), 2048),  # rank 0: [1, 1]
        ([3, 33, 64], "bfloat16", (3, 64, 64), 3 * 4 * 2048),
        ([2, 32, 32], "bfloat8_b", (2, 32, 32), 2 * 1088),
        ([32, 32], "bfloat4_b", (32, 32), 576),
    ],
)
def test_tile_padding_and_bytes(shape, dtype, padded, nbytes):
    assert padded_shape(shape) == padded
    assert padded_bytes(shape, dtype) == nbytes


def test_rank1_and_rank0_padding_is_explained():
    assert padding([5], "float32").note == "rank-1 [5] stored as [1, 5]: H 1->32, W 5->32"
    assert padding([], "bfloat16").note == "rank-0 [] stored as [1, 1]: H 1->32, W 1->32"
    assert str(padding([64, 64], "bfloat16")) == "1.00x (no padding)"


def test_pages_tile_and_row_major():
    assert (pages([2, 64, 96], "bfloat16").count, pages([2, 64, 96], "bfloat16").size) == (12, 2048)
    rm = pages([2, 64, 96], "float32", "ROW_MAJOR")
    assert (rm.count, rm.size) == (128, 384)  # one row of 96 float32 per page
    assert padded_shape([5], "ROW_MAJOR") == (1, 5)
    with pytest.raises(ValueError, match="only in TILE"):
        pages([4, 4], "bfloat8_b", "ROW_MAJOR")


@pytest.mark.parametrize(
    "device, config, shape, dtype, per_bank",
    [
        # Measured on mock devices (bytes allocated per bank by ttnn.allocate_tensor_on_device).
        (N150, L1, [64 * 1000, 3], "bfloat16", 16_000),  # 6-byte rows take 16 B in L1
        (N150, DRAM, [12 * 1000, 3], "bfloat16", 32_000),  # 32 B in Wormhole DRAM
        (P150, DRAM, [8 * 1000, 40], "bfloat16", 128_000),  # 80 -> 128 B in Blackhole DRAM
        (N150, L1, [64 * 1001, 3], "bfloat16", 16_032),  # bank share 16,016 -> 32 B granule
        (P150, L1, [130 * 1001, 3], "bfloat16", 16_064),  # 64 B granule on Blackhole
        (N150, L1, [7, 300001, 3], "float32", 525_024),
        (P150, L1, [7, 300001, 3], "float32", 258_496),
    ],
)
def test_row_major_per_bank_need_matches_the_allocator(device, config, shape, dtype, per_bank):
    assert tensor_memory(shape, dtype, device, "ROW_MAJOR").per_bank(config) == per_bank


@pytest.mark.parametrize(
    "device, config, shape, dtype, per_bank",
    [
        # Measured: the allocator's "each bank needs to store" figure (OOM) or allocation per bank.
        (N150, DRAM, [8, 1024, 1024, 1024], "bfloat16", 1_431_656_448),
        (N150, L1, [1334, 49, 49, 4], "bfloat16", 4_184_064),
        (P150, L1, [1334, 49, 49, 4], "bfloat16", 2_060_288),
        (N150, DRAM, [160, 100, 512, 1, 1], "bfloat16", 1_398_102_016),
        (P150, DRAM, [160, 100, 512, 1, 1], "bfloat16", 2_097_152_000),
        (N150, L1, [100], "bfloat8_b", 1088),
    ],
)
def test_tile_per_bank_need_matches_the_allocator(device, config, shape, dtype, per_bank):
    assert tensor_memory(shape, dtype, device).per_bank(config) == per_bank


def test_device_dtypes_follow_ttnn_from_torch():
    assert device_dtype("int64").name == "uint32" and device_dtype("bool").name == "uint8"
    assert device_dtype("float16").name == "bfloat16"
    assert device_dtype("torch.float32").name == "float32"
    assert logical_bytes([32, 32], "bfloat8_b") == 1088
    with pytest.raises(ValueError, match="complex64"):
        device_dtype("complex64")


# --- devices -------------------------------------------------------------------------------------


def test_device_presets_and_construction_from_opened_device_figures():
    assert (N150.l1.count, N150.l1.size, N150.dram.count, N150.dram.size) == (64, 1_393_312, 12, 1_072_693_184)
    assert (P150.l1.count, P150.l1.size, P150.dram.count, P150.dram.size) == (130, 1_461_120, 8, 4_277_141_376)
    assert P150.grid == (13, 10) and preset("n150") is N150
    same = DeviceMemory.from_banks(
        "n150", BankSpec(l1_bank_count=64, l1_bank_size=1_393_312, dram_bank_count=12, dram_bank_size=1_072_693_184)
    )
    assert same == N150

    class Handle:  # what fxport.runtime.devices.DeviceHandle carries
        arch, banks = "n150", BankSpec(56, 1_330_048, 12, 1_072_693_184)

    harvested = DeviceMemory.from_handle(Handle())
    assert harvested.grid == (8, 7) and harvested.l1.size == 1_330_048
    assert DeviceMemory.from_banks("x", BankSpec(110, 1, 1, 1)).grid == (11, 10)
    with pytest.raises(ValueError):
        preset("n300")


# --- nodes, verdicts, remedies -------------------------------------------------------------------

BIG = ((1, 96, 2176, 1920), "bfloat16")


def test_node_counts_inputs_and_outputs_as_resident_together():
    record = OpRecord(
        index=0,
        node="add_1",
        graph="main",
        target="aten.add.Tensor",
        op="aten.add",
        overload="Tensor",
        inputs=(TensorSpec(*BIG), TensorSpec(*BIG)),
        outputs=(TensorSpec(*BIG),),
        args="",
        module="",
        module_type="",
        source="",
    )
    node = node_memory(record)
    assert node.node == "add_1" and node.num_inputs == 2 and len(node.outputs) == 1
    assert node.resident_bytes == 3 * 802_160_640
    assert node.verdicts[L1].per_bank == 3 * 12_533_760 and not node.fits(L1)
    assert node.verdicts[DRAM].per_bank == 3 * 66_846_720 and node.fits(DRAM)
    assert node.severity == "critical"
    json.dumps(node.to_dict(), sort_keys=True)  # report-ready


def test_resident_bytes_override_is_spread_evenly():
    node = node_memory(inputs=[BIG], resident_bytes=64 * 1_000_000)
    assert node.overridden and node.resident_bytes == 64_000_000
    assert node.verdicts[L1].per_bank == 1_000_000 and node.fits(L1)
    assert node.remedy(L1) is None


def test_l1_oom_that_fits_dram_gets_dram_remedy():
    fix = node_memory(inputs=[BIG], outputs=[BIG]).remedy(L1)
    assert fix.kind == "DRAM" and fix.config == DRAM
    assert fix.text.startswith("DRAM instead of L1: each of 12 DRAM banks needs 133,693,440 B")


def test_too_big_for_dram_gets_smallest_chunking_factor_that_fits():
    out = (160, 100, 512, 1, 1)
    node = node_memory(inputs=[((160, 100, 512), "bfloat16")], outputs=[(out, "bfloat16")])
    assert not node.fits(DRAM)
    fix = node.remedy(L1)
    assert (fix.kind, fix.dim, fix.dim_name, fix.factor) == ("CHUNK", 0, "batch", 2)
    assert len(fix.tried) == 1 and fix.tried[0].startswith("DRAM: short by")

    def chunk(k):  # the node with its output cut into k chunks along batch
        shape = (-(-160 // k),) + out[1:]
        return node_memory(inputs=[((160, 100, 512), "bfloat16")], outputs=[(shape, "bfloat16")])

    assert chunk(2).fits(DRAM) and chunk(2).verdicts[DRAM].per_bank == fix.per_bank
    assert not chunk(1).fits(DRAM)
    # On a p150 the same node fits DRAM: 8 banks of 4.28 GB.
    assert (
        node_memory(inputs=[((160, 100, 512), "bfloat16")], outputs=[(out, "bfloat16")], device=P150).remedy(L1).kind
        == "DRAM"
    )


def test_chunking_picks_the_dim_needing_fewest_chunks():
    # Three 6 GiB float32 tensors (an elementwise op): batch 1 cannot be cut; 2 chunks of
    # channels (2 of 3 left) need 1,073,750,016 B per bank, just over; 2 chunks of height fit.
    shape = ((1, 3, 32768, 16384), "float32")
    node = node_memory(inputs=[shape, shape], outputs=[shape])
    fix = node.remedy(DRAM)
    assert fix.kind == "CHUNK" and fix.factor == 2 and fix.dim_name == "height"
    assert fix.per_bank <= N150.dram.size
    assert fix.dim == 2  # channels (3) would need 3 chunks


def test_no_remedy_when_no_single_dim_can_be_cut_enough():
    # A flatten to 1-D of 32 GiB: the output alone exceeds all DRAM; ranks differ, so cutting the
    # input does not cut the output.
    node = node_memory(inputs=[((8, 32768, 32768), "float32")], outputs=[((8 * 32768 * 32768,), "float32")])
    fix = node.remedy(L1)
    assert fix.kind == "NONE" and fix.factor is None
    assert "chunking: no single dim" in fix.text and fix.tried[0].startswith("DRAM: short by")


@pytest.mark.parametrize(
    "nbytes, band",
    [
        (50 * MIB, "low"),
        (50 * MIB + 1, "medium"),
        (100 * MIB, "medium"),
        (100 * MIB + 1, "high"),
        (500 * MIB, "high"),
        (500 * MIB + 1, "critical"),
        (0, "low"),
        (802_160_640, "critical"),
        (267_739_136, "high"),
        (25_623_472, "low"),
    ],
)
def test_severity_bands_in_mib(nbytes, band):
    assert severity(nbytes) == band


# --- classification of error texts --------------------------------------------------------------

L1_OOM = """TT_FATAL @ /project/tt_metal/impl/allocator/bank_manager.cpp:514: false
info:
Out of Memory: Not enough space to allocate 802160640 B L1 buffer across 64 banks, where each bank needs to store 12533760 B, but bank size is 1393312 B (allocated: 0 B, free: 1393312 B, largest free block: 1393312 B).
backtrace:
 --- tt::tt_metal::BankManager::allocate_buffer(unsigned long, unsigned long, bool)
 --- tt::tt_metal::AllocatorImpl::allocate_buffer(tt::tt_metal::Buffer*)
"""


def test_parse_real_allocator_oom_and_cross_check_with_the_model():
    c = classify(RuntimeError(L1_OOM))
    assert c.kind == Kind.OUT_OF_MEMORY and c.pattern == "allocator_oom"
    assert c.fields == {
        "requested": 802_160_640,
        "buffer_type": "L1",
        "banks": 64,
        "per_bank": 12_533_760,
        "bank_size": 1_393_312,
        "allocated": 0,
        "free": 1_393_312,
        "largest_free_block": 1_393_312,
        "location": "/project/tt_metal/impl/allocator/bank_manager.cpp:514",
    }
    assert "short by 11,140,448 B per bank" in c.summary
    t = tensor_memory([1, 96, 2176, 1920], "bfloat16")
    assert (t.padded_bytes, t.per_bank(L1)) == (c.fields["requested"], c.fields["per_bank"])
    assert verdicts_for_bytes(c.fields["requested"])[DRAM].fits


def test_parse_dram_oom_and_older_spelling():
    text = (
        "Out of Memory: Not enough space to allocate 17179869184 B DRAM buffer across 12 "
        "banks, where each bank needs to store 1431656448 B, but bank size is only "
        "1072693184 B"
    )
    c = classify(text)
    assert c.kind == Kind.OUT_OF_MEMORY and c.fields["buffer_type"] == "DRAM"
    assert "largest_free_block" not in c.fields and "location" not in c.fields
    assert tensor_memory([8, 1024, 1024, 1024], "bfloat16").per_bank(DRAM) == c.fields["per_bank"]
    assert not verdicts_for_bytes(c.fields["requested"], N150)[DRAM].fits
    assert verdicts_for_bytes(c.fields["requested"], P150)[DRAM].fits


def test_oom_wording_we_do_not_know_is_still_an_oom():
    c = classify("TT_FATAL @ a/bank_manager.cpp:1: false\ninfo:\nOut of Memory: new words\n")
    assert c.kind == Kind.OUT_OF_MEMORY and c.fields["message"] == "new words"
    dep = classify(
        "Out of Memory: Not enough space after considering dependencies to allocate "
        "4096 B L1 across 64 banks (2048 B per bank), bank size is 1024 B (allocated: "
        "0 B, free: 1024 B, largest free block: 1024 B). After subtracting 1 ..."
    )
    assert dep.pattern == "allocator_oom_with_dependencies" and dep.fields["per_bank"] == 2048


def test_classify_circular_buffer_overflow():
    c = classify(
        "TT_THROW @ /project/tt_metal/impl/dataflow_buffer/dataflow_buffer.cpp:3087: "
        "tt::exception\ninfo:\nStatically allocated dataflow buffers on core range "
        "[0-0 - 0-0] grow to 33791328 B which is beyond max L1 size of 1499136 B\n"
    )
    assert c.kind == Kind.CB_OVERFLOW
    assert (c.fields["core_range"], c.fields["region_end"], c.fields["max_l1"]) == (
        "[0-0 - 0-0]",
        33_791_328,
        1_499_136,
    )
    old = classify(
        "Statically allocated circular buffers on core range [(x=0,y=0) - (x=1,y=0)] "
        "grow to 1600000 B which is beyond max L1 size of 1499136 B"
    )
    assert old.kind == Kind.CB_OVERFLOW and old.fields["core_range"] == "[(x=0,y=0) - (x=1,y=0)]"


@pytest.mark.parametrize(
    "text, fields",
    [
        (
            "TT_THROW @ /project/tt_metal/impl/program/program.cpp:2624: tt::exception\ninfo:\n"
            "Statically allocated circular buffers in program 0 clash with L1 buffers on core range "
            "[0-0 - 7-7]. L1 buffer allocated at 108544 and static circular buffer region ends at "
            "118112\n",
            {
                "buffer_kind": "circular",
                "program": 0,
                "core_range": "[0-0 - 7-7]",
                "l1_buffer_address": 108_544,
                "region_end": 118_112,
            },
        ),
        (
            "Statically allocated dataflow buffers in program 2 clash with L1 buffers on core range "
            "[0-0 - 1-0]. L1 buffer allocated at 108544 and static dataflow buffer region ends at 144736",
            {
                "buffer_kind": "dataflow",
                "program": 2,
                "core_range": "[0-0 - 1-0]",
                "l1_buffer_address": 108_544,
                "region_end": 144_736,
            },
        ),
        (
            "Statically allocated circular buffers in program 287 clash with L1 buffers on core range "
            "[0-0 - 11-9].\nL1 buffer allocated at 1462656 and static circular buffer region ends at "
            "1505408",
            {
                "buffer_kind": "circular",
                "program": 287,
                "core_range": "[0-0 - 11-9]",
                "l1_buffer_address": 1_462_656,
                "region_end": 1_505_408,
            },
        ),
        (
            "Statically allocated circular buffers in program 3 clash with L1 buffers on core range "
            "[(x=0,y=0) - (x=7,y=7)]",
            {"buffer_kind": "circular", "program": 3, "core_range": "[(x=0,y=0) - (x=7,y=7)]"},
        ),
    ],
)
def test_classify_cb_clash(text, fields):
    c = classify(text)
    assert c.kind == Kind.CB_CLASH
    assert {k: v for k, v in c.fields.items() if k != "location"} == fields


def test_classify_validation_and_throw():
    c = classify(
        "TT_FATAL @ /project/ttnn/cpp/ttnn/operations/matmul/device/"
        "matmul_device_operation.cpp:79: a_shape[-1] == b_shape[-2]\ninfo:\nThe width of "
        "the first tensor must be equal to the height of the second tensor. Mismatch: "
        "width=96 height=64\nbacktrace:\n --- ttnn::prim::matmul(...)\n"
    )
    assert c.kind == Kind.VALIDATION
    assert (c.fields["line"], c.fields["condition"]) == (79, "a_shape[-1] == b_shape[-2]")
    assert c.fields["message"].endswith("width=96 height=64")
    assert c.summary.startswith("TT_FATAL at matmul_device_operation.cpp:79: a_shape[-1]")
    t = classify("TT_THROW @ /project/ttnn/x.cpp:12: tt::exception\ninfo:\nbad thing\n")
    assert t.kind == Kind.THROW and t.fields["message"] == "bad thing"
    bare = classify("TT_FATAL @ a.cpp:3: x > 0\nsome log line")
    assert bare.fields == {"file": "a.cpp", "line": 3, "condition": "x > 0"}


def test_classify_incompatible_function_arguments():
    nanobind = TypeError(
        "\nttnn.add(): incompatible function arguments.\n\nCalled with:\n  "
        "add(ttnn.Tensor, str, foo=3)\n\nAvailable signatures:\n  add(...)\n"
    )
    c = classify(nanobind)
    assert c.kind == Kind.BAD_ARGUMENTS
    assert c.fields == {"function": "ttnn.add", "called_with": "add(ttnn.Tensor, str, foo=3)"}
    pybind = classify(
        "permute(): incompatible function arguments. The following argument types "
        "are supported:\n    1. (x: Tensor) -> Tensor\n\nInvoked with: <Tensor>, 5"
    )
    assert pybind.kind == Kind.BAD_ARGUMENTS and pybind.fields["called_with"] == "<Tensor>, 5"


def test_unknown_error_keeps_its_first_line():
    c = classify(ValueError("\nsomething else\nmore"))
    assert (c.kind, c.pattern, c.fields, c.summary) == (Kind.UNKNOWN, None, {}, "ValueError: something else")
    assert json.dumps(c.to_dict()) and c.to_dict()["kind"] == "UNKNOWN"


def test_cb_clash_summary_reads_the_same_whatever_the_programs_number():
    """TT-Metal numbers programs per process: the same clash must not read differently in a run
    that compiled more programs first (reports would change on every regeneration)."""
    text = (
        "Statically allocated circular buffers in program {} clash with L1 buffers on core range "
        "[0-0 - 7-7]. L1 buffer allocated at 108544 and static circular buffer region ends at 118112"
    )
    first, later = classify(text.format(12)), classify(text.format(4362))
    assert first.summary == later.summary
    assert "overlap 9,568 B" in first.summary and first.fields["program"] == 12
