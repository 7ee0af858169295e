"""The writer thread: drains the pre-event ring into one recording while the camera records.

`RecordingWriter` is started by the controller when a recording starts and asked to stop when
it ends; `Recording` and `Ring` say what it needs of the two it joins.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..capture.access_unit import AccessUnit
from ..storage.faults import describe, fault_kind

log = logging.getLogger("recorder.controller")  # the name log lines have always shown


class Recording(Protocol):
    """What the writer thread needs of a recording (see `recorder.storage.recording`)."""

    path: Path

    def write(self, unit: AccessUnit) -> None: ...

    def event(self, kind: str, **fields: Any) -> None: ...

    def seal(self, reason: str = "stopped") -> None: ...


class Ring(Protocol):
    def push(self, stream: int, pts_us: int, is_keyframe: bool, payload: bytes) -> None: ...
    def begin_consume(self) -> None: ...
    def end_consume(self) -> None: ...
    def pop(self, timeout: float | None = None) -> AccessUnit | None: ...
    def stats(self) -> Any: ...
    def close(self) -> None: ...



class RecordingWriter:
    """The writer thread: drains the ring into one recording until asked to stop.

    Stops after the first unit stamped at or after the stop request (everything captured before
    the request is written), when the ring is closed and empty, or when storage runs out (the
    recording is then sealed cleanly). Overruns counted by the ring become manifest events.
    """

    def __init__(self, ring: Ring, recording: Recording, min_free_bytes: int,
                 storage: Callable[[], int], clock_us: Callable[[], int]) -> None:
        self.ring = ring
        self.recording = recording
        self.min_free_bytes = min_free_bytes
        self.storage = storage
        self.clock_us = clock_us
        self.stop_at_us: int | None = None
        self.stop_reason = ""
        self.error: BaseException | None = None
        self.units = 0
        self.storage_ran_out = False
        self._overruns_seen = ring.stats().overrun_units
        self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
        self.done = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def request_stop(self, reason: str = "stopped") -> None:
        if self.stop_at_us is None:
            self.stop_reason = reason
            self.stop_at_us = self.clock_us()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                unit = self.ring.pop(timeout=0.1)
                if unit is not None:
                    self.recording.write(unit)
                    self.units += 1
                    if self.units % 64 == 0:
                        self._check_overrun()
                        if self.storage() < self.min_free_bytes:
                            self.storage_ran_out = True
                            self.recording.event("error", reason="storage full: recording "
                                                 "stopped and sealed")
                            break
                stop = self.stop_at_us
                if stop is not None and (unit is None or unit.pts_us >= stop):
                    break
                if unit is None and getattr(self.ring, "closed", False):
                    break
            self._check_overrun()
            if self.stop_at_us is not None:
                self.recording.event("stop", reason=self.stop_reason)
        except BaseException as exc:  # reported by the controller, never lost
            self.error = exc
            _log_failure("recording writer failed", exc)
            try:
                self.recording.event("error", reason=f"recording writer failed: {describe(exc)}")
            except Exception as again:
                _log_failure("could not enter the writer's failure in the manifest", again)
        finally:
            reason = ("storage full" if self.storage_ran_out
                      else f"writer failed: {describe(self.error)}" if self.error is not None
                      else self.stop_reason or "stopped")
            try:
                self.recording.seal(reason)
            except BaseException as exc:
                self.error = self.error or exc
                _log_failure("sealing the recording failed", exc)
            self.done.set()

    def _check_overrun(self) -> None:
        stats = self.ring.stats()
        lost = stats.overrun_units - self._overruns_seen
        if lost:
            self._overruns_seen = stats.overrun_units
            self.recording.event("overrun", units=lost, total_units=stats.overrun_units,
                                 total_bytes=stats.overrun_bytes)


def _log_failure(doing: str, exc: BaseException) -> None:
    """A storage fault is expected in the field: one line saying which. Anything else is a
    bug, logged with its traceback for the report."""
    if fault_kind(exc) is not None:
        log.error("%s: %s", doing, describe(exc))
    else:
        log.exception("%s", doing)
