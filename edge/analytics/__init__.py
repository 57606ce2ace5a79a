"""Zones, lines and their events over tracked detections and segmentation maps (``--analytics FILE``), with
snapshots and clips of the frames where they happen. See :mod:`edge.analytics.settings` for the file and
:mod:`edge.analytics.stage` for where it runs in the pipeline."""

from edge.analytics.settings import AnalyticsSettings, load_analytics
from edge.analytics.stage import AnalyticsStage, FrameAnalytics

__all__ = ["AnalyticsSettings", "AnalyticsStage", "FrameAnalytics", "load_analytics"]
