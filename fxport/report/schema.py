"""Versions of the result documents. Kept apart from their producers, which import torch, so that
rendering a saved document does not."""

RUN_SCHEMA = "fxport.run/1"
SWEEP_SCHEMA = "fxport.sweep/1"
