"""The per-frame hot path at 1080p, before and after the vectorised drawing and post-processing, in one run.

    python -m benchmarks.annotate_hot_path [--before 163fee8] [--repeat 15]

"Before" is the code of commit ``--before`` (the last one before this work), taken with ``git archive``
into a temporary folder and loaded module by module under other names: ``draw``, ``panoptic``,
``results`` and ``nms`` import only NumPy, OpenCV and ``edge.results``' types, so the old and the new
code run in this process on the same inputs. The bilinear segmentation "before" is the whole-frame
interpolation it replaced, kept below (its module drags in the decoder package). Each repetition runs
every case before then after, so load from other processes hits both alike; the table gives the median
of each over ``--repeat`` repetitions and their ratio (quote ratios, not absolute times: the machine is
shared).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

from edge import draw, panoptic, results
from edge.annotate import Annotator
from edge.backends.base import TensorInfo
from edge.bundle import Bundle, InputSpec, Thresholds
from edge.canvas import Canvas
from edge.decoders import DECODERS
from edge.decoders import nms as nms_module
from edge.decoders.segmentation import Window
from edge.preprocess import Preprocessor

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "163fee8"  # main when the hot-path work started
MODULES = {"draw": "edge/draw.py", "panoptic": "edge/panoptic.py", "results": "edge/results.py",
           "nms": "edge/decoders/nms.py"}
WIDTH, HEIGHT, CLASSES = 1920, 1080, 21
VOC = ("background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike "
       "person pottedplant sheep sofa train tvmonitor").split()
COCO_THINGS = ["__background__", "person", "bicycle", "car", "motorcycle", "bus", "train", "boat", "bird",
               "cat", "dog", "horse", "sheep", "cow", "bottle", "chair", "couch", "potted plant", "dining table"]


def load_before(rev: str, folder: Path) -> dict[str, ModuleType]:
    """The modules of ``rev``, each imported under ``before_<name>``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *MODULES.values()], check=True,
                             capture_output=True).stdout
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(folder)
    modules = {}
    for name, path in MODULES.items():
        spec = importlib.util.spec_from_file_location(f"before_{name}", folder / path)
        modules[name] = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[name])
    return modules


