"""Imports every zoo module so that each registers its entries."""

from models import vision, yolo, siglip, pi0  # noqa: F401
