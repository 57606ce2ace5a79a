"""Bundles ready to run on frames: preprocess → backend → decoder, each stage timed.

The runtime's equivalent of jetson-inference's ``detectNet``: one small object per loaded model, with
the engine work (backend) split from the task work (decoder). :class:`ModelSet` runs several on one
frame, sharing preprocessing and feeding bundles that need another's results.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge import crops, panoptic
from edge.backends import Backend, open_backend
from edge.backends.base import Slot
from edge.bundle import BUNDLE_FILE, NEEDS_KEYS, Bundle, load_bundle
from edge.decoders import DECODERS, Cascade
from edge.draw import draw_results
from edge.errors import BadInputError, UsageError
from edge.preprocess import Preprocessor, Transform
from edge.results import Detections

STAGES = ("preprocess", "infer", "postprocess")


class Model:
    """Runs one bundle on BGR frames. ``timings`` holds the last call's seconds per stage.

    Frames (or crops) go through the backend ``batch`` at a time: where the model's batch dimension is
    dynamic, its slot holds ``batch`` frames (several streams' latest frames in one inference call), or
    ``needs.max_crops`` crops for a bundle with ``needs.detector``, which runs on crops (:meth:`on_boxes`);
    else one. One frame is the degenerate batch, not another code path. A cascade bundle (MTCNN) hands each
    frame to its decoder, which drives its own backends.
    """

    def __init__(self, bundle: Bundle, backend: str = "auto", threads: int | None = None, *, slots: int = 1,
                 batch: int = 1, allow_build: bool = True):
        self.bundle = bundle
        self.timings = dict.fromkeys(STAGES, 0.0)
        decoder = DECODERS[bundle.decoder]
        self.backends: list[Backend] = []
        self.cascade = self._open_cascade(decoder, backend, threads) if issubclass(decoder, Cascade) else None
        self.batch = 1
        if self.cascade is not None:
            return
        self.backend = open_backend(bundle, backend, slots=slots, threads=threads, allow_build=allow_build)
        self.backends.append(self.backend)
        try:
            self._check_input()
            self.decoder = decoder(bundle, self.backend.outputs)
        except BaseException:
            self.close()
            raise
        self.preprocess = Preprocessor(bundle.input)
        if "detector" in bundle.needs:
            batch = bundle.needs.get("max_crops", crops.DEFAULT_MAX_CROPS)
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

    def _open_cascade(self, cascade: type[Cascade], backend: str, threads: int | None) -> Cascade:
        """The cascade, given a way to open the bundle's model files; this model owns what it opens."""
        def opener(role: str, shapes: dict[str, tuple[int, ...]]) -> Backend:
            self.backends.append(open_backend(self.bundle, backend, threads=threads, role=role, input_shapes=shapes))
            return self.backends[-1]

        try:
            made = cascade(self.bundle, opener)
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
                results.append(self.cascade(image))
                for stage, seconds in self.cascade.timings.items():
                    self.timings[stage] += seconds
            return results
        results = []
        for start in range(0, len(images), self.batch):
            results.extend(self.finish(self.prepare(images[start:start + self.batch])))
        return results

    def reset_timings(self) -> None:
        self.timings.update(dict.fromkeys(STAGES, 0.0))

    def prepare(self, images: Sequence[np.ndarray]) -> list[Transform]:
        """Preprocesses up to ``batch`` frames into the model's input buffer, one batch item each."""
        t0 = time.perf_counter()
        transforms = [self.preprocess(image, self.input_buffer[i]) for i, image in enumerate(images)]
        self.timings["preprocess"] += time.perf_counter() - t0
        return transforms

    def adopt(self, other: Model, count: int) -> None:
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
            results = [self.decoder(outputs, transforms[0])]
        else:
            results = [self.decoder({k: v[i:i + 1] for k, v in outputs.items()}, transform)
                       for i, transform in enumerate(transforms)]
        self.timings["infer"] += t1 - t0
        self.timings["postprocess"] += time.perf_counter() - t1
        return results

    def pipelined(self, images: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, Any]]:
        """Runs frames with one in flight and yields ``(image, result)`` in order.

        Frame n+1 is preprocessed into the second slot while the backend runs frame n in the first (on a GPU
        backend ``submit`` returns at once), so preprocessing overlaps inference. Needs ``slots=2``.
        ``timings`` is not updated: the stages overlap.
        """
        if len(self.backend.slots) < 2:
            raise ValueError("pipelined() needs a Model opened with slots=2")
        name = self.bundle.input.name
        pending = None
        for index, image in enumerate(images):
            slot = self.backend.slots[index % 2]
            transform = self.preprocess(image, slot.inputs[name])
            self.backend.submit(slot)
            if pending is not None:
                yield pending[0], self.decoder(self.backend.wait(pending[1]), pending[2])
            pending = (image, slot, transform)
        if pending is not None:
            yield pending[0], self.decoder(self.backend.wait(pending[1]), pending[2])

    def on_boxes(self, image: np.ndarray, boxes: np.ndarray) -> list[Any]:
        """One result per box (frame pixels, any size): crops in batches of the slot's batch size. ``timings``
        accumulate (a :class:`ModelSet` resets them once per call)."""
        results: list[Any] = []
        for start in range(0, len(boxes), self.batch):
            t0 = time.perf_counter()
            transforms = [self.preprocess.crop(image, box, self.input_buffer[i])
                          for i, box in enumerate(boxes[start:start + self.batch])]
            self.timings["preprocess"] += time.perf_counter() - t0
            results.extend(self.finish(transforms))
        return results

    def to_event(self, result: Any) -> dict[str, Any]:
        return result.to_event(self.bundle.label)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()


