"""``edge run``: the daemon. Live sources through the pipeline into every configured sink, until stopped.

Life cycle: load bundles and open the outputs → start the HTTP server → start the pipeline → tell systemd
``READY=1`` → ping its watchdog while the pipeline makes progress → on SIGTERM/SIGINT stop reading, drain
what is in flight, finalise the video files, flush the events, write ``summary.json``, tell systemd
``STOPPING=1``, exit 0 (stopping is the daemon's normal end). Sources that fail are reopened by their feeds
(see :mod:`streams.feed`); a second signal while draining is ignored rather than cutting the drain short
(systemd's ``TimeoutStopSec`` is the backstop).

The HTTP port is bound first, before a bundle is loaded or a file touched: a port in use or not allowed is a
usage error (exit 2) naming ``http.port``. A restarted daemon keeps what the run before it wrote: events are
appended, earlier videos renamed aside (:class:`edge.session.EarlierRun`).
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from typing import Any

from edge.config import DaemonConfig
from edge.errors import UsageError
from edge.live import History, live_status
from edge.pipeline import Sink
from edge.pipeline.sinks import LatestEvents, MqttSink, PreviewSink
from edge.session import EarlierRun, RunSession
from edge.systemd import SystemdNotifier
from edge.telemetry import PerfLog, health, metrics_route, registry_for
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
        self.history: History | None = None
        specs = source_specs(config)
        self.server = self._bind(config, specs)
        try:
            super().__init__(config, specs, DEFAULT_OUT, backoff=config.reconnect, earlier=EarlierRun.KEEP)
        except BaseException:
            if self.server is not None:
                self.server.close()
            raise
        try:
            self._serve()
        except BaseException:
            self._close()
            raise

    def _bind(self, config: DaemonConfig, specs: list[SourceSpec]):
        """The HTTP server bound to its port (not yet serving), or ``None`` without ``http.port``."""
        http = config.http
        if http.port is None:
            return None
        from streams.http import FrameHub, PreviewServer

        self.hub = FrameHub([s.name for s in specs], http.preview_fps)
        try:
            return PreviewServer(self.hub, {}, http.host, http.port, http.token)
        except OSError as e:
            reason = "in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
            raise UsageError(f"http.port (--http-port): cannot listen on {http.host}:{http.port} ({reason})") from None

    def events_rotation(self) -> tuple[int | None, int]:
        events = self.config.events
        return (int(events.max_mb * 2**20) if events.max_mb else None), events.backups

    def more_sinks(self) -> list[Sink]:
        c = self.config
        sinks: list[Sink] = []
        if self.server is not None:
            self.latest = LatestEvents()
            sinks += [PreviewSink(self.hub), self.latest]
        if c.mqtt is not None:
            from streams.mqtt import MqttPublisher

            m = c.mqtt
            publisher = MqttPublisher(m.host, m.port, client_id=m.client_id, username=m.username,
                                      password=m.password, qos=m.qos)
            sinks.append(MqttSink(publisher, m.topic, c.device or socket.gethostname(), m.analytics_topic))
        return sinks

    def _serve(self) -> None:
        if self.server is None:
            return
        from streams.http import json_route

        stall_limit = self.notifier.stall_limit_s(DEFAULT_STALL_S)
        self.history = History(self.pipeline)
        started = time.monotonic()
        self.server.routes.update({
            "/metrics": metrics_route(registry_for(self.pipeline, self.labels)),
            "/health": json_route(lambda: health(self.pipeline, stall_limit)),
            "/status.json": json_route(lambda: (200, live_status(self.pipeline, self.history, self.latest, started))),
        })
        self.server.start()
        log.info("http listening", extra={"host": self.config.http.host, "port": self.server.port})

    def run(self) -> int:
        """Runs until every source ended or a signal; returns the exit code."""
        stall_limit = self.notifier.stall_limit_s(DEFAULT_STALL_S)
        try:
            log.info("running", extra={"streams": [s.name for s in self.specs], "out": str(self.out),
                                       "workers": len(self.workers), "batch": self.pipeline.batch,
                                       "decode": self.config.decode.value})
            self.notifier.notify("READY=1", "STATUS=running")
            perf = PerfLog(self.pipeline, self.config.perf_s) if self.config.perf_s else None

            def tick() -> None:
                self.notifier.ping(self.pipeline.stalled_s() < stall_limit)
                if perf is not None:
                    perf.tick()
                if self.history is not None:
                    self.history.tick()

            self.pipeline.run(on_tick=tick)
        finally:
            self.notifier.notify("STOPPING=1")
            self._close()
        failures = self.pipeline.source_errors()
        if failures and self.stop_signal.signal is None:
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
