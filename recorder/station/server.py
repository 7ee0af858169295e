"""The station's HTTP server: uvicorn with an h11 protocol that enforces the connection limits.

uvicorn times out only an idle keep-alive connection: a client that sends one header line every
few seconds, or a body byte now and then, holds its connection (and a file descriptor) forever,
and enough of them lock everyone out. ``StationProtocol`` adds what it lacks:

* a header timeout: the request line and headers must arrive within ``header_timeout_s`` of the
  connection opening (or of the previous answer on a kept-alive connection);
* a body timeout: while a body is arriving, no pause longer than ``body_timeout_s`` (not counted
  while the station itself has stopped reading because the app is busy with what came);
* a connection limit, in all and per client address: a connection over either is closed at
  once, before it costs anything, so one client cannot take the file descriptors of all.

``server_config`` builds the one uvicorn Config that ``bwv station serve`` and the tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from .limits import ACCEPT_BACKLOG, Limits


def _client_host(protocol: object) -> str | None:
    """The peer address of one of uvicorn's open connections (any protocol class)."""
    client = getattr(protocol, "client", None)
    return str(client[0]) if isinstance(client, tuple) and client else None


def _closing(protocol: object) -> bool:
    """Whether one of uvicorn's connections is being closed (or never got a transport)."""
    transport = getattr(protocol, "transport", None)
    return transport is None or bool(transport.is_closing())


class StationProtocol(H11Protocol):
    """uvicorn's h11 protocol with header and body timeouts and connection limits; the limits
    are class attributes, set by ``protocol_for``."""

    limits = Limits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._over_limit():
            self.transport.close()
            return
        self._arm_header_timer()

    def _over_limit(self) -> bool:
        # connections the station is already closing (a burst over the limit, timed-out slow
        # headers) stay in the set until the loop reports them lost: they do not count, or a
        # client arriving just after a burst is refused for connections that are gone
        open_now = [other for other in self.connections if not _closing(other)]
        if len(open_now) > self.limits.max_connections:
            return True
        per_client = self.limits.max_connections_per_client
        if not per_client or self.client is None:
            return False
        host = self.client[0]
        same = sum(1 for other in open_now if _client_host(other) == host)
        return same > per_client

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.cycle is not before and self._header_timer is not None:
            self._header_timer.cancel()  # a whole request head arrived in time
            self._header_timer = None
        self._arm_body_timer()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request's head, keep-alive wait included
        super().on_response_complete()

    def _arm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        self._header_timer = self.loop.call_later(self.limits.header_timeout_s,
                                                  self._header_timed_out)

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing() and (self.cycle is None
                                                or self.cycle.response_complete):
            self.transport.close()

    def _arm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            self._body_timer = self.loop.call_later(self.limits.body_timeout_s,
                                                    self._body_timed_out)

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        waiting_for_us = self.flow.read_paused or (
            self.cycle is not None and self.cycle.waiting_for_100_continue)
        if waiting_for_us:  # the station stopped reading, or has not asked for the body yet
            self._arm_body_timer()
            return
        self.transport.close()  # the app sees a disconnect; a partial blob is discarded

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None


def protocol_for(limits: Limits) -> type[StationProtocol]:
    """A StationProtocol class that applies ``limits`` (uvicorn takes a class, not an object)."""
    return type("StationProtocol", (StationProtocol,), {"limits": limits})


def server_config(app: ASGIApp, limits: Limits, *, host: str = "127.0.0.1", port: int = 0,
                  ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
                  log_level: str = "info") -> uvicorn.Config:
    """The uvicorn Config of a station: the one place its server settings are made."""
    return uvicorn.Config(app, host=host, port=port, http=protocol_for(limits), ws="none",
                          lifespan="on", loop="asyncio", log_level=log_level,
                          ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile,
                          timeout_keep_alive=limits.keep_alive_s,
                          h11_max_incomplete_event_size=limits.max_header_bytes,
                          backlog=ACCEPT_BACKLOG)


class _Companion(uvicorn.Server):
    """A uvicorn server that leaves the process's signals alone: ``run_servers`` handles them
    once for all its servers (uvicorn's own handling is per server, and a second server's would
    replace the first's)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run_servers(configs: list[uvicorn.Config]) -> None:
    """Serve every config in this process until SIGINT or SIGTERM (a second SIGINT: at once),
    the device API and the staff pages on their own listeners. A server that cannot start
    (its port taken) stops the others."""
    servers = [_Companion(config) for config in configs]

    async def serve_all() -> None:
        loop = asyncio.get_running_loop()

        def stop(number: signal.Signals) -> None:
            for server in servers:
                if server.should_exit and number == signal.SIGINT:
                    server.force_exit = True
                server.should_exit = True

        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, stop, number)
        tasks = [asyncio.create_task(server.serve()) for server in servers]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    stop(signal.SIGTERM)
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise task.exception()  # type: ignore[misc]
        finally:
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(number)

    asyncio.run(serve_all())
