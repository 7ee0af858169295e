"""Tells systemd how the camera is (a ``Type=notify`` service with ``WatchdogSec``): READY=1 once
it records-ready, WATCHDOG=1 while frames keep coming, STOPPING=1 on the way out.

The protocol is one datagram per message to the unix socket named in ``$NOTIFY_SOCKET`` (no
library needed). Outside systemd there is no socket and every call does nothing.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class ServiceNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = environ.get("WATCHDOG_USEC", "")
        #: how often to say WATCHDOG=1: half the watchdog period, as systemd advises
        self.watchdog_interval_s = int(usec) / 2e6 if usec.isdigit() else None
        self._last_alive = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, message: str) -> bool:
        if not self.address:
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(self.address)
            sock.sendall(message.encode())
        return True

    def ready(self, status: str = "buffering") -> None:
        self.notify(f"READY=1\nSTATUS={status}")

    def alive(self) -> None:
        """WATCHDOG=1, at most once per half watchdog period (call it as often as you like)."""
        if self.watchdog_interval_s is None:
            return
        now = time.monotonic()
        if now - self._last_alive >= self.watchdog_interval_s:
            self._last_alive = now
            self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
