"""The zoo's registry: every model is a named entry that knows how to build itself and its inputs.

Entries are data (`entry.ModelEntry`). `build(input_shape)` constructs the module (some
architectures, such as ViT's position embeddings, depend on the resolution) with whatever tensors
the ambient device context provides: capture calls it under ``torch.device("meta")`` so that
full-size models never materialise weights; execution calls it on the CPU for real random weights.

The zoo is an explicit list of modules, each exposing `ENTRIES`; they are imported on first use
(torchvision and the model code cost time that `fxport run pkg:MyNet` never needs). A module that
fails to import is an error naming it, and leaves the registry empty rather than half filled.
"""

from __future__ import annotations

import importlib

from fxport_models.entry import ModelEntry

# The zoo, in listing order of nothing in particular: `names()` sorts.
ZOO_MODULES = ("vision", "yolo", "siglip", "pi0")


class ZooError(RuntimeError):
    """A zoo module failed to import, or two entries share a name."""


_REGISTRY: dict[str, ModelEntry] = {}


def _load() -> dict[str, ModelEntry]:
    if _REGISTRY:
        return _REGISTRY
    found: dict[str, ModelEntry] = {}
    for name in ZOO_MODULES:
        try:
            module = importlib.import_module(f"fxport_models.{name}")
        except Exception as exc:
            raise ZooError(f"zoo module fxport_models.{name} failed to import: "
                           f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(getattr(module, "ENTRIES", None), tuple):
            raise ZooError(f"zoo module fxport_models.{name} has no ENTRIES tuple")
        for entry in module.ENTRIES:
            if entry.name in found:
                raise ZooError(f"model {entry.name!r} registered twice (fxport_models.{name})")
            found[entry.name] = entry
    _REGISTRY.update(found)
    return _REGISTRY


def get(name: str) -> ModelEntry:
    try:
        return _load()[name]
    except KeyError:
        raise KeyError(name) from None


def names() -> list[str]:
    return sorted(_load())


def entries() -> list[ModelEntry]:
    zoo = _load()
    return [zoo[n] for n in sorted(zoo)]
