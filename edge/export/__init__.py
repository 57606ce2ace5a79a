"""``edge export``: ``events.jsonl`` into what other tools read: COCO results JSON (:mod:`.coco`), MOT Challenge
rows and CSV (:mod:`.tables`); and :mod:`.supervision`, results as ``supervision.Detections``."""

from edge.export.coco import COCO80_TO_91, coco_category_ids
from edge.export.events import Detection, detections, read_events
from edge.export.run import FORMATS, export

__all__ = ["COCO80_TO_91", "FORMATS", "Detection", "coco_category_ids", "detections", "export", "read_events"]
