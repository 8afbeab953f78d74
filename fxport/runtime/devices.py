"""Device layer: open a Tenstorrent card or a mock device and describe its memory.

    with open_device("auto") as dev:      # hardware when a card is present, else a mock n150
        ttnn.add(a, b)                     # dev.device is the ttnn device
        dev.banks.l1_bank_count, dev.banks.l1_bank_size

Why ttnn is imported lazily (inside functions) throughout fxport: importing it takes 1.5-2 s,
and TT-Metal reads its environment (TT_METAL_MOCK_CLUSTER_DESC_PATH, TT_METAL_RUNTIME_ROOT,
TT_METAL_CACHE, TT_LOGGER_LEVEL) once, when it first initialises the cluster (the first device
open or layout call); loguru reads LOGURU_LEVEL when ttnn imports it. So the mock environment
must be in place before TT-Metal initialises, and the safest point is before `import ttnn`:
`prepare_mock_environment(arch)` does that, and `open_device` calls it for you.

One process, one cluster: TT-Metal initialises its cluster once, so a process can hold either
real hardware or one mock arch. A conflicting request raises `DeviceConflict`; use a subprocess
for a second arch.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from typing import Any

from fxport.memory.devices import BankSpec
from fxport.runtime.mock import MockRuntime, build_runtime_root, descriptor_path

KINDS = ("auto", "mock", "hardware")
DEFAULT_MOCK_ARCH = "n150"
# Defaults only: a user's own setting of these variables wins. "off", not "error": TT-Metal logs
# every TT_FATAL as a critical line, duplicating the text of the RuntimeError that fxport records.
QUIET_LOG_ENV = {"TT_LOGGER_LEVEL": "off", "LOGURU_LEVEL": "WARNING"}

# What TT-Metal in this process has been (or is about to be) initialised for:
# None, "hardware", or the mock arch. Set before TT-Metal first reads its environment.
_process_cluster: str | None = None
_mock_runtime: MockRuntime | None = None


class DeviceUnavailable(RuntimeError):
    """The requested device cannot be opened (no card, wrong card, mock environment set)."""


class DeviceConflict(RuntimeError):
    """This process's TT-Metal cluster is already set up for another device."""


def hardware_present() -> bool:
    """A Tenstorrent card is visible to the kernel driver (tt-kmd creates /dev/tenstorrent/<n>).

    Cheap on purpose: initialising TT-Metal without a card or a mock descriptor fails, and the
    cluster cannot be re-initialised as a mock afterwards.
    """
    return bool(glob.glob("/dev/tenstorrent/*"))


def quiet_tt_logs() -> None:
    """Silence TT-Metal's C++ logger and default ttnn's loguru logger to warnings.

    TT_LOGGER_LEVEL is read when TT-Metal initialises; LOGURU_LEVEL only if loguru has not been
    imported yet (ttnn imports it), so call this before `import ttnn` to silence both.
    """
    for name, value in QUIET_LOG_ENV.items():
        os.environ.setdefault(name, value)


def prepare_mock_environment(arch: str = DEFAULT_MOCK_ARCH) -> MockRuntime:
    """Build the private runtime root and point TT-Metal at the mock `arch` cluster.

    Must run before TT-Metal initialises (call it before `import ttnn`); idempotent for the same
    arch. Raises DeviceConflict if this process already chose hardware or another mock arch.
    """
    global _process_cluster, _mock_runtime
    descriptor = descriptor_path(arch)  # validates arch
    if _process_cluster == arch:
        return _mock_runtime
    if _process_cluster is not None:
        chosen = "real hardware" if _process_cluster == "hardware" else f"a mock {_process_cluster}"
        raise DeviceConflict(
            f"cannot use a mock {arch}: TT-Metal in this process is already set up for {chosen} "
            "(it reads its cluster once per process); open the other device in a subprocess")
    runtime = build_runtime_root()
    quiet_tt_logs()
    os.environ["TT_METAL_RUNTIME_ROOT"] = f"{runtime.root}/"  # TT-Metal requires the slash
    os.environ["TT_METAL_MOCK_CLUSTER_DESC_PATH"] = str(descriptor)
    os.environ["TT_METAL_CACHE"] = str(runtime.jit_cache)
    # TT-Metal writes watcher and fabric files to ./generated/ by default; for a mock they only
    # describe stand-in binaries, so keep them out of the user's working directory.
    os.environ.setdefault("TT_METAL_LOGS_PATH", str(runtime.logs))
    _process_cluster, _mock_runtime = arch, runtime
    return runtime


