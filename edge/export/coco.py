"""COCO results JSON (``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``), as
``pycocotools.coco.COCO.loadRes`` and every COCO evaluator read it.

A detector trained on COCO's 80 classes numbers them 0..79; COCO's files number the same classes with the
91 ids of the original paper (1..90, with gaps). Labels are matched by name, so any COCO-80 bundle (Darknet's
names included: "motorbike", "tvmonitor"…) and torchvision's 91-id detectors map to the official ids; a bundle
with other labels keeps its own class ids (:func:`coco_category_ids` says which happened).
"""

from __future__ import annotations

from collections.abc import Iterable

from edge.export.events import Detection

# COCO's 80 class names in the order of the 0-based ids detectors use, and their 91-category ids.
COCO80 = ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
          "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
          "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
          "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
          "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
          "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
          "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
          "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
          "teddy bear", "hair drier", "toothbrush")
COCO80_TO_91 = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32,
                33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
                60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90)
# Other spellings of the same classes: Darknet's coco.names (YOLO, YOLOX) and the 2014 release.
ALIASES = {"motorbike": "motorcycle", "aeroplane": "airplane", "sofa": "couch", "pottedplant": "potted plant",
           "diningtable": "dining table", "tvmonitor": "tv", "hair dryer": "hair drier"}
CATEGORY_OF = {name: category for name, category in zip(COCO80, COCO80_TO_91)}
CATEGORY_OF.update({alias: CATEGORY_OF[name] for alias, name in ALIASES.items()})


def coco_category_ids(labels: Iterable[str]) -> bool:
    """Whether every label is a COCO class name, so the export can use COCO's 91-category ids."""
    return all(label in CATEGORY_OF for label in labels)


def coco_results(found: list[Detection]) -> tuple[list[dict], bool]:
    """The results list (image id: the event's 0-based frame) and whether its category ids are COCO's."""
    official = coco_category_ids({d.label for d in found})
    results = []
    for d in found:
        x1, y1, x2, y2 = d.box
        results.append({"image_id": d.frame, "category_id": CATEGORY_OF[d.label] if official else d.class_id,
                        "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                        "score": d.score})
    return results, official
