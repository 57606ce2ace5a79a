"""Training canvases: ``--rect`` cuts the letterbox's grey bands off the canvas, keeps every object's scale, and
is refused where there is no letterbox to cut."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from compile.augment import Augment, rect_input  # noqa: E402
from edge.bundle import InputSpec  # noqa: E402

YOLOX = InputSpec(name="images", shape=(1, 3, 416, 416), color="bgr", resize="letterbox")
HIGHWAY, ROOM = np.zeros((240, 320, 3), np.uint8), np.zeros((432, 768, 3), np.uint8)  # 4:3 and 16:9 footage


def canvas(spec: InputSpec) -> tuple[int, int]:
    return spec.width, spec.height


def test_the_canvas_holds_the_letterboxed_footage_rounded_up_to_the_stride():
    assert canvas(rect_input(YOLOX, [HIGHWAY])) == (416, 320)  # 416x312 letterboxed
    assert canvas(rect_input(YOLOX, [ROOM])) == (416, 256)  # 416x234
    assert canvas(rect_input(YOLOX, [ROOM, HIGHWAY, ROOM])) == (416, 320)  # the largest of them
    assert canvas(rect_input(YOLOX, [HIGHWAY.transpose(1, 0, 2)])) == (320, 416)  # portrait
    assert canvas(rect_input(YOLOX, [HIGHWAY, HIGHWAY.transpose(1, 0, 2)])) == (416, 416)  # never beyond the model's
    assert rect_input(YOLOX, [HIGHWAY]).resize == "letterbox" and rect_input(YOLOX, [HIGHWAY]).color == "bgr"


def test_a_frame_on_the_rect_canvas_is_the_full_canvas_without_its_grey_band(assets):
    """View 0 (the plain frame as the runtime feeds it) of a real frame: the same pixels, at the same scale."""
    import cv2

    capture = cv2.VideoCapture(str(assets / "videos/bgslibrary_highway_traffic_320x240.avi"))
    ok, frame = capture.read()
    capture.release()
    assert ok
    full, rect = Augment(YOLOX, mixup=False), Augment(rect_input(YOLOX, [frame]), mixup=False)
    on_full, on_rect = full.view(frame, 0, seed=0), rect.view(frame, 0, seed=0)
    assert tuple(on_rect.shape) == (3, 320, 416)
    torch.testing.assert_close(on_rect[:, :312], on_full[:, :312], atol=0, rtol=0)
    assert bool((on_rect[:, 312:] == 114).all()) and bool((on_full[:, 312:] == 114).all())


@pytest.mark.parametrize("resize", ["stretch", "square-pad"])
def test_rect_is_refused_without_a_letterbox(resize):
    with pytest.raises(ValueError, match=f"--rect crops a letterbox's grey bands.*'{resize}'"):
        rect_input(replace(YOLOX, resize=resize), [HIGHWAY])
