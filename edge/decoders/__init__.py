"""Decoders by name. Importing this package registers every decoder (and cascade) in :data:`DECODERS`."""

from edge.decoders import (  # noqa: F401  (registration side effect)
    blazeface,
    boxes,
    cascade_mtcnn,
    classification,
    pose,
    rcnn,
    segmentation,
    ssd,
    yolox,
)
from edge.decoders.base import DECODERS, Decoder
from edge.decoders.cascade import Cascade

__all__ = ["DECODERS", "Cascade", "Decoder"]
