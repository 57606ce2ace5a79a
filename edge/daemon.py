"""``edge run``: the daemon. Live sources through the pipeline into every configured sink, until stopped.

Life cycle: load bundles and open the outputs → start the HTTP server → start the pipeline → tell systemd
``READY=1`` → ping its watchdog while the pipeline makes progress → on SIGTERM/SIGINT stop reading, drain
what is in flight, finalise the video files, flush the events, write ``summary.json``, tell systemd
``STOPPING=1``, exit 0. Sources that fail are reopened by their feeds (see :mod:`streams.feed`); a second
signal while draining is ignored rather than cutting the drain short (systemd's ``TimeoutStopSec`` is
the backstop).
"""

from __future__ import annotations

import logging
import signal
import socket
from typing import Any

from edge.config import DaemonConfig
from edge.pipeline import Sink
from edge.pipeline.sinks import MqttSink, PreviewSink
from edge.session import RunSession
from edge.systemd import SystemdNotifier
from edge.telemetry import health, metrics_route, registry_for, status
from streams.feed import SourceSpec
from streams.frame_queue import DropPolicy
from streams.uris import is_live, stream_name

log = logging.getLogger("edge.daemon")
DEFAULT_OUT = "out/run"
DEFAULT_STALL_S = 30.0


def source_specs(config: DaemonConfig) -> list[SourceSpec]:
    """One spec per source. Live sources and files played in real time keep the latest frame and drop the
    rest; a file read as fast as possible is lossless. Names are made unique, as events are keyed by them."""
    specs, seen = [], set()
    for index, source in enumerate(config.sources):
        name = source.name or stream_name(source.url)
        if name in seen:
            name = f"{name}-{index}"
        seen.add(name)
        live = is_live(source.url)
        specs.append(SourceSpec(
            source.url, index, name, source.capture_settings(), realtime=source.realtime and not live,
            reconnect=live if source.reconnect is None else source.reconnect,
            policy=DropPolicy.LATEST if live or source.realtime else DropPolicy.LOSSLESS))
    return specs


class Daemon(RunSession):
    """The run session of ``edge run``, with its HTTP server, MQTT, signals and systemd."""

    config: DaemonConfig

    def __init__(self, config: DaemonConfig):
        self.notifier = SystemdNotifier()
        self.server = None
        self.signalled = False
        super().__init__(config, source_specs(config), DEFAULT_OUT, backoff=config.reconnect)
        try:
            self._serve()
        except BaseException:
            self._close()
            raise

    def events_rotation(self) -> tuple[int | None, int]:
        events = self.config.events
        return (int(events.max_mb * 2**20) if events.max_mb else None), events.backups

    def more_sinks(self) -> list[Sink]:
        c = self.config
        sinks: list[Sink] = []
        if c.http.port is not None:
            from streams.http import FrameHub

            self.hub = FrameHub([s.name for s in self.specs], c.http.preview_fps)
            sinks.append(PreviewSink(self.hub))
        if c.mqtt is not None:
            from streams.mqtt import MqttPublisher

            m = c.mqtt
            publisher = MqttPublisher(m.host, m.port, client_id=m.client_id, username=m.username,
                                      password=m.password, qos=m.qos)
            sinks.append(MqttSink(publisher, m.topic, c.device or socket.gethostname(), m.analytics_topic))
        return sinks

    def _serve(self) -> None:
        http = self.config.http
        if http.port is None:
            return
        from streams.http import PreviewServer, json_route

        stall_limit = self.notifier.stall_limit_s(DEFAULT_STALL_S)
        routes = {"/metrics": metrics_route(registry_for(self.pipeline)),
                  "/health": json_route(lambda: health(self.pipeline, stall_limit)),
                  "/status.json": json_route(lambda: (200, status(self.pipeline)))}
        self.server = PreviewServer(self.hub, routes, http.host, http.port, http.token).start()
        log.info("http listening", extra={"host": http.host, "port": self.server.port})

    def _on_signal(self, number: int, _frame: object) -> None:
        if not self.signalled:
            log.info("stopping", extra={"signal": signal.Signals(number).name})
        self.signalled = True
        self.pipeline.stop()

    def run(self) -> int:
        """Runs until every source ended or a signal; returns the exit code."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        stall_limit = self.notifier.stall_limit_s(DEFAULT_STALL_S)
        try:
            log.info("running", extra={"streams": [s.name for s in self.specs], "out": str(self.out),
                                       "workers": len(self.workers), "batch": self.pipeline.batch,
                                       "decode": self.config.decode.value})
            self.notifier.notify("READY=1", "STATUS=running")
            self.pipeline.run(on_tick=lambda: self.notifier.ping(self.pipeline.stalled_s() < stall_limit))
        finally:
            self.notifier.notify("STOPPING=1")
            for number, handler in previous.items():
                signal.signal(number, handler)
            self._close()
        failures = self.pipeline.source_errors()
        if failures and not self.signalled:
            raise failures[0]
        return 0

    def _close(self) -> dict[str, Any]:
        """Closes the server and every output even if one fails; writes the summary last."""
        try:
            if self.server is not None:
                self.server.close()
        finally:
            try:
                summary = self.close()
                log.info("stopped", extra={k: summary[k] for k in ("frames", "dropped", "fps", "streams")})
            finally:
                self.notifier.close()
        return summary
