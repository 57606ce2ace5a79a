"""Several bundles run on the same frames: the one call an inference worker makes per frame (or per batch of
frames, one from each stream).

A graph of :class:`~edge.runner.Runner` objects, wired by the bundles' ``needs``: whole-frame runners with the
same input spec share one preprocessing (the first fills its input buffer, the others copy it); a bundle with
``needs.instances`` has its semantic map merged with the named bundle's instance masks into a panoptic map;
a bundle with ``needs.detector`` runs on crops of the named detector's boxes. The needs are checked when the
graph is built, each failure one line naming the field.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from edge import crops, panoptic
from edge.bundle import BUNDLE_FILE, Bundle
from edge.errors import UsageError
from edge.results import Detections, Label
from edge.runner import STAGES, Runner


class RunnerGraph:
    """Runs ``bundles`` on frames; results are keyed by bundle name, as events are.

    ``batch`` asks for at most that many frames per inference call where a bundle's batch dimension is
    dynamic; :attr:`batch` is then the number of frames one call of :meth:`run` should take. ``timings``
    holds the last call's seconds per stage summed over the runners (and frames); ``timings_by_model`` the
    same per bundle.
    """

    def __init__(self, bundles: Sequence[Bundle], backend: str = "auto", threads: int | None = None, *,
                 batch: int = 1, allow_build: bool = True):
        repeated = [name for name, count in Counter(b.name for b in bundles).items() if count > 1]
        if repeated:
            raise UsageError(f"--bundle: two bundles are named '{repeated[0]}'; event results are keyed by name")
        _check_needs(bundles)
        self.runners: list[Runner] = []
        try:
            for bundle in bundles:
                per_call = bundle.needs.max_crops if bundle.needs.detector else batch  # crops, or frames
                self.runners.append(Runner(bundle, backend, threads, batch=per_call, allow_build=allow_build))
        except BaseException:
            self.close()
            raise
        self._by_name = {r.name: r for r in self.runners}
        self._groups = _group_by_input([r for r in self.runners if not r.bundle.needs.detector])
        self._panoptic = [r for r in self.runners if r.bundle.needs.instances]
        self._on_boxes = [r for r in self.runners if r.bundle.needs.detector]
        # The detector's class ids each crop-driven bundle takes, found once (``needs.classes`` names labels).
        self._wanted = {r.name: crops.wanted_classes(r.bundle.needs, self._detector_of(r).bundle.labels)
                        for r in self._on_boxes}
        self.timings = dict.fromkeys(STAGES, 0.0)
        self.ran: dict[str, int] = {}
        # Bundles that may run on a moving region instead of the whole frame: whole-frame detectors whose input no
        # other task shares (a segmentation map must cover the frame); the tracker holds their boxes elsewhere.
        self.croppable = frozenset(r.name for group in self._groups if all(
            m.bundle.task == "detection" and m.cascade is None for m in group) for r in group)
        # Frames one call should take: the largest batch a whole-frame runner runs in one inference call.
        self.batch = max((r.batch for group in self._groups for r in group), default=1)

    @property
    def labels(self) -> dict[str, Label]:
        """Each bundle's class id → label name, for what turns results into events and pictures."""
        return {r.name: r.bundle.label for r in self.runners}

    def __call__(self, image: np.ndarray) -> dict[str, Any]:
        return self.run([image])[0]

    def run(self, images: Sequence[np.ndarray], only: Sequence[Collection[str]] | None = None,
            regions: Sequence[tuple[int, int, int, int] | None] | None = None) -> list[dict[str, Any]]:
        """Each frame's results by bundle name; each runner takes the frames ``runner.batch`` per inference call.

        ``only``: per frame, the bundles to run on it (:class:`edge.schedule.FramePlan`; default all); a bundle
        not run on a frame has no entry in its results, and :attr:`ran` counts the frames each bundle ran on.
        Runners that share an input share its preprocessing on the frames they both run on. ``regions``: per
        frame, the part the :attr:`croppable` bundles run on (motion cropping), or ``None`` for all of it."""
        for runner in self.runners:
            runner.reset_timings()
        wanted = [self._by_name.keys() if only is None else only[i] for i in range(len(images))]
        frames: list[dict[str, Any]] = [{} for _ in images]
        for group in self._groups:
            by_frames: dict[tuple[int, ...], list[Runner]] = {}
            for runner in group:
                chosen = tuple(i for i, names in enumerate(wanted) if runner.name in names)
                if chosen:
                    by_frames.setdefault(chosen, []).append(runner)
            crops = regions is not None and group[0].name in self.croppable
            for chosen, members in by_frames.items():
                parts = [regions[i] for i in chosen] if crops else None
                for name, results in self._run_group(members, [images[i] for i in chosen], parts).items():
                    for i, result in zip(chosen, results):
                        frames[i][name] = result
        for image, names, results in zip(images, wanted, frames):
            for runner in self._panoptic:
                if runner.name in results:
                    self._merge_instances(runner, results)
            for runner in self._on_boxes:
                if runner.name in names:
                    results[runner.name] = self._run_on_boxes(runner, image, results)
        for stage in STAGES:
            self.timings[stage] = sum(r.timings[stage] for r in self.runners)
        self.ran = {r.name: sum(r.name in results for results in frames) for r in self.runners}
        return [{r.name: results[r.name] for r in self.runners if r.name in results} for results in frames]

    @staticmethod
    def _run_group(group: Sequence[Runner], images: Sequence[np.ndarray],
                   regions: Sequence[tuple[int, int, int, int] | None] | None) -> dict[str, list[Any]]:
        """Runners of one input spec on the same frames (or their ``regions``): the first preprocesses, the
        others copy its input."""
        lead = group[0]
        if lead.cascade is not None:
            return {lead.name: lead.run(images)}
        found: dict[str, list[Any]] = {runner.name: [] for runner in group}
        for start in range(0, len(images), lead.batch):
            part = None if regions is None else regions[start:start + lead.batch]
            transforms = lead.prepare(images[start:start + lead.batch], shared=len(group) > 1, regions=part)
            for runner in group[1:]:
                runner.adopt(lead, len(transforms))
            for runner in group:
                found[runner.name].extend(runner.finish(transforms))
        return found

    def _detector_of(self, runner: Runner) -> Runner:
        return self._by_name[runner.bundle.needs.detector]

    def _merge_instances(self, runner: Runner, results: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        upstream = self._by_name[runner.bundle.needs.instances].bundle
        semantic = results[runner.name]
        semantic.panoptic = panoptic.merge(semantic, results[upstream.name], runner.bundle.labels, upstream.labels)
        runner.timings["postprocess"] += time.perf_counter() - t0

    def _run_on_boxes(self, runner: Runner, image: np.ndarray, results: dict[str, Any]) -> Any:
        needs, spec = runner.bundle.needs, runner.bundle.input
        detector = self._detector_of(runner).bundle
        detections: Detections = results[detector.name]
        chosen = detections.take(crops.choose(detections, needs, self._wanted[runner.name]))
        expand = needs.expand_for(runner.bundle.task)
        per_box = runner.on_boxes(image, crops.crop_boxes(chosen.boxes, spec.width / spec.height, expand))
        t0 = time.perf_counter()
        result = crops.gather(runner.bundle, chosen, per_box, detector.label)
        runner.timings["postprocess"] += time.perf_counter() - t0
        return result

    @property
    def timings_by_model(self) -> dict[str, dict[str, float]]:
        return {r.name: r.timings for r in self.runners}

    @property
    def backend_names(self) -> str:
        return ",".join(sorted({r.backend.name for r in self.runners}))

    @property
    def precisions(self) -> str:
        return ",".join(sorted({r.precision for r in self.runners}))

    def close(self) -> None:
        for runner in self.runners:
            runner.close()


def make_workers(bundles: Sequence[Bundle], backend: str = "auto", threads: int | None = None,
                 workers: int | None = None, *, batch: int = 1, allow_build: bool = True) -> list[RunnerGraph]:
    """One RunnerGraph per inference worker, each with its own sessions and buffers so they never contend. By
    default two workers share the CPUs between them: ONNX Runtime scales poorly past one thread on a small
    model (YOLOX-nano on the issue's reference machine: 13.3 ms on 1 thread, 8.9 ms on 2), so two sessions
    fed in parallel do more frames per second than one two-thread session. On a 2-core VM the two layouts
    measured within noise of each other (see the issue note); ``--workers 1 --threads 2`` selects the other.
    ``batch``: frames of several streams per inference call, where the bundles' batch dimension allows."""
    count, per_worker = default_layout(workers, threads)
    graphs: list[RunnerGraph] = []
    try:
        for _ in range(count):
            graphs.append(RunnerGraph(bundles, backend, per_worker, batch=batch, allow_build=allow_build))
    except BaseException:
        for graph in graphs:
            graph.close()
        raise
    return graphs


def default_layout(workers: int | None, threads: int | None) -> tuple[int, int]:
    """Inference workers and threads per worker: as given, else two workers on 2+ CPUs, sharing the CPUs."""
    from edge.backends.onnxruntime import usable_cpus

    cpus = usable_cpus()
    count = workers or (2 if cpus >= 2 else 1)
    return count, threads or max(1, cpus // count)


def _group_by_input(runners: Sequence[Runner]) -> list[list[Runner]]:
    """Runners that can share one preprocessed input: same spec but for the tensor's name, same batch size.
    Cascades run alone."""
    groups: dict[object, list[Runner]] = {}
    for runner in runners:
        key = id(runner) if runner.cascade is not None else (replace(runner.bundle.input, name=""), runner.batch)
        groups.setdefault(key, []).append(runner)
    return list(groups.values())


def _check_needs(bundles: Sequence[Bundle]) -> None:
    """Every ``needs`` names a bundle of this run that gives what is needed; one line naming the field if not."""
    by_name = {b.name: b for b in bundles}
    for bundle in bundles:
        if bundle.needs:
            key, upstream_name = bundle.needs.kind, bundle.needs.upstream
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
        unknown = [c for c in bundle.needs.classes or () if bundle.needs.detector
                   and c not in by_name[bundle.needs.detector].labels]
        if unknown:
            raise UsageError(f"{bundle.root / BUNDLE_FILE}: field 'needs.classes': '{unknown[0]}' is not a label of "
                             f"'{bundle.needs.detector}'")
