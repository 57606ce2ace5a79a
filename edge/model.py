"""A bundle ready to run on frames: preprocess → backend → decoder, each stage timed.

The runtime's equivalent of jetson-inference's ``detectNet``: one small object per loaded model, with
the engine work (backend) split from the task work (decoder).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.backends import open_backend
from edge.bundle import BUNDLE_FILE, Bundle, load_bundle
from edge.decoders import DECODERS
from edge.draw import draw_result
from edge.errors import BadInputError, UsageError
from edge.preprocess import Preprocessor

STAGES = ("preprocess", "infer", "postprocess")


class Model:
    """Runs one bundle on BGR frames. ``timings`` holds the last call's seconds per stage."""

    def __init__(self, bundle: Bundle, backend: str = "auto", threads: int | None = None, *, slots: int = 1,
                 allow_build: bool = True):
        self.bundle = bundle
        self.backend = open_backend(bundle, backend, slots=slots, threads=threads, allow_build=allow_build)
        self._check_input()
        self.preprocess = Preprocessor(bundle.input)
        self.decoder = DECODERS[bundle.decoder](bundle, self.backend.outputs)
        self.slot = self.backend.slots[0]
        self.input_buffer = self.slot.inputs[bundle.input.name]
        self.timings = dict.fromkeys(STAGES, 0.0)

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
        t0 = time.perf_counter()
        transform = self.preprocess(image, self.input_buffer)
        t1 = time.perf_counter()
        outputs = self.backend.run(self.slot)
        t2 = time.perf_counter()
        result = self.decoder(outputs, transform)
        t3 = time.perf_counter()
        self.timings["preprocess"], self.timings["infer"], self.timings["postprocess"] = t1 - t0, t2 - t1, t3 - t2
        return result

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

    def to_event(self, result: Any) -> dict[str, Any]:
        return result.to_event(self.bundle.label)

    def close(self) -> None:
        self.backend.close()

class ModelSet:
    """Several bundles run on the same frame: the one call a stream loop makes per frame.

    Results are keyed by bundle name, as events are. ``timings`` holds the last frame's seconds per stage,
    summed over the models.
    """

    def __init__(self, bundles: Sequence[Bundle], backend: str = "auto", threads: int | None = None, *,
                 allow_build: bool = True):
        repeated = [name for name, count in Counter(b.name for b in bundles).items() if count > 1]
        if repeated:
            raise UsageError(f"--bundle: two bundles are named '{repeated[0]}'; event results are keyed by name")
        self.models: list[Model] = []
        try:
            for bundle in bundles:
                self.models.append(Model(bundle, backend, threads, allow_build=allow_build))
        except BaseException:
            self.close()
            raise
        self.timings = dict.fromkeys(STAGES, 0.0)

    @classmethod
    def load(cls, bundle_dirs: Sequence[str | Path], backend: str = "auto", threads: int | None = None, *,
             allow_build: bool = True) -> ModelSet:
        """``allow_build=False`` forbids building a TensorRT engine at load (see :func:`edge.backends.open_backend`)."""
        return cls([load_bundle(d) for d in bundle_dirs], backend, threads, allow_build=allow_build)

    def __call__(self, image: np.ndarray) -> dict[str, Any]:
        results = {}
        for stage in STAGES:
            self.timings[stage] = 0.0
        for model in self.models:
            results[model.name] = model(image)
            for stage, seconds in model.timings.items():
                self.timings[stage] += seconds
        return results

    def to_events(self, results: dict[str, Any]) -> dict[str, Any]:
        return {model.name: model.to_event(results[model.name]) for model in self.models}

    def draw(self, image: np.ndarray, results: dict[str, Any]) -> None:
        for model in self.models:
            draw_result(image, results[model.name], model.bundle.label)

    @property
    def backend_names(self) -> str:
        return ",".join(sorted({m.backend.name for m in self.models}))

    @property
    def precisions(self) -> str:
        return ",".join(sorted({m.precision for m in self.models}))

    def close(self) -> None:
        for model in self.models:
            model.close()
