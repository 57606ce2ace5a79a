"""Calibration and accuracy checking: frame sampling from the user's footage, agreement metrics, INT8."""
