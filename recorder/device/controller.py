"""The controller: turns board events into recordings, and keeps the public informed.

Threads: the sources' capture threads push into the `PreEventRing` (and never touch the disk); one
writer thread (`RecordingWriter`, in `writer`) drains the ring into a `Recording` while recording;
the controller's own thread (`run`, or the caller of `handle`) reacts to board events and checks
the health of the others. The controller's state is changed only on its own thread, under
``_lock``.
"""

from __future__ import annotations

import enum
import logging
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..board import Board, BoardEvent, BoardEventKind, Condition, Cue, IndicatorStatus, Mode
from ..board import StealthNotAllowedError
from ..capture.access_unit import AUDIO, AccessUnit
from ..errors import RecorderError
from ..integrity.manifest import ManifestError
from ..storage.faults import describe, fault_kind
from .writer import Recording, RecordingWriter, Ring

log = logging.getLogger("recorder.controller")  # the name log lines have always shown

HANDLE_WAIT_S = 0.5  # a board stop waits this long for the seal, then check() finishes it
HELD_AUDIO_UNITS = 256  # audio held while buffering (AAC: about 5 s, more than a start takes)


class State(enum.Enum):
    BUFFERING = "buffering"
    RECORDING = "recording"
    STOPPING = "stopping"
    DOCKED = "docked"


@dataclass(frozen=True)
class RingSize:
    capacity_bytes: int
    max_units: int


def ring_size(pre_event_s: float, video_bitrate_bps: int, audio_bitrate_bps: int, fps: int,
              audio_frames_per_s: float, keyframe_interval_s: float,
              writer_slack_s: float = 10.0) -> RingSize:
    """Arena and index for ``pre_event_s`` of buffer plus one GOP, plus ``writer_slack_s`` of
    jitter buffer for a slow card while recording, with 50% headroom for bit-rate peaks."""
    seconds = pre_event_s + 2 * keyframe_interval_s + writer_slack_s
    capacity = int((video_bitrate_bps + audio_bitrate_bps) / 8 * seconds * 1.5)
    units = int((fps + audio_frames_per_s) * seconds * 1.5) + 64
    return RingSize(max(capacity, 1 << 20), max(units, 256))


def free_bytes(path: Path) -> int:
    """Free space for an unprivileged writer on the file system holding ``path``."""
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


