"""edge: computer-vision runtime for NVIDIA Jetson-class devices.

The runtime half of the project. It never imports torch: the device may not have it.
"""

import os

__version__ = "0.1.0"

# OpenCV reads its log level when cv2 is imported (up to 4.8; later builds also take it at run time, which
# edge.logs.quiet_native_logs does): edge reports what goes wrong in its own words, on one line, so OpenCV's own
# '[ WARN ]' lines stay off unless asked for (OPENCV_LOG_LEVEL=INFO, or --debug where OpenCV allows it).
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
