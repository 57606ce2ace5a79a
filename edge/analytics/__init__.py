"""Zones, lines and their events over tracked detections and segmentation maps (``--analytics``), with snapshots
and clips of the frames where they happen. :mod:`edge.analytics.settings` is what the settings say (and all
:mod:`edge.config` imports, so this package imports nothing itself); :mod:`edge.analytics.stage` is where they
run in the pipeline."""