class Controller:
    """States: buffering -> recording -> stopping -> buffering; docked; error.

    ``open_recording()`` makes a new `Recording`; ``storage()`` returns free bytes. Audio goes
    into the ring while recording, and while buffering only if ``audio_in_pre_event``.

    Docked (while the dock sense is active, and not recording) the camera uploads with
    ``upload()``, and the board says so for as long as it stays docked: "uploading", then "done"
    or "uploaded, N kept" (``kept()`` counts the recordings still on the camera), or "no station
    configured" when there is no ``upload``. A start asked for in the dock is refused with the
    refusal cue: a docked camera does not record.

    A stop asked for by the board is asynchronous: the state is STOPPING (the board still shows
    recording) while the writer drains what was captured up to the stop instant and seals, and
    the controller's thread goes on serving the board and the watchdog meanwhile; ``check()``
    winds the recording up once the writer is done. ``stop_recording()`` waits for it.

    After a storage fault (read-only, failing or full card), ``check()`` retries every
    ``retry_s`` while buffering: ``probe()`` (which raises while the card cannot be written)
    and then ``recover()``; once it passes, the fault stops showing, before anyone presses the
    button.
    """

    stop_wait_s = HANDLE_WAIT_S  # how long a board stop waits for the seal before returning

    def __init__(self, ring: Ring, board: Board, open_recording: Callable[[], Recording], *,
                 min_free_bytes: int, storage: Callable[[], int], clock_us: Callable[[], int],
                 audio_in_pre_event: bool = False, stealth_allowed: bool = False,
                 audio_overflows: Callable[[], int] = lambda: 0,
                 audio_resyncs: Callable[[], int] = lambda: 0,
                 upload: Callable[[], bool] | None = None,
                 kept: Callable[[], int] = lambda: 0,
                 recover: Callable[[], object] = lambda: None,
                 probe: Callable[[], object] = lambda: None, retry_s: float = 3.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.ring = ring
        self.board = board
        self.open_recording = open_recording
        self.min_free_bytes = min_free_bytes
        self.storage = storage
        self.clock_us = clock_us
        self.audio_in_pre_event = audio_in_pre_event
        self.stealth_allowed = stealth_allowed
        self.audio_overflows = audio_overflows
        self.upload = upload  # runs on its own thread when docked; True when all went up
        self.upload_results: list[bool] = []
        self.kept = kept
        self.recover = recover  # seals recordings a storage fault left open, once it is over
        self.probe = probe  # raises (OSError, RecorderError) while the card cannot be written
        self.retry_s = retry_s
        self.monotonic = monotonic
        self._next_retry = 0.0
        self.dock_detail = ""  # what the board says while docked
        self._uploader: threading.Thread | None = None
        self._audio_overflows_seen = audio_overflows()
        self.audio_resyncs = audio_resyncs
        self._audio_resyncs_seen = audio_resyncs()
        self.state = State.BUFFERING
        self.stealth = False
        self.conditions: set[Condition] = set()
        self.writer: RecordingWriter | None = None
        self.recordings: list[Path] = []
        self.errors: list[str] = []
        self._fault_conditions: set[Condition] = set()  # shown until a recording starts again
        self._lock = threading.Lock()
        # Audio while buffering without pre-event audio: the last HELD_AUDIO_UNITS of it are held
        # here, so that audio stamped after the trigger but arriving while the start is still
        # being written is not lost. The gate is the trigger's pts while recording, else None.
        self._audio_gate = threading.Lock()
        self._audio_from_us: int | None = None
        self._held_audio: deque[AccessUnit] = deque(maxlen=HELD_AUDIO_UNITS)
        self._show()

    # -- what the sources call --------------------------------------------------------------

    def push(self, unit: AccessUnit) -> None:
        """The sink for every source. Without pre-event audio, audio enters the ring from the
        trigger's pts on (by its pts, not by when it arrives); until a start it is only held
        for a moment. While stopping, audio up to the stop instant is still on its way."""
        if unit.stream != AUDIO or self.audio_in_pre_event:
            self.ring.push(*unit)
            return
        with self._audio_gate:  # one audio thread: its units enter the ring in pts order
            if self._audio_from_us is None:
                self._held_audio.append(unit)  # the oldest falls out; a start takes what it needs
            elif unit.pts_us >= self._audio_from_us:
                self.ring.push(*unit)

    def _open_audio_gate(self, from_us: int) -> None:
        """Let audio stamped at or after ``from_us`` into the ring, the held units first."""
        with self._audio_gate:
            for unit in self._held_audio:
                if unit.pts_us >= from_us:
                    self.ring.push(*unit)
            self._held_audio.clear()
            self._audio_from_us = from_us

    def _close_audio_gate(self) -> None:
        with self._audio_gate:
            self._audio_from_us = None

    # -- events -------------------------------------------------------------------------------

    def handle(self, event: BoardEvent) -> None:
        kind = event.kind
        with self._lock:
            if kind is BoardEventKind.START:
                if self.state is State.DOCKED:
                    self._refuse_in_dock(event.source)
                else:
                    self._start(event.source)
            elif kind is BoardEventKind.STOP:
                writer = self._request_stop(f"stopped by {event.source}")
                if writer is not None and writer.done.wait(self.stop_wait_s):
                    self._finish_stop()  # usually done at once; else check() finishes it
            elif kind is BoardEventKind.MARKER and self.writer is not None:
                self._event("marker", source=event.source, board_t_us=round(event.t * 1e6))
                self.board.cue(Cue.MARKER)
            elif kind is BoardEventKind.STOP_ARMED:
                self.board.cue(Cue.STOP_ARMED)
            elif kind is BoardEventKind.STEALTH_TOGGLE:
                self._toggle_stealth()
            elif kind is BoardEventKind.DOCKED and self.state is State.BUFFERING:
                self._dock()
            elif kind is BoardEventKind.UNDOCKED and self.state is State.DOCKED:
                log.info("undocked: buffering")
                self.state = State.BUFFERING  # an upload under way fails and keeps its copies
                self._show()

    def start_recording(self, reason: str = "request") -> Path | None:
        with self._lock:
            return self._start(reason)

    def stop_recording(self, reason: str = "request",
                       timeout: float | None = None) -> Path | None:
        """Stop (or finish a stop under way) and wait up to ``timeout`` for the seal; the
        recording's path, or None when none was being recorded. Waits outside the lock."""
        with self._lock:
            self._request_stop(reason)
            writer = self.writer
        if writer is None:
            return None
        writer.done.wait(timeout)
        with self._lock:
            if self.writer is writer and writer.done.is_set():
                self._finish_stop()
        return writer.recording.path

    def _start(self, source: str) -> Path | None:
        if self.state is State.STOPPING:
            log.warning("start (by %s) refused: the last recording is still being sealed",
                        source)
            self.board.cue(Cue.REFUSED)
            return None
        if self.state is not State.BUFFERING:
            return None
        if self.storage() < self.min_free_bytes:
            log.error("recording refused: storage full (less than %d bytes free)",
                      self.min_free_bytes)
            self.conditions.add(Condition.STORAGE_FULL)
            self._fault_conditions.add(Condition.STORAGE_FULL)
            self.errors.append("storage full: recording refused")
            self._show()
            return None
        try:
            if self._fault_conditions:  # after a fault: seal what it left open, if it can now
                self.probe()
                self.recover()
            recording = self.open_recording()
        except (OSError, RecorderError) as exc:  # read-only, failing, gone, or locked: buffer
            self._storage_fault(exc, "no new recording could be made")
            self.board.cue(Cue.REFUSED)
            return None
        trigger_us = self.clock_us()  # on the sources' clock: audio is let in from here
        try:
            recording.event("trigger", source=source, stealth=self.stealth)
        except OSError as exc:  # the manifest has its header: seal what there is, if it can
            self._storage_fault(exc, f"recording {recording.path} refused")
            self._seal_quietly(recording, "storage fault at the start")
            self.board.cue(Cue.REFUSED)
            return None
        self._clear_storage_faults()
        self.ring.begin_consume()
        self._open_audio_gate(trigger_us)
        self.writer = RecordingWriter(self.ring, recording, self.min_free_bytes, self.storage,
                                      self.clock_us)
        self.state = State.RECORDING
        self.writer.start()
        self.recordings.append(recording.path)
        log.info("recording started (by %s) into %s", source, recording.path)
        self._show()
        self.board.cue(Cue.START)
        return recording.path

    def _request_stop(self, reason: str) -> RecordingWriter | None:
        """Ask the writer to stop at this instant, without waiting: STOPPING until it has
        written what was captured before now and sealed (`_finish_stop`). The stop cue goes out
        now, for the wearer; the board shows recording until the seal."""
        writer = self.writer
        if self.state is not State.RECORDING or writer is None:
            return None
        self.state = State.STOPPING
        writer.request_stop(reason)
        log.info("stopping (%s): sealing %s", reason, writer.recording.path.name)
        self.board.cue(Cue.STOP)
        return writer

    def _finish_stop(self) -> None:
        """The writer is done (sealed, or failed for good): back to buffering."""
        writer = self.writer
        assert writer is not None and writer.done.is_set()
        writer.join()
        self.ring.end_consume()
        self._close_audio_gate()
        self.writer = None
        self.state = State.BUFFERING
        self._report_writer(writer)
        sealed = getattr(writer.recording, "is_sealed", True)
        log.info("recording stopped (%s) and %s: %s", writer.stop_reason or "writer stopped",
                 "sealed" if sealed else "NOT sealed", writer.recording.path)
        self._show()

    def _refuse_in_dock(self, source: str) -> None:
        log.warning("start (by %s) refused: the camera is docked; undock it to record", source)
        self._show()  # the board took the gesture for a start: tell it the truth
        self.board.cue(Cue.REFUSED)

    def _dock(self) -> None:
        """Docked while buffering: upload, or say that there is no station to upload to."""
        self.state = State.DOCKED
        if self.upload is None:
            log.warning("docked, but no station is configured (station.url): nothing is "
                        "uploaded, and the recordings stay on the camera")
            self.dock_detail = "no station configured"
            self._show()
        elif self._uploader is not None:
            self.dock_detail = "uploading"  # an upload from an earlier dock is still running
            self._show()
        else:
            log.info("docked: uploading")
            self._start_upload()

    def _toggle_stealth(self) -> None:
        wanted = not self.stealth
        try:
            self.board.show(self._status(wanted))
        except StealthNotAllowedError:
            if self.writer is not None:
                self._event("stealth", on=wanted, allowed=False)
            return
        self.stealth = wanted
        if self.writer is not None:
            self._event("stealth", on=wanted, allowed=True)

    def _start_upload(self) -> None:
        if self.upload is None or self._uploader is not None:
            return
        self.dock_detail = "uploading"
        self._uploader = threading.Thread(target=self._run_upload, name="uploader", daemon=True)
        self._uploader.start()
        self._show()

    def _upload_finished(self) -> None:
        """The uploader thread ended: say how it went, for as long as the camera stays docked."""
        ok = bool(self.upload_results and self.upload_results[-1])
        try:
            kept = self.kept()
        except OSError as exc:
            log.warning("could not count the recordings kept on the camera: %s", exc)
            kept = -1
        if ok and kept <= 0:
            self.dock_detail = "done"
        else:
            count = "some" if kept < 0 else str(kept)
            self.dock_detail = f"{'uploaded' if ok else 'upload failed'}, {count} kept"
        log_level = logging.INFO if ok else logging.WARNING
        log.log(log_level, "upload finished: %s", self.dock_detail)

    def _run_upload(self) -> None:
        assert self.upload is not None
        try:
            ok = self.upload()
        except Exception as exc:  # the camera keeps everything; reported, retried at next dock
            log.exception("upload failed")
            self.errors.append(f"upload failed: {exc}")
            ok = False
        self.upload_results.append(ok)

    def _mode(self) -> Mode:
        if self.state in (State.RECORDING, State.STOPPING):
            return Mode.RECORDING
        if self.state is State.DOCKED:
            return Mode.UPLOADING if self._uploader is not None else Mode.DOCKED
        return Mode.BUFFERING

    def _status(self, stealth: bool) -> IndicatorStatus:
        detail = self.dock_detail if self.state is State.DOCKED else ""
        return IndicatorStatus(self._mode(), frozenset(self.conditions), stealth, detail)

    def _show(self) -> None:
        self.board.show(self._status(self.stealth))

    # -- health -------------------------------------------------------------------------------

    def check(self) -> None:
        """Called periodically: a writer that stopped on its own (storage, error) is wound up."""
        with self._lock:
            writer = self.writer
            overflows = self.audio_overflows()
            if overflows != self._audio_overflows_seen:
                if writer is not None:  # lost microphone audio is data loss: into the manifest
                    self._event("audio_overflow", blocks=overflows - self._audio_overflows_seen)
                self._audio_overflows_seen = overflows
            resyncs = self.audio_resyncs()
            if resyncs != self._audio_resyncs_seen:
                if writer is not None:  # the audio timeline jumped: a gap bwv verify will see
                    self._event("audio_resync", count=resyncs - self._audio_resyncs_seen)
                self._audio_resyncs_seen = resyncs
            if self._uploader is not None and not self._uploader.is_alive():
                self._uploader.join()
                self._uploader = None
                self._upload_finished()
                self._show()
            if writer is not None and writer.done.is_set():
                if self.state is State.RECORDING:  # it stopped on its own: say why
                    self._request_stop("writer stopped: " + (
                        "storage full" if writer.storage_ran_out
                        else f"error: {describe_error(writer.error)}"))
                self._finish_stop()
            if self.state is State.BUFFERING and self._fault_conditions:
                self._retry_storage()
            if self.state is State.BUFFERING and self.board.docked:
                self._dock()  # put in the dock while recording: dock now the recording is over

    def run(self, stop: threading.Event, poll_s: float = 0.2,
            heartbeat: Callable[[], None] = lambda: None) -> None:
        """React to board events until ``stop`` is set; then stop and seal any recording.
        ``heartbeat`` is called every ``poll_s`` or sooner (the service watchdog)."""
        try:
            while not stop.is_set():
                event = self.board.get_event(timeout=poll_s)
                try:
                    if event is not None:
                        self.handle(event)
                    self.check()
                except (OSError, ManifestError) as exc:  # never exit on a storage fault
                    with self._lock:
                        self._storage_fault(exc, "storage fault")
                heartbeat()
        finally:
            self.stop_recording("recorder shutting down")

    # -- storage faults -----------------------------------------------------------------------

    def _event(self, kind: str, **fields: object) -> None:
        """Enter an event in the recording; a card that fails here (read-only, I/O error) does
        not end the camera: the fault is shown, and the writer, failing too, seals."""
        assert self.writer is not None
        try:
            self.writer.recording.event(kind, **fields)
        except (OSError, ManifestError) as exc:  # ManifestError: after an earlier failed line
            self._storage_fault(exc, f"{kind} not entered in {self.writer.recording.path.name}")

    def _storage_fault(self, exc: Exception, doing: str) -> None:
        """Say what happened (one line, no traceback) and show it on the board until a
        recording starts again: storage full as such, any other storage fault as an error."""
        kind = fault_kind(exc)
        message = f"{doing}: {describe(exc)}"
        log.error("%s", message)
        self.errors.append(message)
        condition = Condition.STORAGE_FULL if kind == "storage full" else Condition.ERROR
        self.conditions.add(condition)
        self._fault_conditions.add(condition)
        self._show()

    def storage_unusable(self, exc: Exception) -> None:
        """The card could not be used as the camera started: buffer, show the fault, and retry
        (see `check`)."""
        with self._lock:
            self._storage_fault(exc, "storage not usable at start; buffering, and retrying "
                                f"every {self.retry_s:g} s")

    def _retry_storage(self) -> None:
        """Every ``retry_s`` while a storage fault shows: is the card usable again? (free
        space, then ``probe``, then ``recover``). If so, the fault stops showing."""
        now = self.monotonic()
        if now < self._next_retry:
            return
        self._next_retry = now + self.retry_s
        if self.storage() < self.min_free_bytes:
            return
        try:
            self.probe()
            self.recover()
        except (OSError, RecorderError) as exc:
            log.debug("storage still not usable: %s", describe(exc))
            return
        log.info("storage usable again: the fault no longer shows")
        self._clear_storage_faults()
        self._show()

    def _clear_storage_faults(self) -> None:
        """A recording started: the card works again, so its earlier fault stops showing."""
        self.conditions -= self._fault_conditions
        self._fault_conditions.clear()

    def _seal_quietly(self, recording: Recording, reason: str) -> None:
        try:
            recording.seal(reason)
        except OSError as exc:
            log.error("could not seal %s: %s (recovered at the next start)", recording.path,
                      describe(exc))

    def _report_writer(self, writer: RecordingWriter) -> None:
        """A recording ended: enter in ``errors`` exactly what stopped it, if not a request."""
        path = writer.recording.path
        if writer.error is not None:
            kind = fault_kind(writer.error)
            if kind == "recording directory removed" or not path.exists():
                message = (f"recording {path} stopped: its directory was removed while "
                           "recording; what was written to it is gone")
            elif kind is not None:
                message = f"recording {path} stopped: {describe(writer.error)}; " + (
                    "sealed with what was written" if getattr(writer.recording, "is_sealed", True)
                    else "it could not be sealed: the next recorder started on its "
                    "directory seals it once the card can be written again")
            else:
                message = f"recording {path} failed: {writer.error}"
            log.error("%s", message)
            self.errors.append(message)
            condition = Condition.STORAGE_FULL if kind == "storage full" else Condition.ERROR
            self.conditions.add(condition)
            if kind is not None:
                self._fault_conditions.add(condition)
        elif writer.storage_ran_out:
            self.errors.append(f"recording {path} stopped: storage full (less than "
                               f"{self.min_free_bytes} bytes free); sealed")
            log.error("%s", self.errors[-1])
            self.conditions.add(Condition.STORAGE_FULL)
            self._fault_conditions.add(Condition.STORAGE_FULL)


def describe_error(exc: BaseException | None) -> str:
    return describe(exc) if exc is not None else "unknown"
