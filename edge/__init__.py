"""edge: computer-vision runtime for NVIDIA Jetson-class devices.

The runtime half of the project. It never imports torch: the device may not have it.
"""

__version__ = "0.1.0"
