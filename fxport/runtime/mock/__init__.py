"""Mock Tenstorrent device: cluster descriptors, stand-in RISC-V compiler, private runtime root.

See docs/mock-device.md. `fxport.runtime.devices` is the user-facing entry point.
"""

from .descriptors import MOCK_ARCHES, descriptor_path
from .runtime_root import MockRuntime, MockRuntimeError, build_runtime_root, cache_home

__all__ = ["MOCK_ARCHES", "MockRuntime", "MockRuntimeError", "build_runtime_root", "cache_home", "descriptor_path"]