class ModelSet:
    """Several bundles run on the same frames: the one call a stream loop makes per frame (or per batch of
    frames, one from each stream, where the models take a batch: ``batch`` asks for at most that many).

    Results are keyed by bundle name, as events are. Whole-frame models with the same input spec share
    one preprocessing (the first fills its input buffer, the others copy it). Bundles with ``needs`` run
    after the bundle they name: ``needs.detector`` → on crops of its boxes; ``needs.instances`` → the
    semantic map is merged with its instance masks into a panoptic map. ``timings`` holds the last call's
    seconds per stage summed over the models (and frames); ``timings_by_model`` the same per bundle.
    """

    def __init__(self, bundles: Sequence[Bundle], backend: str = "auto", threads: int | None = None, *,
                 batch: int = 1, allow_build: bool = True):
        repeated = [name for name, count in Counter(b.name for b in bundles).items() if count > 1]
        if repeated:
            raise UsageError(f"--bundle: two bundles are named '{repeated[0]}'; event results are keyed by name")
        _check_needs(bundles)
        self.models: list[Model] = []
        try:
            for bundle in bundles:
                self.models.append(Model(bundle, backend, threads, batch=batch, allow_build=allow_build))
        except BaseException:
            self.close()
            raise
        self._by_name = {m.name: m for m in self.models}
        self._groups = _group_by_input([m for m in self.models if "detector" not in m.bundle.needs])
        self._panoptic = [m for m in self.models if "instances" in m.bundle.needs]
        self._on_boxes = [m for m in self.models if "detector" in m.bundle.needs]
        self.timings = dict.fromkeys(STAGES, 0.0)
        # Frames one call should take: the largest batch a whole-frame model runs in one inference call.
        self.batch = max((m.batch for group in self._groups for m in group), default=1)

    @classmethod
    def load(cls, bundle_dirs: Sequence[str | Path], backend: str = "auto", threads: int | None = None, *,
             allow_build: bool = True) -> ModelSet:
        """``allow_build=False`` forbids building a TensorRT engine at load (see :func:`edge.backends.open_backend`)."""
        return cls([load_bundle(d) for d in bundle_dirs], backend, threads, allow_build=allow_build)

    def __call__(self, image: np.ndarray) -> dict[str, Any]:
        return self.run([image])[0]

    def run(self, images: Sequence[np.ndarray]) -> list[dict[str, Any]]:
        """Each frame's results by bundle name; each model takes the frames ``model.batch`` per inference call."""
        for model in self.models:
            model.reset_timings()
        per_model: dict[str, list[Any]] = {}
        for group in self._groups:
            lead = group[0]
            if lead.cascade is not None:
                per_model[lead.name] = lead.run(images)
                continue
            for model in group:
                per_model[model.name] = []
            for start in range(0, len(images), lead.batch):
                transforms = lead.prepare(images[start:start + lead.batch])
                for model in group[1:]:
                    model.adopt(lead, len(transforms))
                for model in group:
                    per_model[model.name].extend(model.finish(transforms))
        frames = [{name: found[i] for name, found in per_model.items()} for i in range(len(images))]
        for image, results in zip(images, frames):
            for model in self._panoptic:
                self._merge_instances(model, results)
            for model in self._on_boxes:
                results[model.name] = self._run_on_boxes(model, image, results)
        for stage in STAGES:
            self.timings[stage] = sum(m.timings[stage] for m in self.models)
        return [{m.name: results[m.name] for m in self.models} for results in frames]

    def _merge_instances(self, model: Model, results: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        upstream = self._by_name[model.bundle.needs["instances"]].bundle
        semantic = results[model.name]
        semantic.panoptic = panoptic.merge(semantic, results[upstream.name], model.bundle.labels, upstream.labels)
        model.timings["postprocess"] += time.perf_counter() - t0

    def _run_on_boxes(self, model: Model, image: np.ndarray, results: dict[str, Any]) -> Any:
        needs = model.bundle.needs
        detector = self._by_name[needs["detector"]].bundle
        detections: Detections = results[detector.name]
        chosen = detections.take(crops.choose(detections, needs, detector.label))
        spec = model.bundle.input
        expand = needs.get("expand", crops.DEFAULT_EXPAND[model.bundle.task])
        per_box = model.on_boxes(image, crops.crop_boxes(chosen.boxes, spec.width / spec.height, expand))
        t0 = time.perf_counter()
        result = crops.gather(model.bundle, chosen, per_box, detector.label)
        model.timings["postprocess"] += time.perf_counter() - t0
        return result

    @property
    def timings_by_model(self) -> dict[str, dict[str, float]]:
        return {m.name: m.timings for m in self.models}

    def to_events(self, results: dict[str, Any]) -> dict[str, Any]:
        return {model.name: model.to_event(results[model.name]) for model in self.models}

    def maps(self, results: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
        """Per bundle, the frame's images worth saving (class ids, instance ids, panoptic ids) by kind."""
        return {m.name: maps for m in self.models if (maps := results[m.name].maps())}

    def draw(self, image: np.ndarray, results: dict[str, Any]) -> None:
        draw_results(image, [(results[m.name], m.bundle.label) for m in self.models])

    @property
    def backend_names(self) -> str:
        return ",".join(sorted({m.backend.name for m in self.models}))

    @property
    def precisions(self) -> str:
        return ",".join(sorted({m.precision for m in self.models}))

    def close(self) -> None:
        for model in self.models:
            model.close()


def _group_by_input(models: Sequence[Model]) -> list[list[Model]]:
    """Models that can share one preprocessed input: same spec but for the tensor's name, same batch size.
    Cascades run alone."""
    groups: dict[object, list[Model]] = {}
    for model in models:
        key = id(model) if model.cascade is not None else (replace(model.bundle.input, name=""), model.batch)
        groups.setdefault(key, []).append(model)
    return list(groups.values())


def _check_needs(bundles: Sequence[Bundle]) -> None:
    """Every ``needs`` names a bundle of this run that gives what is needed; one line naming the field if not."""
    by_name = {b.name: b for b in bundles}
    for bundle in bundles:
        for key, upstream_name in bundle.needs.items():
            if key not in NEEDS_KEYS:
                continue
            where = f"{bundle.root / BUNDLE_FILE}: field 'needs.{key}'"
            upstream = by_name.get(upstream_name)
            if upstream is None:
                raise UsageError(f"{where}: no bundle named '{upstream_name}' in this run "
                                 f"(bundles: {', '.join(by_name)}); add it with --bundle")
            if key == "detector" and upstream.task != "detection":
                raise UsageError(f"{where}: '{upstream_name}' is a {upstream.task} bundle, not a detector")
            if key == "instances" and upstream.decoder != "maskrcnn":
                raise UsageError(f"{where}: '{upstream_name}' has decoder '{upstream.decoder}'; panoptic "
                                 f"merging needs instance masks (decoder maskrcnn)")
        unknown = [c for c in bundle.needs.get("classes", []) if "detector" in bundle.needs
                   and c not in by_name[bundle.needs["detector"]].labels]
        if unknown:
            raise UsageError(f"{bundle.root / BUNDLE_FILE}: field 'needs.classes': '{unknown[0]}' is not a label of "
                             f"'{bundle.needs['detector']}'")
