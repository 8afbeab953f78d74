"""Device layer: mock n150 in this process (real ttnn ops, real validation and allocator errors),
mock p150 in a subprocess (one mock arch per process), the private runtime root."""

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from fxport.runtime import devices
from fxport.runtime.devices import DeviceConflict, open_device
from fxport.runtime.mock import build_runtime_root, descriptor_path
from fxport.runtime.mock.runtime_root import COMPILER_RELPATH, ttnn_location
from fxport.runtime.mock.toolchain import EM_RISCV, ET_EXEC

REPO = Path(__file__).resolve().parents[1]

# Measured on mock devices with ttnn 0.81.1 (docs/mock-device.md): 1,393,312 B per L1
# bank with default open options; fxport opens with EXECUTION_OPTIONS, whose L1_SMALL region
# (for conv/pool) comes out of every bank.
N150_L1 = (64, 1_393_312 - devices.EXECUTION_OPTIONS["l1_small_size"])
N150_DRAM = (12, 1_072_693_184)
P150_L1 = (130, 1_461_120)


@pytest.fixture(scope="module")
def n150(mock_device):
    return mock_device  # the process's one n150 (conftest), opened with EXECUTION_OPTIONS


@pytest.fixture(scope="module")
def ttnn(n150):
    import ttnn

    return ttnn


def test_mock_n150_memory_read_from_device(n150):
    assert (n150.kind, n150.arch, n150.is_mock) == ("mock", "n150", True)
    assert (n150.banks.l1_bank_count, n150.banks.l1_bank_size) == N150_L1
    assert (n150.banks.dram_bank_count, n150.banks.dram_bank_size) == N150_DRAM


def test_real_ops_run_on_mock(n150, ttnn):
    import torch

    def dev(t):
        return ttnn.from_torch(t, dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=n150.device)

    a, b = dev(torch.randn(64, 128)), dev(torch.randn(128, 96))
    outputs = {
        "add": (ttnn.add(a, a), (64, 128)),
        "matmul": (ttnn.matmul(a, b), (64, 96)),
        "softmax": (ttnn.softmax(a, dim=-1), (64, 128)),
    }
    for name, (out, shape) in outputs.items():
        host = ttnn.to_torch(out)
        assert tuple(host.shape) == shape, name
        # Kernels never run on a mock: read-back data is zeros, values come from golden functions.
        assert torch.count_nonzero(host) == 0, name


def test_matmul_inner_dim_mismatch_is_a_real_tt_fatal(n150, ttnn):
    import torch

    a = ttnn.from_torch(torch.zeros(32, 64), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=n150.device)
    with pytest.raises(RuntimeError, match=re.escape("a_shape[-1] == b_shape[-2]")) as err:
        ttnn.matmul(a, a)
    assert "width of the first tensor must be equal to the height of the second" in str(err.value)


def test_l1_out_of_memory_is_the_real_allocator_error(n150, ttnn):
    expected = (
        "Out of Memory: Not enough space to allocate 802160640 B L1 buffer across 64 "
        f"banks, where each bank needs to store 12533760 B, but bank size is {N150_L1[1]} B"
    )
    with pytest.raises(RuntimeError, match=re.escape(expected)):
        ttnn.empty(
            [1, 96, 2176, 1920],
            dtype=ttnn.bfloat16,
            layout=ttnn.TILE_LAYOUT,
            device=n150.device,
            memory_config=ttnn.L1_MEMORY_CONFIG,
        )


def test_one_cluster_per_process(n150):
    with pytest.raises(DeviceConflict, match="mock n150"):
        devices.prepare_mock_environment("p150")
    with pytest.raises(DeviceConflict, match="subprocess"):
        open_device("hardware")
    assert devices.prepare_mock_environment("n150") == n150.mock_runtime  # same arch: no-op
    with pytest.raises(ValueError, match="no mock cluster descriptor"):
        devices.prepare_mock_environment("n999")


@pytest.fixture(scope="module")
def fresh_process():
    """One short subprocess: a new process may choose its own mock arch (p150 here), and can
    check the hardware path before anything imports ttnn."""
    code = """if True:
        import json, sys
        from fxport.runtime.devices import DeviceUnavailable, hardware_present, open_device
        result = {"card": hardware_present()}
        if not result["card"]:
            try:
                open_device("hardware")
            except DeviceUnavailable as exc:
                result["hardware_error"] = str(exc)
            result["ttnn_imported_before_mock"] = "ttnn" in sys.modules
        with open_device("mock" if result["card"] else "auto", "p150") as d:
            result["device"] = [d.kind, d.arch, d.banks.l1_bank_count, d.banks.l1_bank_size]
        print(json.dumps(result))
    """
    # The parent's mock variables are inherited; the child must replace them with its own.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_mock_p150_in_a_subprocess(fresh_process):
    assert fresh_process["device"] == ["mock", "p150", *P150_L1]


