"""The user's own labels (``--val``): real mAP / mIoU for the accuracy gate instead of agreement with fp32.

Two forms, the ones labelling tools export:

- a COCO detection JSON (``images``, ``annotations`` with ``bbox`` as x, y, width, height in pixels,
  ``categories``); images are read from the JSON's folder (``file_name`` relative to it) or its ``images/``
  subfolder. Categories are matched to the bundle's labels by name; boxes of other categories are left out
  (a COCO-80 detector scored on a file that also labels, say, traffic cones).
- a folder with ``images/`` and ``masks/``: one PNG of class ids per image, with the image's stem
  (``masks/0001.png`` for ``images/0001.jpg``), 255 = not labelled (VOC's borders), as segmentation datasets
  ship them.

Scores: detection mAP@0.5 (class-aware: labels name real classes), segmentation mean IoU over the classes
present, both with a bootstrap interval over images (:mod:`calibration.agreement`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from calibration.agreement import Agreement, FrameDetections, detection_agreement, miou_agreement
from edge.bundle import Bundle
from edge.errors import BadInputError, UsageError

IGNORE = 255  # mask value of unlabelled pixels
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Labels:
    """Labelled images (BGR) and their ground truth, per image: :class:`FrameDetections` or class-id masks."""

    source: str
    task: str
    frames: list[np.ndarray]
    truth: list
    classes: int

    def score(self, found: Sequence) -> Agreement:
        """A model's results on :attr:`frames` against the labels."""
        if self.task == "detection":
            return detection_agreement(self.truth, found, min_boxes=0)
        return miou_agreement(self.truth, found, self.classes, IGNORE, "mIoU (labels)")


def load_labels(path: str, bundle: Bundle) -> Labels:
    """``--val PATH`` for ``bundle``: a COCO JSON (detection) or a folder with ``images/`` and ``masks/``."""
    where = Path(path)
    if bundle.task == "detection":
        if not where.is_file():
            raise BadInputError(f"--val: {path} is not a file (a detection bundle takes a COCO JSON)")
        return _coco(where, bundle)
    if bundle.task == "segmentation":
        if not (where / "images").is_dir() or not (where / "masks").is_dir():
            raise BadInputError(f"--val: {path} needs images/ and masks/ folders (a segmentation bundle)")
        return _masks(where, bundle)
    raise UsageError(f"--val: labels are read for detection and segmentation bundles, not {bundle.task}")


def _read(path: Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise BadInputError(f"--val: cannot read image {path}")
    return image


def _coco(path: Path, bundle: Bundle) -> Labels:
    try:
        doc = json.loads(path.read_text())
        categories = {c["id"]: c["name"] for c in doc["categories"]}
        images = {i["id"]: i["file_name"] for i in doc["images"]}
        annotations = doc["annotations"]
    except (ValueError, KeyError, TypeError) as e:
        raise BadInputError(f"--val: {path} is not a COCO detection JSON ({e})") from None
    index = {name: i for i, name in enumerate(bundle.labels)}
    mapped = {cid: index[name] for cid, name in categories.items() if name in index}
    if not mapped:
        raise BadInputError(f"--val: none of {path}'s categories ({', '.join(sorted(categories.values()))}) is a "
                            f"label of bundle '{bundle.name}'")
    boxes: dict[int, list] = {image: [] for image in images}
    for a in annotations:
        if a.get("category_id") in mapped and not a.get("iscrowd", 0) and a.get("image_id") in boxes:
            x, y, w, h = a["bbox"]
            boxes[a["image_id"]].append((x, y, x + w, y + h, mapped[a["category_id"]]))
    frames, truth = [], []
    for image, name in images.items():
        file = path.parent / name if (path.parent / name).is_file() else path.parent / "images" / name
        frames.append(_read(file))
        rows = np.asarray(boxes[image], np.float32).reshape(-1, 5)
        truth.append(FrameDetections(rows[:, :4], np.ones(len(rows), np.float32), rows[:, 4].astype(np.int64)))
    return Labels(str(path), "detection", frames, truth, len(bundle.labels))


def _masks(folder: Path, bundle: Bundle) -> Labels:
    images = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise BadInputError(f"--val: no images in {folder / 'images'}")
    frames, truth = [], []
    for image in images:
        mask_path = folder / "masks" / f"{image.stem}.png"
        if not mask_path.is_file():
            raise BadInputError(f"--val: {image.name} has no mask {mask_path}")
        frame, mask = _read(image), _read(mask_path, cv2.IMREAD_UNCHANGED)
        if mask.shape[:2] != frame.shape[:2] or mask.ndim != 2:
            raise BadInputError(f"--val: {mask_path} is not a one-channel mask of {image.name}'s size")
        frames.append(frame)
        truth.append(mask)
    return Labels(str(folder), "segmentation", frames, truth, max(len(bundle.labels), 1))
