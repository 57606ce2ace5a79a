"""A network camera stand-in: serves real footage as HTTP MJPEG on loopback at the file's frame rate.

Run as ``python -m tests.helpers.mjpeg_server VIDEO PORT [STALL_AFTER]``; tests kill and restart it to make
the stream drop. With STALL_AFTER, each client gets that many frames, then nothing more on a connection
that stays open: a camera that stalls.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2


def load_jpegs(video: str, limit: int = 250) -> tuple[list[bytes], float]:
    capture = cv2.VideoCapture(video)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    jpegs = []
    while len(jpegs) < limit:
        ok, image = capture.read()
        if not ok:
            break
        jpegs.append(cv2.imencode(".jpg", image)[1].tobytes())
    return jpegs, fps


def serve(video: str, port: int, stall_after: int | None = None) -> None:
    jpegs, fps = load_jpegs(video)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            start, n = time.monotonic(), 0
            try:
                while True:
                    if stall_after is not None and n >= stall_after:
                        time.sleep(3600)
                    jpeg = jpegs[n % len(jpegs)]
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                     % (len(jpeg), jpeg))
                    n += 1
                    time.sleep(max(0.0, start + n / fps - time.monotonic()))
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else None)
