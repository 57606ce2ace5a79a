"""The daemon's HTTP face: a live MJPEG preview per stream on the live page (:mod:`streams.live_page`), plus
whatever text routes it is given (metrics, health, status). Standard library only (``ThreadingHTTPServer``):
one thread per client.

Binding: 127.0.0.1 by default. Bound to any other address the server requires a token, sent as
``Authorization: Bearer TOKEN`` or ``?token=TOKEN`` (the page passes its own on to the stream and status
requests), compared in constant time.

The preview costs nothing while nobody watches: :class:`FrameHub` counts watchers per stream, and the
producer encodes a JPEG only when someone is connected, at most ``max_fps`` times a second.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qs, urlsplit

from streams.live_page import page

Route = Callable[[], tuple[int, str, bytes]]  # () → (status, content type, body)
BOUNDARY = "edgeframe"


class Preview(NamedTuple):
    """A stream's latest JPEG and its number, so a client waits for a newer one than it sent."""

    number: int
    jpeg: bytes


class FrameHub:
    """The latest JPEG per stream, handed from the pipeline to any number of MJPEG clients."""

    def __init__(self, streams: list[str], max_fps: float = 15.0):
        self.streams = streams
        self.min_interval = 1.0 / max_fps
        self._frames: dict[str, Preview] = {}
        self._watchers = dict.fromkeys(streams, 0)
        self._last: dict[str, float] = {}
        self._condition = threading.Condition()

    def wants(self, stream: str) -> bool:
        """Whether a frame of ``stream`` should be encoded now (someone watches and it is due)."""
        return (self._watchers.get(stream, 0) > 0
                and time.monotonic() - self._last.get(stream, 0.0) >= self.min_interval)

    def publish(self, stream: str, jpeg: bytes) -> None:
        with self._condition:
            number = self._frames[stream].number + 1 if stream in self._frames else 1
            self._frames[stream] = Preview(number, jpeg)
            self._last[stream] = time.monotonic()
            self._condition.notify_all()

    def next_frame(self, stream: str, after: int, timeout: float) -> Preview | None:
        """The stream's latest frame once it is newer than number ``after``; ``None`` after ``timeout`` s."""
        def newer() -> bool:
            return stream in self._frames and self._frames[stream].number > after

        with self._condition:
            return self._frames[stream] if self._condition.wait_for(newer, timeout) else None

    def watch(self, stream: str, delta: int) -> None:
        with self._condition:
            self._watchers[stream] = self._watchers.get(stream, 0) + delta


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class PreviewServer:
    """Serves ``/`` (page), ``/stream.mjpg?stream=NAME`` and the given ``routes`` in background threads."""

    def __init__(self, hub: FrameHub, routes: dict[str, Route], host: str = "127.0.0.1", port: int = 8080,
                 token: str | None = None):
        if not is_loopback(host) and not token:
            raise ValueError(f"http.host {host} is not loopback: a token is required")
        self.hub, self.routes, self.token = hub, routes, token
        self.stopping = threading.Event()
        self.server = ThreadingHTTPServer((host, port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="http", daemon=True)

    def start(self) -> PreviewServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.stopping.set()
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which never ran on a server not started
            self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # requests are not worth a log line each
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                if server.token and not self._authorised(query):
                    self._reply(401, "text/plain", b"token required\n")
                    return
                if url.path in ("/", "/index.html"):
                    self._reply(200, "text/html; charset=utf-8", page(server.hub.streams, server.token))
                elif url.path == "/stream.mjpg":
                    self._stream(query.get("stream", server.hub.streams[:1])[0])
                elif url.path in server.routes:
                    self._reply(*server.routes[url.path]())
                else:
                    self._reply(404, "text/plain", b"not found\n")

            def _authorised(self, query: dict[str, list[str]]) -> bool:
                header = self.headers.get("Authorization", "")
                given = header[7:] if header.startswith("Bearer ") else query.get("token", [""])[0]
                return hmac.compare_digest(given.encode(), server.token.encode())

            def _reply(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, stream: str) -> None:
                if stream not in server.hub.streams:
                    self._reply(404, "text/plain", f"no stream {stream!r}\n".encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                server.hub.watch(stream, +1)
                try:
                    number = 0
                    while not server.stopping.is_set():
                        latest = server.hub.next_frame(stream, number, timeout=1.0)
                        if latest is None:
                            continue
                        number, jpeg = latest
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the viewer left
                finally:
                    server.hub.watch(stream, -1)

        return Handler


def json_route(produce: Callable[[], tuple[int, object]]) -> Route:
    def route() -> tuple[int, str, bytes]:
        status, document = produce()
        return status, "application/json", json.dumps(document).encode()

    return route
