"""fxport's model zoo: vision models, detectors, YOLO, SigLIP and PI0, built from code.

Installed as `fxport_models` (the folder is `models/`), so that it never shadows a user's own
`models` package.
"""

from fxport_models.entry import ModelEntry, Shape
from fxport_models.registry import ZooError, entries, get, names

__all__ = ["ModelEntry", "Shape", "ZooError", "entries", "get", "names"]
