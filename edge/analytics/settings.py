"""What the analytics settings say (``--analytics FILE``; in ``edge run --config``, ``analytics:`` a file or the
same keys inline): zones, lines, the events' thresholds, snapshots and clips. Read with the run configuration's
checker (:func:`edge.analytics.stage.load_analytics`, :func:`edge.config.load_config`), so a mistake is one
line naming the file, the line and the key (``zones.yaml:7: zones[1].points: ...``).

Example::

    zones:
      - name: table
        points: [[0.25, 0.55], [0.62, 0.55], [0.62, 1.0], [0.25, 1.0]]  # all <= 1: fractions of the frame
        classes: [person]
        dwell_s: 5        # a 'dwell' event once a person has been inside 5 s
        max_count: 3      # a 'count' event when 3 or more are inside at once
    lines:
      - name: road
        points: [[40, 40], [300, 140]]  # pixels; 'in' is crossing from its left to its right, seen from A to B
        classes: [car, bus, truck]
        directions: [southbound, northbound]
    clips: {pre_s: 2, post_s: 3}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Anchor(str, Enum):
    """The point of a box that is in a zone or crosses a line: its bottom centre (the feet) or its centre."""

    BOTTOM = "bottom"
    CENTER = "center"


def _check_points(points: list[list[float]], least: int, most: int | None) -> None:
    count = f"{least}" if most == least else f"at least {least}"
    if len(points) < least or (most is not None and len(points) > most):
        raise ValueError(f"points: {count} [x, y] points, got {len(points)}")
    for point in points:
        if len(point) != 2 or min(point) < 0:
            raise ValueError(f"points: each point is [x, y], pixels or fractions of the frame, not {point}")


@dataclass(frozen=True, kw_only=True)
class ShapeSettings:
    """What zones and lines share: a name, points (pixels, or fractions of the frame when every coordinate
    is at most 1), the detections they count (``classes`` of ``bundle``; default: every class of every
    detection bundle) and the streams they watch (``stream``; default: all)."""

    name: str
    points: list[list[float]]
    classes: list[str] | None = None
    bundle: str | None = None
    stream: str | None = None

    @property
    def normalised(self) -> bool:
        return max(max(p) for p in self.points) <= 1.0


@dataclass(frozen=True, kw_only=True)
class ZoneSettings(ShapeSettings):
    """A polygon. Events: ``enter``/``exit`` per tracked detection, ``dwell`` once one stays ``dwell_s``,
    ``count`` when ``max_count`` or more are inside; for a segmentation bundle, the class fractions inside
    it on every frame, and ``coverage`` when a class covers ``max_fraction`` of it or more."""

    anchor: Anchor = Anchor.BOTTOM
    dwell_s: float | None = None
    max_count: int | None = None
    max_fraction: float | None = None

    def __post_init__(self) -> None:
        _check_points(self.points, 3, None)
        if self.dwell_s is not None and self.dwell_s <= 0:
            raise ValueError(f"dwell_s: must be above 0, got {self.dwell_s}")
        if self.max_count is not None and self.max_count < 1:
            raise ValueError(f"max_count: must be at least 1, got {self.max_count}")
        if self.max_fraction is not None and not 0 < self.max_fraction <= 1:
            raise ValueError(f"max_fraction: a fraction above 0 and at most 1, not {self.max_fraction}")


@dataclass(frozen=True, kw_only=True)
class LineSettings(ShapeSettings):
    """A directed line A → B. Event: ``cross``, with ``directions[0]`` for a crossing from its left to its right
    as seen looking from A to B on the picture, ``directions[1]`` the other way."""

    anchor: Anchor = Anchor.CENTER
    directions: list[str] = field(default_factory=lambda: ["in", "out"])

    def __post_init__(self) -> None:
        _check_points(self.points, 2, 2)
        if len(self.directions) != 2 or self.directions[0] == self.directions[1]:
            raise ValueError(f"directions: two different names, not {self.directions}")


@dataclass(frozen=True)
class ClipSettings:
    """A short video around each event: ``pre_s`` seconds before it (from a ring of recent frames), ``post_s``
    after; events that come while a clip is being written extend it."""

    pre_s: float = 2.0
    post_s: float = 3.0

    def __post_init__(self) -> None:
        if self.pre_s < 0 or self.post_s < 0:
            raise ValueError(f"seconds before and after must not be negative, got {self.pre_s}, {self.post_s}")


@dataclass(frozen=True)
class AnalyticsSettings:
    """Zones and lines with their events; ``snapshots``: a JPEG of the annotated frame of each event; ``clips``;
    ``media_mb``: what snapshots and clips may take on disk, the oldest deleted first. A zone change holds
    after ``debounce`` frames; a tracked detection unseen for ``forget_s`` has left (its ``exit`` then)."""

    zones: list[ZoneSettings] = field(default_factory=list)
    lines: list[LineSettings] = field(default_factory=list)
    snapshots: bool = True
    clips: ClipSettings | None = None
    media_mb: float = 200.0
    debounce: int = 3
    forget_s: float = 2.0

    def __post_init__(self) -> None:
        names = [shape.name for shape in [*self.zones, *self.lines]]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"two zones or lines are named '{repeated[0]}'; events name them")
        if self.media_mb <= 0 or self.debounce < 1 or self.forget_s <= 0:
            raise ValueError("media_mb and forget_s must be above 0, debounce at least 1")
