"""Run-time thresholds and filters: a run's ``--score/--iou/--classes/--max-det`` (and per bundle,
``thresholds: {NAME: {...}}``) put in place of each bundle's own ``thresholds`` before its runner opens.

The decoders read ``bundle.thresholds`` as they always did, so a threshold given at run time is applied where
the bundle's would be (the score before NMS, the IoU in it); ``classes`` is applied by the runner to detection
results (:class:`edge.runner.Runner`). A mistake is a usage error naming the option and what it could be:
a bundle the run does not have, a label the bundle does not have (with its labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from edge.bundle import Bundle
from edge.config import Filters, RunConfig, flag_of
from edge.errors import UsageError

_THRESHOLD_KEYS = {"score": "score", "iou": "iou", "max_det": "max_detections", "classes": "classes"}


def apply_filters(bundles: Sequence[Bundle], config: RunConfig) -> list[Bundle]:
    """Each bundle with its thresholds overridden: ``config.thresholds[name]`` over the run options over
    ``bundle.json``. Run-wide ``classes`` apply to the detection bundles (it must name labels of each)."""
    names = [b.name for b in bundles]
    unknown = [name for name in config.thresholds if name not in names]
    if unknown:
        raise UsageError(f"{flag_of('thresholds')} {unknown[0]}: no bundle named '{unknown[0]}' in this run "
                         f"(bundles: {', '.join(names)})")
    if config.classes is not None and not any(b.task == "detection" for b in bundles):
        raise UsageError(f"{flag_of('classes')}: no detection bundle in this run to filter "
                         f"(bundles: {', '.join(f'{b.name} ({b.task})' for b in bundles)})")
    return [_apply(bundle, config, config.thresholds.get(bundle.name)) for bundle in bundles]


def _apply(bundle: Bundle, run: Filters, own: Filters | None) -> Bundle:
    changes = {}
    for key, field in _THRESHOLD_KEYS.items():
        value, where = getattr(own, key, None) if own is not None else None, f"thresholds.{bundle.name}.{key}"
        if value is None:
            value, where = getattr(run, key), flag_of(key)
            if key == "classes" and bundle.task != "detection":
                continue  # run-wide classes are for the detectors of the run
        if value is None:
            continue
        if key == "classes":
            value = tuple(_check_labels(bundle, value, where))
        changes[field] = value
    return replace(bundle, thresholds=replace(bundle.thresholds, **changes)) if changes else bundle


def _check_labels(bundle: Bundle, classes: Sequence[str], where: str) -> Sequence[str]:
    if bundle.task != "detection":
        raise UsageError(f"{where}: '{bundle.name}' is a {bundle.task} bundle; classes filter detections")
    unknown = [c for c in classes if c not in bundle.labels]
    if unknown:
        raise UsageError(f"{where}: '{unknown[0]}' is not a label of bundle '{bundle.name}' "
                         f"(labels: {', '.join(bundle.labels)})")
    return classes

