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

import atexit
import glob
import os
from dataclasses import dataclass, field
from typing import Any

from fxport.errors import EnvironmentFault, FxportError
from fxport.memory.devices import BankSpec
from fxport.runtime.mock import MockRuntime, descriptor_path
from fxport.runtime.mock.health import claim_runtime
from fxport.runtime.watchdog import DEFAULT_TIMEOUT, DeviceCalls, DeviceTimeout
from fxport.settings import DEFAULT_MOCK_ARCH, DEVICES

KINDS = DEVICES  # the device kinds a session opens
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
    arch. Raises DeviceConflict if this process already chose hardware or another mock arch. The
    runtime root and JIT cache are checked and repaired first (`mock.health`); what was repaired
    is in the returned runtime's `repaired`.
    """
    global _process_cluster, _mock_runtime
    descriptor = descriptor_path(arch)  # validates arch
    if _process_cluster == arch:
        return _mock_runtime
    if _process_cluster is not None:
        chosen = "real hardware" if _process_cluster == "hardware" else f"a mock {_process_cluster}"
        raise DeviceConflict(
            f"cannot use a mock {arch}: TT-Metal in this process is already set up for {chosen} "
            "(it reads its cluster once per process); open the other device in a subprocess"
        )
    runtime = claim_runtime()
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
    calls: DeviceCalls = field(default_factory=DeviceCalls, repr=False)  # bounded device calls
    _open: bool = field(default=True, init=False, repr=False)

    @property
    def is_mock(self) -> bool:
        return self.kind == "mock"

    @property
    def wedged(self) -> bool:
        """A device call never returned (or is still running after Ctrl-C): the device cannot
        be used or closed from this process."""
        return bool(self.calls.stuck) or self.calls.busy

    def release_programs(self) -> None:
        """Drop the programs cached by earlier runs: a cached conv or pool program holds its config
        tensors in L1_SMALL (measured: 7.5 KB of the 32 KB per bank after YOLOv8n at 2176x3840),
        so without this one model's verdicts would depend on the models run before it."""
        self.device.clear_program_cache()

    def close(self) -> None:
        if self._open and not self.wedged:  # closing would wait for the stuck call
            import ttnn

            ttnn.close_device(self.device)
            self._open = False
            self.device = None  # release the binding now: nanobind reports live ones at exit

    def __enter__(self) -> DeviceHandle:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def open_device(
    kind: str = "auto",
    arch: str | None = None,
    *,
    device_id: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
    **ttnn_options: Any,
) -> DeviceHandle:
    """Open a device. `kind`: "hardware" (a real card), "mock", or "auto" (hardware when a card
    is present and neither this process nor the environment has chosen a mock, else mock).

    `arch`: the board. For a mock it selects the cluster descriptor (default: the process's
    mock arch if one is set up, else "n150"); for hardware it is checked against the card (None
    accepts any). `timeout` bounds every device call made through `handle.calls` (seconds).
    `ttnn_options` go to `ttnn.open_device` (e.g. l1_small_size).

    The opened device runs a canary program (`canary`): a device whose toolchain, cache or driver
    is broken raises EnvironmentFault here, before any model is judged on it.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown device kind {kind!r}; expected one of {', '.join(KINDS)}")
    check_host_environment()
    if kind == "auto":
        mock_chosen = _process_cluster not in (None, "hardware") or bool(
            os.environ.get("TT_METAL_MOCK_CLUSTER_DESC_PATH")
        )
        kind = "hardware" if hardware_present() and not mock_chosen else "mock"
    if kind == "mock":
        current = _process_cluster if _process_cluster != "hardware" else None
        runtime = prepare_mock_environment(arch or current or DEFAULT_MOCK_ARCH)
    else:
        runtime = None
        _claim_hardware()

    import ttnn

    if not hasattr(ttnn, "open_device"):
        raise EnvironmentFault(
            f"the ttnn Python imports, {getattr(ttnn, '__path__', ['?'])[0]}, is not TT-NN (a "
            "folder or package named ttnn shadows the installed one); rename it or run "
            "from another directory"
        )
    device = ttnn.open_device(device_id=device_id, **ttnn_options)
    try:
        actual_arch = ttnn.cluster.get_cluster_type().name.lower()
        if arch is not None and actual_arch != arch:
            raise DeviceUnavailable(f"asked for {kind} {arch}, but TT-Metal opened a {actual_arch}")
        l1 = ttnn.get_memory_view(device, ttnn.BufferType.L1)
        dram = ttnn.get_memory_view(device, ttnn.BufferType.DRAM)
        l1_small = ttnn.get_memory_view(device, ttnn.BufferType.L1_SMALL)
    except BaseException:
        ttnn.close_device(device)
        raise
    banks = BankSpec(
        l1_bank_count=l1.num_banks,
        l1_bank_size=l1.total_bytes_per_bank,
        dram_bank_count=dram.num_banks,
        dram_bank_size=dram.total_bytes_per_bank,
        l1_small_bank_size=l1_small.total_bytes_per_bank,
    )
    handle = DeviceHandle(
        kind=kind, arch=actual_arch, device=device, banks=banks, mock_runtime=runtime, calls=DeviceCalls(timeout)
    )
    try:
        canary(handle)
    except BaseException:
        handle.close()  # unless the canary is stuck in it
        raise
    return handle


def check_host_environment() -> None:
    """What TT-Metal needs of the process and crashes without (SIGSEGV, no message, measured with
    ttnn 0.81.1): a HOME folder and a writable temporary folder. An EnvironmentFault naming the
    cause instead."""
    home = os.environ.get("HOME")
    if not home or not os.path.isdir(home):
        raise EnvironmentFault(
            f"HOME is {'not set' if not home else f'{home!r}, not a folder'}: TT-Metal "
            "needs a home folder (it crashes without one); set HOME and rerun"
        )
    tmp = os.environ.get("TMPDIR") or "/tmp"
    if not (os.path.isdir(tmp) and os.access(tmp, os.W_OK | os.X_OK)):
        raise EnvironmentFault(
            f"the temporary folder {tmp!r} (TMPDIR) is not a writable folder: TT-Metal "
            "needs one (it crashes without one); set TMPDIR to a writable folder"
        )


CANARY_TIMEOUT = 60.0  # seconds; the canary takes about 50 ms with an empty JIT cache


def canary(dev: DeviceHandle) -> None:
    """Run one small program that needs the whole toolchain (kernel build, ELF load, allocator,
    read-back): a 32x32 matmul. If it fails or hangs, the environment is broken, whatever model
    comes next: raise EnvironmentFault with how to fix it. The device is left open (and wedged
    after a hang) for the caller to decide."""
    import torch
    import ttnn

    def program():
        a = ttnn.from_torch(torch.ones(32, 32), dtype=ttnn.bfloat16, layout=ttnn.TILE_LAYOUT, device=dev.device)
        return tuple(ttnn.to_torch(ttnn.matmul(a, a)).shape)

    try:
        shape = dev.calls(program, label="the device canary (a 32x32 matmul)", timeout=CANARY_TIMEOUT)
        if shape != (32, 32):
            raise RuntimeError(f"returned shape {shape}, not (32, 32)")
    except DeviceTimeout as exc:
        raise EnvironmentFault(f"the {dev.kind} {dev.arch} failed its self-test: {exc}; " + _fix(dev)) from None
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise EnvironmentFault(
            f"the {dev.kind} {dev.arch} failed its self-test (a 32x32 matmul): {first}; {_fix(dev)}"
        ) from None


# Errors of a device call that say the environment is broken, not the node:
# (pattern, device kinds, what it means, how to fix it: "runtime" = the runtime's own fix).
# On a mock the stand-in compiler never fails a build it is given, so a failed build is the
# toolchain; on a card a kernel can fail to build for one op's configuration, which is a verdict
# on that op. An ELF that does not load is a damaged JIT cache on either.
_BOTH, _MOCK = ("mock", "hardware"), ("mock",)
_HOST_MEMORY_FIX = "free host memory, or use --values none (weights stay on meta) or a smaller --input-shape"
ENVIRONMENT_ERRORS = (
    ("tt_elffile.cpp", _BOTH, "a kernel binary in the JIT cache does not load", "runtime"),
    ("Failed to generate binaries", _MOCK, "the stand-in toolchain failed to build a kernel", "runtime"),
    ("jit_build/build.cpp", _MOCK, "the stand-in toolchain failed to build a kernel", "runtime"),
    ("sfpi not found", _BOTH, "the RISC-V toolchain is missing", "runtime"),
    ("can't allocate memory", _BOTH, "not enough host memory", _HOST_MEMORY_FIX),
)


def environment_error(dev: DeviceHandle, error: BaseException) -> EnvironmentFault | None:
    """The EnvironmentFault a device call's error stands for, or None when it is a verdict on
    the op."""
    message = str(error)
    if isinstance(error, MemoryError):
        return EnvironmentFault(f"not enough host memory ({type(error).__name__}); {_HOST_MEMORY_FIX}")
    for pattern, kinds, what, fix in ENVIRONMENT_ERRORS:
        if pattern in message and dev.kind in kinds:
            detail = next(
                (
                    ln.strip()
                    for ln in message.splitlines()
                    if any(w in ln for w in ("failed", "cannot", "can't", "missing", "malformed", "not found"))
                ),
                message.strip().splitlines()[0],
            )
            return EnvironmentFault(
                f"{what} ({detail[:200]}): not a verdict on the model; {_fix(dev) if fix == 'runtime' else fix}"
            )
    return None


def _fix(dev: DeviceHandle) -> str:
    if dev.mock_runtime is not None:
        return (
            f"delete {dev.mock_runtime.root.parent} (fxport rebuilds it) or set FXPORT_CACHE "
            "to another folder, and rerun"
        )
    return "reset the card (tt-smi -r) and rerun"


def _claim_hardware() -> None:
    global _process_cluster
    if _process_cluster not in (None, "hardware"):
        raise DeviceConflict(
            f"cannot open real hardware: TT-Metal in this process is already set up for a mock "
            f"{_process_cluster}; open the card in a subprocess"
        )
    if not hardware_present():
        raise DeviceUnavailable(
            "no Tenstorrent card found (no /dev/tenstorrent/* device; is the tt-kmd driver "
            "loaded?); use --device mock to run on a mock device"
        )
    if os.environ.get("TT_METAL_MOCK_CLUSTER_DESC_PATH"):
        raise DeviceUnavailable(
            "TT_METAL_MOCK_CLUSTER_DESC_PATH is set, so TT-Metal would mock the card; unset it to open real hardware"
        )
    quiet_tt_logs()
    _process_cluster = "hardware"


# Options fxport opens devices with for execution: conv2d and the pooling ops allocate their
# sharded configs from the L1_SMALL region, which is empty by default (they fail without it).
EXECUTION_OPTIONS = {"l1_small_size": 32768}

_session: DeviceHandle | None = None


def open_session_device(kind: str = "auto", arch: str | None = None, timeout: float | None = None) -> DeviceHandle:
    """The process's execution device, opened with EXECUTION_OPTIONS on first use and shared by
    the CLI, the torch.compile backend and tests (TT-Metal holds one cluster per process); it is
    closed at exit. Failures become one-line errors: a device that cannot be had is a user error,
    a broken one an EnvironmentFault. `timeout` bounds each device call (default DEFAULT_TIMEOUT)."""
    global _session
    if _session is not None and _session._open:
        if kind in ("auto", _session.kind) and arch in (None, _session.arch):
            if timeout is not None:
                _session.calls.timeout = timeout
            return _session
        raise FxportError(
            f"this process already uses a {_session.kind} {_session.arch}; "
            f"a {kind} {arch or ''} device needs a new process".replace("  ", " ")
        )
    try:
        _session = open_device(kind, arch, timeout=timeout or DEFAULT_TIMEOUT, **EXECUTION_OPTIONS)
    except (DeviceUnavailable, DeviceConflict) as exc:
        raise FxportError(str(exc)) from None
    atexit.register(_session.close)
    return _session