def class_map(rng: np.random.Generator, classes: int, block: int = 60) -> np.ndarray:
    """Blocks of classes, as a segmenter's regions, at 1080p."""
    blocks = rng.integers(0, classes, (HEIGHT // block + 1, WIDTH // block + 1)).astype(np.uint8)
    return np.repeat(np.repeat(blocks, block, 0), block, 1)[:HEIGHT, :WIDTH].copy()


def crowd(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (a third of them piled on one spot), scores, COCO class ids."""
    corners = rng.uniform([0, 0], [WIDTH - 320, HEIGHT - 320], (count, 2))
    corners[: count // 3] = corners[0] + rng.uniform(-20, 20, (count // 3, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(60, 320, (count, 2))], 1).astype(np.float32)
    return boxes, rng.uniform(0.3, 1, count).astype(np.float32), rng.integers(0, 80, count)


def skeletons(rng: np.random.Generator, people: int) -> results.Poses:
    body = np.array([[0, -80], [-8, -88], [8, -88], [-18, -84], [18, -84], [-30, -50], [30, -50], [-40, -10],
                     [40, -10], [-45, 25], [45, 25], [-20, 20], [20, 20], [-22, 80], [22, 80], [-24, 140],
                     [24, 140]], np.float32) * 1.5
    centres = rng.uniform([100, 150], [WIDTH - 100, HEIGHT - 220], (people, 2)).astype(np.float32)
    scores = rng.uniform(0.2, 1, (people, 17, 1)).astype(np.float32)
    return results.Poses(np.concatenate([body + centres[:, None], scores], 2), np.ones(people, np.float32))


def instances(rng: np.random.Generator, count: int) -> results.Detections:
    """``count`` people with masks over their boxes."""
    corners = rng.integers([0, 0], [WIDTH - 400, HEIGHT - 600], (count, 2))
    sizes = rng.integers([150, 300], [400, 600], (count, 2))
    patches = [cv2.resize((rng.random((12, 8)) < 0.7).astype(np.uint8), (int(w), int(h))) > 0 for w, h in sizes]
    boxes = np.concatenate([corners, corners + sizes], 1).astype(np.float32)
    masks = results.MaskPatches(corners.astype(np.int64), patches, (WIDTH, HEIGHT))
    return results.Detections(boxes, rng.uniform(0.5, 1, count).astype(np.float32), np.ones(count, np.int64),
                             masks=masks)


def nms_candidates(rng: np.random.Generator, count: int, classes: int):
    """Jittered copies of objects, as a detector proposes them before NMS."""
    objects = rng.integers(0, count // 8, count)
    centres = rng.uniform(0, 1500, (count // 8, 2))[objects] + rng.normal(0, 6, (count, 2))
    sizes = rng.uniform(10, 300, (count // 8, 2))[objects] * rng.uniform(0.8, 1.25, (count, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1).astype(np.float32)
    return boxes, rng.permutation(count).astype(np.float32) / count, objects % classes


def bilinear_decoder(classes: int):
    spec = InputSpec("x", (1, 3, 512, 512), resize="letterbox", pad_value=0.0)
    bundle = Bundle(root=None, name="voc", task="segmentation", decoder="softmax", input=spec,
                    labels=VOC[:classes], thresholds=Thresholds(), files={}, provenance={},
                    decoder_args={"upsample": "bilinear"})
    logits = np.random.default_rng(0).normal(0, 1, (1, classes, 64, 64)).astype(np.float32)
    decoder = DECODERS["softmax"](bundle, [TensorInfo("logits", logits.shape, np.float32)])
    transform = Preprocessor(spec)(np.zeros((HEIGHT, WIDTH, 3), np.uint8), np.empty(spec.shape, np.float32))
    return decoder, logits, transform


def whole_frame_bilinear(decoder, logits: np.ndarray, transform) -> np.ndarray:
    """The bilinear path before: all C planes resized to the frame at once, then the argmax."""
    window = Window.of(logits.shape[2:], decoder.bundle.input, transform)
    planes = np.ascontiguousarray(logits[0][:, window.rows, window.cols].transpose(1, 2, 0))
    frame = cv2.warpAffine(planes, window.matrix, transform.source_size,
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return decoder.classify(frame, axis=2)


def cases(before: dict[str, ModuleType]) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """Per hot spot, the old and the new call on the same inputs."""
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8), (0, 0), 3)
    voc, coco = VOC.__getitem__, lambda c: COCO_THINGS[c] if c < len(COCO_THINGS) else f"class_{c}"
    seg = results.Segmentation(class_map(rng, CLASSES), CLASSES, background=0)
    boxes, scores, class_ids = crowd(rng, 30)
    detections = results.Detections(boxes, scores, class_ids, track_ids=np.arange(30))
    poses = skeletons(rng, 20)
    frame_results = [(seg, voc), (detections, coco), (poses, coco)]
    annotator, canvas = Annotator(), Canvas()
    frame = image.copy()

    def drawn_before(drawer, result, label):
        np.copyto(frame, image)
        drawer(frame, result, label)

    def drawn_after(drawer, result, label, finish=False):
        np.copyto(frame, image)
        canvas.begin(frame)
        drawer(canvas, result, label)
        if finish:
            canvas.finish()

    def fresh_segmentation():  # per frame, so the new cached pixel counts are counted again
        return results.Segmentation(seg.class_map, CLASSES, background=0)

    def annotate_before():
        copy = image.copy()
        before["draw"].draw_results(copy, frame_results)

    semantic = results.Segmentation(class_map(rng, CLASSES, block=180), CLASSES, background=0)
    people = instances(np.random.default_rng(1), 10)

    def events_and_maps(module, source):
        """A frame's event and saved id map, from a fresh result (as each frame brings)."""
        fresh = module.Detections(source.boxes, source.scores, source.class_ids, masks=module.MaskPatches(
            source.masks.origins, source.masks.patches, source.masks.frame_size))
        return fresh.to_event(coco), fresh.maps()

    nms_many = nms_candidates(rng, 1000, 80)
    nms_few = nms_candidates(rng, 300, 5)
    decoder, logits, transform = bilinear_decoder(CLASSES)
    return {
        "annotate 1080p: 21-class overlay, 30 boxes, 20 skeletons": (
            annotate_before, lambda: annotator.draw(image, frame_results)),
        "  segmentation overlay (_blend)": (
            lambda: drawn_before(before["draw"].draw_segmentation, seg, voc),
            lambda: drawn_after(draw.draw_segmentation, seg, voc)),
        "  30 boxes and captions": (
            lambda: drawn_before(before["draw"].draw_detections, detections, coco),
            lambda: drawn_after(draw.draw_detections, detections, coco, finish=True)),
        "  20 skeletons": (
            lambda: drawn_before(before["draw"].draw_poses, poses, coco),
            lambda: drawn_after(draw.draw_poses, poses, coco)),
        "panoptic merge (21 classes, 10 instances)": (
            lambda: before["panoptic"].merge(semantic, people, VOC, COCO_THINGS),
            lambda: panoptic.merge(semantic, people, VOC, COCO_THINGS)),
        "instance event + saved id map (10 masks)": (
            lambda: events_and_maps(before["results"], people),
            lambda: events_and_maps(results, people)),
        "segmentation class fractions": (
            lambda: before["results"].Segmentation(seg.class_map, CLASSES).fractions(),
            lambda: fresh_segmentation().fractions()),
        "NMS 1000 boxes, 80 classes": (
            lambda: before["nms"].nms(*nms_many[:2], 0.45, nms_many[2]),
            lambda: nms_module.nms(*nms_many[:2], 0.45, nms_many[2])),
        "NMS 300 boxes, 5 classes": (
            lambda: before["nms"].nms(*nms_few[:2], 0.45, nms_few[2]),
            lambda: nms_module.nms(*nms_few[:2], 0.45, nms_few[2])),
        "bilinear segmentation 21×64×64 → 1080p": (
            lambda: whole_frame_bilinear(decoder, logits, transform),
            lambda: decoder({"logits": logits}, transform)),
    }


def check_same_outputs(before: dict[str, ModuleType]) -> None:
    """The cases compute the same thing before and after (the tests check it exactly; this guards the
    benchmark's own inputs)."""
    rng = np.random.default_rng(2)
    boxes, scores, class_ids = nms_candidates(rng, 1000, 80)
    assert (before["nms"].nms(boxes, scores, 0.45, class_ids) == nms_module.nms(boxes, scores, 0.45, class_ids)).all()
    decoder, logits, transform = bilinear_decoder(CLASSES)
    assert (decoder({"logits": logits}, transform).class_map == whole_frame_bilinear(decoder, logits, transform)).all()
    semantic, people = results.Segmentation(class_map(rng, CLASSES, 180), CLASSES, background=0), instances(rng, 10)
    old, new = (module.merge(semantic, people, VOC, COCO_THINGS) for module in (before["panoptic"], panoptic))
    assert (old.ids == new.ids).all() and old.areas == new.areas and len(new.areas) > 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help="the commit whose code is 'before' (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=15, help="repetitions of each case (default %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        before = load_before(args.before, Path(folder))
        check_same_outputs(before)
        timed = cases(before)
        times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in timed}
        for _ in range(args.repeat + 1):  # the first round warms up and is dropped
            for name, (old, new) in timed.items():
                for run, samples in zip((old, new), times[name]):
                    started = time.perf_counter()
                    run()
                    samples.append(time.perf_counter() - started)
    print(f"medians of {args.repeat} (ms), before = {args.before}, interleaved")
    print("| hot spot | before | after | before / after |\n|---|---:|---:|---:|")
    for name, (old, new) in times.items():
        old_ms, new_ms = statistics.median(old[1:]) * 1e3, statistics.median(new[1:]) * 1e3
        print(f"| {name} | {old_ms:.2f} | {new_ms:.2f} | {old_ms / new_ms:.1f}× |")
    print(f"bilinear scratch per frame: before {HEIGHT * WIDTH * CLASSES * 4 / 1e6:.0f} MB allocated, "
          f"after {decoder_band_bytes():.1f} MB kept between frames")


def decoder_band_bytes() -> float:
    decoder, logits, transform = bilinear_decoder(CLASSES)
    decoder({"logits": logits}, transform)
    return decoder._band.nbytes / 1e6


if __name__ == "__main__":
    main()
