"""Annotation of frames for the output video: one colour per class, the same in every run."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from edge.results import Detections

# Tableau-20 in BGR: distinct, readable on video, stable across runs (class id → colour).
PALETTE = np.array([
    (180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140),
    (194, 119, 227), (127, 127, 127), (34, 189, 188), (207, 190, 23), (232, 199, 174), (120, 187, 255),
    (138, 223, 152), (150, 152, 255), (213, 176, 197), (148, 156, 196), (210, 182, 247), (199, 199, 199),
    (141, 219, 219), (229, 218, 158),
], np.uint8)


def color_for(class_id: int) -> tuple[int, int, int]:
    b, g, r = PALETTE[class_id % len(PALETTE)]
    return int(b), int(g), int(r)


def draw_detections(image: np.ndarray, detections: Detections, label: Callable[[int], str]) -> None:
    """Draws boxes, ``label score`` captions and landmarks onto ``image`` in place."""
    if len(detections) == 0:
        return
    thickness = max(1, round(min(image.shape[:2]) / 300))
    scale = thickness * 0.4
    boxes = np.round(detections.boxes).astype(np.int32).tolist()
    for (x1, y1, x2, y2), class_id, score in zip(boxes, detections.class_ids.tolist(), detections.scores.tolist()):
        color = color_for(class_id)
        cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        caption = f"{label(class_id)} {score:.2f}"
        (w, h), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(y1, h + baseline)
        cv2.rectangle(image, (x1, top - h - baseline), (x1 + w, top), color, cv2.FILLED)
        cv2.putText(image, caption, (x1, top - baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255),
                    thickness, cv2.LINE_AA)
    if detections.keypoints is not None:
        for points, class_id in zip(np.round(detections.keypoints[..., :2]).astype(np.int32).tolist(),
                                    detections.class_ids.tolist()):
            for x, y in points:
                cv2.circle(image, (x, y), thickness + 1, color_for(class_id + 1), cv2.FILLED, cv2.LINE_AA)


_DRAWERS: dict[type, Callable[[np.ndarray, object, Callable[[int], str]], None]] = {
    Detections: draw_detections,
}


def draw_result(image: np.ndarray, result: object, label: Callable[[int], str]) -> None:
    """Draws any decoder result onto ``image``, choosing the drawing by the result's type."""
    _DRAWERS[type(result)](image, result, label)
