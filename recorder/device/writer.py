"""The writer thread: drains the pre-event ring into one recording while the camera records.

`RecordingWriter` is started by the controller when a recording starts and asked to stop when
it ends; `Recording` and `Ring` say what it needs of the two it joins.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..capture.access_unit import AUDIO, VIDEO, AccessUnit
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


QUIET_MIN_S = 0.3  # after a stop, nothing new for this long (or 2.5 frame gaps): nothing is coming
AUDIO_GRACE_S = 1.0  # after the video reached the stop: how long the audio may still lag behind
STOP_GRACE_S = 5.0  # a stop never waits longer than this for the sources to reach its instant
# How often the writer looks into the ring while recording. It takes everything there at once,
# then sleeps: a few wake-ups a second instead of one per access unit (each wake-up of a thread
# costs more CPU than the unit's own work; docs/performance.md). A fragment (2 s) reaches the
# card at most this much later. A stop request wakes the writer at once, and while it stops it
# looks every STOPPING_POLL_S, so that the seal follows the last unit closely.
WRITER_POLL_S = 0.25
STOPPING_POLL_S = 0.02


class RecordingWriter:
    """The writer thread: drains the ring into one recording until asked to stop.

    A stop is decided by pts, not by a pause in what arrives: the writer goes on until every
    stream it has written (video, and audio if any) has delivered a unit stamped at or after the
    stop instant, so everything captured before the stop is written, including frames still in
    an encoder when the stop came (a frame at 2 fps arrives up to 0.5 s late; AAC frames lag the
    video by the encoder's delay). That wait is bounded: it ends when the sources go quiet (no
    unit for 2.5 times the longest gap between units seen, at least ``QUIET_MIN_S``), when the
    audio lags more than ``AUDIO_GRACE_S`` behind video that reached the stop, after
    ``STOP_GRACE_S`` in all, or when the ring is closed and empty. Storage running out stops it
    too (the recording is then sealed cleanly). Overruns counted by the ring become manifest
    events.
    """

    def __init__(self, ring: Ring, recording: Recording, min_free_bytes: int,
                 storage: Callable[[], int], clock_us: Callable[[], int],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
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
        self._monotonic = monotonic
        self._last_pts: dict[int, int] = {}  # per stream, the newest pts written
        self._longest_gap_us = 0  # between two units of one stream, to judge "quiet"
        self._last_arrival = monotonic()
        self._stop_requested_at = 0.0  # monotonic seconds
        self._video_reached_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
        self._wake = threading.Event()  # set by a stop request: no need to wait for the poll
        self.done = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def request_stop(self, reason: str = "stopped") -> None:
        if self.stop_at_us is None:
            self.stop_reason = reason
            self._stop_requested_at = self._monotonic()
            self.stop_at_us = self.clock_us()
            self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                unit = self.ring.pop(timeout=0)
                if unit is None:  # the ring is empty: done, or sleep until the next look
                    if self._finished(None):
                        break
                    stopping = self.stop_at_us is not None
                    self._wake.wait(STOPPING_POLL_S if stopping else WRITER_POLL_S)
                    self._wake.clear()
                    continue
                self.recording.write(unit)
                self.units += 1
                self._note(unit)
                if self.units % 64 == 0:
                    self._check_overrun()
                    if self.storage() < self.min_free_bytes:
                        self.storage_ran_out = True
                        self.recording.event("error", reason="storage full: recording stopped "
                                             "and sealed")
                        break
                if self._finished(unit):
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

    def _note(self, unit: AccessUnit) -> None:
        """Remember what was written: each stream's newest pts and its longest gap."""
        previous = self._last_pts.get(unit.stream)
        if previous is not None:
            gap = min(unit.pts_us - previous, round(STOP_GRACE_S * 1e6))
            self._longest_gap_us = max(self._longest_gap_us, gap)
        self._last_pts[unit.stream] = unit.pts_us
        self._last_arrival = self._monotonic()

    def _reached(self, stream: int, stop: int) -> bool:
        return self._last_pts.get(stream, stop - 1) >= stop

    def _finished(self, unit: AccessUnit | None) -> bool:
        """Whether the recording is complete (see the class's docstring for the rule)."""
        closed = unit is None and bool(getattr(self.ring, "closed", False))
        stop = self.stop_at_us
        if stop is None or closed:
            return closed
        now = self._monotonic()
        video = self._reached(VIDEO, stop)
        if video and self._video_reached_at is None:
            self._video_reached_at = now
        if video and (AUDIO not in self._last_pts or self._reached(AUDIO, stop)):
            return True
        if self._video_reached_at is not None and now - self._video_reached_at >= AUDIO_GRACE_S:
            log.warning("the audio did not reach the stop within %g s of the video: the "
                        "recording's audio ends %d ms early", AUDIO_GRACE_S,
                        (stop - self._last_pts[AUDIO]) // 1000)
            return True
        quiet_s = min(STOP_GRACE_S, max(QUIET_MIN_S, 2.5 * self._longest_gap_us / 1e6))
        if unit is None and now - max(self._last_arrival, self._stop_requested_at) >= quiet_s:
            return True  # the sources stopped (a file ran out): nothing more is coming
        if now - self._stop_requested_at >= STOP_GRACE_S:
            log.warning("the sources did not reach the stop instant within %g s: stopped "
                        "with what had arrived", STOP_GRACE_S)
            return True
        return False

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
