"""fxport's model zoo: vision models, detectors, YOLO, SigLIP and PI0, built from code."""

from models.registry import ModelEntry, Shape, entries, get, names, register

__all__ = ["ModelEntry", "Shape", "entries", "get", "names", "register"]
