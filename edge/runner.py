"""One bundle ready to run on frames: preprocess → backend → decoder, each stage timed.

The runtime's equivalent of jetson-inference's ``detectNet``: one small object per loaded bundle, with the
engine work (backend) split from the task work (decoder). :class:`edge.graph.RunnerGraph` runs several on
one frame. What a result looks like in an event or on a picture is not the runner's business: results
carry ``to_event``/``maps`` and :mod:`edge.draw` draws them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from edge.backends import Backend, open_backend
from edge.backends.base import Slot
from edge.bundle import BUNDLE_FILE, Bundle
from edge.crops import region_box
from edge.decoders import DECODERS, Cascade
from edge.errors import BadInputError
from edge.preprocess import Preprocessor, Transform
from edge.results import Detections

STAGES = ("preprocess", "infer", "postprocess")


class Runner:
    """Runs one bundle on BGR frames. ``timings`` holds the last call's seconds per stage.

    Frames (or crops) go through the backend ``batch`` at a time: where the model's batch dimension is
    dynamic, its slot holds ``batch`` frames (several streams' latest frames in one inference call, or the
    crops of one frame for a bundle that runs on another's boxes: :meth:`on_boxes`); else one. One frame is
    the degenerate batch, not another code path. A cascade bundle (MTCNN) hands each frame to its decoder,
    which drives its own backends.
    """

    def __init__(self, bundle: Bundle, backend: str = "auto", threads: int | None = None, *, batch: int = 1,
                 allow_build: bool = True):
        self.bundle = bundle
        self.timings = dict.fromkeys(STAGES, 0.0)
        decoder = DECODERS[bundle.decoder]
        self.backends: list[Backend] = []
        self._classes, decoding = self._class_filter(bundle)
        self.cascade = self._open_cascade(decoding, decoder, backend, threads) if issubclass(decoder, Cascade) \
            else None
        self.batch = 1
        if self.cascade is not None:
            return
        self.backend = open_backend(bundle, backend, threads=threads, allow_build=allow_build)
        self.backends.append(self.backend)
        try:
            self._check_input()
            self.decoder = decoder(decoding, self.backend.outputs)
        except BaseException:
            self.close()
            raise
        self.preprocess = Preprocessor(bundle.input)
        self.slot = self._slot_for(batch)
        self.input_buffer = self.slot.inputs[bundle.input.name]
        self.batch = len(self.input_buffer)

    def _slot_for(self, batch: int) -> Slot:
        """A slot of ``batch`` items where the batch dimension is dynamic, the decoder can slice the outputs
        per item, and the backend can size one (ONNX Runtime; a TensorRT engine's profile fixed its largest
        batch when it was built), else the first."""
        if batch <= 1 or self.backend.inputs[0].shape[0] is not None or not self.decoder.batched:
            return self.backend.slots[0]
        try:
            return self.backend.add_slot({self.bundle.input.name: (batch, *self.bundle.input.shape[1:])})
        except NotImplementedError:
            return self.backend.slots[0]

    @staticmethod
    def _class_filter(bundle: Bundle) -> tuple[np.ndarray | None, Bundle]:
        """The class ids ``thresholds.classes`` keeps (``None``: all), and the bundle its decoder gets: with a
        class filter the decoder keeps every class's best and :meth:`_kept` caps what the filter leaves, so
        ``--classes person --max-det 5`` gives five people, not the people among the five best."""
        thresholds = bundle.thresholds
        if thresholds.classes is None:
            return None, bundle
        ids = np.array([bundle.labels.index(label) for label in thresholds.classes], np.int64)
        return ids, replace(bundle, thresholds=replace(thresholds, max_detections=None))

    def _kept(self, result: Any) -> Any:
        """``result`` with only the detections of the filter's classes, at most ``max_detections`` of them."""
        if self._classes is None or not isinstance(result, Detections):
            return result
        keep = np.flatnonzero(np.isin(result.class_ids, self._classes))[:self.bundle.thresholds.max_detections]
        return result if len(keep) == len(result) else result.take(keep)

    def _open_cascade(self, bundle: Bundle, cascade: type[Cascade], backend: str, threads: int | None) -> Cascade:
        """The cascade, given a way to open the bundle's model files; this runner owns what it opens."""
        def opener(role: str, shapes: dict[str, tuple[int, ...]]) -> Backend:
            self.backends.append(open_backend(self.bundle, backend, threads=threads, role=role, input_shapes=shapes))
            return self.backends[-1]

        try:
            made = cascade(bundle, opener)
        except BaseException:
            self.close()
            raise
        self.backend = self.backends[0]
        return made

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def precision(self) -> str:
        """What actually runs: a TensorRT engine's precision, else the bundle's."""
        return self.backend.precision or self.bundle.precision

    def _check_input(self) -> None:
        spec, where = self.bundle.input, self.bundle.root / BUNDLE_FILE
        infos = {i.name: i for i in self.backend.inputs}
        if spec.name not in infos:
            raise BadInputError(f"{where}: field 'input.name': the model has no input '{spec.name}' "
                                f"(inputs: {', '.join(infos)})")
        if len(infos) > 1:
            raise BadInputError(f"{where}: the model has {len(infos)} inputs ({', '.join(infos)}); edge feeds one")
        info = infos[spec.name]
        if len(info.shape) != 4 or any(m is not None and m != s for m, s in zip(info.shape, spec.shape)):
            raise BadInputError(f"{where}: field 'input.shape': {list(spec.shape)} does not fit the model's "
                                f"{[d if d is not None else '?' for d in info.shape]}")
        if info.dtype != np.dtype(spec.dtype):
            raise BadInputError(f"{where}: field 'input.dtype': '{spec.dtype}' but the model takes {info.dtype}")

    def __call__(self, image: np.ndarray) -> Any:
        """Runs the model on one BGR frame and returns the decoder's result in frame pixels."""
        return self.run([image])[0]

    def run(self, images: Sequence[np.ndarray]) -> list[Any]:
        """Results of several frames, ``batch`` per inference call; ``timings`` sums the stages over them."""
        self.reset_timings()
        if self.cascade is not None:
            results = []
            for image in images:
                results.append(self._kept(self.cascade(image)))
                for stage, seconds in self.cascade.timings.items():
                    self.timings[stage] += seconds
            return results
        results = []
        for start in range(0, len(images), self.batch):
            results.extend(self.finish(self.prepare(images[start:start + self.batch])))
        return results

    def reset_timings(self) -> None:
        self.timings.update(dict.fromkeys(STAGES, 0.0))

    def prepare(self, images: Sequence[np.ndarray], shared: bool = False,
                regions: Sequence[tuple[int, int, int, int] | None] | None = None) -> list[Transform]:
        """Preprocesses up to ``batch`` frames into the model's input, one batch item each: on the backend's
        device where it offers that (TensorRT's GPU kernel), else into the host input buffer. ``shared``:
        other runners will :meth:`adopt` this input, so it must be on the host. ``regions``: per frame, the part
        to run on instead of the whole frame (motion cropping: :func:`edge.crops.region_box`), or ``None``."""
        t0 = time.perf_counter()
        transforms = [self._prepare_one(i, image, shared, None if regions is None else regions[i])
                      for i, image in enumerate(images)]
        self.timings["preprocess"] += time.perf_counter() - t0
        return transforms

    def _prepare_one(self, index: int, image: np.ndarray, shared: bool,
                     region: tuple[int, int, int, int] | None) -> Transform:
        if region is not None:
            spec = self.bundle.input
            box = region_box(region, (spec.width, spec.height), (image.shape[1], image.shape[0]))
            return self.preprocess.crop(image, box, self.input_buffer[index])
        if self.backend.on_device and not shared:
            transform = self.backend.preprocess_frame(self.slot, index, image, self.bundle.input)
            if transform is not None:
                return transform
        return self.preprocess(image, self.input_buffer[index])

    def adopt(self, other: Runner, count: int) -> None:
        """Takes ``other``'s first ``count`` prepared inputs (same input spec): one copy, not preprocessing again."""
        t0 = time.perf_counter()
        np.copyto(self.input_buffer[:count], other.input_buffer[:count])
        self.timings["preprocess"] += time.perf_counter() - t0

    def finish(self, transforms: Sequence[Transform]) -> list[Any]:
        """One inference call on the prepared items (one per transform) and each item's decoded result."""
        t0 = time.perf_counter()
        outputs = self.backend.run_first(self.slot, len(transforms))
        t1 = time.perf_counter()
        if self.batch == 1:  # the outputs as the model gives them: some have no batch dimension
            results = [self._decode(outputs, 0, transforms[0])]
        else:
            results = [self._decode({k: v[i:i + 1] for k, v in outputs.items()}, i, transform)
                       for i, transform in enumerate(transforms)]
        self.timings["infer"] += t1 - t0
        self.timings["postprocess"] += time.perf_counter() - t1
        return results

    def _decode(self, outputs: dict[str, np.ndarray], index: int, transform: Transform) -> Any:
        """Batch item ``index``'s result; a segmentation class map from the backend's device where it can."""
        if self.backend.on_device:
            name = self.decoder.class_map_output(transform)
            class_map = None if name is None else self.backend.class_map(self.slot, index, name, transform,
                                                                          self.bundle.input)
            if class_map is not None:
                return self.decoder.from_class_map(class_map)
        return self._kept(self.decoder(outputs, transform))

    def on_boxes(self, image: np.ndarray, boxes: np.ndarray) -> list[Any]:
        """One result per box (frame pixels, any size): crops in batches of the slot's batch size. ``timings``
        accumulate (a :class:`~edge.graph.RunnerGraph` resets them once per call)."""
        results: list[Any] = []
        for start in range(0, len(boxes), self.batch):
            t0 = time.perf_counter()
            transforms = [self.preprocess.crop(image, box, self.input_buffer[i])
                          for i, box in enumerate(boxes[start:start + self.batch])]
            self.timings["preprocess"] += time.perf_counter() - t0
            results.extend(self.finish(transforms))
        return results

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
