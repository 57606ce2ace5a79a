"""The analytics counters as Prometheus metric families, read from :meth:`AnalyticsStage.summary` at scrape time
(the frame loop pays nothing for them)."""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from edge.analytics.stage import AnalyticsStage

ZONE_EVENTS = ("enter", "exit", "dwell")


def metric_families(stage: AnalyticsStage) -> list:
    zone_events = CounterMetricFamily("edge_zone_events", "Zone events by type and label",
                                      labels=["stream", "zone", "type", "label"])
    inside = GaugeMetricFamily("edge_zone_inside", "Tracked detections inside a zone now",
                               labels=["stream", "zone", "label"])
    crossings = CounterMetricFamily("edge_line_crossings", "Line crossings by direction and label",
                                    labels=["stream", "line", "direction", "label"])
    for stream, counts in stage.summary().items():
        for zone, totals in counts["zones"].items():
            for kind in ZONE_EVENTS:
                for label, count in totals.get(kind, {}).items():
                    zone_events.add_metric([stream, zone, kind, label], count)
            for label, count in totals.get("inside", {}).items():
                inside.add_metric([stream, zone, label], count)
        for line, directions in counts["lines"].items():
            for direction, by_label in directions.items():
                for label, count in by_label.items():
                    crossings.add_metric([stream, line, direction, label], count)
    return [zone_events, inside, crossings]
