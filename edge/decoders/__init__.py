"""Decoders by name. Importing this package registers every decoder in :data:`DECODERS`."""

from edge.decoders import boxes, ssd, yolox  # noqa: F401  (registration side effect)
from edge.decoders.base import DECODERS, Decoder

__all__ = ["DECODERS", "Decoder"]