def test_hardware_without_a_card_is_a_clear_error(fresh_process):
    if fresh_process["card"]:
        pytest.skip("a Tenstorrent card is present")
    assert "no Tenstorrent card found" in fresh_process["hardware_error"]
    assert not fresh_process["ttnn_imported_before_mock"]  # refused before touching TT-Metal


def _tree_state(path: Path) -> dict:
    """Every file's (mtime, size) and every folder, leaving out Python's bytecode caches (and so
    folder mtimes, which change when Python creates a __pycache__)."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        state[dirpath] = "dir"
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            state[os.path.join(dirpath, name)] = (st.st_mtime_ns, st.st_size)
    return state


def test_runtime_root_is_idempotent_and_leaves_ttnn_untouched(tmp_path):
    _, ttnn_dir = ttnn_location()
    before = _tree_state(ttnn_dir)

    first = build_runtime_root(tmp_path)
    root_inode = first.root.stat().st_ino
    again = build_runtime_root(tmp_path)
    assert again == first and first.root.stat().st_ino == root_inode  # reused, not rebuilt
    assert first.root.parent.parent == tmp_path / "mock-runtime"
    assert first.root.parent.name.startswith(f"{first.ttnn_version}-")  # version and install
    assert (first.root / "tt_metal").resolve() == ttnn_dir / "tt_metal"
    assert (first.root / "runtime" / "hw").resolve() == ttnn_dir / "runtime" / "hw"
    assert not (ttnn_dir / "runtime" / "sfpi").exists()

    # A stale root (e.g. written by an older fxport) is replaced, not patched.
    (first.root / ".fxport-mock-root.json").write_text("{}")
    rebuilt = build_runtime_root(tmp_path)
    assert rebuilt == first and rebuilt.root.stat().st_ino != root_inode
    assert sorted(p.name for p in rebuilt.root.parent.iterdir()) == ["jit-cache", "root"]

    assert _tree_state(ttnn_dir) == before


def test_stand_in_compiler(tmp_path):
    runtime = build_runtime_root(tmp_path)
    cc = str(runtime.root / COMPILER_RELPATH)
    sfpi = (runtime.ttnn_dir / "tt_metal" / "sfpi-version").read_text()
    version = re.search(r"sfpi_version='(.*)'", sfpi)[1]
    build = re.search(r"sfpi_build='(.*)'", sfpi)[1]

    def run(*args):
        return subprocess.run([cc, *args], cwd=tmp_path, capture_output=True, text=True)

    assert run("--version").stdout.splitlines()[0] == (f"riscv-tt-elf-g++ (tenstorrent/sfpi:{version}[{build}]) 15.1.0")
    assert run("-x", "c++-header", "pch.h", "-o", "pch.h.gch").returncode != 0

    assert run("-c", "-MD", "-MF", "k.d", "/src/k.cpp", "-o", "k.o").returncode == 0
    assert (tmp_path / "k.o").read_bytes() == b""
    assert (tmp_path / "k.d").read_text() == "k.o: /src/k.cpp\n"

    assert run("k.o", "-o", "k.elf").returncode == 0
    elf = (tmp_path / "k.elf").read_bytes()
    assert elf[:6] == b"\x7fELF\x01\x01"  # ELF32, little-endian
    e_type, e_machine, _, e_entry, e_phoff = struct.unpack_from("<HHIII", elf, 16)
    assert (e_type, e_machine) == (ET_EXEC, EM_RISCV)
    p_type, _, p_vaddr = struct.unpack_from("<III", elf, e_phoff)
    assert p_type == 1 and p_vaddr == e_entry  # PT_LOAD at the entry point
    assert all(n in elf for n in (b".text", b".rela.text", b".symtab", b".strtab", b".shstrtab"))


def test_descriptors_are_shipped_data():
    for arch, chip in (("n150", "wormhole_b0"), ("p150", "blackhole")):
        text = descriptor_path(arch).read_text()
        assert f"0: {chip}" in text and f"board_type: {arch}" in text