@dataclass
class DeviceHandle:
    """An open device. `device` is the ttnn device to pass to ops; bank figures come from its
    allocator (`ttnn.get_memory_view`) and depend on the open options (l1_small_size, ...)."""

    kind: str  # "mock" or "hardware": what was opened, also when "auto" was asked for
    arch: str  # board, e.g. "n150", "p150" (from ttnn.cluster.get_cluster_type())
    device: Any
    banks: BankSpec
    mock_runtime: MockRuntime | None = field(default=None, repr=False)
    _open: bool = field(default=True, init=False, repr=False)

    @property
    def is_mock(self) -> bool:
        return self.kind == "mock"

    def close(self) -> None:
        if self._open:
            import ttnn

            ttnn.close_device(self.device)
            self._open = False
            self.device = None  # release the binding now: nanobind reports live ones at exit

    def __enter__(self) -> DeviceHandle:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_device(kind: str = "auto", arch: str | None = None, *, device_id: int = 0,
                **ttnn_options: Any) -> DeviceHandle:
    """Open a device. `kind`: "hardware" (a real card), "mock", or "auto" (hardware when a card
    is present and neither this process nor the environment has chosen a mock, else mock).

    `arch`: the board. For a mock it selects the cluster descriptor (default: the process's
    mock arch if one is set up, else "n150"); for hardware it is checked against the card (None
    accepts any). `ttnn_options` go to `ttnn.open_device` (e.g. l1_small_size).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown device kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "auto":
        mock_chosen = (_process_cluster not in (None, "hardware")
                       or bool(os.environ.get("TT_METAL_MOCK_CLUSTER_DESC_PATH")))
        kind = "hardware" if hardware_present() and not mock_chosen else "mock"
    if kind == "mock":
        current = _process_cluster if _process_cluster != "hardware" else None
        runtime = prepare_mock_environment(arch or current or DEFAULT_MOCK_ARCH)
    else:
        runtime = None
        _claim_hardware()

    import ttnn

    device = ttnn.open_device(device_id=device_id, **ttnn_options)
    try:
        actual_arch = ttnn.cluster.get_cluster_type().name.lower()
        if arch is not None and actual_arch != arch:
            raise DeviceUnavailable(f"asked for {kind} {arch}, but TT-Metal opened a {actual_arch}")
        l1 = ttnn.get_memory_view(device, ttnn.BufferType.L1)
        dram = ttnn.get_memory_view(device, ttnn.BufferType.DRAM)
    except BaseException:
        ttnn.close_device(device)
        raise
    banks = BankSpec(l1_bank_count=l1.num_banks, l1_bank_size=l1.total_bytes_per_bank,
                     dram_bank_count=dram.num_banks, dram_bank_size=dram.total_bytes_per_bank)
    return DeviceHandle(kind=kind, arch=actual_arch, device=device, banks=banks, mock_runtime=runtime)


def _claim_hardware() -> None:
    global _process_cluster
    if _process_cluster not in (None, "hardware"):
        raise DeviceConflict(
            f"cannot open real hardware: TT-Metal in this process is already set up for a mock "
            f"{_process_cluster}; open the card in a subprocess")
    if not hardware_present():
        raise DeviceUnavailable(
            "no Tenstorrent card found (no /dev/tenstorrent/* device; is the tt-kmd driver "
            'loaded?); use open_device("mock") to run on a mock device')
    if os.environ.get("TT_METAL_MOCK_CLUSTER_DESC_PATH"):
        raise DeviceUnavailable(
            "TT_METAL_MOCK_CLUSTER_DESC_PATH is set, so TT-Metal would mock the card; unset it "
            "to open real hardware")
    quiet_tt_logs()
    _process_cluster = "hardware"


# Options fxport opens devices with for execution: conv2d and the pooling ops allocate their
# sharded configs from the L1_SMALL region, which is empty by default (they fail without it).
EXECUTION_OPTIONS = {"l1_small_size": 32768}

_session: DeviceHandle | None = None


def open_session_device(kind: str = "auto", arch: str | None = None) -> DeviceHandle:
    """The process's execution device, opened with EXECUTION_OPTIONS on first use and shared by
    the CLI, the torch.compile backend and tests (TT-Metal holds one cluster per process); it is
    closed at exit. Failures become one-line user errors."""
    import atexit

    from fxport.errors import FxportError

    global _session
    if _session is not None and _session._open:
        if kind in ("auto", _session.kind) and arch in (None, _session.arch):
            return _session
        raise FxportError(f"this process already uses a {_session.kind} {_session.arch}; "
                          f"a {kind} {arch or ''} device needs a new process".replace("  ", " "))
    try:
        _session = open_device(kind, arch, **EXECUTION_OPTIONS)
    except (DeviceUnavailable, DeviceConflict) as exc:
        raise FxportError(str(exc)) from None
    atexit.register(_session.close)
    return _session
