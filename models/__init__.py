"""fxport's model zoo: vision models, detectors, YOLO, SigLIP and PI0, built from code.

Installed as `fxport_models` (the folder is `models/`), so that it never shadows a user's own
`models` package.
"""

from fxport_models.registry import ZooError, entries, get, known, names

__all__ = ["ModelEntry", "Shape", "ZooError", "entries", "get", "known", "names"]


def __getattr__(name: str):
    # The entry type imports torch: only when asked for (names and `known` need no torch).
    if name in ("ModelEntry", "Shape"):
        from fxport_models import entry

        return getattr(entry, name)
    raise AttributeError(name)
