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

``StationHttpToolsProtocol`` does the same over uvicorn's httptools protocol (llhttp, in C), and
``server_config`` takes it, with uvloop's event loop, when both are installed (the ``station``
extra installs them); otherwise the h11 protocol and asyncio's loop. The station's HTTP parsing
then costs a fraction of what h11's pure Python does (docs/performance.md, the upload figures).

``server_config`` builds the one uvicorn Config that ``bwv station serve`` and the tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
from collections.abc import Iterator
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    HAVE_HTTPTOOLS = True
except ImportError:  # the station extra installs it; without it, h11 serves
    HAVE_HTTPTOOLS = False

from .limits import ACCEPT_BACKLOG, Limits


def _client_host(protocol: object) -> str | None:
    """The peer address of one of uvicorn's open connections (any protocol class)."""
    client = getattr(protocol, "client", None)
    return str(client[0]) if isinstance(client, tuple) and client else None


def _closing(protocol: object) -> bool:
    """Whether one of uvicorn's connections is being closed (or never got a transport)."""
    transport = getattr(protocol, "transport", None)
    return transport is None or bool(transport.is_closing())


def _over_limit(protocol: Any, limits: Limits) -> bool:
    """Whether a new connection takes the station over its connection limits, in all or from
    its client's address."""
    # connections the station is already closing (a burst over the limit, timed-out slow
    # headers) stay in the set until the loop reports them lost: they do not count, or a
    # client arriving just after a burst is refused for connections that are gone
    open_now = [other for other in protocol.connections if not _closing(other)]
    if len(open_now) > limits.max_connections:
        return True
    per_client = limits.max_connections_per_client
    if not per_client or protocol.client is None:
        return False
    host = protocol.client[0]
    same = sum(1 for other in open_now if _client_host(other) == host)
    return bool(same > per_client)


class _Timers:
    """The header timer of both protocols, and the cancelling of both timers: a request head
    not whole within ``header_timeout_s`` (keep-alive wait included) closes the connection."""

    limits: Limits
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    _header_timer: asyncio.TimerHandle | None
    _body_timer: asyncio.TimerHandle | None

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

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None


class StationProtocol(_Timers, H11Protocol):
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
        return _over_limit(self, self.limits)

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



if HAVE_HTTPTOOLS:
    class StationHttpToolsProtocol(_Timers, HttpToolsProtocol):
        """uvicorn's httptools protocol with the limits of ``StationProtocol``: the header and
        body timeouts, the connection limits, and the cap on an incomplete request head's
        bytes (llhttp has none of its own; h11 has max_incomplete_event_size). As with h11, a
        request's answer comes before any refusal of what followed its body: bytes after the
        declared length that do not parse are refused with a 400 once the answer is sent."""

        limits = Limits()

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_timer: asyncio.TimerHandle | None = None
            self._body_timer: asyncio.TimerHandle | None = None
            self._head_bytes = 0
            self._in_head = False  # a request's first bytes arrived, its head has not ended
            self._in_body = False  # a request's head arrived, its body has not ended
            self._last_body_data = 0.0
            self._held_error = False  # bytes after a body did not parse: 400 after the answer

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if _over_limit(self, self.limits):
                self.transport.close()
                return
            self._arm_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_timers()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            self._unset_keepalive_if_required()
            if self._held_error:
                return  # reading is paused; anything in flight is not parsed
            if self._in_body:
                self._last_body_data = self.loop.time()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                self._unsupported_upgrade_warning()  # no WebSocket here (ws="none")
            except httptools.HttpParserError:
                cycle = self.cycle
                if cycle is not None and not cycle.more_body and not cycle.response_complete:
                    # the request before these bytes is whole and still being answered: the
                    # answer goes first, then the 400 (as h11 orders them)
                    self._held_error = True
                    self.flow.pause_reading()
                    return
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
                return
            if self._in_head:
                # a head still incomplete: what the parser holds of it is bounded as h11 bounds
                # its buffer (h11_max_incomplete_event_size), by max_header_bytes
                self._head_bytes += len(data)
                if self._head_bytes > self.limits.max_header_bytes:
                    self.send_400_response("Request head too long.")
                    return
            if self._in_body and self._body_timer is None and not self.transport.is_closing():
                self._last_body_data = self.loop.time()
                self._body_timer = self.loop.call_later(self.limits.body_timeout_s,
                                                        self._body_timed_out)

        # the parser's callbacks

        def on_message_begin(self) -> None:
            self._in_head, self._head_bytes = True, 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()  # a whole request head arrived in time
                self._header_timer = None
            self._in_head, self._in_body = False, True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_body = False
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            super().on_message_complete()

        def on_response_complete(self) -> None:
            if self._held_error:
                if not self.transport.is_closing():
                    self.logger.warning("Invalid HTTP request received.")
                    self.send_400_response("Invalid HTTP request received.")
            elif not self.transport.is_closing():
                self._arm_header_timer()  # the next request's head, keep-alive wait included
            super().on_response_complete()

        # the timers (the header timer's are _Timers')

        def _body_timed_out(self) -> None:
            """One timer per body, not one per chunk: when it fires it looks at how long the
            client has been silent, and waits on for the rest of the timeout if it was not."""
            self._body_timer = None
            if self.transport.is_closing() or not self._in_body:
                return
            now = self.loop.time()
            cycle = self.cycle
            waiting_for_us = self.flow.read_paused or (
                cycle is not None and cycle.waiting_for_100_continue)
            if waiting_for_us:  # the station stopped reading, or has not asked for the body
                self._last_body_data = now  # that pause is not the client's
            silent = now - self._last_body_data
            if silent < self.limits.body_timeout_s:
                self._body_timer = self.loop.call_later(self.limits.body_timeout_s - silent,
                                                        self._body_timed_out)
                return
            self.transport.close()  # the app sees a disconnect; a partial blob is discarded



def fast_path() -> bool:
    """Whether the station serves with httptools and uvloop (both installed) rather than h11
    and asyncio's loop. BWV_STATION_HTTP=h11 picks h11 even then (a comparison, a fallback)."""
    if os.environ.get("BWV_STATION_HTTP", "").lower() == "h11":
        return False
    return HAVE_HTTPTOOLS and importlib.util.find_spec("uvloop") is not None


def protocol_for(limits: Limits, fast: bool = False) -> type[asyncio.Protocol]:
    """The protocol class that applies ``limits`` (uvicorn takes a class, not an object): the
    httptools one with ``fast``, else the h11 one."""
    if fast:
        return type("StationHttpToolsProtocol", (StationHttpToolsProtocol,), {"limits": limits})
    return type("StationProtocol", (StationProtocol,), {"limits": limits})


def server_config(app: ASGIApp, limits: Limits, *, host: str = "127.0.0.1", port: int = 0,
                  ssl_certfile: str | None = None, ssl_keyfile: str | None = None,
                  log_level: str = "info") -> uvicorn.Config:
    """The uvicorn Config of a station: the one place its server settings are made."""
    fast = fast_path()
    return uvicorn.Config(app, host=host, port=port, http=protocol_for(limits, fast), ws="none",
                          lifespan="on", loop="uvloop" if fast else "asyncio",
                          log_level=log_level,
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

    # the loop of the configs (uvloop on the fast path: server_config), as uvicorn.run makes it
    with asyncio.Runner(loop_factory=configs[0].get_loop_factory()) as runner:
        runner.run(serve_all())
