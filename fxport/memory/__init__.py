"""Memory model: tile/bank arithmetic, per-config verdicts and remedies, OOM text classification.

Pure arithmetic and regexes: usable without a device and without importing ttnn or torch.
"""

from fxport.memory.devices import (
    CONFIGS, DRAM, L1, N150, P150, PRESETS, Banks, BankSpec, DeviceMemory, preset,
)
from fxport.memory.model import (
    SEVERITY_BANDS, NodeMemory, Remedy, TensorMemory, Verdict, node_memory, remedy, severity,
    tensor_memory, verdicts_for_bytes,
)
from fxport.memory.oom import Classification, Kind, classify
from fxport.memory.tiles import (
    ROW_MAJOR_LAYOUT, TILE_LAYOUT, Padding, Pages, device_dtype, fmt_bytes, logical_bytes,
    padded_bytes, padded_shape, padding, pages,
)

__all__ = [
    "CONFIGS", "DRAM", "L1", "N150", "P150", "PRESETS", "ROW_MAJOR_LAYOUT", "SEVERITY_BANDS",
    "TILE_LAYOUT", "Banks", "BankSpec", "Classification", "DeviceMemory", "Kind", "NodeMemory", "Padding",
    "Pages", "Remedy", "TensorMemory", "Verdict", "classify", "device_dtype", "fmt_bytes",
    "logical_bytes", "node_memory", "padded_bytes", "padded_shape", "padding", "pages", "preset",
    "remedy", "severity", "tensor_memory", "verdicts_for_bytes",
]
