"""The seeds' catalogued OOM cases on the mock n150 (real allocator): in L1 each one that the
allocator refuses gets a remedy the device confirmed by re-running the node with it (the 1x1
trailing-dim views a layout remedy, not a split), the memory model agrees with the allocator, and
under `auto` the node runs on the device. bench/seed_remedies.py runs every case."""

import pytest

from fxport.run_options import RunOptions
from fxport.runner import run_model
from tests.seed_oom_models import CASES, SEEDS


def _device_node(result):
    (node,) = [n for n in result.nodes if n.status != "host" and n.target != "aten.permute.default"] or [
        n for n in result.nodes if n.status != "host"
    ]
    return node


@pytest.mark.parametrize(
    "name, remedy, where",
    [
        ("view_40x25x512x1x1", "row_major", "L1"),  # 1024x tile padding: row-major keeps it in L1
        ("view_160x100x512x1x1", "row_major", "DRAM"),  # 16,000 MB padded: more than all of DRAM
        ("add_1334x49x49x4", "row_major", "DRAM"),  # the 10.45x channels-last overhead
        ("clamp_min_1x3x2176x3840", "dram", "DRAM"),  # 4K activation: L1 capacity
    ],
)
def test_catalogued_oom_gets_a_verified_remedy(mock_device, name, remedy, where):
    result = run_model(
        f"tests.seed_oom_models:{name}", mock_device, CASES[name], RunOptions(memory="l1", values="none")
    )
    analysis = result.memory_analysis
    assert analysis.observed_only == analysis.predicted_only == 0  # model == allocator, node by node
    node = _device_node(result)
    assert node.status == "fallback" and node.error_kind == "OUT_OF_MEMORY"  # the real allocator refused it
    (oom,) = [o for o in analysis.oom if o.node == node.node]
    assert oom.predicted and oom.observed == "OUT_OF_MEMORY" and oom.remedy_verified
    text = {"row_major": f"ROW_MAJOR layout in {where}", "dram": "DRAM instead of L1"}[remedy]
    assert oom.remedy.startswith(text) and "verified" in oom.remedy
    assert "split" not in oom.remedy and "chunk" not in oom.remedy.lower()

    placed = run_model(
        f"tests.seed_oom_models:{name}", mock_device, CASES[name], RunOptions(memory="auto", values="none")
    )
    assert all(n.status == "device" for n in placed.nodes if n.status != "host")
    assert not [o for o in placed.memory_analysis.oom if o.observed != "fits" and not o.remedy_verified]


def test_every_seed_case_is_catalogued_with_its_shape():
    assert len(SEEDS) == len(CASES) == 19
    assert CASES["view_160x100x512x1x1"] == (160, 100, 512)
