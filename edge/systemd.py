"""sd_notify: readiness, watchdog and stopping messages to systemd (``Type=notify``, ``WatchdogSec=``).

The protocol is one datagram of ``KEY=VALUE`` lines to the Unix socket named by ``$NOTIFY_SOCKET`` (a
leading ``@`` means the abstract namespace), so it is written here rather than pulled in as a dependency.
Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing.

The watchdog is pinged from the pipeline's dispatcher loop and only while the pipeline makes progress, so
a daemon whose inference or sinks hang stops pinging and systemd restarts it (``Restart=on-failure``).
"""

from __future__ import annotations

import os
import socket
import time


class SystemdNotifier:
    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.socket: socket.socket | None = None
        if self.address:
            self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and (not pid or pid == str(os.getpid()))
        # systemd's advice: ping at half the timeout.
        self.watchdog_interval_s: float | None = int(usec) / 2e6 if watched else None
        self._last_ping = 0.0

    def notify(self, *states: str) -> None:
        if self.socket is not None:
            try:
                self.socket.sendto("\n".join(states).encode(), self.address)
            except OSError:
                pass  # systemd went away (shutdown); nothing to tell

    def ping(self, healthy: bool) -> None:
        """Sends ``WATCHDOG=1`` when it is due and ``healthy``."""
        if self.watchdog_interval_s is None or not healthy:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_interval_s:
            self.notify("WATCHDOG=1")
            self._last_ping = now

    def stall_limit_s(self, default: float) -> float:
        """How long the pipeline may make no progress before it counts as hung: the watchdog's timeout."""
        return self.watchdog_interval_s * 2 if self.watchdog_interval_s else default

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
