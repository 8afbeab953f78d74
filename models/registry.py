"""The zoo's registry: every model is a named entry that knows how to build itself and its inputs.

Entries are data (`entry.ModelEntry`). `build(input_shape)` constructs the module (some
architectures, such as ViT's position embeddings, depend on the resolution) with whatever tensors
the ambient device context provides: capture calls it under ``torch.device("meta")`` so that
full-size models never materialise weights; execution calls it on the CPU for real random weights.

The zoo is an explicit list of modules, each exposing `ENTRIES`; they are imported on first use
(torchvision and the model code cost time that `fxport run pkg:MyNet` never needs). A module that
fails to import is an error naming it, and leaves the registry empty rather than half filled.

The names the zoo holds are also written out below as data (`CATALOGUE`), so that a name can be
checked, listed and suggested without importing torch: the command line refuses an unknown model
in a fraction of a second. Loading checks the catalogue against the modules' entries, so the two
cannot drift apart unnoticed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fxport_models.entry import ModelEntry

# Each zoo module and the names of its entries.
CATALOGUE: dict[str, tuple[str, ...]] = {
    "vision": (
        "resnet50",
        "mobilenet_v2",
        "mobilenet_v3_large",
        "efficientnet_b0",
        "swin_t",
        "swin_v2_t",
        "convnext_tiny",
        "vit_b_16",
        "retinanet_resnet50_fpn",
    ),
    "yolo": ("yolov8n", "yolov8x", "yolo11n", "yolo11x", "yolov12n", "yolov12x"),
    "siglip": ("siglip", "siglip-tiny"),
    "pi0": ("pi0", "pi0-tiny"),
}
ZOO_MODULES = tuple(CATALOGUE)


class ZooError(RuntimeError):
    """A zoo module failed to import, or two entries share a name."""


_REGISTRY: dict[str, ModelEntry] = {}


def _load() -> dict[str, ModelEntry]:
    if _REGISTRY:
        return _REGISTRY
    found: dict[str, ModelEntry] = {}
    for name, listed in CATALOGUE.items():
        try:
            module = importlib.import_module(f"fxport_models.{name}")
        except Exception as exc:
            raise ZooError(f"zoo module fxport_models.{name} failed to import: {type(exc).__name__}: {exc}") from exc
        if not isinstance(getattr(module, "ENTRIES", None), tuple):
            raise ZooError(f"zoo module fxport_models.{name} has no ENTRIES tuple")
        for entry in module.ENTRIES:
            if entry.name in found:
                raise ZooError(f"model {entry.name!r} registered twice (fxport_models.{name})")
            found[entry.name] = entry
        built = tuple(e.name for e in module.ENTRIES)
        if sorted(built) != sorted(listed):
            raise ZooError(
                f"zoo module fxport_models.{name} defines {', '.join(built)} but the "
                f"catalogue (fxport_models/registry.py) lists {', '.join(listed)}"
            )
    _REGISTRY.update(found)
    return _REGISTRY


def get(name: str) -> ModelEntry:
    try:
        return _load()[name]
    except KeyError:
        raise KeyError(name) from None


def names() -> list[str]:
    """Every zoo name, from the catalogue: no model code (and no torch) is imported."""
    return sorted(n for listed in CATALOGUE.values() for n in listed)


def known(name: str) -> bool:
    """Whether `name` is a zoo model, without importing any model code."""
    return any(name in listed for listed in CATALOGUE.values())


def entries() -> list[ModelEntry]:
    zoo = _load()
    return [zoo[n] for n in sorted(zoo)]
